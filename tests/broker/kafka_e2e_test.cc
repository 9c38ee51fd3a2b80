// The real sluice binary on buffer.kind: kafka, against librdkafka's mock cluster (three
// brokers in this test process, the real protocol on loopback; no Kafka broker is
// packaged): 202 after the delivery report, delivered through the topic, and two
// instances in one consumer group without double delivery.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <set>

#include "tests/e2e/http_client.h"
#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

class KafkaE2eTest : public SluiceE2eTest {
 protected:
  void SetUp() override {
    SluiceE2eTest::SetUp();
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof(err));
    mock_handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ASSERT_NE(mock_handle_, nullptr) << err;
    cluster_ = rd_kafka_mock_cluster_new(mock_handle_, 3);
    ASSERT_NE(cluster_, nullptr);
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster_, "sluice", 4, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
    buffer_options_ = std::string(", kind: kafka, kafka: {brokers: \"") +
                      rd_kafka_mock_cluster_bootstraps(cluster_) + "\", topic: sluice}";
  }
  void TearDown() override {
    SluiceE2eTest::TearDown();  // sluice first: it talks to the cluster until it exits
    if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
    if (mock_handle_ != nullptr) rd_kafka_destroy(mock_handle_);
  }

  rd_kafka_t* mock_handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

TEST_F(KafkaE2eTest, AcceptedRequestsAreDeliveredThroughTheTopic) {
  ASSERT_TRUE(StartSluice());
  std::vector<Accepted> accepted = PostMany(200);
  ASSERT_EQ(accepted.size(), 200u);
  ASSERT_TRUE(WaitDelivered(accepted));
  EXPECT_EQ(CountDuplicates(accepted), 0);
  auto by_body = DeliveriesByBody();
  for (const auto& a : accepted) {
    ASSERT_FALSE(by_body[a.body].empty());
    EXPECT_EQ(by_body[a.body][0].Header("Sluice-Message-Id"), a.id);
  }
  auto targets = Get(sluice_.admin_port(), "/admin/targets");
  ASSERT_TRUE(targets);
  EXPECT_EQ(JsonStringField(targets->body, "buffer"), "kafka") << targets->body;
}

TEST_F(KafkaE2eTest, TwoInstancesInOneGroupDeliverEachMessageOnce) {
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
  ASSERT_TRUE(downstream_.WaitForCount(200, Millis(60'000)));
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

}  // namespace
}  // namespace sluice::e2e
