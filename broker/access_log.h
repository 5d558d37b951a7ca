#ifndef TELLONCE_BROKER_ACCESS_LOG_H_
#define TELLONCE_BROKER_ACCESS_LOG_H_

#include <cstdint>
#include <functional>
#include <string_view>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "consent/commit_queue.h"
#include "consent/database.h"
#include "tellonce/v1/exchange.pb.h"

namespace tellonce::broker {

// Design: the access log, one record per decision the broker made about citizen data
// (allowed or denied), append-only, numbered from 0 without gaps. Appends go through
// the CommitQueue, so an event is durable (synced WAL, shared with concurrent writers)
// before the completion runs, and events appended by one call get consecutive
// indexes. The stored bytes of an event are its deterministic serialization; they are
// what the transparency log hashes. Never holds attribute values: AccessEvent has no
// field for one.
//
// Storage (see broker/README.md):
//   kAccessLog  "e" <index, 8 bytes big-endian>           -> AccessEvent (serialized)
//   kIndexes    "e" \0 <citizen_id> \0 <index, 8 bytes>   -> "" (a citizen's events)
//   kMeta       "access_log.size"                         -> decimal text
// The transparency log (broker/transparency.h) keeps its tree and checkpoints in
// kAccessLog under other prefixes ("n", "c").
//
// Thread-safe.
class AccessLog {
 public:
  // Neither is owned; both must outlive the log.
  AccessLog(consent::Database* db, consent::CommitQueue* queue) : db_(db), queue_(queue) {}

  using AppendDone = absl::AnyInvocable<void(absl::StatusOr<uint64_t>)>;
  // Appends `events` in order; `done` receives the index of the first once all are
  // durable, or the write error (then none is stored). An empty list completes with
  // the current size. `done` runs on the commit thread and must not block.
  void Append(std::vector<tellonce::v1::AccessEvent> events, AppendDone done);

  // Stages `events` into `batch` (an operation of the same CommitQueue) for writes
  // that must be atomic with other records, e.g. a notification's outbox entries.
  // Returns the index of the first. The caller's completion must call
  // NotifyAppended() once the group is durable.
  static absl::StatusOr<uint64_t> Stage(consent::GroupBatch& batch,
                                        const std::vector<tellonce::v1::AccessEvent>& events);
  void NotifyAppended() {
    if (listener_) listener_();
  }

  // Number of durable events.
  absl::StatusOr<uint64_t> Size() const;

  // The stored bytes of event `index`; NOT_FOUND past the end.
  absl::StatusOr<std::string> ReadBytes(uint64_t index) const;
  absl::StatusOr<tellonce::v1::AccessEvent> Read(uint64_t index) const;

  // Runs after every successful append, on the commit thread, before the append's
  // own completion (the transparency log uses it to hash new events). Set before the
  // first Append; must not block.
  void set_listener(std::function<void()> listener) { listener_ = std::move(listener); }

  // Key of event `index` in kAccessLog.
  static std::string Key(uint64_t index);
  // Prefix of a citizen's entries in kIndexes; each key continues with the event's
  // index, 8 bytes big-endian.
  static std::string CitizenPrefix(const std::string& citizen_id);
  static constexpr char kSizeKey[] = "access_log.size";

 private:
  consent::Database* db_;
  consent::CommitQueue* queue_;
  std::function<void()> listener_;
};

// 8 bytes, most significant first, so keys sort by number.
std::string BigEndian64(uint64_t value);
uint64_t FromBigEndian64(std::string_view bytes);

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_ACCESS_LOG_H_
