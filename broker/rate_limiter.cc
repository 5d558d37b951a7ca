#include "broker/rate_limiter.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tellonce::broker {

RateLimiter::RateLimiter(std::string what, Options options, ops::Family<ops::Counter>* refusals)
    : what_(std::move(what)), options_(std::move(options)), refusals_(refusals) {}

size_t RateLimiter::keys() const {
  absl::MutexLock lock(&mu_);
  return buckets_.size();
}

void RateLimiter::DropFull(absl::Time now) {
  const double burst = std::max(options_.burst, 1.0);
  absl::erase_if(buckets_, [&](const auto& entry) {
    const Bucket& b = entry.second;
    return b.tokens + absl::ToDoubleSeconds(now - b.updated) * options_.per_second >= burst;
  });
}

absl::Status RateLimiter::Admit(const std::string& agency) {
  const double burst = std::max(options_.burst, 1.0);
  bool refused = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = options_.clock();
    auto it = buckets_.find(agency);
    if (it == buckets_.end()) {
      if (buckets_.size() >= options_.max_keys) DropFull(now);
      if (buckets_.size() >= options_.max_keys) {
        refused = true;
      } else {
        it = buckets_.emplace(std::string(agency), Bucket{burst, now}).first;
      }
    }
    if (!refused) {
      Bucket& b = it->second;
      // A clock that steps back gains nothing.
      const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - b.updated));
      b.tokens = std::min(burst, b.tokens + elapsed * options_.per_second);
      b.updated = std::max(b.updated, now);
      if (b.tokens >= 1.0) {
        b.tokens -= 1.0;
      } else {
        refused = true;
      }
    }
  }
  if (!refused) return absl::OkStatus();
  if (refusals_ != nullptr) refusals_->With({agency, what_}).Add();
  return absl::ResourceExhaustedError(
      absl::StrCat("rate limit: ", what_, " for agency ", agency, ": at most ",
                   absl::StrFormat("%g", options_.per_second), " per second"));
}

}  // namespace tellonce::broker
