// The real sluice binary on buffer.kind: sqs, against the local-aws-sqs emulator on
// loopback: 202 only after SendMessage, kill -9 of sluice loses nothing acknowledged
// (its messages reappear after the visibility timeout), two instances share a queue
// without double delivery, 503 while SQS is away. The emulator keeps its queues in
// memory, so a restart of SQS itself (durable in AWS) is not something it can show.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "tests/broker/sqs_emulator.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

using broker::testing::SharedEmulator;

class SqsE2eTest : public SluiceE2eTest {
 protected:
  void SetUp() override {
    SluiceE2eTest::SetUp();
    ASSERT_TRUE(SharedEmulator().running()) << "the SQS emulator did not start";
    // sluice reads its credentials from the usual variables; the child inherits them.
    ::setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string prefix = std::string("e2e-") + info->name() + "-";
    buffer_options_ = ", kind: sqs, sqs: {endpoint: \"" + SharedEmulator().endpoint() +
                      "\", queue_prefix: \"" + prefix + "\", visibility_timeout: 2s}";
  }
};

TEST_F(SqsE2eTest, AcceptedRequestsAreDeliveredThroughSqs) {
  ASSERT_TRUE(StartSluice());
  std::vector<Accepted> accepted = PostMany(100);
  ASSERT_EQ(accepted.size(), 100u);
  ASSERT_TRUE(WaitDelivered(accepted));
  EXPECT_EQ(CountDuplicates(accepted), 0);
  auto by_body = DeliveriesByBody();
  for (const auto& a : accepted) {
    ASSERT_FALSE(by_body[a.body].empty());
    EXPECT_EQ(by_body[a.body][0].Header("Sluice-Message-Id"), a.id);
  }
  auto targets = Get(sluice_.admin_port(), "/admin/targets");
  ASSERT_TRUE(targets);
  EXPECT_EQ(JsonStringField(targets->body, "buffer"), "sqs") << targets->body;
}

TEST_F(SqsE2eTest, Kill9OfSluiceLosesNothingAcknowledged) {
  downstream_.SetResponder([](const ReceivedRequest&) {
    Reply reply;
    reply.delay = Millis(20);
    return reply;
  });
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 4
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
)"));
  std::vector<Accepted> accepted = PostMany(150);
  ASSERT_EQ(accepted.size(), 150u);
  ASSERT_TRUE(downstream_.WaitForCount(30, Millis(10'000)));
  sluice_.Kill9();
  size_t before_restart = downstream_.Count();
  ASSERT_LT(before_restart, accepted.size()) << "everything was delivered before the kill";
  ASSERT_TRUE(RestartSluice());
  // What the killed instance held comes back after the 2 s visibility timeout.
  ASSERT_TRUE(WaitDelivered(accepted, Millis(60'000)));
  std::printf("[ broker   ] sqs: kill -9 of sluice after %zu deliveries: %d duplicates of 150\n",
              before_restart, CountDuplicates(accepted));
}

TEST_F(SqsE2eTest, TwoInstancesShareTheQueueWithoutDoubleDelivery) {
  ASSERT_TRUE(StartSluice());
  SluiceProcess second;
  second.WriteConfig(Config(kAppTarget));
  ASSERT_TRUE(second.Start()) << second.error();
  std::vector<Accepted> accepted = PostMany(100);
  ASSERT_EQ(accepted.size(), 100u);
  int second_ok = 0;
  for (int i = 0; i < 100; ++i) {
    HttpClient client(second.ingest_port());
    if (StatusOf(client, MakePost(1000 + i)) == 202) ++second_ok;
  }
  ASSERT_EQ(second_ok, 100);
  ASSERT_TRUE(downstream_.WaitForCount(200, Millis(30'000)));
  // Longer than a visibility timeout: a message hidden from one instance but not
  // extended would show up at the other by now.
  ASSERT_TRUE(WaitForMetric(
      "sluice_delivery_in_flight", {{"target", "app"}}, [](double v) { return v == 0; }, "== 0"));
  std::set<std::string> ids;
  for (const auto& r : downstream_.Requests()) {
    auto id = r.Header("Sluice-Message-Id");
    ASSERT_TRUE(id.has_value());
    EXPECT_TRUE(ids.insert(*id).second) << "delivered twice: " << *id;
  }
  EXPECT_EQ(ids.size(), 200u);
  second.Terminate();
}

TEST_F(SqsE2eTest, SqsAwayAnswers503) {
  ASSERT_TRUE(StartSluice());
  HttpClient client(sluice_.ingest_port());
  ASSERT_EQ(StatusOf(client, MakePost(1)), 202);
  SharedEmulator().Stop();
  std::optional<HttpMessage> answer = client.RoundTrip(MakePost(2));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 503) << answer->body;
  EXPECT_EQ(answer->Header("Retry-After"), "1");
  EXPECT_NE(answer->body.find("\"unavailable\""), std::string::npos) << answer->body;
  std::string error;
  ASSERT_TRUE(SharedEmulator().Start(SharedEmulator().port(), &error)) << error;
}

}  // namespace
}  // namespace sluice::e2e
