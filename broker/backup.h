#ifndef TELLONCE_BROKER_BACKUP_H_
#define TELLONCE_BROKER_BACKUP_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/access_log.h"
#include "broker/checkpoint_guard.h"
#include "storage/storage.h"
#include "tellonce/v1/admin.pb.h"

namespace tellonce::broker {

// Design: online backups of a serving broker (AdminService.Backup, `tellonce admin
// backup`). Each backup is a new folder under the configured backup.directory,
// "backup-<UTC time>", made under "<name>.partial" and renamed once complete, holding:
//   signed-checkpoint  the rollback guard's checkpoint (CheckpointGuard::held), copied
//                      BEFORE the database, so that the database copy always contains it
//                      (a checkpoint reaches the guard only after it is stored)
//   data/              the database as of one moment (Storage::Backup, a RocksDB
//                      checkpoint: hard links where it can), while writes go on
// Restoring is copying data/ back as the broker's data_dir (deploy/README.md); the
// rollback guard then tells whether the log went back behind what was signed since.
//
// One backup at a time (a second caller waits). Thread-safe.
class BackupMaker {
 public:
  // None of the pointers is owned; all must outlive the maker. `root` empty: backups are
  // refused.
  BackupMaker(std::string root, storage::Storage* storage, const AccessLog* log,
              const CheckpointGuard* guard)
      : root_(std::move(root)), storage_(storage), log_(log), guard_(guard) {}

  // Makes one backup. FAILED_PRECONDITION "backup.directory: ..." when none is
  // configured; the file system's or the database's error otherwise, in which case the
  // partial folder is removed.
  absl::StatusOr<tellonce::v1::BackupResponse> Run() ABSL_LOCKS_EXCLUDED(mu_);

  // The file names inside a backup folder.
  static constexpr char kDataFolder[] = "data";
  static constexpr char kCheckpointFile[] = "signed-checkpoint";

 private:
  const std::string root_;
  storage::Storage* const storage_;
  const AccessLog* const log_;
  const CheckpointGuard* const guard_;
  absl::Mutex mu_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_BACKUP_H_
