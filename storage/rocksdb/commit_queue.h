#ifndef TELLONCE_STORAGE_ROCKSDB_COMMIT_QUEUE_H_
#define TELLONCE_STORAGE_ROCKSDB_COMMIT_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ops/metrics.h"
#include "rocksdb/utilities/write_batch_with_index.h"
#include "storage/rocksdb/database.h"

namespace tellonce::storage::rocks {

// The writes of one commit group. Reads through it see the database plus everything
// staged so far in the group, so an operation sees the effect of earlier operations
// of the same group (e.g. a second grant with the same request id).
class GroupBatch {
 public:
  // NOT_FOUND when absent. Other errors from RocksDB.
  absl::Status Get(Family family, const std::string& key, std::string* value);
  void Put(Family family, const std::string& key, const std::string& value);
  void Delete(Family family, const std::string& key);
  // Calls `visit` with each key starting with `prefix` and its value, in key order, as
  // the database plus this group's writes have them, until `visit` returns false.
  // Errors from RocksDB.
  absl::Status Scan(Family family, const std::string& prefix,
                    const std::function<bool(std::string_view key, std::string_view value)>& visit);

 private:
  friend class CommitQueue;
  GroupBatch(Database* db) : db_(db), batch_(rocksdb::BytewiseComparator(), 0, true) {}
  Database* db_;
  rocksdb::WriteBatchWithIndex batch_;
};

// Design: every write that acknowledges a citizen's or an agency's action goes through
// one CommitQueue. Callers submit an operation (a function that reads and stages
// writes in a GroupBatch) and a completion. One commit thread takes everything queued,
// runs the operations in submission order against one GroupBatch, writes the group
// with a single synced WAL write (group commit: one fsync for many writers), then runs
// the completions. Because operations run one at a time on that thread, a
// read-modify-write (revoke, spending a one-time consent, an idempotency check) needs
// no other lock. Operations must be quick and must not block; completions run on the
// commit thread (or on a completion thread of their own, Options::completion_thread)
// and must not block either (hand off, e.g. gRPC reactor Finish).
class CommitQueue {
 public:
  // Stages writes; a non-OK return discards what this operation staged and is passed
  // to its completion, leaving the rest of the group untouched.
  using Operation = absl::AnyInvocable<absl::Status(GroupBatch&)>;
  // Receives OK once the operation's writes are durable, the operation's own error, or
  // the group's write error (every operation of a failed group gets it).
  using Completion = absl::AnyInvocable<void(absl::Status)>;

  struct Options {
    // Largest number of operations committed as one group. Default 1024.
    size_t max_group = 1024;
    // Sync the WAL before acknowledging. Default true; false only for bulk loads in
    // benchmarks and tests that say so.
    bool sync = true;
    // How long the commit thread may wait for more operations before a write when the
    // previous group had more than one (so others are committing concurrently): one WAL
    // sync then covers more of them, which costs less CPU per operation, for a little
    // latency under load. A lone operation is never held. Default 0 (write at once).
    absl::Duration gather = absl::ZeroDuration();
    // Run completions on a thread of their own instead of the commit thread: the next
    // group's write and sync then overlap the previous group's completions (replies
    // sent to gRPC cost more than the write). Completions still run one at a time, in
    // submission order, each after its group is durable; a later group may already be
    // durable when they run. Default false.
    bool completion_thread = false;
    // Metrics, when not null (not owned; must outlive the queue): operations per group,
    // and seconds per write including its WAL sync.
    ops::Histogram* group_operations = nullptr;
    ops::Histogram* write_seconds = nullptr;
  };

  // Starts the commit thread. `db` must outlive the queue.
  CommitQueue(Database* db, Options options);
  explicit CommitQueue(Database* db) : CommitQueue(db, Options()) {}
  // Drains: every operation submitted before destruction is committed and completed.
  ~CommitQueue();
  // Drains as the destructor does, and stops the threads; later submissions complete
  // with UNAVAILABLE. Idempotent; not to be called from a completion.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // Thread-safe. After the destructor has begun, completes with UNAVAILABLE.
  void Submit(Operation op, Completion done) ABSL_LOCKS_EXCLUDED(mu_);

  // Submit and wait for the completion. Not to be called from a completion.
  absl::Status Run(Operation op) ABSL_LOCKS_EXCLUDED(mu_);

  // What the commit thread has done so far (for logs and benchmarks).
  struct Counters {
    std::atomic<uint64_t> operations{0};  // operations run
    std::atomic<uint64_t> groups{0};      // groups taken from the queue
    std::atomic<uint64_t> writes{0};      // RocksDB writes (WAL syncs when sync is on)
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Pending {
    Operation op;
    Completion done;
  };
  // A group's completions and what each receives.
  struct Committed {
    std::vector<Pending> group;
    std::vector<absl::Status> results;
  };
  void CommitLoop();
  // Runs the completions of `committed`, in order.
  static void Complete(Committed& committed);
  // The completion thread (Options::completion_thread).
  void CompletionLoop();

  Database* db_;
  Options options_;
  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Set once Close has drained the queue and stopped the threads.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  Counters counters_;

  absl::Mutex completion_mu_;
  std::deque<Committed> committed_ ABSL_GUARDED_BY(completion_mu_);
  bool commit_loop_done_ ABSL_GUARDED_BY(completion_mu_) = false;
  std::thread completion_thread_;

  std::thread thread_;
};

}  // namespace tellonce::storage::rocks

#endif  // TELLONCE_STORAGE_ROCKSDB_COMMIT_QUEUE_H_
