#include "broker/access_log.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tellonce::broker {

void AccessLog::Append(std::vector<tellonce::v1::AccessEvent> events, AppendDone done) {
  storage_->Submit([events = std::move(events)](
                       storage::Transaction& tx) { return tx.AppendAccessEvents(events); },
                   std::move(done));
}

absl::StatusOr<uint64_t> AccessLog::Size() const { return storage_->access_events().Size(); }

absl::StatusOr<std::string> AccessLog::ReadBytes(uint64_t index) const {
  return storage_->access_events().ReadBytes(index);
}

absl::StatusOr<tellonce::v1::AccessEvent> AccessLog::Read(uint64_t index) const {
  absl::StatusOr<std::string> bytes = ReadBytes(index);
  if (!bytes.ok()) return bytes.status();
  tellonce::v1::AccessEvent event;
  if (!event.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("access event ", index, " does not parse"));
  }
  return event;
}

}  // namespace tellonce::broker
