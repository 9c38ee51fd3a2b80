#include "proxy/drain_estimate.h"

#include <gtest/gtest.h>

namespace sluice::proxy {
namespace {

using std::chrono::seconds;

TEST(DrainEstimateTest, NothingKnownMeansStalled) {
  DrainEstimate d;
  EXPECT_FALSE(d.SecondsFor(10).has_value());
  EXPECT_EQ(d.RetryAfterSeconds(10), DrainEstimate::kStalledRetryAfter);
}

TEST(DrainEstimateTest, SteadyDrainConvergesToItsRate) {
  DrainEstimate d;
  for (int i = 0; i <= 60; ++i) d.Sample(seconds(i), 1 + 100 * uint64_t(i));  // 100/s
  ASSERT_TRUE(d.SecondsFor(1000).has_value());
  EXPECT_NEAR(*d.SecondsFor(1000), 10.0, 0.01);
  EXPECT_EQ(d.RetryAfterSeconds(1000), 10);
  EXPECT_EQ(d.low_water(), 6001u);
}

TEST(DrainEstimateTest, RetryAfterIsAtLeastOneSecondAndCapped) {
  DrainEstimate d;
  for (int i = 0; i <= 60; ++i) d.Sample(seconds(i), 1 + 100 * uint64_t(i));
  EXPECT_EQ(d.RetryAfterSeconds(1), 1);
  EXPECT_EQ(d.RetryAfterSeconds(0), 1);
  EXPECT_EQ(d.RetryAfterSeconds(100'000'000), DrainEstimate::kMaxRetryAfter);
}

TEST(DrainEstimateTest, AStoppedTargetDecaysTheRateToStalled) {
  DrainEstimate d;
  for (int i = 0; i <= 10; ++i) d.Sample(seconds(i), 1 + 100 * uint64_t(i));
  double draining = *d.SecondsFor(100);
  for (int i = 11; i <= 20; ++i) d.Sample(seconds(i), 1001);  // target down
  ASSERT_TRUE(d.SecondsFor(100).has_value());
  EXPECT_GT(*d.SecondsFor(100), 5 * draining) << "the estimate follows the slowdown";
  for (int i = 21; i <= 200; ++i) d.Sample(seconds(i), 1001);
  EXPECT_EQ(d.RetryAfterSeconds(100), DrainEstimate::kStalledRetryAfter);
}

TEST(DrainEstimateTest, LowWaterNeverMovesBack) {
  DrainEstimate d;
  d.Sample(seconds(0), 500);
  d.Sample(seconds(1), 400);  // a new target starting from an older position
  EXPECT_EQ(d.low_water(), 500u);
}

}  // namespace
}  // namespace sluice::proxy
