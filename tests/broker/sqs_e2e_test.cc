// The real sluice binary on buffer.kind: sqs, against the local-aws-sqs emulator on
// loopback: 202 only after SendMessage, kill -9 of sluice loses nothing acknowledged
// (its messages reappear after the visibility timeout), two instances share a queue
// without double delivery, 503 while SQS is away. The emulator keeps its queues in
// memory, so a restart of SQS itself (durable in AWS) is not something it can show.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "tests/broker/broker_e2e.h"
#include "tests/broker/sqs_emulator.h"
#include "tests/e2e/http_client.h"

namespace sluice::e2e {
namespace {

using broker::testing::SharedEmulator;

class SqsE2eTest : public BrokerE2eTest {
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
  EXPECT_TRUE(DeliversEachAcceptedRequestOnce(100, "sqs"));
}

// What the killed instance held comes back after the 2 s visibility timeout.
TEST_F(SqsE2eTest, Kill9OfSluiceLosesNothingAcknowledged) {
  EXPECT_TRUE(Kill9LosesNothingAcknowledged(150, 30, Millis(60'000)));
}

// Visibility is extended while a message is held: the other instance never gets it.
TEST_F(SqsE2eTest, TwoInstancesShareTheQueueWithoutDoubleDelivery) {
  EXPECT_TRUE(TwoInstancesDeliverEachMessageOnce(100));
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
