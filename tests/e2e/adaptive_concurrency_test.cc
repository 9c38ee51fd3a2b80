// concurrency: {adaptive: true}: the in-flight limit follows what the target can take —
// down when it sheds load with 503, up again when it recovers — and is exported as
// sluice_target_concurrency_limit.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

#include "tests/e2e/prometheus_text.h"
#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

class AdaptiveConcurrencyTest : public SluiceE2eTest {};

TEST_F(AdaptiveConcurrencyTest, LimitFollowsTheTargetsCapacity) {
  // A target with `capacity` slots: 30 ms per request, 503 beyond the slots.
  auto capacity = std::make_shared<std::atomic<int>>(4);
  auto busy = std::make_shared<std::atomic<int>>(0);
  downstream_.SetResponder([capacity, busy](const ReceivedRequest&) {
    Reply reply;
    // The work happens inside the responder (one thread per connection), so `busy` is
    // the number of requests the target is handling at once.
    if (busy->fetch_add(1) >= capacity->load()) {
      reply.status = 503;
    } else {
      std::this_thread::sleep_for(Millis(30));
    }
    busy->fetch_sub(1);
    return reply;
  });
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: {adaptive: true, min: 1, max: 64}
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 10ms, max_backoff: 100ms, respect_retry_after: false}
)"));
  std::vector<Accepted> first = PostMany(400);
  ASSERT_EQ(first.size(), 400u);
  ASSERT_TRUE(WaitDelivered(first, Millis(60'000)));
  std::string text = Metrics();
  double limit =
      SumSamples(text, "sluice_target_concurrency_limit", {{"target", "app"}}).value_or(-1);
  EXPECT_GE(limit, 1);
  EXPECT_LE(limit, 12) << "a 4-slot target: the limit settles near its capacity";
  RecordProperty("limit_at_capacity_4", std::to_string(limit));

  capacity->store(64);  // the target recovers
  std::vector<Accepted> second = PostMany(600);
  ASSERT_EQ(second.size(), 600u);
  ASSERT_TRUE(WaitDelivered(second, Millis(60'000)));
  double recovered =
      SumSamples(Metrics(), "sluice_target_concurrency_limit", {{"target", "app"}}).value_or(-1);
  EXPECT_GT(recovered, limit) << "the limit grows again once the target takes more";
  RecordProperty("limit_at_capacity_64", std::to_string(recovered));
}

}  // namespace
}  // namespace sluice::e2e
