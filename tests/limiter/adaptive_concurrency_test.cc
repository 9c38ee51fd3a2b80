#include "limiter/adaptive_concurrency.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sluice::limiter {
namespace {

using namespace std::chrono_literals;

// A simulated target with `capacity` concurrent slots: up to capacity it answers in
// `base` latency; beyond it requests queue (latency grows with the excess) and past
// twice the capacity it sheds load with 503. The client keeps the limit saturated.
class SimulatedTarget {
 public:
  SimulatedTarget(AdaptiveConcurrency& limiter, common::FakeClock& clock)
      : limiter_(limiter), clock_(clock) {}
  uint32_t capacity = 8;
  common::Duration base = 20ms;

  // Runs for `duration` in 5 ms steps; returns the highest limit seen.
  uint32_t Run(common::Duration duration) {
    uint32_t highest = 0;
    for (common::Duration t{0}; t < duration; t += 5ms) {
      clock_.Advance(5ms);
      uint32_t in_flight = limiter_.limit();
      highest = std::max(highest, in_flight);
      if (in_flight > 2 * capacity) {
        limiter_.OnOverload();
      } else {
        double load = std::max(1.0, double(in_flight) / capacity);
        limiter_.OnSuccess(std::chrono::duration_cast<common::Duration>(base * load), in_flight);
      }
    }
    return highest;
  }

 private:
  AdaptiveConcurrency& limiter_;
  common::FakeClock& clock_;
};

TEST(AdaptiveConcurrencyTest, StartsAtMinAndSlowStartsToMaxOnAHealthyTarget) {
  common::FakeClock clock;
  AdaptiveConcurrency limiter(1, 64, clock);
  EXPECT_EQ(limiter.limit(), 1u);
  SimulatedTarget target(limiter, clock);
  target.capacity = 1000;
  target.Run(2s);
  EXPECT_EQ(limiter.limit(), 64u) << "doubling per 100 ms window reaches 64 in < 1 s";
}

TEST(AdaptiveConcurrencyTest, ConvergesDownUnderOverload) {
  common::FakeClock clock;
  AdaptiveConcurrency limiter(1, 64, clock);
  SimulatedTarget target(limiter, clock);
  target.capacity = 1000;
  target.Run(2s);
  ASSERT_EQ(limiter.limit(), 64u);

  target.capacity = 8;  // the target degrades
  target.Run(5s);
  uint32_t highest_after = target.Run(20s);
  EXPECT_LE(limiter.limit(), 16u);
  EXPECT_GE(limiter.limit(), 4u) << "not collapsed to the minimum";
  EXPECT_LE(highest_after, 17u) << "the limit stays near the capacity once converged";
}

TEST(AdaptiveConcurrencyTest, RecoversWhenTheTargetDoes) {
  common::FakeClock clock;
  AdaptiveConcurrency limiter(1, 64, clock);
  SimulatedTarget target(limiter, clock);
  target.capacity = 4;
  target.Run(10s);
  ASSERT_LE(limiter.limit(), 8u);
  target.capacity = 40;
  target.Run(10s);  // additive increase: +1 per window of >= 100 ms
  EXPECT_GE(limiter.limit(), 30u);
}

TEST(AdaptiveConcurrencyTest, RisingLatencyAloneShrinksTheLimit) {
  common::FakeClock clock;
  AdaptiveConcurrency limiter(1, 64, clock);
  for (int i = 0; i < 40; ++i) {  // learn a 10 ms baseline and grow
    clock.Advance(20ms);
    limiter.OnSuccess(10ms, limiter.limit());
  }
  uint32_t before = limiter.limit();
  ASSERT_GT(before, 4u);
  clock.Advance(200ms);
  limiter.OnSuccess(50ms, limiter.limit());  // 5x the baseline: queueing in the target
  EXPECT_LT(limiter.limit(), before);
}

TEST(AdaptiveConcurrencyTest, ABurstOfFailuresCountsOncePerWindow) {
  common::FakeClock clock;
  AdaptiveConcurrency limiter(1, 64, clock);
  SimulatedTarget target(limiter, clock);
  target.capacity = 1000;
  target.Run(2s);
  ASSERT_EQ(limiter.limit(), 64u);
  for (int i = 0; i < 50; ++i) limiter.OnOverload();  // same instant: one signal
  EXPECT_EQ(limiter.limit(), 48u);
  clock.Advance(150ms);
  limiter.OnOverload();
  EXPECT_EQ(limiter.limit(), 36u);
}

TEST(AdaptiveConcurrencyTest, StaysWithinMinAndMax) {
  common::FakeClock clock;
  AdaptiveConcurrency limiter(3, 10, clock);
  for (int i = 0; i < 100; ++i) {
    clock.Advance(200ms);
    limiter.OnOverload();
  }
  EXPECT_EQ(limiter.limit(), 3u);
  for (int i = 0; i < 1000; ++i) {
    clock.Advance(20ms);
    limiter.OnSuccess(1ms, limiter.limit());
  }
  EXPECT_EQ(limiter.limit(), 10u);
}

TEST(AdaptiveConcurrencyTest, DoesNotGrowAnUnusedLimit) {
  common::FakeClock clock;
  AdaptiveConcurrency limiter(2, 64, clock);
  for (int i = 0; i < 500; ++i) {
    clock.Advance(20ms);
    limiter.OnSuccess(5ms, /*in_flight=*/0);  // traffic far below the limit
  }
  EXPECT_EQ(limiter.limit(), 2u);
}

}  // namespace
}  // namespace sluice::limiter
