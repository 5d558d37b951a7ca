#include "storage/storage.h"

#include <utility>

#include "absl/synchronization/notification.h"

namespace tellonce::storage {

absl::Status Storage::Run(Work work) {
  absl::Notification done;
  absl::Status result;
  Submit(std::move(work), [&](absl::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

}  // namespace tellonce::storage
