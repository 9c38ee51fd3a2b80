// The real sluice binary on buffer.kind: kafka, against librdkafka's mock cluster (three
// brokers in this test process, the real protocol on loopback; no Kafka broker is
// packaged): 202 after the delivery report, delivered through the topic, and two
// instances in one consumer group without double delivery.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <set>

#include "tests/broker/broker_e2e.h"
#include "tests/e2e/http_client.h"

namespace sluice::e2e {
namespace {

class KafkaE2eTest : public BrokerE2eTest {
 protected:
  void SetUp() override {
    BrokerE2eTest::SetUp();
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
    BrokerE2eTest::TearDown();  // sluice first: it talks to the cluster until it exits
    if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
    if (mock_handle_ != nullptr) rd_kafka_destroy(mock_handle_);
  }

  rd_kafka_t* mock_handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

TEST_F(KafkaE2eTest, AcceptedRequestsAreDeliveredThroughTheTopic) {
  EXPECT_TRUE(DeliversEachAcceptedRequestOnce(200, "kafka"));
}

TEST_F(KafkaE2eTest, TwoInstancesInOneGroupDeliverEachMessageOnce) {
  EXPECT_TRUE(TwoInstancesDeliverEachMessageOnce(100));
}

}  // namespace
}  // namespace sluice::e2e
