#include "connectors/seen_events.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "connectors/atomic_file.h"
#include "proto/textproto.h"

namespace tellonce::connectors {
namespace {

// The file's line for an event, without its line break, and the in-memory key.
std::string KeyOf(const std::string& provider, const std::string& event_id) {
  return absl::StrCat(provider, " ", event_id);
}

absl::Status CheckKeyParts(const std::string& provider, const std::string& event_id) {
  if (provider.empty() || provider.find_first_of(" \n\r") != std::string::npos) {
    return absl::InvalidArgumentError("provider: empty or holds a space or line break");
  }
  if (event_id.empty() || event_id.find_first_of("\n\r") != std::string::npos) {
    return absl::InvalidArgumentError("event_id: empty or holds a line break");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SeenEvents>> SeenEvents::Open(const std::string& path,
                                                             size_t capacity) {
  if (capacity < 1) return absl::InvalidArgumentError("max_seen_events: must be at least 1");
  std::unique_ptr<SeenEvents> seen(new SeenEvents(path, capacity));
  if (!path.empty()) {
    if (absl::Status s = seen->Load(); !s.ok()) return s;
  }
  return seen;
}

SeenEvents::~SeenEvents() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) close(fd_);
}

absl::Status SeenEvents::FileError(absl::string_view what, int error) const {
  return absl::InternalError(
      absl::StrCat("seen_events_file: ", path_, ": ", what, ": ", std::strerror(error)));
}

absl::Status SeenEvents::Load() {
  absl::MutexLock lock(&mu_);
  std::string text;
  if (access(path_.c_str(), F_OK) == 0) {
    absl::StatusOr<std::string> read = ReadFileToString(path_);
    if (!read.ok()) {
      return absl::Status(read.status().code(),
                          absl::StrCat("seen_events_file: ", read.status().message()));
    }
    text = *std::move(read);
  }
  // Complete lines only: a last line without its line break was torn by a crash.
  std::vector<std::string> keys;
  size_t start = 0;
  while (true) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;
    std::string line = text.substr(start, end - start);
    start = end + 1;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size()) continue;
    keys.push_back(std::move(line));
  }
  for (size_t i = keys.size() > capacity_ ? keys.size() - capacity_ : 0; i < keys.size(); ++i) {
    if (seen_.insert(keys[i]).second) order_.push_back(std::move(keys[i]));
  }
  return Compact();
}

absl::Status SeenEvents::Compact() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  std::string text;
  for (const std::string& key : order_) absl::StrAppend(&text, key, "\n");
  if (absl::Status s = WriteFileAtomically(path_, text); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("seen_events_file: ", s.message()));
  }
  fd_ = open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) return FileError("cannot open for appending", errno);
  lines_in_file_ = order_.size();
  return absl::OkStatus();
}

absl::Status SeenEvents::Record(const std::string& key) {
  if (fd_ >= 0) {
    const std::string line = absl::StrCat(key, "\n");
    size_t written = 0;
    while (written < line.size()) {
      const ssize_t n = write(fd_, line.data() + written, line.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return FileError("cannot append", errno);
      written += static_cast<size_t>(n);
    }
    if (fdatasync(fd_) != 0) return FileError("cannot sync", errno);
    ++lines_in_file_;
  }
  if (seen_.insert(key).second) order_.push_back(key);
  while (order_.size() > capacity_) {
    seen_.erase(order_.front());
    order_.pop_front();
  }
  if (fd_ >= 0 && lines_in_file_ >= 2 * capacity_) {
    // The event is recorded (in the file just appended to); a failed compaction only
    // leaves the file longer, to be retried at the next append.
    (void)Compact();
  }
  return absl::OkStatus();
}

absl::StatusOr<SeenEvents::Claim> SeenEvents::Begin(const std::string& provider,
                                                    const std::string& event_id) {
  if (absl::Status s = CheckKeyParts(provider, event_id); !s.ok()) return s;
  std::string key = KeyOf(provider, event_id);
  absl::MutexLock lock(&mu_);
  if (seen_.contains(key)) return Claim::kSeen;
  if (in_progress_.contains(key)) return Claim::kInProgress;
  if (unrecorded_.contains(key)) {
    if (absl::Status s = Record(key); !s.ok()) return s;
    unrecorded_.erase(key);
    return Claim::kSeen;
  }
  in_progress_.insert(std::move(key));
  return Claim::kNew;
}

absl::Status SeenEvents::Finish(const std::string& provider, const std::string& event_id,
                                bool handled) {
  const std::string key = KeyOf(provider, event_id);
  absl::MutexLock lock(&mu_);
  if (in_progress_.erase(key) == 0) {
    return absl::FailedPreconditionError("event_id: not claimed");
  }
  if (!handled) return absl::OkStatus();
  absl::Status recorded = Record(key);
  if (!recorded.ok()) unrecorded_.insert(key);
  return recorded;
}

bool SeenEvents::Contains(const std::string& provider, const std::string& event_id) {
  absl::MutexLock lock(&mu_);
  return seen_.contains(KeyOf(provider, event_id));
}

size_t SeenEvents::size() {
  absl::MutexLock lock(&mu_);
  return order_.size();
}

}  // namespace tellonce::connectors
