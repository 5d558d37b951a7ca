#ifndef TELLONCE_BROKER_CIRCUIT_BREAKER_H_
#define TELLONCE_BROKER_CIRCUIT_BREAKER_H_

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tellonce::broker {

// Design: the circuit breaker of one provider's connector (Nygard, "Release It!").
//
//   CLOSED    calls go out; `failure_threshold` failures in a row open it.
//   OPEN      calls are refused at once (Allow() is false) for `cool_down`.
//   HALF_OPEN after the cool-down, Allow() lets exactly one probe out and refuses the
//             rest until the probe ends: a success closes the breaker, a failure opens
//             it again for another cool-down.
//
// A "failure" is whatever the caller reports as one (the pool reports a connector
// that cannot be reached, that did not answer in time, or that failed internally; an
// answer such as NOT_FOUND is a success: the connector is there). Results of calls
// let out before the breaker opened change nothing while it is open (only a probe may
// close it); a success in HALF_OPEN closes it whichever call it came from.
//
// `on_change`, when set, is called once per state change, outside the lock, with the
// old and new state (for a log line and a metric). Thread-safe.
class CircuitBreaker {
 public:
  enum class State { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

  struct Options {
    // Failures in a row that open the breaker. 0 turns the breaker off (always
    // closed). Default 5.
    uint32_t failure_threshold = 5;
    // How long an open breaker refuses calls before it lets a probe out. Default 5 s.
    absl::Duration cool_down = absl::Seconds(5);
    // The current time; tests pass a fake clock.
    std::function<absl::Time()> clock = [] { return absl::Now(); };
    std::function<void(State from, State to)> on_change;
  };

  explicit CircuitBreaker(Options options) : options_(std::move(options)) {}

  // Whether a call may go out now. False while OPEN, and in HALF_OPEN while the probe
  // is out. True in CLOSED; in HALF_OPEN (reached here once the cool-down has passed)
  // for the one call that becomes the probe, which must then report its result.
  bool Allow() ABSL_LOCKS_EXCLUDED(mu_);
  // Reports the end of a call let out by Allow().
  void RecordSuccess() ABSL_LOCKS_EXCLUDED(mu_);
  void RecordFailure() ABSL_LOCKS_EXCLUDED(mu_);

  State state() const ABSL_LOCKS_EXCLUDED(mu_);
  // When an OPEN breaker lets its probe out; InfinitePast when not OPEN.
  absl::Time retry_at() const ABSL_LOCKS_EXCLUDED(mu_);

  static const char* StateName(State s);

 private:
  // Sets the state; returns whether it changed (the caller then calls on_change).
  bool MoveTo(State next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(State from, State to) const;

  const Options options_;
  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kClosed;
  uint32_t consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time opened_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool probe_out_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_CIRCUIT_BREAKER_H_
