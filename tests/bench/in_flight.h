#ifndef TELLONCE_TESTS_BENCH_IN_FLIGHT_H_
#define TELLONCE_TESTS_BENCH_IN_FLIGHT_H_

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>

#include "absl/status/status.h"

namespace tellonce::bench {

// Counts asynchronous operations in flight: Add before starting one (blocking while
// `limit` are in flight), Done from its completion (with its status), WaitForNone to
// drain. Keeps the first error and the most ever in flight. Thread-safe.
class InFlight {
 public:
  explicit InFlight(int64_t limit = std::numeric_limits<int64_t>::max()) : limit_(limit) {}

  void Add() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return count_ < limit_; });
    max_ = std::max(max_, ++count_);
  }
  void Done(const absl::Status& status = absl::OkStatus()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status.ok() && first_error_.ok()) first_error_ = status;
    --count_;
    cv_.notify_all();
  }
  // Waits until nothing is in flight; returns the first error any completion reported.
  absl::Status WaitForNone() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return count_ == 0; });
    return first_error_;
  }
  // True once a completion reported an error.
  bool failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return !first_error_.ok();
  }
  int64_t max() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_;
  }

 private:
  const int64_t limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t count_ = 0;
  int64_t max_ = 0;
  absl::Status first_error_;
};

}  // namespace tellonce::bench

#endif  // TELLONCE_TESTS_BENCH_IN_FLIGHT_H_
