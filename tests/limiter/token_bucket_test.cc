#include "limiter/token_bucket.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "common/clock.h"
#include "common/units.h"

namespace sluice::limiter {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using Seconds = std::chrono::duration<double>;

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
  // Burst plus the half-token lateness allowance, of which only whole tokens are taken.
  EXPECT_DOUBLE_EQ(bucket.tokens(), 3.5);
  EXPECT_EQ(Drain(bucket), 3);
  EXPECT_EQ(bucket.TimeUntilNextToken(), microseconds(500));
}

TEST_F(TokenBucketTest, WakeUpLateByLessThanHalfATokenLosesNothing) {
  TokenBucket bucket(common::Rate{1000}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  // The next token is due at 1 ms; a consumer that only gets there at 1.4 ms still gets
  // the one after at 2 ms, not 2.4 ms.
  Advance(microseconds(1400));
  ASSERT_TRUE(bucket.TryTake());
  EXPECT_FALSE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), microseconds(600));
  Advance(microseconds(600));
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), milliseconds(1));
}

TEST_F(TokenBucketTest, WakeUpLaterThanTheAllowanceLosesOnlyTheExcess) {
  TokenBucket bucket(common::Rate{1000}, 1, clock_);
  ASSERT_TRUE(bucket.TryTake());
  // 0.8 ms late: half a token interval is forgiven, 0.3 ms is lost.
  Advance(microseconds(1800));
  ASSERT_TRUE(bucket.TryTake());
  EXPECT_EQ(bucket.TimeUntilNextToken(), microseconds(500));
}

TEST_F(TokenBucketTest, LateWakeUpAbsorbedByBurstBeforeTheAllowance) {
  TokenBucket bucket(common::Rate{10000}, 10, clock_);
  ASSERT_EQ(Drain(bucket), 10);
  // The bucket refills in 1 ms and holds 10.5 tokens: a consumer 1.04 ms late gets all
  // 10.4 tokens' worth (10 now, the rest credited) and the next one on schedule.
  Advance(microseconds(1040));
  EXPECT_EQ(Drain(bucket), 10);
  EXPECT_EQ(bucket.TimeUntilNextToken(), microseconds(60));
}

TEST_F(TokenBucketTest, StartsAtBurstOneAreNeverCloserThanHalfAnInterval) {
  TokenBucket bucket(common::Rate{1000}, 1, clock_);
  Advance(seconds(5));
  EXPECT_EQ(Drain(bucket), 1);
  Advance(microseconds(499));
  EXPECT_FALSE(bucket.TryTake());
  Advance(microseconds(1));
  EXPECT_TRUE(bucket.TryTake());
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

TEST_F(TokenBucketTest, TimeUntilTokensForABatch) {
  TokenBucket bucket(common::Rate{10000}, 10, clock_);
  EXPECT_EQ(bucket.TimeUntilTokens(10), nanoseconds(0));
  EXPECT_EQ(bucket.TimeUntilTokens(11), common::Duration::max()) << "more than the burst";
  ASSERT_EQ(Drain(bucket), 10);
  EXPECT_EQ(bucket.TimeUntilTokens(0), nanoseconds(0));
  EXPECT_EQ(bucket.TimeUntilTokens(1), microseconds(100));
  EXPECT_EQ(bucket.TimeUntilTokens(5), microseconds(500));
  Advance(microseconds(500));
  EXPECT_EQ(bucket.TimeUntilTokens(5), nanoseconds(0));
  EXPECT_EQ(Drain(bucket), 5);
}

TEST_F(TokenBucketTest, TokensPerWakeUpIsAMillisecondOfTokensUpToHalfTheBurst) {
  struct Case {
    double rate;
    uint32_t burst;
    uint32_t expected;
  };
  for (Case c : {Case{1000, 1, 1}, Case{1000, 10, 1}, Case{500, 5, 1}, Case{3000, 1, 1},
                 Case{3000, 3, 1}, Case{3000, 8, 3}, Case{5000, 10, 5}, Case{10000, 10, 5},
                 Case{10000, 100, 10}, Case{100000, 100, 50}, Case{0, 10, 1},
                 Case{std::numeric_limits<double>::infinity(), 10, 1}}) {
    TokenBucket bucket(common::Rate{c.rate}, c.burst, clock_);
    EXPECT_EQ(bucket.TokensPerWakeUp(), c.expected) << c.rate << "/s burst " << c.burst;
  }
  TokenBucket bucket(common::Rate{10000}, 10, clock_);
  bucket.Reconfigure(common::Rate{2000}, 10);
  EXPECT_EQ(bucket.TokensPerWakeUp(), 2u);
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

// The most tokens taken in any interval beyond what the rate alone allows over it:
// max over i <= j of (j - i + 1) - rate * (at[j] - at[i]), for take times in order. In
// O(n): with x_k = k - rate * at[k] it is 1 + max over j of (x_j - min over i <= j of x_i).
double MostTakenBeyondRate(const std::vector<common::Duration>& at, double rate) {
  double most = 0;
  double lowest = std::numeric_limits<double>::infinity();
  for (size_t k = 0; k < at.size(); ++k) {
    double x = static_cast<double>(k) - rate * Seconds(at[k]).count();
    lowest = std::min(lowest, x);
    most = std::max(most, 1 + x - lowest);
  }
  return most;
}

// The most tokens taken at one instant.
uint32_t MostTakenAtOnce(const std::vector<common::Duration>& at) {
  uint32_t most = 0;
  for (size_t i = 0, j = 0; i < at.size(); i = j) {
    while (j < at.size() && at[j] == at[i]) ++j;
    most = std::max(most, static_cast<uint32_t>(j - i));
  }
  return most;
}

TEST(TokenBucketOracle, MostTakenBeyondRate) {
  const double rate = 1000;
  std::vector<common::Duration> spaced = {milliseconds(0), milliseconds(1), milliseconds(2)};
  EXPECT_NEAR(MostTakenBeyondRate(spaced, rate), 1, 1e-9);
  // Two takes 0.4 ms apart: 2 - 0.4 over an interval that allows burst + 0.4.
  std::vector<common::Duration> close = {milliseconds(0), microseconds(5000), microseconds(5400)};
  EXPECT_NEAR(MostTakenBeyondRate(close, rate), 1.6, 1e-9);
  EXPECT_EQ(MostTakenAtOnce(close), 1u);
  std::vector<common::Duration> same = {milliseconds(1), milliseconds(1), milliseconds(1)};
  EXPECT_NEAR(MostTakenBeyondRate(same, rate), 3, 1e-9);
  EXPECT_EQ(MostTakenAtOnce(same), 3u);
}

// A dispatcher with an endless backlog, driven by a timer that fires late: whenever it
// wakes it takes every token there is, then sleeps until TokensPerWakeUp() tokens are
// there, plus `lateness()`.
struct LateConsumerRun {
  std::vector<common::Duration> taken_at;
  common::Duration excess_lateness{0};  // summed lateness beyond `allowance`
  int64_t wake_ups = 0;
};

LateConsumerRun ConsumeWithLateWakeUps(double rate, uint32_t burst, common::Duration duration,
                                       common::Duration allowance,
                                       const std::function<common::Duration()>& lateness) {
  common::FakeClock clock;
  TokenBucket bucket(common::Rate{rate}, burst, clock);
  LateConsumerRun run;
  while (clock.Now() <= duration) {
    ++run.wake_ups;
    while (bucket.TryTake()) run.taken_at.push_back(clock.Now());
    common::Duration late = lateness();
    run.excess_lateness += std::max(common::Duration(0), late - allowance);
    clock.Advance(bucket.TimeUntilTokens(bucket.TokensPerWakeUp()) + late);
  }
  return run;
}

struct PacingCase {
  double rate;
  uint32_t burst;
  common::Duration simulated;
};

uint32_t TokensPerWakeUp(const PacingCase& c) {
  common::FakeClock clock;
  return TokenBucket(common::Rate{c.rate}, c.burst, clock).TokensPerWakeUp();
}

// How late a wake-up may be without losing time: until the bucket is full, counted from
// when the tokens it waited for became available.
common::Duration Allowance(const PacingCase& c) {
  double tokens = c.burst - TokensPerWakeUp(c) + 0.5;
  return std::chrono::duration_cast<common::Duration>(Seconds(tokens / c.rate));
}

// The configurations of the rate-accuracy and CPU benchmarks, and odd ones.
const PacingCase kPacingCases[] = {
    {1000, 1, seconds(20)}, {10000, 10, seconds(20)}, {5000, 10, seconds(20)},
    {3000, 1, seconds(10)}, {500, 5, seconds(60)},    {7, 2, seconds(3600)},
};

// The contract, whatever the timer does: over any interval of length t at most
// burst + 1/2 + rate * t (so never above ceil(burst + rate * t)), at most `burst` at one
// instant, and at most burst + rate * t from the start.
void ExpectWithinBurst(const PacingCase& c, const std::vector<common::Duration>& taken_at) {
  ASSERT_FALSE(taken_at.empty());
  EXPECT_LE(MostTakenBeyondRate(taken_at, c.rate), c.burst + 0.5 + 1e-6);
  EXPECT_LE(MostTakenAtOnce(taken_at), c.burst);
  for (size_t k = 0; k < taken_at.size(); ++k) {
    double allowed = c.burst + c.rate * Seconds(taken_at[k]).count();
    ASSERT_LE(static_cast<double>(k + 1), allowed + 1e-6) << "at " << taken_at[k].count();
  }
}

// Wake-ups late by anything up to the allowance (uniformly): every token the rate allows
// is taken, on schedule. A bucket capped at `burst` loses the lateness whenever it is full
// (burst 1: at every wake-up, 0.8 of the rate here).
TEST(TokenBucketPacing, LateWakeUpsWithinTheAllowanceLoseNothing) {
  for (const PacingCase& c : kPacingCases) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      SCOPED_TRACE(testing::Message() << c.rate << "/s burst " << c.burst << " seed " << seed);
      std::mt19937_64 random(seed);
      std::uniform_int_distribution<int64_t> late_ns(0, Allowance(c).count());
      LateConsumerRun run = ConsumeWithLateWakeUps(c.rate, c.burst, c.simulated, Allowance(c), [&] {
        return common::Duration(late_ns(random));
      });
      ExpectWithinBurst(c, run.taken_at);
      double last = Seconds(run.taken_at.back()).count();
      double n = static_cast<double>(run.taken_at.size());
      // The benchmark's figure: (arrivals - 1) / (last - first), within 1 %.
      EXPECT_NEAR((n - 1) / last, c.rate, c.rate * 0.01);
      // And exact: all that the rate allowed by the last take, give or take one.
      EXPECT_NEAR(n, c.burst + c.rate * last, 1);
    }
  }
}

// Heavy-tailed lateness like a loaded machine's: mostly tens of microseconds, sometimes a
// scheduling stall of up to 50 ms. The bound holds, and the time lost is at most the
// lateness beyond the allowance.
TEST(TokenBucketPacing, StalledWakeUpsLoseOnlyTheExcessAndStayWithinBurst) {
  for (const PacingCase& c : kPacingCases) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      SCOPED_TRACE(testing::Message() << c.rate << "/s burst " << c.burst << " seed " << seed);
      std::mt19937_64 random(seed);
      std::uniform_int_distribution<int64_t> usual_ns(0, 100'000);
      std::uniform_int_distribution<int64_t> stall_ns(0, 50'000'000);
      std::bernoulli_distribution stalled(0.01);
      LateConsumerRun run = ConsumeWithLateWakeUps(c.rate, c.burst, c.simulated, Allowance(c), [&] {
        return common::Duration(stalled(random) ? stall_ns(random) : usual_ns(random));
      });
      ExpectWithinBurst(c, run.taken_at);
      double last = Seconds(run.taken_at.back()).count();
      double lost = Seconds(run.excess_lateness).count();
      EXPECT_GE(static_cast<double>(run.taken_at.size()), c.burst + c.rate * (last - lost) - 1);
    }
  }
}

// A timer that never fires late gets every token, and never more, at any rate; it wakes
// once per TokensPerWakeUp() tokens, so at most about once a millisecond.
TEST(TokenBucketPacing, PunctualWakeUpsAreExact) {
  for (const PacingCase& c : kPacingCases) {
    SCOPED_TRACE(testing::Message() << c.rate << "/s burst " << c.burst);
    LateConsumerRun run = ConsumeWithLateWakeUps(c.rate, c.burst, c.simulated, Allowance(c),
                                                 [] { return common::Duration(0); });
    ExpectWithinBurst(c, run.taken_at);
    double last = Seconds(run.taken_at.back()).count();
    EXPECT_NEAR(static_cast<double>(run.taken_at.size()), c.burst + c.rate * last, 1);
    double wake_ups_expected = c.rate * Seconds(c.simulated).count() / TokensPerWakeUp(c);
    EXPECT_NEAR(static_cast<double>(run.wake_ups), wake_ups_expected, 2);
  }
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
