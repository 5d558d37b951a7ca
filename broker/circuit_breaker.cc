#include "broker/circuit_breaker.h"

namespace tellonce::broker {

const char* CircuitBreaker::StateName(State s) {
  switch (s) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half-open";
  }
  return "unknown";
}

bool CircuitBreaker::MoveTo(State next) {
  if (state_ == next) return false;
  state_ = next;
  return true;
}

void CircuitBreaker::Notify(State from, State to) const {
  if (options_.on_change) options_.on_change(from, to);
}

bool CircuitBreaker::Allow() {
  if (options_.failure_threshold == 0) return true;
  State from;
  {
    absl::MutexLock lock(&mu_);
    from = state_;
    switch (state_) {
      case State::kClosed:
        return true;
      case State::kHalfOpen:
        if (probe_out_) return false;
        probe_out_ = true;
        return true;
      case State::kOpen:
        if (options_.clock() < opened_at_ + options_.cool_down) return false;
        MoveTo(State::kHalfOpen);
        probe_out_ = true;
        break;
    }
  }
  Notify(from, State::kHalfOpen);
  return true;
}

void CircuitBreaker::RecordSuccess() {
  if (options_.failure_threshold == 0) return;
  State from;
  {
    absl::MutexLock lock(&mu_);
    from = state_;
    if (state_ == State::kOpen) return;
    consecutive_failures_ = 0;
    probe_out_ = false;
    if (!MoveTo(State::kClosed)) return;
  }
  Notify(from, State::kClosed);
}

void CircuitBreaker::RecordFailure() {
  if (options_.failure_threshold == 0) return;
  State from;
  {
    absl::MutexLock lock(&mu_);
    from = state_;
    switch (state_) {
      case State::kOpen:
        return;
      case State::kClosed:
        if (++consecutive_failures_ < options_.failure_threshold) return;
        break;
      case State::kHalfOpen:
        break;
    }
    MoveTo(State::kOpen);
    opened_at_ = options_.clock();
    probe_out_ = false;
    consecutive_failures_ = 0;
  }
  Notify(from, State::kOpen);
}

CircuitBreaker::State CircuitBreaker::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

absl::Time CircuitBreaker::retry_at() const {
  absl::MutexLock lock(&mu_);
  return state_ == State::kOpen ? opened_at_ + options_.cool_down : absl::InfinitePast();
}

}  // namespace tellonce::broker
