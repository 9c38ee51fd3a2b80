#include "limiter/token_bucket.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "common/clock.h"
#include "common/units.h"

namespace sluice::limiter {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr common::Rate kUnlimited{std::numeric_limits<double>::infinity()};

class TokenBucketTest : public testing::Test {
 protected:
  // Takes tokens until the bucket refuses; returns how many it gave.
  static int Drain(TokenBucket& bucket) {
    int taken = 0;
    while (bucket.TryTake()) ++taken;
    return taken;
  }

  void Advance(common::Duration d) { clock_.Advance(d); }

  common::FakeClock clock_;
};

TEST_F(TokenBucketTest, StartsFullWithBurstTokens) {
  TokenBucket bucket(common::Rate{1}, 5, clock_);
  EXPECT_EQ(bucket.TimeUntilNextToken(), nanoseconds(0));
  EXPECT_EQ(Drain(bucket), 5);
  EXPECT_EQ(bucket.TimeUntilNextToken(), seconds(1));
}

TEST_F(TokenBucketTest, ClockAtZero) {
  ASSERT_EQ(clock_.Now(), nanoseconds(0));
  TokenBucket bucket(common::Rate{10}, 1, clock_);
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_FALSE(bucket.TryTake());
  Advance(milliseconds(100));
  EXPECT_TRUE(bucket.TryTake());
}

TEST_F(TokenBucketTest, RefillExactAtThreePerSecond) {
  TokenBucket bucket(common::Rate{3}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  // 1/3 s = 333'333'333.3 ns: one nanosecond short there is no token, at the rounded-up
  // wait there is.
  Advance(nanoseconds(333'333'333));
  EXPECT_FALSE(bucket.TryTake());
  Advance(nanoseconds(1));
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_FALSE(bucket.TryTake());
}

TEST_F(TokenBucketTest, FractionsOfANanosecondCarryOver) {
  // Burst 2 so that the bucket is never full while it refills and nothing is clamped away.
  TokenBucket bucket(common::Rate{3}, 2, clock_);
  ASSERT_EQ(Drain(bucket), 2);
  // Each wait is rounded up to a whole nanosecond, but the excess is credited to the next
  // token: the tenth token arrives at ceil(10/3 s), not 10 * ceil(1/3 s).
  for (int i = 0; i < 10; ++i) {
    Advance(bucket.TimeUntilNextToken());
    ASSERT_TRUE(bucket.TryTake()) << i;
    ASSERT_FALSE(bucket.TryTake()) << i;
  }
  EXPECT_EQ(clock_.Now(), nanoseconds(3'333'333'334));
}

TEST_F(TokenBucketTest, RefillExactAtHalfPerSecond) {
  TokenBucket bucket(common::Rate{0.5}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  Advance(milliseconds(1999));
  EXPECT_FALSE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), milliseconds(1));
  Advance(milliseconds(1));
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_FALSE(bucket.TryTake());
}

TEST_F(TokenBucketTest, RefillExactAtTenThousandPerSecond) {
  TokenBucket bucket(common::Rate{10000}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  Advance(nanoseconds(99'999));
  EXPECT_FALSE(bucket.TryTake());
  Advance(nanoseconds(1));
  EXPECT_TRUE(bucket.TryTake());
}

TEST_F(TokenBucketTest, PartialRefillsAccumulate) {
  TokenBucket bucket(common::Rate{1}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  // Polling often must not lose the fractions credited at each poll.
  for (int i = 0; i < 9; ++i) {
    Advance(milliseconds(100));
    EXPECT_FALSE(bucket.TryTake());
  }
  EXPECT_EQ(bucket.TimeUntilNextToken(), milliseconds(100));
  Advance(milliseconds(100));
  EXPECT_TRUE(bucket.TryTake());
}

TEST_F(TokenBucketTest, NeverExceedsBurstAfterLongIdle) {
  TokenBucket bucket(common::Rate{1000}, 3, clock_);
  ASSERT_EQ(Drain(bucket), 3);
  Advance(std::chrono::hours(24 * 365));
  EXPECT_DOUBLE_EQ(bucket.tokens(), 3);
  EXPECT_EQ(Drain(bucket), 3);
}

TEST_F(TokenBucketTest, TimeUntilNextTokenExactValues) {
  TokenBucket bucket(common::Rate{4}, 2, clock_);
  EXPECT_EQ(bucket.TimeUntilNextToken(), nanoseconds(0));
  ASSERT_EQ(Drain(bucket), 2);
  EXPECT_EQ(bucket.TimeUntilNextToken(), milliseconds(250));
  Advance(milliseconds(100));
  EXPECT_EQ(bucket.TimeUntilNextToken(), milliseconds(150));
  Advance(milliseconds(150));
  EXPECT_EQ(bucket.TimeUntilNextToken(), nanoseconds(0));
  // Asking does not consume or reset anything.
  EXPECT_EQ(bucket.TimeUntilNextToken(), nanoseconds(0));
  Advance(milliseconds(200));
  EXPECT_TRUE(bucket.TryTake());
  // 0.8 tokens left: 0.2 more needed = 50 ms.
  EXPECT_EQ(bucket.TimeUntilNextToken(), milliseconds(50));
}

TEST_F(TokenBucketTest, TimeUntilNextTokenRoundsUp) {
  TokenBucket bucket(common::Rate{3}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), nanoseconds(333'333'334));
}

// Simulates a dispatcher that arms its timer for TimeUntilNextToken() and takes a token
// whenever it fires, for `duration`. Checks that it never got more than `burst` at one
// instant, and never more than burst + rate * t by any time t.
int ConsumeGreedily(double rate, uint32_t burst, common::Duration duration) {
  common::FakeClock clock;
  TokenBucket bucket(common::Rate{rate}, burst, clock);
  int taken = 0;
  for (;;) {
    common::Duration wait = bucket.TimeUntilNextToken();
    if (clock.Now() + wait > duration) break;
    clock.Advance(wait);
    uint32_t at_this_instant = 0;
    while (bucket.TryTake()) {
      ++taken;
      ++at_this_instant;
    }
    EXPECT_GE(at_this_instant, 1u) << "TimeUntilNextToken promised a token at " << clock.Now();
    EXPECT_LE(at_this_instant, burst) << "at " << clock.Now().count() << " ns";
    double allowed = burst + rate * std::chrono::duration<double>(clock.Now()).count();
    EXPECT_LE(taken, allowed + 1e-6) << "at " << clock.Now().count() << " ns";
    if (testing::Test::HasFailure()) break;
  }
  return taken;
}

TEST_F(TokenBucketTest, RateAccurateOverTwentySecondsAtThousandPerSecond) {
  const double expected = 1 + 1000.0 * 20;
  int taken = ConsumeGreedily(1000, 1, seconds(20));
  EXPECT_NEAR(taken, expected, expected * 0.01);
  // No drift at all: the greedy consumer gets every token the rate allows.
  EXPECT_NEAR(taken, expected, 1);
}

TEST_F(TokenBucketTest, RateAccurateOverTwentySecondsAtTenThousandPerSecond) {
  const double expected = 10 + 10000.0 * 20;
  int taken = ConsumeGreedily(10000, 10, seconds(20));
  EXPECT_NEAR(taken, expected, expected * 0.01);
  EXPECT_NEAR(taken, expected, 1);
}

TEST_F(TokenBucketTest, RateAccurateAtFractionalRateThatIsNotWholeNanoseconds) {
  // 1/3000 s is not a whole number of nanoseconds; rounding each wait up must not drift.
  const double expected = 1 + 3000.0 * 20;
  int taken = ConsumeGreedily(3000, 1, seconds(20));
  EXPECT_NEAR(taken, expected, 1);
}

TEST_F(TokenBucketTest, UnlimitedAlwaysGivesTokens) {
  TokenBucket bucket(kUnlimited, 1, clock_);
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), nanoseconds(0));
  EXPECT_TRUE(bucket.rate().unlimited());
}

TEST_F(TokenBucketTest, ZeroRateNeverRefills) {
  TokenBucket bucket(common::Rate{0}, 2, clock_);
  EXPECT_EQ(Drain(bucket), 2);
  EXPECT_EQ(bucket.TimeUntilNextToken(), common::Duration::max());
  Advance(std::chrono::hours(1000));
  EXPECT_FALSE(bucket.TryTake());
}

TEST_F(TokenBucketTest, ZeroBurstNeverGivesTokens) {
  TokenBucket bucket(common::Rate{100}, 0, clock_);
  EXPECT_FALSE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), common::Duration::max());
  Advance(seconds(10));
  EXPECT_FALSE(bucket.TryTake());
}

TEST_F(TokenBucketTest, TinyRateWaitSaturatesInsteadOfOverflowing) {
  TokenBucket bucket(common::Rate{1e-12}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), common::Duration::max());
}

TEST_F(TokenBucketTest, ReconfigureKeepsTokensAccruedAtOldRate) {
  TokenBucket bucket(common::Rate{1}, 10, clock_);
  ASSERT_EQ(Drain(bucket), 10);
  Advance(milliseconds(2500));  // 2.5 tokens at the old rate
  bucket.Reconfigure(common::Rate{100}, 10);
  EXPECT_EQ(bucket.rate(), common::Rate{100});
  EXPECT_DOUBLE_EQ(bucket.tokens(), 2.5);
  EXPECT_EQ(Drain(bucket), 2);
  // 0.5 left; the missing half token now comes at 100/s.
  EXPECT_EQ(bucket.TimeUntilNextToken(), milliseconds(5));
}

TEST_F(TokenBucketTest, ReconfigureClampsTokensToSmallerBurst) {
  TokenBucket bucket(common::Rate{1}, 10, clock_);
  bucket.Reconfigure(common::Rate{1}, 3);
  EXPECT_EQ(bucket.burst(), 3u);
  EXPECT_EQ(Drain(bucket), 3);
}

TEST_F(TokenBucketTest, ReconfigureLargerBurstDoesNotAddTokens) {
  TokenBucket bucket(common::Rate{10}, 2, clock_);
  bucket.Reconfigure(common::Rate{10}, 5);
  EXPECT_EQ(Drain(bucket), 2);
  Advance(seconds(10));
  EXPECT_EQ(Drain(bucket), 5);
}

TEST_F(TokenBucketTest, ReconfigureFromZeroRateStartsRefilling) {
  TokenBucket bucket(common::Rate{0}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  Advance(seconds(100));  // not credited at the new rate retroactively
  bucket.Reconfigure(common::Rate{2}, 1);
  EXPECT_FALSE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), milliseconds(500));
}

TEST_F(TokenBucketTest, ReconfigureToAndFromUnlimited) {
  TokenBucket bucket(common::Rate{1}, 2, clock_);
  ASSERT_EQ(Drain(bucket), 2);
  bucket.Reconfigure(kUnlimited, 2);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(bucket.TryTake());
  Advance(seconds(1));
  bucket.Reconfigure(common::Rate{1}, 4);
  // An unlimited bucket was full: it keeps the old burst's worth, clamped to the new one.
  EXPECT_EQ(Drain(bucket), 2);
  EXPECT_EQ(bucket.TimeUntilNextToken(), seconds(1));
}

}  // namespace
}  // namespace sluice::limiter
