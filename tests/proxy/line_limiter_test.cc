#include <gtest/gtest.h>

#include "proxy/logging.h"

namespace sluice::proxy::logging {
namespace {

using std::chrono::milliseconds;

TEST(LineLimiterTest, BurstThenRateAndCountsWhatWasHeldBack) {
  LineLimiter limiter(10, 3);
  uint64_t suppressed = 99;
  std::chrono::nanoseconds t{0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(limiter.Allow("delivery rejected", t, &suppressed));
    EXPECT_EQ(suppressed, 0u);
  }
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limiter.Allow("delivery rejected", t, &suppressed));
  t += milliseconds(100);  // one token at 10/s
  ASSERT_TRUE(limiter.Allow("delivery rejected", t, &suppressed));
  EXPECT_EQ(suppressed, 5u) << "the next line says how many were held back";
  EXPECT_FALSE(limiter.Allow("delivery rejected", t, &suppressed));
}

TEST(LineLimiterTest, MessagesAreLimitedSeparately) {
  LineLimiter limiter(1, 1);
  uint64_t suppressed = 0;
  std::chrono::nanoseconds t{0};
  EXPECT_TRUE(limiter.Allow("a", t, &suppressed));
  EXPECT_FALSE(limiter.Allow("a", t, &suppressed));
  EXPECT_TRUE(limiter.Allow("b", t, &suppressed)) << "a noisy message does not mute others";
}

TEST(LineLimiterTest, IdleTimeRefillsOnlyUpToTheBurst) {
  LineLimiter limiter(10, 2);
  uint64_t suppressed = 0;
  std::chrono::nanoseconds t{0};
  t += std::chrono::hours(1);
  EXPECT_TRUE(limiter.Allow("m", t, &suppressed));
  EXPECT_TRUE(limiter.Allow("m", t, &suppressed));
  EXPECT_FALSE(limiter.Allow("m", t, &suppressed));
}

}  // namespace
}  // namespace sluice::proxy::logging
