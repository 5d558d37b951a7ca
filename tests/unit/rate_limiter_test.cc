// Per-agency token buckets (broker::RateLimiter) on a fake clock: the burst, the refill
// rate, one agency's flood leaving another's bucket alone, the refusal's wording and
// metric, and the bounded number of buckets.

#include "broker/rate_limiter.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ops/metrics.h"

namespace tellonce::broker {
namespace {

using ::testing::HasSubstr;

class RateLimiterTest : public ::testing::Test {
 protected:
  RateLimiter::Options Options(double per_second, double burst, size_t max_keys = 10000) {
    return {.per_second = per_second, .burst = burst, .max_keys = max_keys, .clock = [this] {
              return now_;
            }};
  }
  // How many of `n` calls from `agency` are admitted.
  int Admitted(RateLimiter& limiter, const std::string& agency, int n) {
    int admitted = 0;
    for (int i = 0; i < n; ++i) admitted += limiter.Admit(agency).ok() ? 1 : 0;
    return admitted;
  }

  absl::Time now_ = absl::FromUnixSeconds(1'900'000'000);
  ops::MetricsRegistry metrics_;
};

TEST_F(RateLimiterTest, BurstIsAdmittedAtOnceThenTheRateOverTime) {
  RateLimiter limiter("publish", Options(10, 5));
  EXPECT_EQ(Admitted(limiter, "registry", 100), 5);
  now_ += absl::Milliseconds(100);  // one token
  EXPECT_EQ(Admitted(limiter, "registry", 100), 1);
  now_ += absl::Seconds(1);  // ten tokens, but the bucket holds five
  EXPECT_EQ(Admitted(limiter, "registry", 100), 5);
  // Over ten seconds of steady calls: 10 per second.
  int admitted = 0;
  for (int ms = 0; ms < 10000; ms += 10) {
    now_ += absl::Milliseconds(10);
    admitted += Admitted(limiter, "registry", 3);
  }
  EXPECT_NEAR(admitted, 100, 1);
}

TEST_F(RateLimiterTest, OneAgencysFloodDoesNotTouchAnothersBucket) {
  RateLimiter limiter("grant", Options(1, 3));
  EXPECT_EQ(Admitted(limiter, "portal", 1000), 3);
  EXPECT_EQ(Admitted(limiter, "portal-2", 1000), 3);
  EXPECT_EQ(limiter.keys(), 2u);
}

TEST_F(RateLimiterTest, RefusalNamesWhatAndAgencyAndIsCounted) {
  ops::Family<ops::Counter>& refusals =
      metrics_.AddCounter("tellonce_rate_limited_total", "test", {"agency", "what"});
  RateLimiter limiter("fresh_checkpoint", Options(2, 1), &refusals);
  ASSERT_TRUE(limiter.Admit("bank").ok());
  absl::Status refused = limiter.Admit("bank");
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_EQ(refused.message(),
            "rate limit: fresh_checkpoint for agency bank: at most 2 per second");
  ASSERT_FALSE(limiter.Admit("bank").ok());
  EXPECT_EQ(refusals.With({"bank", "fresh_checkpoint"}).value(), 2u);
  EXPECT_THAT(
      metrics_.Render(),
      HasSubstr("tellonce_rate_limited_total{agency=\"bank\",what=\"fresh_checkpoint\"} 2"));
}

TEST_F(RateLimiterTest, AClockSteppingBackGivesNoTokens) {
  RateLimiter limiter("publish", Options(10, 2));
  EXPECT_EQ(Admitted(limiter, "registry", 10), 2);
  now_ -= absl::Hours(1);
  EXPECT_EQ(Admitted(limiter, "registry", 10), 0);
  now_ += absl::Hours(1) + absl::Milliseconds(100);
  EXPECT_EQ(Admitted(limiter, "registry", 10), 1);
}

TEST_F(RateLimiterTest, BucketsAreBoundedAndFullOnesAreDroppedFirst) {
  RateLimiter limiter("publish", Options(1, 2, /*max_keys=*/3));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(limiter.Admit(absl::StrCat("a", i)).ok());
  // Every bucket is in use (not full): a fourth agency is refused, the others are not.
  EXPECT_TRUE(absl::IsResourceExhausted(limiter.Admit("a3")));
  EXPECT_TRUE(limiter.Admit("a0").ok());
  EXPECT_EQ(limiter.keys(), 3u);
  // Once they have refilled, they are the same as new ones and make room.
  now_ += absl::Seconds(5);
  EXPECT_TRUE(limiter.Admit("a3").ok());
  EXPECT_LE(limiter.keys(), 3u);
}

}  // namespace
}  // namespace tellonce::broker
