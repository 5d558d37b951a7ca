#include "broker/transparency.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "ops/log.h"
#include "proto/time.h"

namespace tellonce::broker {
namespace {

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

absl::StatusOr<std::unique_ptr<TransparencyLog>> TransparencyLog::Start(storage::Storage* storage,
                                                                        AccessLog* log,
                                                                        certs::SigningKey key,
                                                                        Options options) {
  std::unique_ptr<TransparencyLog> t(
      new TransparencyLog(&storage->tree(), &storage->access_events(), log, std::move(key),
                          std::move(options)));
  absl::StatusOr<uint64_t> stored_size = t->tree_->TreeSize();
  if (!stored_size.ok()) return stored_size.status();
  const uint64_t size = *stored_size;
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
              ? std::clamp(*held_until_ - absl::Now(), absl::ZeroDuration(),
                           options_.poll_interval)
              : options_.poll_interval;
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
      static ops::LogThrottle* failures = new ops::LogThrottle(absl::Seconds(10));
      failures->Log(ops::LogLevel::kWarning, "access log hashing failed, will retry",
                    {{"error", caught_up.ToString()}});
    }
    if (!caught_up.ok() && !absl::IsAborted(caught_up)) {
      // A failing store (a full or broken disk, a lost database) is retried after a
      // pause, not in a busy loop, and whoever waits for events that cannot be hashed
      // now gets the error instead of waiting for ever (found by
      // tests/unit/power_loss_test.cc). ABORTED is not a failure of the store: another
      // process moved the stored tree (a shared database), and the next pass follows it.
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
        } else if (w.size <= size && fresh_allowed && sequencer_) {
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
      sign = sequencer_ &&
             (!ready.empty() || !have_latest || (latest.tree_size() != size && due));
      if (!sequencer_ && !waiters_.empty()) {
        // The sequencer signs; look for its checkpoint at the next poll.
        held_until_ = now + std::min(options_.poll_interval, options_.fresh_interval);
      }
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
  return tree_->ReadNode(level, index);
}

absl::Status TransparencyLog::Follow() {
  absl::StatusOr<uint64_t> stored = tree_->TreeSize();
  if (!stored.ok()) return stored.status();
  if (*stored != builder_.size()) {
    absl::StatusOr<certs::TreeBuilder> restored = certs::TreeBuilder::Restore(
        *stored, [this](int level, uint64_t index) { return ReadNode(level, index); });
    if (!restored.ok()) return restored.status();
    builder_ = *std::move(restored);
    tree_size_.store(*stored, std::memory_order_release);
  }
  uint64_t from = 0;
  {
    absl::MutexLock lock(&mu_);
    tellonce::v1::Checkpoint body;
    if (latest_.has_value() && body.ParseFromString(latest_->body())) from = body.tree_size() + 1;
  }
  // Only checkpoints of the tree taken above: one signed meanwhile may be of a larger
  // tree, which proofs here cannot serve yet (the next pass takes both).
  std::optional<tellonce::v1::SignedCheckpoint> newest;
  absl::Status scanned =
      tree_->ScanCheckpoints(from, [&](uint64_t size, tellonce::v1::SignedCheckpoint& c) {
        if (size > *stored) return false;
        newest = std::move(c);
        return true;
      });
  if (!scanned.ok()) return scanned;
  if (newest.has_value()) {
    // Another process signed it: this one hands it out from now on, so it keeps it too
    // (a replica's rollback guard then follows the log whoever signs).
    if (options_.on_signed) {
      if (absl::Status kept = options_.on_signed(*newest); !kept.ok()) return kept;
    }
    absl::MutexLock lock(&mu_);
    latest_ = *std::move(newest);
  }
  return absl::OkStatus();
}

absl::Status TransparencyLog::CatchUp() {
  absl::StatusOr<bool> sequencer = tree_->AcquireSequencer();
  if (!sequencer.ok()) return sequencer.status();
  sequencer_ = *sequencer;
  // Another process may have extended the tree (it was the sequencer before this one,
  // or still is); a lone process finds it unchanged at one read per pass.
  if (absl::Status followed = Follow(); !followed.ok() || !*sequencer) return followed;
  absl::StatusOr<uint64_t> log_size = tree_->Sequence();
  if (!log_size.ok()) return log_size.status();
  while (builder_.size() < *log_size) {
    // A long catch-up renews the role as it goes (with a shared database, one that ran
    // past its lease would see its next write refused).
    if (builder_.size() > 0 && builder_.size() % (16 * kHashChunk) == 0) {
      absl::StatusOr<bool> still = tree_->AcquireSequencer();
      if (!still.ok() || !*still) return still.ok() ? absl::OkStatus() : still.status();
    }
    const uint64_t start = builder_.size();
    const uint64_t end = std::min(*log_size, start + kHashChunk);
    std::vector<certs::TreeBuilder::Node> nodes;
    absl::Status scanned = events_->Scan(start, end, [&](uint64_t, std::string_view bytes) {
      for (const certs::TreeBuilder::Node& node : builder_.Append(certs::LeafHash(bytes))) {
        nodes.push_back(node);
      }
      return true;
    });
    absl::Status written = scanned.ok() ? tree_->ExtendTree(start, end, nodes) : scanned;
    if (!written.ok()) {
      // The in-memory builder is ahead of what is stored (or another process moved the
      // stored tree): start again from storage.
      absl::Status followed = Follow();
      if (!followed.ok() || builder_.size() != tree_size()) {
        absl::StatusOr<certs::TreeBuilder> restored = certs::TreeBuilder::Restore(
            tree_size(), [this](int level, uint64_t index) { return ReadNode(level, index); });
        if (restored.ok()) builder_ = *std::move(restored);
      }
      return written;
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

  if (absl::Status stored = tree_->PutCheckpoint(size, checkpoint); !stored.ok()) {
    if (!absl::IsAlreadyExists(stored)) return stored;
    // Another process (a sequencer before this one) signed this size: use its checkpoint.
    std::optional<tellonce::v1::SignedCheckpoint> theirs;
    absl::Status scanned =
        tree_->ScanCheckpoints(size, [&](uint64_t at, tellonce::v1::SignedCheckpoint& c) {
          if (at == size) theirs = std::move(c);
          return false;
        });
    if (!scanned.ok()) return scanned;
    if (!theirs.has_value()) return stored;
    checkpoint = *std::move(theirs);
  }
  if (options_.on_signed) {
    if (absl::Status kept = options_.on_signed(checkpoint); !kept.ok()) return kept;
  }
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
  tellonce::v1::ListAccessEventsResponse response;
  int scanned = 0;
  uint64_t last = 0;
  bool full = false;
  absl::Status failed;
  absl::Status status = events_->ScanCitizen(
      citizen_id, has_token ? std::optional<uint64_t>(after) : std::nullopt,
      [&](uint64_t index, std::string_view bytes) {
        if (full) {
          // One more event of the citizen: there is a next page.
          response.set_next_page_token(absl::StrCat(last));
          return false;
        }
        ++scanned;
        last = index;
        tellonce::v1::AccessEvent event;
        if (!event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          failed = absl::DataLossError(absl::StrCat("access event ", index, " does not parse"));
          return false;
        }
        const absl::Time at = FromProtoTime(event.at());
        if (at >= from && at < to && (!consumer.has_value() || event.consumer() == *consumer)) {
          tellonce::v1::LoggedAccessEvent* logged = response.add_events();
          logged->set_index(index);
          *logged->mutable_event() = std::move(event);
        }
        full = response.events_size() >= page_size || scanned >= 10 * kMaxPageSize;
        return true;
      });
  if (!status.ok()) return status;
  if (!failed.ok()) return failed;
  return response;
}

absl::StatusOr<std::vector<tellonce::v1::SignedCheckpoint>> TransparencyLog::Checkpoints() {
  std::vector<tellonce::v1::SignedCheckpoint> checkpoints;
  absl::Status scanned =
      tree_->ScanCheckpoints(0, [&](uint64_t, tellonce::v1::SignedCheckpoint& checkpoint) {
        checkpoints.push_back(std::move(checkpoint));
        return true;
      });
  if (!scanned.ok()) return scanned;
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
  tellonce::v1::ExportCheckpointsResponse response;
  size_t used = 0;
  absl::Status scanned = tree_->ScanCheckpoints(
      start_size, [&](uint64_t size, tellonce::v1::SignedCheckpoint& checkpoint) {
        const size_t cost = checkpoint.ByteSizeLong() + kFieldOverhead;
        if (response.checkpoints_size() > 0 && used + cost > budget) {
          response.set_more(true);
          response.set_next_start_size(size);
          return false;
        }
        used += cost;
        *response.add_checkpoints() = std::move(checkpoint);
        return true;
      });
  if (!scanned.ok()) return scanned;
  return response;
}

}  // namespace tellonce::broker
