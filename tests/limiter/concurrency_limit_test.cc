#include "limiter/concurrency_limit.h"

#include <gtest/gtest.h>

namespace sluice::limiter {
namespace {

TEST(ConcurrencyLimitTest, AcquiresUpToLimit) {
  ConcurrencyLimit limit(3);
  EXPECT_EQ(limit.limit(), 3u);
  EXPECT_TRUE(limit.TryAcquire());
  EXPECT_TRUE(limit.TryAcquire());
  EXPECT_TRUE(limit.TryAcquire());
  EXPECT_FALSE(limit.TryAcquire());
  EXPECT_EQ(limit.in_flight(), 3u);
}

TEST(ConcurrencyLimitTest, ReleaseFreesASlot) {
  ConcurrencyLimit limit(1);
  ASSERT_TRUE(limit.TryAcquire());
  ASSERT_FALSE(limit.TryAcquire());
  limit.Release();
  EXPECT_EQ(limit.in_flight(), 0u);
  EXPECT_TRUE(limit.TryAcquire());
}

TEST(ConcurrencyLimitTest, ZeroLimitAdmitsNothing) {
  ConcurrencyLimit limit(0);
  EXPECT_FALSE(limit.TryAcquire());
  EXPECT_EQ(limit.in_flight(), 0u);
}

TEST(ConcurrencyLimitTest, SetLimitBelowInFlightBlocksNewAcquiresOnly) {
  ConcurrencyLimit limit(4);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(limit.TryAcquire());
  limit.SetLimit(2);
  EXPECT_EQ(limit.in_flight(), 4u);  // running deliveries are not cancelled
  EXPECT_FALSE(limit.TryAcquire());
  limit.Release();
  limit.Release();
  EXPECT_EQ(limit.in_flight(), 2u);
  EXPECT_FALSE(limit.TryAcquire());  // at the new limit
  limit.Release();
  EXPECT_TRUE(limit.TryAcquire());
  EXPECT_FALSE(limit.TryAcquire());
}

TEST(ConcurrencyLimitTest, RaisingLimitAdmitsMore) {
  ConcurrencyLimit limit(1);
  ASSERT_TRUE(limit.TryAcquire());
  limit.SetLimit(3);
  EXPECT_TRUE(limit.TryAcquire());
  EXPECT_TRUE(limit.TryAcquire());
  EXPECT_FALSE(limit.TryAcquire());
}

}  // namespace
}  // namespace sluice::limiter
