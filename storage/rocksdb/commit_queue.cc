#include "storage/rocksdb/commit_queue.h"

#include <algorithm>
#include <future>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rocksdb/options.h"
#include "storage/rocksdb/layout.h"

namespace tellonce::storage::rocks {

absl::Status GroupBatch::Get(Family family, const std::string& key, std::string* value) {
  return FromRocks(
      batch_.GetFromBatchAndDB(db_->db(), rocksdb::ReadOptions(), db_->family(family), key, value));
}

void GroupBatch::Put(Family family, const std::string& key, const std::string& value) {
  // Put on a WriteBatchWithIndex fails only past max_bytes, which is unlimited here.
  batch_.Put(db_->family(family), key, value).PermitUncheckedError();
}

void GroupBatch::Delete(Family family, const std::string& key) {
  batch_.Delete(db_->family(family), key).PermitUncheckedError();
}

absl::Status GroupBatch::Scan(
    Family family, const std::string& prefix,
    const std::function<bool(std::string_view key, std::string_view value)>& visit) {
  const std::string end = PrefixEnd(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(batch_.NewIteratorWithBase(
      db_->family(family), db_->db()->NewIterator(read_options, db_->family(family))));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (!key.starts_with(prefix)) break;
    if (!visit(std::string_view(key.data(), key.size()),
               std::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status());
}

CommitQueue::CommitQueue(Database* db, Options options) : db_(db), options_(options) {
  options_.max_group = std::max<size_t>(options_.max_group, 1);
  if (options_.completion_thread) completion_thread_ = std::thread([this] { CompletionLoop(); });
  thread_ = std::thread([this] { CommitLoop(); });
}

CommitQueue::~CommitQueue() { Close(); }

void CommitQueue::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      // Closed before, or closing on another thread: wait for that to finish.
      mu_.Await(absl::Condition(&closed_));
      return;
    }
    stopping_ = true;
  }
  thread_.join();  // CommitLoop returns once the queue is empty
  if (completion_thread_.joinable()) {
    {
      absl::MutexLock lock(&completion_mu_);
      commit_loop_done_ = true;
    }
    completion_thread_.join();  // CompletionLoop returns once every group is completed
  }
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

void CommitQueue::Complete(Committed& committed) {
  // Completions run without any lock, each exactly once.
  for (size_t i = 0; i < committed.group.size(); ++i) {
    committed.group[i].done(std::move(committed.results[i]));
  }
}

void CommitQueue::CompletionLoop() {
  for (;;) {
    Committed committed;
    {
      absl::MutexLock lock(&completion_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(completion_mu_) {
        return commit_loop_done_ || !committed_.empty();
      };
      completion_mu_.Await(absl::Condition(&ready));
      if (committed_.empty()) return;  // the commit loop is done and so is everything
      committed = std::move(committed_.front());
      committed_.pop_front();
    }
    Complete(committed);
  }
}

void CommitQueue::Submit(Operation op, Completion done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(op), std::move(done)});
      return;
    }
  }
  done(absl::UnavailableError("commit queue is shutting down"));
}

absl::Status CommitQueue::Run(Operation op) {
  std::promise<absl::Status> result;
  std::future<absl::Status> future = result.get_future();
  Submit(std::move(op), [&result](absl::Status status) { result.set_value(std::move(status)); });
  return future.get();
}

void CommitQueue::CommitLoop() {
  std::vector<Pending> group;
  std::vector<absl::Status> results;
  size_t last_group = 0;  // operations in the previous group
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;

  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and everything submitted is done
      if (options_.gather > absl::ZeroDuration() && last_group > 1) {
        auto full = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || queue_.size() >= options_.max_group;
        };
        mu_.AwaitWithTimeout(absl::Condition(&full), options_.gather);
      }
      size_t n = std::min(queue_.size(), options_.max_group);
      last_group = n;
      for (size_t i = 0; i < n; ++i) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }

    counters_.groups.fetch_add(1, std::memory_order_relaxed);
    counters_.operations.fetch_add(group.size(), std::memory_order_relaxed);
    if (options_.group_operations != nullptr) {
      options_.group_operations->Observe(static_cast<double>(group.size()));
    }

    // Run the operations in order; each one's writes are undone on its own failure.
    GroupBatch batch(db_);
    results.assign(group.size(), absl::OkStatus());
    bool any_ok = false;
    absl::Status broken;  // set when the batch can no longer be trusted
    for (size_t i = 0; i < group.size(); ++i) {
      if (!broken.ok()) {
        results[i] = broken;
        continue;
      }
      batch.batch_.SetSavePoint();
      absl::Status status = group[i].op(batch);
      rocksdb::Status undo =
          status.ok() ? batch.batch_.PopSavePoint() : batch.batch_.RollbackToSavePoint();
      if (!undo.ok()) {
        broken = absl::InternalError(
            absl::StrCat("commit group could not be staged: ", FromRocks(undo).message()));
        std::fill(results.begin(), results.begin() + i + 1, broken);
        continue;
      }
      results[i] = std::move(status);
      any_ok = any_ok || results[i].ok();
    }

    // One write (one WAL sync) for the whole group. An empty batch (only reads, or only
    // failures) needs no write: what was read was already durable.
    if (broken.ok() && any_ok && batch.batch_.GetWriteBatch()->Count() > 0) {
      counters_.writes.fetch_add(1, std::memory_order_relaxed);
      const absl::Time write_start = absl::Now();
      absl::Status written =
          FromRocks(db_->db()->Write(write_options, batch.batch_.GetWriteBatch()));
      if (options_.write_seconds != nullptr) {
        options_.write_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - write_start));
      }
      if (!written.ok()) {
        for (absl::Status& result : results) {
          if (result.ok()) result = written;
        }
      }
    }

    Committed committed{std::move(group), std::move(results)};
    group.clear();
    if (completion_thread_.joinable()) {
      absl::MutexLock lock(&completion_mu_);
      committed_.push_back(std::move(committed));
    } else {
      Complete(committed);
    }
  }
}

}  // namespace tellonce::storage::rocks
