#ifndef TELLONCE_BROKER_RATE_LIMITER_H_
#define TELLONCE_BROKER_RATE_LIMITER_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ops/metrics.h"

namespace tellonce::broker {

// Design: one token bucket per key (an agency id) for one kind of call, so that no one
// agency can publish, grant or force checkpoints faster than the federation allows,
// whatever the others do. A bucket holds at most `burst` tokens and gains `per_second`
// a second; a call takes one token or is refused. Buckets are created on first use;
// keys are agency ids that passed authorization (so they come from the directory), and
// at most `max_keys` buckets are kept: beyond it, buckets that have refilled completely
// (the same as a new one) are dropped, and if none has, the call is refused.
//
// Thread-safe; Admit holds one mutex for a few arithmetic operations.
class RateLimiter {
 public:
  struct Options {
    // Tokens gained per second. Must be > 0.
    double per_second = 100;
    // Largest number of tokens a bucket holds (calls allowed at once after a pause).
    // Values below 1 count as 1.
    double burst = 200;
    // Most buckets kept. Default 10000.
    size_t max_keys = 10000;
    // Source of the current time; tests inject a fake clock.
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  // `what` names the kind of call in refusals and in the metric ("publish", "grant",
  // "fresh_checkpoint"). `refusals`, when given, is a family labelled {agency, what}
  // (tellonce_rate_limited_total) that counts each refusal; not owned, must outlive
  // this limiter.
  RateLimiter(std::string what, Options options, ops::Family<ops::Counter>* refusals = nullptr);

  // Takes one token from `agency`'s bucket: OK, or RESOURCE_EXHAUSTED
  // "rate limit: <what> for agency <agency>: at most N per second" (nothing taken).
  absl::Status Admit(const std::string& agency) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& what() const { return what_; }
  // Buckets currently kept; for tests.
  size_t keys() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };

  // Drops the buckets that have refilled completely by `now`.
  void DropFull(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string what_;
  const Options options_;
  ops::Family<ops::Counter>* refusals_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// The per-agency limits of the broker (BrokerConfig.rate_limits).
struct RateLimitOptions {
  // PublishChange per provider. Defaults 1000 per second, burst 2000.
  double publish_per_second = 1000;
  double publish_burst = 2000;
  // GrantConsent per portal. Defaults 200 per second, burst 500.
  double grant_per_second = 200;
  double grant_burst = 500;
  // GetCheckpoint with fresh = true per agency. Defaults 2 per second, burst 5.
  double fresh_checkpoint_per_second = 2;
  double fresh_checkpoint_burst = 5;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_RATE_LIMITER_H_
