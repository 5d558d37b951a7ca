#ifndef TELLONCE_BROKER_ACCESS_LOG_H_
#define TELLONCE_BROKER_ACCESS_LOG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "storage/storage.h"
#include "tellonce/v1/exchange.pb.h"

namespace tellonce::broker {

// Design: the access log, one record per decision the broker made about citizen data
// (allowed or denied), append-only, numbered from 0 without gaps by the storage backend
// (storage::Transaction::AppendAccessEvents says who numbers them). An event is durable
// before the append completes, and events appended by one call get consecutive
// indexes. The stored bytes of an event are its deterministic serialization; they are
// what the transparency log hashes. Never holds attribute values: AccessEvent has no
// field for one. Writes that must be atomic with other records (a notification's
// deliveries) append through their own storage transaction instead.
//
// Thread-safe.
class AccessLog {
 public:
  // Not owned; must outlive the log.
  explicit AccessLog(storage::Storage* storage) : storage_(storage) {}

  using AppendDone = absl::AnyInvocable<void(absl::Status)>;
  // Appends `events` in order; `done` receives OK once all are durable, or the write
  // error (then none is stored). `done` must not block.
  void Append(std::vector<tellonce::v1::AccessEvent> events, AppendDone done);

  // Number of durable, numbered events.
  absl::StatusOr<uint64_t> Size() const;
  // The stored bytes of event `index`; NOT_FOUND past the end.
  absl::StatusOr<std::string> ReadBytes(uint64_t index) const;
  absl::StatusOr<tellonce::v1::AccessEvent> Read(uint64_t index) const;

 private:
  storage::Storage* storage_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_ACCESS_LOG_H_
