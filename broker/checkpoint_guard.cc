#include "broker/checkpoint_guard.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/transparency.h"
#include "ops/log.h"
#include "proto/time.h"

namespace tellonce::broker {
namespace {

using tellonce::v1::Checkpoint;
using tellonce::v1::SignedCheckpoint;

absl::Status ErrnoStatus(const std::string& path, const char* what) {
  const int error = errno;
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(path, ": ", what, ": ", std::strerror(error)));
}

std::optional<Checkpoint> Body(const SignedCheckpoint& checkpoint) {
  Checkpoint body;
  if (!body.ParseFromString(checkpoint.body())) return std::nullopt;
  return body;
}

uint64_t SizeOf(const SignedCheckpoint& checkpoint) {
  std::optional<Checkpoint> body = Body(checkpoint);
  return body.has_value() ? body->tree_size() : 0;
}

std::string RootOf(const SignedCheckpoint& checkpoint) {
  std::optional<Checkpoint> body = Body(checkpoint);
  return body.has_value() ? body->root_hash() : "";
}

}  // namespace

std::string DescribeCheckpoint(const SignedCheckpoint& checkpoint) {
  std::optional<Checkpoint> body = Body(checkpoint);
  if (!body.has_value()) return "an unreadable checkpoint";
  return absl::StrCat("size ", body->tree_size(), ", root ",
                      absl::BytesToHexString(body->root_hash()).substr(0, 16), "..., signed ",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProtoTime(body->signed_at()),
                                       absl::UTCTimeZone()));
}

absl::StatusOr<CheckpointGuard::LogState> CheckpointGuard::ReadLogState(
    storage::Storage& storage, std::optional<uint64_t> held_size) {
  LogState state;
  absl::StatusOr<uint64_t> size = storage.access_events().Size();
  if (!size.ok()) return size.status();
  state.size = *size;
  // From the held size on: the one at it, then the newer ones (the guard's file follows
  // every signature, so there are few); from the first one without a held checkpoint.
  bool corrupt = false;
  absl::Status scanned = storage.tree().ScanCheckpoints(
      held_size.value_or(0), [&](uint64_t tree_size, SignedCheckpoint& checkpoint) {
        if (!Body(checkpoint).has_value() || SizeOf(checkpoint) != tree_size) {
          corrupt = true;
          return false;
        }
        if (held_size.has_value() && tree_size == *held_size) state.at_held_size = checkpoint;
        state.latest = std::move(checkpoint);
        return true;
      });
  if (!scanned.ok()) return scanned;
  if (corrupt) return absl::DataLossError("a stored checkpoint is corrupt");
  return state;
}

absl::StatusOr<std::unique_ptr<CheckpointGuard>> CheckpointGuard::Load(std::string path) {
  std::unique_ptr<CheckpointGuard> guard(new CheckpointGuard(std::move(path)));
  std::ifstream in(guard->path_, std::ios::binary);
  if (!in) {
    if (errno == ENOENT || !std::filesystem::exists(guard->path_)) return guard;
    return ErrnoStatus(guard->path_, "cannot read the signed checkpoint file");
  }
  std::stringstream bytes;
  bytes << in.rdbuf();
  SignedCheckpoint checkpoint;
  if (!checkpoint.ParseFromString(bytes.str()) || !Body(checkpoint).has_value()) {
    return absl::DataLossError(absl::StrCat(
        guard->path_, ": not a signed checkpoint (the rollback guard's file is corrupt; "
                      "restore it from the latest backup, or remove it to start it over)"));
  }
  absl::MutexLock lock(&guard->mu_);
  guard->held_ = std::move(checkpoint);
  return guard;
}

absl::Status CheckpointGuard::Check(const LogState& state, const std::string& data_dir) const {
  std::optional<SignedCheckpoint> held = this->held();
  if (!held.has_value()) return absl::OkStatus();
  const uint64_t held_size = SizeOf(*held);
  const std::string remedy =
      " Restore newer data (a later backup), or start once with --accept-log-rollback to go on "
      "from this data; the rollback is then recorded in the access log.";
  if (state.size < held_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "signed log rollback: the access log in ", data_dir, " holds ", state.size,
        " events, behind the checkpoint the broker already signed (", DescribeCheckpoint(*held),
        ", kept in ", path_, "). This data is older than what was signed (a restored backup?), "
        "and serving it would fork the signed log.",
        remedy));
  }
  if (!state.at_held_size.has_value() || RootOf(*state.at_held_size) != RootOf(*held)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "signed log fork: the access log in ", data_dir, " does not contain the checkpoint the "
        "broker signed (", DescribeCheckpoint(*held), ", kept in ", path_,
        "): this is not the data that checkpoint was signed over.",
        remedy));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CheckpointGuard>> CheckpointGuard::Open(
    const std::string& path, const std::string& data_dir, storage::Storage* storage,
    AccessLog* log, bool accept_rollback) {
  if (path.empty()) {
    ops::LogWarning(absl::StrCat(
        "no signed_checkpoint_file configured for ", data_dir,
        ": the rollback guard is off (set signed_checkpoint_file to a path on this host)"));
    return std::unique_ptr<CheckpointGuard>(new CheckpointGuard(""));
  }
  absl::StatusOr<std::unique_ptr<CheckpointGuard>> guard = Load(path);
  if (!guard.ok()) return guard.status();
  std::optional<SignedCheckpoint> held = (*guard)->held();
  absl::StatusOr<LogState> state =
      ReadLogState(*storage, held.has_value() ? std::optional(SizeOf(*held)) : std::nullopt);
  if (!state.ok()) return state.status();
  if (!held.has_value()) {
    if (state->latest.has_value()) {
      ops::LogWarning(absl::StrCat("no signed checkpoint file at ", path,
                                   ": starting it from the database's latest checkpoint (",
                                   DescribeCheckpoint(*state->latest), ")"));
      if (absl::Status s = (*guard)->Replace(state->latest); !s.ok()) return s;
    }
    return guard;
  }
  absl::Status checked = (*guard)->Check(*state, data_dir);
  if (checked.ok()) {
    if (accept_rollback) {
      ops::LogInfo("--accept-log-rollback: the data is not behind the signed checkpoint; "
                   "nothing to accept");
    }
    return guard;
  }
  if (!accept_rollback) return checked;

  // The scan above started at the held size: the database's own latest checkpoint, which
  // the file starts over from, is older than that.
  if (!state->latest.has_value()) {
    absl::StatusOr<LogState> all = ReadLogState(*storage, std::nullopt);
    if (!all.ok()) return all.status();
    state->latest = std::move(all->latest);
  }
  const std::string from =
      state->latest.has_value()
          ? absl::StrCat(" and checkpoint ", DescribeCheckpoint(*state->latest))
          : std::string(" and no checkpoint");
  const std::string what =
      absl::StrCat("LOG_ROLLBACK: accepted by the operator (--accept-log-rollback): ",
                   checked.message(), " Going on from ", state->size, " events", from, ".");
  ops::LogWarning(what);
  tellonce::v1::AccessEvent event;
  *event.mutable_at() = ToProtoTime(absl::Now());
  event.set_operator_event(what);
  absl::Notification appended;
  absl::Status append_status;
  std::vector<tellonce::v1::AccessEvent> events = {event};
  log->Append(std::move(events), [&](absl::Status status) {
    append_status = std::move(status);
    appended.Notify();
  });
  appended.WaitForNotification();
  if (!append_status.ok()) return append_status;
  if (absl::Status s = (*guard)->Replace(state->latest); !s.ok()) return s;
  return guard;
}

absl::Status CheckpointGuard::Record(const SignedCheckpoint& checkpoint) {
  if (path_.empty()) return absl::OkStatus();  // the guard is off
  absl::MutexLock lock(&mu_);
  if (held_.has_value()) {
    const uint64_t held_size = SizeOf(*held_);
    const uint64_t size = SizeOf(checkpoint);
    if (size < held_size || (size == held_size && RootOf(checkpoint) != RootOf(*held_))) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, ": refusing to replace the signed checkpoint (",
                       DescribeCheckpoint(*held_), ") by an older or different one (",
                       DescribeCheckpoint(checkpoint), ")"));
    }
  }
  if (absl::Status s = WriteFile(checkpoint); !s.ok()) return s;
  held_ = checkpoint;
  return absl::OkStatus();
}

absl::Status CheckpointGuard::Replace(const std::optional<SignedCheckpoint>& checkpoint) {
  absl::MutexLock lock(&mu_);
  if (checkpoint.has_value()) {
    if (absl::Status s = WriteFile(*checkpoint); !s.ok()) return s;
  } else if (std::remove(path_.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(path_, "cannot remove the signed checkpoint file");
  }
  held_ = checkpoint;
  return absl::OkStatus();
}

std::optional<SignedCheckpoint> CheckpointGuard::held() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

absl::Status CheckpointGuard::WriteFile(const SignedCheckpoint& checkpoint) {
  const std::string tmp = path_ + ".tmp";
  const std::string bytes = checkpoint.SerializeAsString();
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(tmp, "cannot write the signed checkpoint file");
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status error = ErrnoStatus(tmp, "cannot write the signed checkpoint file");
      close(fd);
      return error;
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    absl::Status error = ErrnoStatus(tmp, "cannot sync the signed checkpoint file");
    close(fd);
    return error;
  }
  close(fd);
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(path_, "cannot replace the signed checkpoint file");
  }
  std::string folder = std::filesystem::path(path_).parent_path().string();
  if (folder.empty()) folder = ".";
  const int dir_fd = open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

}  // namespace tellonce::broker
