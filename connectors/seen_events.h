#ifndef TELLONCE_CONNECTORS_SEEN_EVENTS_H_
#define TELLONCE_CONNECTORS_SEEN_EVENTS_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace tellonce::connectors {

// Design: the record of the change events a connector has handled, by which
// ConnectorServer turns the broker's at-least-once delivery into exactly-once calls of
// the agency's ChangeHandler. An event is (provider, event_id). A delivery first claims
// the event (Begin); only a new event is handled, and only a handled one is recorded
// (Finish), so an event whose handler failed is handled again on the broker's retry.
//
// The newest `capacity` recorded events are kept in memory. With a file they are also
// appended to it, one "<provider> <event_id>" line each, synced before Finish returns,
// so a duplicate is still dropped after a restart. The file is compacted (rewritten to a
// temporary file, then renamed over) when opened and whenever it has grown to twice the
// capacity, so it stays bounded; a torn last line, left by a crash in mid-append, is
// dropped at the next open. Thread-safe.
class SeenEvents {
 public:
  // Opens the record. `path` empty: memory only. Otherwise reads the file (absent:
  // empty), keeps its newest `capacity` events, rewrites it compacted and opens it for
  // appending. Errors: INVALID_ARGUMENT "max_seen_events: must be at least 1"; the I/O
  // error, as "seen_events_file: <path>: <reason>", when the file or its folder cannot
  // be read or written.
  static absl::StatusOr<std::unique_ptr<SeenEvents>> Open(const std::string& path, size_t capacity);
  ~SeenEvents();

  enum class Claim {
    // Not handled yet, and now claimed: the caller handles it, then calls Finish.
    kNew,
    // Handled and recorded before: a duplicate, to be acknowledged and dropped.
    kSeen,
    // Claimed by another delivery whose handler has not finished.
    kInProgress,
  };

  // Claims (provider, event_id). An event that was handled but whose recording failed
  // is recorded now: kSeen when that works, else the I/O error (INTERNAL naming the
  // file). INVALID_ARGUMENT for a provider holding a space or either holding a line
  // break (the server's validation rules both out).
  absl::StatusOr<Claim> Begin(const std::string& provider, const std::string& event_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends a kNew claim. `handled` false releases it, so the next delivery is kNew again.
  // `handled` true records the event (in the file too, synced, when there is one) and
  // evicts the oldest beyond capacity. OK, or the I/O error when the file could not be
  // written: the event then stays claimed as handled and the next Begin retries the
  // write, so the handler is not called again.
  absl::Status Finish(const std::string& provider, const std::string& event_id, bool handled)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Whether the event is recorded as handled; for tests.
  bool Contains(const std::string& provider, const std::string& event_id) ABSL_LOCKS_EXCLUDED(mu_);
  // How many events are recorded (at most capacity).
  size_t size() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  SeenEvents(std::string path, size_t capacity) : path_(std::move(path)), capacity_(capacity) {}

  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  // Adds `key` to the record (memory, then the file), evicting beyond capacity.
  absl::Status Record(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rewrites the file from order_ and reopens it for appending.
  absl::Status Compact() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FileError(absl::string_view what, int error) const;

  const std::string path_;
  const size_t capacity_;

  absl::Mutex mu_;
  // Recorded events, oldest first, and the same as a set.
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  // Claimed by a delivery whose handler runs.
  absl::flat_hash_set<std::string> in_progress_ ABSL_GUARDED_BY(mu_);
  // Handled, but the file write failed: to record before acknowledging.
  absl::flat_hash_set<std::string> unrecorded_ ABSL_GUARDED_BY(mu_);
  // The file, open for appending (-1 without a file), and its line count.
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  size_t lines_in_file_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tellonce::connectors

#endif  // TELLONCE_CONNECTORS_SEEN_EVENTS_H_
