#include "storage/storage.h"

#include <future>
#include <utility>

namespace tellonce::storage {

absl::Status Storage::Run(Work work) {
  std::promise<absl::Status> result;
  std::future<absl::Status> future = result.get_future();
  Submit(std::move(work), [&result](absl::Status status) { result.set_value(std::move(status)); });
  return future.get();
}

}  // namespace tellonce::storage
