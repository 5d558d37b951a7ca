#include "broker/transparency.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "ops/log.h"
#include "consent/database.h"
#include "proto/time.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace tellonce::broker {
namespace {

using consent::Family;

// How long the hashing thread lets appended events gather before it hashes them, when
// no fresh checkpoint is waiting.
constexpr absl::Duration kBatchDelay = absl::Milliseconds(50);
// Pause before hashing again after the store failed.
constexpr absl::Duration kRetryDelay = absl::Seconds(1);
// Events hashed per write of tree nodes.
constexpr uint64_t kHashChunk = 4096;
constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;
constexpr uint32_t kDefaultExportSize = 1000;
constexpr uint32_t kMaxExportSize = 10000;
constexpr uint32_t kDefaultExportBytes = 1 << 20;
// Below the 4 MiB a gRPC client receives by default, with room for framing.
constexpr uint32_t kMaxExportBytes = 3 << 20;
// What a repeated message field adds to a page beyond the message: tag and length.
constexpr size_t kFieldOverhead = 6;

uint32_t ExportBytes(uint32_t max_bytes) {
  return max_bytes == 0 ? kDefaultExportBytes : std::min(max_bytes, kMaxExportBytes);
}

std::string HashBytes(const certs::Hash& h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

}  // namespace

std::string TransparencyLog::NodeKey(int level, uint64_t index) {
  std::string key("n");
  key.push_back(static_cast<char>(level));
  return key + BigEndian64(index);
}

std::string TransparencyLog::CheckpointKey(uint64_t tree_size) {
  return absl::StrCat("c", BigEndian64(tree_size));
}

absl::StatusOr<std::unique_ptr<TransparencyLog>> TransparencyLog::Start(consent::Database* db,
                                                                        AccessLog* log,
                                                                        certs::SigningKey key,
                                                                        Options options) {
  std::unique_ptr<TransparencyLog> t(
      new TransparencyLog(db, log, std::move(key), std::move(options)));
  std::string text;
  uint64_t size = 0;
  rocksdb::Status s =
      db->db()->Get(rocksdb::ReadOptions(), db->family(Family::kMeta), kTreeSizeKey, &text);
  if (s.ok()) {
    if (!absl::SimpleAtoi(text, &size)) {
      return absl::DataLossError(absl::StrCat("metadata ", kTreeSizeKey, " is corrupt"));
    }
  } else if (!s.IsNotFound()) {
    return consent::FromRocks(s);
  }
  absl::StatusOr<certs::TreeBuilder> builder = certs::TreeBuilder::Restore(
      size, [&](int level, uint64_t index) { return t->ReadNode(level, index); });
  if (!builder.ok()) return builder.status();
  t->builder_ = *std::move(builder);
  t->tree_size_.store(size, std::memory_order_release);

  // The stored tree must agree with the newest checkpoint it covers.
  absl::StatusOr<std::vector<tellonce::v1::SignedCheckpoint>> checkpoints = t->Checkpoints();
  if (!checkpoints.ok()) return checkpoints.status();
  for (auto it = checkpoints->rbegin(); it != checkpoints->rend(); ++it) {
    tellonce::v1::Checkpoint body;
    if (!body.ParseFromString(it->body()))
      return absl::DataLossError("a stored checkpoint is corrupt");
    if (body.tree_size() > size) continue;
    absl::StatusOr<certs::Hash> root = t->RootAt(body.tree_size());
    if (!root.ok()) return root.status();
    if (HashBytes(*root) != body.root_hash()) {
      return absl::DataLossError(
          absl::StrCat("access log tree does not match the checkpoint of size ", body.tree_size()));
    }
    break;
  }
  if (!checkpoints->empty()) {
    absl::MutexLock lock(&t->mu_);
    t->latest_ = checkpoints->back();
  }
  t->thread_ = std::thread([raw = t.get()] { raw->Run(); });
  return t;
}

TransparencyLog::~TransparencyLog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // Whoever still waits for a checkpoint learns that none is coming.
  std::vector<Waiter> waiters;
  {
    absl::MutexLock lock(&mu_);
    waiters.swap(waiters_);
  }
  for (Waiter& w : waiters) w.done(absl::UnavailableError("the broker is shutting down"));
}

void TransparencyLog::Notify() {
  absl::MutexLock lock(&mu_);
  notified_ = true;
}

void TransparencyLog::FreshCheckpoint(CheckpointDone done) {
  absl::StatusOr<uint64_t> size = log_->Size();
  if (!size.ok()) {
    done(size.status());
    return;
  }
  std::optional<tellonce::v1::SignedCheckpoint> covering;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) {
      covering.reset();
    } else {
      tellonce::v1::Checkpoint latest;
      if (latest_.has_value() && latest.ParseFromString(latest_->body()) &&
          latest.tree_size() >= *size) {
        covering = latest_;
      } else {
        waiters_.push_back(Waiter{*size, std::move(done)});
        return;
      }
    }
  }
  if (!covering.has_value()) {
    done(absl::UnavailableError("the broker is shutting down"));
    return;
  }
  done(*std::move(covering));
}

absl::StatusOr<tellonce::v1::SignedCheckpoint> TransparencyLog::LatestCheckpoint() {
  {
    absl::MutexLock lock(&mu_);
    if (latest_.has_value()) return *latest_;
  }
  absl::Notification signed_one;
  absl::StatusOr<tellonce::v1::SignedCheckpoint> result;
  FreshCheckpoint([&](absl::StatusOr<tellonce::v1::SignedCheckpoint> r) {
    result = std::move(r);
    signed_one.Notify();
  });
  signed_one.WaitForNotification();
  return result;
}

std::optional<tellonce::v1::SignedCheckpoint> TransparencyLog::LastSigned() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

void TransparencyLog::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // Waiters held for fresh_interval do not wake the thread before it has passed.
      auto urgent = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || (!waiters_.empty() && !held_until_.has_value());
      };
      auto ready = [this, &urgent]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return notified_ || urgent();
      };
      const absl::Duration timeout =
          held_until_.has_value()
              ? std::clamp(*held_until_ - absl::Now(), absl::ZeroDuration(), absl::Seconds(1))
              : absl::Seconds(1);
      mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
      if (stop_) return;
      if (!urgent()) {
        // New events but nobody waiting for them: let more arrive, so one pass hashes a
        // batch instead of waking for every exchange (on a 2-core machine the wake-ups
        // cost more than the hashing).
        mu_.AwaitWithTimeout(absl::Condition(&urgent), kBatchDelay);
        if (stop_) return;
      }
      notified_ = false;
      held_until_.reset();
    }
    absl::Status caught_up = CatchUp();
    if (!caught_up.ok()) {
      // A failing store (a full or broken disk) is retried after a pause, not in a busy
      // loop, and whoever waits for events that cannot be hashed now gets the error
      // instead of waiting for ever (found by tests/unit/power_loss_test.cc).
      static ops::LogThrottle* failures = new ops::LogThrottle(absl::Seconds(10));
      failures->Log(ops::LogLevel::kWarning, "access log hashing failed, will retry",
                    {{"error", caught_up.ToString()}});
      std::vector<Waiter> failed;
      {
        absl::MutexLock lock(&mu_);
        const uint64_t hashed = tree_size_.load(std::memory_order_acquire);
        std::vector<Waiter> waiting;
        for (Waiter& w : waiters_) (w.size > hashed ? failed : waiting).push_back(std::move(w));
        waiters_.swap(waiting);
      }
      for (Waiter& w : failed) {
        w.done(absl::UnavailableError(
            absl::StrCat("access log hashing failed: ", caught_up.message())));
      }
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), kRetryDelay);
      if (stop_) return;
    }
    const absl::Time now = absl::Now();
    const bool due = now - last_signed_ >= options_.checkpoint_interval;
    const bool fresh_allowed = now - last_signed_ >= options_.fresh_interval;
    std::vector<Waiter> covered;
    std::vector<Waiter> ready;
    std::optional<tellonce::v1::SignedCheckpoint> latest_signed;
    bool sign = false;
    {
      absl::MutexLock lock(&mu_);
      const uint64_t size = tree_size_.load(std::memory_order_acquire);
      tellonce::v1::Checkpoint latest;
      const bool have_latest = latest_.has_value() && latest.ParseFromString(latest_->body());
      latest_signed = latest_;
      // Waiters the latest checkpoint covers get it; those the hashed tree covers get the
      // next signature, once fresh_interval has passed since the last one.
      std::vector<Waiter> waiting;
      for (Waiter& w : waiters_) {
        if (have_latest && w.size <= latest.tree_size()) {
          covered.push_back(std::move(w));
        } else if (w.size <= size && fresh_allowed) {
          ready.push_back(std::move(w));
        } else {
          waiting.push_back(std::move(w));
        }
      }
      waiters_.swap(waiting);
      if (!fresh_allowed &&
          std::any_of(waiters_.begin(), waiters_.end(),
                      [size](const Waiter& w) { return w.size <= size; })) {
        held_until_ = last_signed_ + options_.fresh_interval;
      }
      sign = !ready.empty() || !have_latest || (latest.tree_size() != size && due);
    }
    for (Waiter& w : covered) w.done(*latest_signed);
    if (!sign) continue;
    absl::StatusOr<tellonce::v1::SignedCheckpoint> checkpoint = Sign();
    if (!checkpoint.ok()) {
      ops::LogWarning(absl::StrCat("signing a checkpoint failed: ", checkpoint.status().ToString()));
    }
    for (Waiter& w : ready) w.done(checkpoint);
  }
}

absl::StatusOr<certs::Hash> TransparencyLog::ReadNode(int level, uint64_t index) {
  std::string bytes;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), db_->family(Family::kAccessLog),
                                     NodeKey(level, index), &bytes);
  if (s.IsNotFound()) {
    return absl::DataLossError(absl::StrCat("tree node ", level, "/", index, " is missing"));
  }
  if (!s.ok()) return consent::FromRocks(s);
  return certs::HashFromBytes(bytes);
}

absl::Status TransparencyLog::CatchUp() {
  absl::StatusOr<uint64_t> log_size = log_->Size();
  if (!log_size.ok()) return log_size.status();
  while (builder_.size() < *log_size) {
    const uint64_t start = builder_.size();
    const uint64_t end = std::min(*log_size, start + kHashChunk);
    const std::string upper_key = AccessLog::Key(end);
    rocksdb::Slice upper(upper_key);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->db()->NewIterator(read_options, db_->family(Family::kAccessLog)));
    rocksdb::WriteBatch batch;
    uint64_t next = start;
    for (it->Seek(AccessLog::Key(start)); it->Valid(); it->Next(), ++next) {
      if (it->key().ToString() != AccessLog::Key(next)) {
        return absl::DataLossError(absl::StrCat("access event ", next, " is missing"));
      }
      const rocksdb::Slice value = it->value();
      for (const certs::TreeBuilder::Node& node :
           builder_.Append(certs::LeafHash(std::string_view(value.data(), value.size())))) {
        batch.Put(db_->family(Family::kAccessLog), NodeKey(node.level, node.index),
                  HashBytes(node.hash));
      }
    }
    if (!it->status().ok()) return consent::FromRocks(it->status());
    if (next != end) return absl::DataLossError(absl::StrCat("access event ", next, " is missing"));
    batch.Put(db_->family(Family::kMeta), kTreeSizeKey, absl::StrCat(end));
    // Not synced: the tree can be recomputed from the events. A checkpoint's synced
    // write makes everything before it in the WAL durable too.
    rocksdb::Status written = db_->db()->Write(rocksdb::WriteOptions(), &batch);
    if (!written.ok()) {
      // The in-memory builder is ahead of what is stored: start again from storage.
      absl::StatusOr<certs::TreeBuilder> restored = certs::TreeBuilder::Restore(
          tree_size(), [this](int level, uint64_t index) { return ReadNode(level, index); });
      if (restored.ok()) builder_ = *std::move(restored);
      return consent::FromRocks(written);
    }
    tree_size_.store(end, std::memory_order_release);
  }
  return absl::OkStatus();
}

absl::StatusOr<tellonce::v1::SignedCheckpoint> TransparencyLog::Sign() {
  const uint64_t size = builder_.size();
  {
    absl::MutexLock lock(&mu_);
    if (latest_.has_value()) {
      tellonce::v1::Checkpoint body;
      if (body.ParseFromString(latest_->body()) && body.tree_size() == size) return *latest_;
    }
  }
  tellonce::v1::Checkpoint body;
  body.set_issuer(options_.issuer);
  body.set_tree_size(size);
  body.set_root_hash(HashBytes(builder_.Root()));
  const absl::Time now = absl::Now();
  *body.mutable_signed_at() = ToProtoTime(now);
  tellonce::v1::SignedCheckpoint checkpoint;
  checkpoint.set_body(body.SerializeAsString());
  absl::StatusOr<std::string> signature =
      key_.Sign(certs::SignedKind::kCheckpoint, checkpoint.body());
  if (!signature.ok()) return signature.status();
  checkpoint.set_signature(*signature);
  checkpoint.set_signature_algorithm(std::string(certs::kSignatureAlgorithm));
  checkpoint.set_key_id(key_.key_id());

  rocksdb::WriteOptions sync;
  sync.sync = true;
  rocksdb::Status s = db_->db()->Put(sync, db_->family(Family::kAccessLog), CheckpointKey(size),
                                     checkpoint.SerializeAsString());
  if (!s.ok()) return consent::FromRocks(s);
  last_signed_ = now;
  absl::MutexLock lock(&mu_);
  latest_ = checkpoint;
  return checkpoint;
}

absl::StatusOr<certs::Hash> TransparencyLog::RootAt(uint64_t size) {
  if (size > tree_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree_size: larger than the hashed tree (", tree_size(), ")"));
  }
  return certs::RootHash(size,
                         [this](int level, uint64_t index) { return ReadNode(level, index); });
}

absl::StatusOr<tellonce::v1::GetInclusionProofResponse> TransparencyLog::InclusionProof(
    uint64_t index, uint64_t tree_size) {
  if (tree_size == 0) {
    absl::StatusOr<tellonce::v1::SignedCheckpoint> latest = LatestCheckpoint();
    if (!latest.ok()) return latest.status();
    tellonce::v1::Checkpoint body;
    body.ParseFromString(latest->body());
    tree_size = body.tree_size();
  }
  if (tree_size > this->tree_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree_size: larger than the hashed tree (", this->tree_size(), ")"));
  }
  if (index >= tree_size) {
    return absl::InvalidArgumentError(absl::StrCat("index: must be below tree_size ", tree_size));
  }
  absl::StatusOr<std::vector<certs::Hash>> path = certs::InclusionProof(
      index, tree_size, [this](int level, uint64_t i) { return ReadNode(level, i); });
  if (!path.ok()) return path.status();
  absl::StatusOr<std::string> bytes = log_->ReadBytes(index);
  if (!bytes.ok()) return bytes.status();
  tellonce::v1::GetInclusionProofResponse response;
  response.set_index(index);
  response.set_tree_size(tree_size);
  response.set_event_bytes(*std::move(bytes));
  for (const certs::Hash& h : *path) response.add_path(HashBytes(h));
  return response;
}

absl::StatusOr<tellonce::v1::GetConsistencyProofResponse> TransparencyLog::ConsistencyProof(
    uint64_t old_size, uint64_t new_size) {
  if (new_size > tree_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("new_size: larger than the hashed tree (", tree_size(), ")"));
  }
  if (old_size > new_size) {
    return absl::InvalidArgumentError("old_size: must not exceed new_size");
  }
  absl::StatusOr<std::vector<certs::Hash>> proof = certs::ConsistencyProof(
      old_size, new_size, [this](int level, uint64_t i) { return ReadNode(level, i); });
  if (!proof.ok()) return proof.status();
  tellonce::v1::GetConsistencyProofResponse response;
  response.set_old_size(old_size);
  response.set_new_size(new_size);
  for (const certs::Hash& h : *proof) response.add_proof(HashBytes(h));
  return response;
}

absl::StatusOr<tellonce::v1::ListAccessEventsResponse> TransparencyLog::List(
    const std::string& citizen_id, const std::optional<std::string>& consumer, absl::Time from,
    absl::Time to, int page_size, const std::string& page_token) {
  if (page_size <= 0) page_size = kDefaultPageSize;
  page_size = std::min(page_size, kMaxPageSize);
  uint64_t after = 0;
  bool has_token = !page_token.empty();
  // The largest value is no index the log hands out, and after + 1 would wrap to 0.
  if (has_token &&
      (!absl::SimpleAtoi(page_token, &after) || after == std::numeric_limits<uint64_t>::max())) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  const std::string prefix = AccessLog::CitizenPrefix(citizen_id);
  const std::string end = consent::PrefixEnd(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->db()->NewIterator(read_options, db_->family(Family::kIndexes)));
  it->Seek(has_token ? prefix + BigEndian64(after + 1) : prefix);

  tellonce::v1::ListAccessEventsResponse response;
  uint64_t last = 0;
  int scanned = 0;
  for (; it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (key.size() != prefix.size() + 8) continue;
    const uint64_t index = FromBigEndian64(std::string_view(key.data() + prefix.size(), 8));
    last = index;
    ++scanned;
    absl::StatusOr<tellonce::v1::AccessEvent> event = log_->Read(index);
    if (!event.ok()) return event.status();
    const absl::Time at = FromProtoTime(event->at());
    if (at >= from && at < to && (!consumer.has_value() || event->consumer() == *consumer)) {
      tellonce::v1::LoggedAccessEvent* logged = response.add_events();
      logged->set_index(index);
      *logged->mutable_event() = *std::move(event);
    }
    if (response.events_size() >= page_size || scanned >= 10 * kMaxPageSize) {
      it->Next();
      if (it->Valid()) response.set_next_page_token(absl::StrCat(last));
      break;
    }
  }
  if (!it->status().ok()) return consent::FromRocks(it->status());
  return response;
}

absl::StatusOr<std::vector<tellonce::v1::SignedCheckpoint>> TransparencyLog::Checkpoints() {
  const std::string prefix = "c";
  const std::string end = consent::PrefixEnd(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->db()->NewIterator(read_options, db_->family(Family::kAccessLog)));
  std::vector<tellonce::v1::SignedCheckpoint> checkpoints;
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    tellonce::v1::SignedCheckpoint& c = checkpoints.emplace_back();
    if (!c.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("a stored checkpoint is corrupt");
    }
  }
  if (!it->status().ok()) return consent::FromRocks(it->status());
  return checkpoints;
}

absl::StatusOr<tellonce::v1::ExportAccessLogResponse> TransparencyLog::Export(uint64_t start,
                                                                              uint32_t max_events,
                                                                              uint32_t max_bytes) {
  if (max_events == 0) max_events = kDefaultExportSize;
  max_events = std::min(max_events, kMaxExportSize);
  const size_t budget = ExportBytes(max_bytes);
  const uint64_t size = tree_size();
  tellonce::v1::ExportAccessLogResponse response;
  response.set_log_size(size);
  size_t used = 0;
  for (uint64_t i = start; i < size && i < start + max_events; ++i) {
    tellonce::v1::ExportedEvent e;
    e.set_index(i);
    absl::StatusOr<std::string> bytes = log_->ReadBytes(i);
    if (!bytes.ok()) return bytes.status();
    e.set_event_bytes(*std::move(bytes));
    absl::StatusOr<certs::Hash> leaf = ReadNode(0, i);
    if (!leaf.ok()) return leaf.status();
    e.set_leaf_hash(HashBytes(*leaf));
    const size_t cost = e.ByteSizeLong() + kFieldOverhead;
    if (response.events_size() > 0 && used + cost > budget) break;
    used += cost;
    *response.add_events() = std::move(e);
  }
  return response;
}

absl::StatusOr<tellonce::v1::ExportCheckpointsResponse> TransparencyLog::ExportCheckpoints(
    uint64_t start_size, uint32_t max_bytes) {
  const size_t budget = ExportBytes(max_bytes);
  const std::string end = consent::PrefixEnd("c");
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->db()->NewIterator(read_options, db_->family(Family::kAccessLog)));
  tellonce::v1::ExportCheckpointsResponse response;
  size_t used = 0;
  for (it->Seek(CheckpointKey(start_size)); it->Valid(); it->Next()) {
    const size_t cost = it->value().size() + kFieldOverhead;
    if (response.checkpoints_size() > 0 && used + cost > budget) {
      const rocksdb::Slice key = it->key();
      if (key.size() != 9) return absl::DataLossError("a stored checkpoint key is malformed");
      response.set_more(true);
      response.set_next_start_size(FromBigEndian64(std::string_view(key.data() + 1, 8)));
      break;
    }
    used += cost;
    if (!response.add_checkpoints()->ParseFromArray(it->value().data(),
                                                    static_cast<int>(it->value().size()))) {
      return absl::DataLossError("a stored checkpoint is corrupt");
    }
  }
  if (!it->status().ok()) return consent::FromRocks(it->status());
  return response;
}

}  // namespace tellonce::broker
