#ifndef TELLONCE_BROKER_TRANSPARENCY_H_
#define TELLONCE_BROKER_TRANSPARENCY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/access_log.h"
#include "certs/merkle.h"
#include "certs/signing.h"
#include "storage/storage.h"
#include "tellonce/v1/transparency.pb.h"

namespace tellonce::broker {

// Design: the access log seen as an append-only Merkle tree (RFC 6962) that anyone
// holding the broker's certificate can check. Appends stay on the commit path; hashing
// happens here, on one background thread that follows the log: it reads the events
// numbered since it last ran, hashes them as leaves, and stores every complete subtree
// it finishes (storage::TreeStore), so the root of any size and any proof are
// O(log n) point reads. Because the tree is a function of the events, it needs no
// durable write of its own: after a crash the thread starts from the last stored tree
// size and catches up. Only the sequencer (TreeStore::AcquireSequencer; with RocksDB,
// always this process) extends the tree and signs. A checkpoint (tree size, root, time)
// is signed with the broker's key every `checkpoint_interval` while the log grows and
// when a fresh one is asked for, stored durably, at most one per size. Fresh requests are coalesced:
// a request the latest checkpoint already covers (every event durable when it was made)
// gets that one at once; the others wait, all together, for the next signature, and no
// more than one is signed per `fresh_interval`, so a flood of requests costs at most one
// synced signature per interval.
//
// Several processes over one database (storage/postgres): only the sequencer hashes and
// signs; every other process follows, every `poll_interval`: it takes the stored tree
// size (proofs up to it work on every replica) and the newest stored checkpoint, and
// answers fresh requests with the sequencer's next checkpoint that covers them (never
// signing itself). A process that becomes the sequencer first takes the stored tree.
//
// Thread-safe.
class TransparencyLog {
 public:
  struct Options {
    // SPIFFE id of the broker, written into checkpoints.
    std::string issuer;
    // How often a checkpoint is signed while the log grows. Default 10 s.
    absl::Duration checkpoint_interval = absl::Seconds(10);
    // Fresh requests that need a new checkpoint get one signed at most this long after
    // the previous signature. Default 1 s.
    absl::Duration fresh_interval = absl::Seconds(1);
    // How often the hashing thread looks at storage when nothing woke it: for events
    // other processes appended, and, when another process is the sequencer, for the
    // tree and checkpoints it stored. Default 1 s.
    absl::Duration poll_interval = absl::Seconds(1);
    // Called with each new checkpoint once it is stored and before anyone is handed it
    // (the rollback guard keeps a copy outside the database), also with each one another
    // process signed, when this one follows it; an error fails that signature (or that
    // pass of following). Runs on the hashing thread. Default none.
    std::function<absl::Status(const tellonce::v1::SignedCheckpoint&)> on_signed;
  };

  // Restores the tree from what is stored and starts the hashing thread. `db` and `log`
  // are not owned and must outlive the TransparencyLog. Errors: storage errors, a
  // stored tree that does not match its own checkpoints (DATA_LOSS).
  static absl::StatusOr<std::unique_ptr<TransparencyLog>> Start(storage::Storage* storage,
                                                                AccessLog* log,
                                                                certs::SigningKey key,
                                                                Options options);
  // Stops the thread (events not yet hashed are hashed at the next start).
  ~TransparencyLog();

  // Wakes the hashing thread: events were appended. Cheap; never blocks for long.
  void Notify() ABSL_LOCKS_EXCLUDED(mu_);

  // The latest signed checkpoint; if none was ever signed, one for the current tree.
  absl::StatusOr<tellonce::v1::SignedCheckpoint> LatestCheckpoint() ABSL_LOCKS_EXCLUDED(mu_);

  // The latest checkpoint signed so far, without signing one; nullopt when none was.
  std::optional<tellonce::v1::SignedCheckpoint> LastSigned() const ABSL_LOCKS_EXCLUDED(mu_);

  using CheckpointDone = absl::AnyInvocable<void(absl::StatusOr<tellonce::v1::SignedCheckpoint>)>;
  // A checkpoint covering every event durable when called. When the latest signed
  // checkpoint already covers them, `done` runs at once on the caller's thread;
  // otherwise on the hashing thread once the tree has caught up and the next checkpoint
  // is signed (at most `fresh_interval` after the previous one; concurrent requests
  // share it). `done` must not block.
  void FreshCheckpoint(CheckpointDone done) ABSL_LOCKS_EXCLUDED(mu_);

  // Leaves hashed into the tree so far (proofs are available up to this size).
  uint64_t tree_size() const { return tree_size_.load(std::memory_order_acquire); }

  // The proof that event `index` is in the tree of `tree_size` leaves (0: the latest
  // checkpoint's size). INVALID_ARGUMENT when index >= tree_size or tree_size is past
  // the hashed tree.
  absl::StatusOr<tellonce::v1::GetInclusionProofResponse> InclusionProof(uint64_t index,
                                                                         uint64_t tree_size);
  // INVALID_ARGUMENT when old_size > new_size or new_size is past the hashed tree.
  absl::StatusOr<tellonce::v1::GetConsistencyProofResponse> ConsistencyProof(uint64_t old_size,
                                                                             uint64_t new_size);
  // Root of the first `size` leaves (size <= tree_size()).
  absl::StatusOr<certs::Hash> RootAt(uint64_t size);

  // Events about `citizen_id`, oldest first, optionally only those caused by
  // `consumer`, within [from, to) (InfinitePast/InfiniteFuture for open ends).
  // `page_token` is a previous next_page_token or empty; INVALID_ARGUMENT when malformed.
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> List(
      const std::string& citizen_id, const std::optional<std::string>& consumer,
      absl::Time from, absl::Time to, int page_size, const std::string& page_token);

  // Hashed events from `start`, with their stored leaf hashes: up to `max_events`
  // (0: 1000, at most 10000) and `max_bytes` of events (0: 1 MiB, at most 3 MiB), but at
  // least one when there is one. Checkpoints are not included (ExportCheckpoints).
  absl::StatusOr<tellonce::v1::ExportAccessLogResponse> Export(uint64_t start,
                                                               uint32_t max_events,
                                                               uint32_t max_bytes = 0);
  // Stored checkpoints of trees of at least `start_size` events, by size, up to
  // `max_bytes` (0: 1 MiB, at most 3 MiB) but at least one when there is one.
  absl::StatusOr<tellonce::v1::ExportCheckpointsResponse> ExportCheckpoints(uint64_t start_size,
                                                                           uint32_t max_bytes);

  // Every stored checkpoint, oldest first.
  absl::StatusOr<std::vector<tellonce::v1::SignedCheckpoint>> Checkpoints();

 private:
  TransparencyLog(storage::TreeStore* tree, storage::AccessEventLog* events, AccessLog* log,
                  certs::SigningKey key, Options options)
      : tree_(tree),
        events_(events),
        log_(log),
        key_(std::move(key)),
        options_(std::move(options)) {}

  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Hashes every durable event not yet in the tree. Hashing thread only.
  absl::Status CatchUp();
  // Signs and stores a checkpoint for the current tree unless one exists for its
  // size; returns it. Hashing thread only.
  absl::StatusOr<tellonce::v1::SignedCheckpoint> Sign();
  absl::StatusOr<certs::Hash> ReadNode(int level, uint64_t index);
  // Takes the stored tree (when it differs from the builder) and the newest stored
  // checkpoints. Hashing thread only.
  absl::Status Follow() ABSL_LOCKS_EXCLUDED(mu_);

  storage::TreeStore* tree_;
  storage::AccessEventLog* events_;
  AccessLog* log_;
  certs::SigningKey key_;
  Options options_;

  // Owned by the hashing thread after Start.
  certs::TreeBuilder builder_;
  absl::Time last_signed_ = absl::InfinitePast();
  // Whether this process was the sequencer at the last pass.
  bool sequencer_ = true;

  std::atomic<uint64_t> tree_size_{0};

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
  struct Waiter {
    uint64_t size;
    CheckpointDone done;
  };
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  // Set while the waiters wait for `fresh_interval` to pass: when the next signature
  // may be made.
  std::optional<absl::Time> held_until_ ABSL_GUARDED_BY(mu_);
  std::optional<tellonce::v1::SignedCheckpoint> latest_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_TRANSPARENCY_H_
