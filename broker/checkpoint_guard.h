#ifndef TELLONCE_BROKER_CHECKPOINT_GUARD_H_
#define TELLONCE_BROKER_CHECKPOINT_GUARD_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/access_log.h"
#include "storage/storage.h"
#include "tellonce/v1/transparency.pb.h"

namespace tellonce::broker {

// Design: the rollback guard. A signed checkpoint is a promise: whoever holds one (a
// citizen's portal, an auditor) may later ask for a proof that the log still extends
// it. A broker started on older data (a restored backup, a copied directory) would
// grow a tree those checkpoints do not describe, a fork of the signed log, and nothing
// inside the database could tell, since the database is what went back. So the latest
// checkpoint the broker signed is also kept in a file outside the data directory
// (BrokerOptions::signed_checkpoint_file, default "<data_dir>.checkpoint"), written
// (synced, by rename) after the checkpoint is stored and before anyone is handed it
// (TransparencyLog::Options::on_signed calls Record). A replica over a shared database
// records the checkpoints another replica signed as it follows them, so every replica's
// file follows the log.
//
// At start (Open) the file is compared with the database: the database must hold that
// very checkpoint (same tree size, same root). Otherwise the broker refuses to start,
// naming the checkpoint it is behind, unless the operator passed --accept-log-rollback:
// then the rollback is recorded (a WARN line and an operator event in the access log,
// AccessEvent.operator_event) and the file starts over from the database's latest
// checkpoint. Without a file (first start, or a file the operator removed) the file is
// started from the database's latest checkpoint, with a WARN when the database had one.
//
// The file is a binary tellonce.v1.SignedCheckpoint, as `tellonce audit checkpoint
// --out` writes it, so `tellonce audit verify --checkpoint FILE` takes it as it is.
// Every backup holds a copy (broker/backup.h).
//
// Thread-safe.
class CheckpointGuard {
 public:
  // What the database holds, as far as the guard is concerned.
  struct LogState {
    // Durable access events.
    uint64_t size = 0;
    // The stored checkpoint of the guard's tree size, if there is one.
    std::optional<tellonce::v1::SignedCheckpoint> at_held_size;
    // The newest stored checkpoint, if any.
    std::optional<tellonce::v1::SignedCheckpoint> latest;
  };

  // Reads the LogState for a guard holding a checkpoint of `held_size` leaves (nullopt:
  // none). The guard's only reads of storage (the access log's size and its stored
  // checkpoints). `storage` may be opened read-only (storage::OpenRocksStorageReadOnly).
  static absl::StatusOr<LogState> ReadLogState(storage::Storage& storage,
                                               std::optional<uint64_t> held_size);

  // Reads the file at `path` (absent: the guard holds nothing). DATA_LOSS naming the file
  // when it is not a SignedCheckpoint; the read error otherwise.
  static absl::StatusOr<std::unique_ptr<CheckpointGuard>> Load(std::string path);

  // The broker's start-up hook: Load, ReadLogState and Check, then as the design comment
  // says: on a mismatch FAILED_PRECONDITION with the reason unless `accept_rollback`, in
  // which case the rollback is logged, appended to `log` (waiting until durable) and the
  // file replaced. `data_dir` names the data in messages. Neither pointer is owned. An
  // empty `path` (PostgreSQL without signed_checkpoint_file) turns the guard off, with a
  // WARN: Record then keeps nothing.
  static absl::StatusOr<std::unique_ptr<CheckpointGuard>> Open(const std::string& path,
                                                               const std::string& data_dir,
                                                               storage::Storage* storage,
                                                               AccessLog* log,
                                                               bool accept_rollback);

  // OK when the database holds the checkpoint the guard holds (or the guard holds
  // none); otherwise FAILED_PRECONDITION saying whether the log is behind it or does not
  // contain it, and what the operator can do.
  absl::Status Check(const LogState& state, const std::string& data_dir) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Keeps `checkpoint` as the latest signed one: writes the file (a temporary file,
  // fsync, rename, fsync of the folder; mode 0600). FAILED_PRECONDITION, writing
  // nothing, for a checkpoint smaller than the one held, or of its size with another
  // root (the guard never moves back by itself). Thread-safe.
  absl::Status Record(const tellonce::v1::SignedCheckpoint& checkpoint) ABSL_LOCKS_EXCLUDED(mu_);

  // The checkpoint held now (for a backup); nullopt when none.
  std::optional<tellonce::v1::SignedCheckpoint> held() const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& path() const { return path_; }

 private:
  explicit CheckpointGuard(std::string path) : path_(std::move(path)) {}
  // Replaces the file by `checkpoint`, or removes it for nullopt.
  absl::Status Replace(const std::optional<tellonce::v1::SignedCheckpoint>& checkpoint)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WriteFile(const tellonce::v1::SignedCheckpoint& checkpoint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::optional<tellonce::v1::SignedCheckpoint> held_ ABSL_GUARDED_BY(mu_);
};

// Tree size, root (hex, first 16 digits) and signing time of a signed checkpoint, for
// messages: "size 250, root 3f2a..., signed 2026-11-30T18:00:00Z".
std::string DescribeCheckpoint(const tellonce::v1::SignedCheckpoint& checkpoint);

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_CHECKPOINT_GUARD_H_
