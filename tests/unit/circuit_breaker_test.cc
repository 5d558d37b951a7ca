// The circuit breaker's state machine (broker/circuit_breaker.h) on a fake clock.

#include "broker/circuit_breaker.h"

#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace tellonce::broker {
namespace {

using State = CircuitBreaker::State;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreaker::Options Options(uint32_t threshold = 3) {
    return {.failure_threshold = threshold,
            .cool_down = absl::Seconds(5),
            .clock = [this] { return now_; },
            .on_change = [this](State from, State to) { changes_.emplace_back(from, to); }};
  }

  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::vector<std::pair<State, State>> changes_;
};

TEST_F(CircuitBreakerTest, StaysClosedBelowTheThreshold) {
  CircuitBreaker b(Options());
  b.RecordFailure();
  b.RecordFailure();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.Allow());
  EXPECT_TRUE(changes_.empty());
}

TEST_F(CircuitBreakerTest, ASuccessResetsTheRunOfFailures) {
  CircuitBreaker b(Options());
  b.RecordFailure();
  b.RecordFailure();
  b.RecordSuccess();
  b.RecordFailure();
  b.RecordFailure();
  EXPECT_EQ(b.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, OpensAfterThresholdFailuresInARowAndRefusesCalls) {
  CircuitBreaker b(Options());
  for (int i = 0; i < 3; ++i) b.RecordFailure();
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.Allow());
  EXPECT_EQ(b.retry_at(), now_ + absl::Seconds(5));
  now_ += absl::Seconds(4);
  EXPECT_FALSE(b.Allow()) << "still cooling down";
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_EQ(changes_[0], std::make_pair(State::kClosed, State::kOpen));
}

TEST_F(CircuitBreakerTest, AfterTheCoolDownLetsExactlyOneProbeOut) {
  CircuitBreaker b(Options());
  for (int i = 0; i < 3; ++i) b.RecordFailure();
  now_ += absl::Seconds(5);
  EXPECT_TRUE(b.Allow()) << "the probe";
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_FALSE(b.Allow()) << "a second call while the probe is out";
  EXPECT_FALSE(b.Allow());
}

TEST_F(CircuitBreakerTest, ASuccessfulProbeClosesIt) {
  CircuitBreaker b(Options());
  for (int i = 0; i < 3; ++i) b.RecordFailure();
  now_ += absl::Seconds(6);
  ASSERT_TRUE(b.Allow());
  b.RecordSuccess();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.Allow());
  EXPECT_TRUE(b.Allow());
  const std::vector<std::pair<State, State>> expected = {{State::kClosed, State::kOpen},
                                                         {State::kOpen, State::kHalfOpen},
                                                         {State::kHalfOpen, State::kClosed}};
  EXPECT_EQ(changes_, expected) << "each change reported once";
}

TEST_F(CircuitBreakerTest, AFailedProbeOpensItForAnotherCoolDown) {
  CircuitBreaker b(Options());
  for (int i = 0; i < 3; ++i) b.RecordFailure();
  now_ += absl::Seconds(5);
  ASSERT_TRUE(b.Allow());
  now_ += absl::Seconds(2);  // the probe took a while to fail
  b.RecordFailure();
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.retry_at(), now_ + absl::Seconds(5)) << "the cool-down starts again";
  now_ += absl::Seconds(4);
  EXPECT_FALSE(b.Allow());
  now_ += absl::Seconds(1);
  EXPECT_TRUE(b.Allow()) << "the next probe";
}

TEST_F(CircuitBreakerTest, LateResultsOfOldCallsDoNotCloseAnOpenBreaker) {
  CircuitBreaker b(Options());
  for (int i = 0; i < 3; ++i) b.RecordFailure();
  b.RecordSuccess();  // a call let out before it opened
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.Allow());
  b.RecordFailure();
  EXPECT_EQ(b.retry_at(), now_ + absl::Seconds(5)) << "late failures do not extend it";
}

TEST_F(CircuitBreakerTest, ZeroThresholdTurnsItOff) {
  CircuitBreaker b(Options(0));
  for (int i = 0; i < 100; ++i) b.RecordFailure();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.Allow());
}

}  // namespace
}  // namespace tellonce::broker
