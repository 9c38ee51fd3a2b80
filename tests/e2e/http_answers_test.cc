// The ingest listener's answers (INTERFACE.md, "Ingest listener"): framing, limits,
// malformed requests, routing and pipelining.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

class HttpAnswersTest : public SluiceE2eTest {
 protected:
  void SetUp() override {
    SluiceE2eTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(StartSluice(R"(
limits: {max_body_bytes: 1KiB, max_header_bytes: 2KiB, read_timeout: 1s}
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 4
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
routes:
  - match: {path_prefix: /orders}
    queue: [app]
)"));
  }
};

TEST_F(HttpAnswersTest, ChunkedBodyIsQueuedAndDeliveredWithContentLength) {
  Request r = Post("/orders/chunked", std::string(900, 'c') + "-end");
  r.chunked = true;
  r.chunk_size = 100;
  HttpClient client(sluice_.ingest_port());
  auto answer = client.RoundTrip(r);
  ASSERT_TRUE(answer) << client.error();
  ASSERT_EQ(answer->status, 202) << answer->body;
  std::string id = answer->Header("Sluice-Message-Id").value_or("");

  ASSERT_TRUE(downstream_.WaitForCount(1, Millis(10'000)));
  ReceivedRequest got = downstream_.Requests().front();
  EXPECT_EQ(got.url, "/orders/chunked");
  EXPECT_EQ(got.body, r.body);
  EXPECT_EQ(got.Header("Content-Length"), std::to_string(r.body.size()));
  EXPECT_FALSE(got.Header("Transfer-Encoding")) << *got.Header("Transfer-Encoding");
  EXPECT_EQ(got.Header("Sluice-Message-Id"), id);
}

TEST_F(HttpAnswersTest, BodyAtTheLimitIsAccepted) {
  HttpClient client(sluice_.ingest_port());
  EXPECT_EQ(StatusOf(client, Post("/orders/1", std::string(1024, 'x'))), 202);
}

TEST_F(HttpAnswersTest, BodyOverTheLimitWithContentLengthIs413) {
  HttpClient client(sluice_.ingest_port());
  EXPECT_EQ(StatusOf(client, Post("/orders/1", std::string(1025, 'x'))), 413);
}

TEST_F(HttpAnswersTest, BodyOverTheLimitAnnouncedButNotSentIs413) {
  // "answered as soon as the length is known": the body never comes.
  HttpClient client(sluice_.ingest_port());
  ASSERT_TRUE(
      client.SendRaw("POST /orders/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"));
  auto answer = client.ReadResponse();
  ASSERT_TRUE(answer) << client.error();
  EXPECT_EQ(answer->status, 413);
}

TEST_F(HttpAnswersTest, ChunkedBodyOverTheLimitIs413) {
  Request r = Post("/orders/1", std::string(1025, 'x'));
  r.chunked = true;
  r.chunk_size = 100;
  HttpClient client(sluice_.ingest_port());
  EXPECT_EQ(StatusOf(client, r), 413);
  EXPECT_EQ(downstream_.Count(), 0u);
}

TEST_F(HttpAnswersTest, HeadersOverTheLimitAre431) {
  Request r = Post("/orders/1", "x");
  r.headers = {{"X-Big", std::string(4096, 'h')}};
  HttpClient client(sluice_.ingest_port());
  EXPECT_EQ(StatusOf(client, r), 431);
}

TEST_F(HttpAnswersTest, GarbageRequestLineIs400AndCloses) {
  HttpClient client(sluice_.ingest_port());
  ASSERT_TRUE(client.SendRaw("this is not http\r\n\r\n"));
  auto answer = client.ReadResponse();
  ASSERT_TRUE(answer) << client.error();
  EXPECT_EQ(answer->status, 400);
  EXPECT_EQ(answer->Header("Connection"), "close");
  EXPECT_TRUE(client.WaitForClose()) << "sluice kept the connection open: " << client.error();
}

TEST_F(HttpAnswersTest, ContentLengthWithTransferEncodingIs400AndCloses) {
  HttpClient client(sluice_.ingest_port());
  ASSERT_TRUE(
      client.SendRaw("POST /orders/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  auto answer = client.ReadResponse();
  ASSERT_TRUE(answer) << client.error();
  EXPECT_EQ(answer->status, 400);
  EXPECT_EQ(answer->Header("Connection"), "close");
  EXPECT_TRUE(client.WaitForClose()) << "sluice kept the connection open: " << client.error();
  EXPECT_EQ(downstream_.Count(), 0u);
}

TEST_F(HttpAnswersTest, BadChunkSizeIs400AndCloses) {
  HttpClient client(sluice_.ingest_port());
  ASSERT_TRUE(
      client.SendRaw("POST /orders/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                     "chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"));
  auto answer = client.ReadResponse();
  ASSERT_TRUE(answer) << client.error();
  EXPECT_EQ(answer->status, 400);
  EXPECT_EQ(answer->Header("Connection"), "close");
  EXPECT_TRUE(client.WaitForClose()) << "sluice kept the connection open: " << client.error();
}

TEST_F(HttpAnswersTest, UnknownTransferCodingIs501) {
  HttpClient client(sluice_.ingest_port());
  ASSERT_TRUE(client.SendRaw(
      "POST /orders/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-unknown, chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n"));
  auto answer = client.ReadResponse();
  ASSERT_TRUE(answer) << client.error();
  EXPECT_EQ(answer->status, 501);
  EXPECT_EQ(downstream_.Count(), 0u);
}

TEST_F(HttpAnswersTest, RequestNotCompleteWithinReadTimeoutIs408AndCloses) {
  // Headers promise 10 bytes; 4 arrive; read_timeout is 1s.
  HttpClient client(sluice_.ingest_port());
  ASSERT_TRUE(
      client.SendRaw("POST /orders/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhalf"));
  auto answer = client.ReadResponse();
  ASSERT_TRUE(answer) << client.error();
  EXPECT_EQ(answer->status, 408);
  EXPECT_EQ(answer->Header("Connection"), "close");
  EXPECT_TRUE(client.WaitForClose()) << "sluice kept the connection open: " << client.error();
}

TEST_F(HttpAnswersTest, UnroutedPathIs404AndTheConnectionStaysUsable) {
  HttpClient client(sluice_.ingest_port());
  EXPECT_EQ(StatusOf(client, Post("/other", "nowhere")), 404);
  EXPECT_EQ(StatusOf(client, Post("/orders/after-404", "somewhere")), 202);
  ASSERT_TRUE(downstream_.WaitForCount(1, Millis(10'000)));
  for (const ReceivedRequest& r : downstream_.Requests()) EXPECT_EQ(r.url, "/orders/after-404");
}

TEST_F(HttpAnswersTest, PipelinedRequestsAreAnsweredInOrder) {
  Request chunked = Post("/orders/c", "body-c");
  chunked.chunked = true;
  chunked.chunk_size = 2;
  std::vector<Request> batch = {Post("/orders/a", "body-a"), Post("/other", "body-404"),
                                Post("/orders/b", "body-b"), chunked};
  HttpClient client(sluice_.ingest_port());
  std::vector<HttpMessage> answers = client.Pipeline(batch);
  ASSERT_EQ(answers.size(), batch.size()) << client.error();
  std::vector<int> statuses;
  for (const HttpMessage& a : answers) statuses.push_back(a.status);
  EXPECT_EQ(statuses, (std::vector<int>{202, 404, 202, 202}));

  // Each 202 carries the id of its own request: the delivered copy of each body has the id
  // of the answer in the same position.
  ASSERT_TRUE(downstream_.WaitForCount(3, Millis(10'000)));
  std::map<std::string, std::string> id_by_body;
  for (const ReceivedRequest& r : downstream_.Requests()) {
    id_by_body[r.body] = r.Header("Sluice-Message-Id").value_or("");
  }
  EXPECT_EQ(id_by_body["body-a"], answers[0].Header("Sluice-Message-Id"));
  EXPECT_EQ(id_by_body["body-b"], answers[2].Header("Sluice-Message-Id"));
  EXPECT_EQ(id_by_body["body-c"], answers[3].Header("Sluice-Message-Id"));
}

TEST_F(HttpAnswersTest, RepeatedIdempotencyKeyGetsTheSameIdAndIsQueuedOnce) {
  Request r = Post("/orders/idem", "first");
  r.headers = {{"Idempotency-Key", "order-42"}};
  HttpClient client(sluice_.ingest_port());
  auto first = client.RoundTrip(r);
  ASSERT_TRUE(first) << client.error();
  ASSERT_EQ(first->status, 202);
  EXPECT_FALSE(first->Header("Sluice-Duplicate"));

  // A client retrying after a lost answer: same key, same request, new connection.
  HttpClient other(sluice_.ingest_port());
  auto second = other.RoundTrip(r);
  ASSERT_TRUE(second) << other.error();
  EXPECT_EQ(second->status, 202);
  EXPECT_EQ(second->Header("Sluice-Message-Id"), first->Header("Sluice-Message-Id"));
  EXPECT_EQ(second->Header("Sluice-Duplicate"), "true");

  // Once the queue is empty and one message was delivered, nothing else can come.
  ASSERT_TRUE(WaitForMetric(
      "sluice_messages_delivered_total", {{"target", "app"}}, [](double v) { return v >= 1; },
      ">= 1"));
  ASSERT_TRUE(WaitForMetric(
      "sluice_queue_messages", {{"target", "app"}}, [](double v) { return v == 0; }, "== 0"));
  auto requests = downstream_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].body, "first");
  EXPECT_EQ(requests[0].Header("Idempotency-Key"), "order-42");
}

}  // namespace
}  // namespace sluice::e2e
