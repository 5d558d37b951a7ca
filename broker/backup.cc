#include "broker/backup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ops/log.h"
#include "proto/time.h"

namespace tellonce::broker {
namespace {

absl::Status ErrnoStatus(const std::string& path, const char* what) {
  const int error = errno;
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(path, ": ", what, ": ", std::strerror(error)));
}

// Writes `bytes` to a new file at `path` (mode 0600) and syncs it.
absl::Status WriteSynced(const std::string& path, const std::string& bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(path, "cannot create");
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status error = ErrnoStatus(path, "cannot write");
      close(fd);
      return error;
    }
    written += static_cast<size_t>(n);
  }
  absl::Status result = fsync(fd) == 0 ? absl::OkStatus() : ErrnoStatus(path, "cannot sync");
  close(fd);
  return result;
}

void SyncFolder(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

uint64_t FolderBytes(const std::string& path) {
  uint64_t bytes = 0;
  std::error_code error;
  for (std::filesystem::recursive_directory_iterator it(path, error), end; !error && it != end;
       it.increment(error)) {
    if (it->is_regular_file(error)) bytes += it->file_size(error);
  }
  return bytes;
}

}  // namespace

absl::StatusOr<tellonce::v1::BackupResponse> BackupMaker::Run() {
  if (root_.empty()) {
    return absl::FailedPreconditionError(
        "backup.directory: not configured; set backup { directory: \"...\" } in the broker "
        "configuration");
  }
  absl::MutexLock lock(&mu_);
  const absl::Time started = absl::Now();
  std::error_code error;
  std::filesystem::create_directories(root_, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup.directory ", root_, ": cannot create: ", error.message()));
  }
  chmod(root_.c_str(), 0700);
  std::string name =
      absl::StrCat("backup-", absl::FormatTime("%Y%m%dT%H%M%SZ", started, absl::UTCTimeZone()));
  for (int n = 2; std::filesystem::exists(root_ + "/" + name) ||
                  std::filesystem::exists(root_ + "/" + name + ".partial");
       ++n) {
    name = absl::StrCat("backup-", absl::FormatTime("%Y%m%dT%H%M%SZ", started,
                                                    absl::UTCTimeZone()),
                        "-", n);
  }
  const std::string final_dir = root_ + "/" + name;
  const std::string partial = final_dir + ".partial";
  if (mkdir(partial.c_str(), 0700) != 0) return ErrnoStatus(partial, "cannot create");

  auto fail = [&](absl::Status status) {
    std::error_code ignored;
    std::filesystem::remove_all(partial, ignored);
    ops::LogWarning(absl::StrCat("backup failed: ", status.message()));
    return status;
  };
  tellonce::v1::BackupResponse response;
  *response.mutable_started_at() = ToProtoTime(started);
  absl::StatusOr<uint64_t> size = log_->Size();
  if (!size.ok()) return fail(size.status());
  response.set_access_log_size(*size);
  // The guard's checkpoint first: it is in the database already, so the copy made next
  // holds it.
  if (std::optional<tellonce::v1::SignedCheckpoint> held = guard_->held(); held.has_value()) {
    if (absl::Status s =
            WriteSynced(absl::StrCat(partial, "/", kCheckpointFile), held->SerializeAsString());
        !s.ok()) {
      return fail(s);
    }
    tellonce::v1::Checkpoint body;
    if (body.ParseFromString(held->body())) response.set_checkpoint_size(body.tree_size());
  }
  if (absl::Status s = storage_->Backup(absl::StrCat(partial, "/", kDataFolder)); !s.ok()) {
    return fail(s);
  }
  SyncFolder(partial);
  if (std::rename(partial.c_str(), final_dir.c_str()) != 0) {
    return fail(ErrnoStatus(final_dir, "cannot rename the finished backup"));
  }
  SyncFolder(root_);
  response.set_directory(final_dir);
  response.set_bytes(FolderBytes(final_dir));
  *response.mutable_finished_at() = ToProtoTime(absl::Now());
  ops::LogInfo("backup written", {{"directory", final_dir},
                                  {"access_log_size", absl::StrCat(*size)},
                                  {"checkpoint_size", absl::StrCat(response.checkpoint_size())},
                                  {"bytes", absl::StrCat(response.bytes())}});
  return response;
}

}  // namespace tellonce::broker
