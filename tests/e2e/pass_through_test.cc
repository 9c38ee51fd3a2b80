// Pass-through routes (`forward: target`, INTERFACE.md): synchronous proxying that
// relays status, headers and body; 502 on connect failure, 504 on timeout.
#include <gtest/gtest.h>

#include "tests/e2e/http_client.h"
#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

class PassThroughTest : public SluiceE2eTest {
 protected:
  static constexpr const char* kRoutes = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@/base
    rate: 1/s
    concurrency: 4
    timeout: 500ms
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
routes:
  - name: writes
    match: {path_prefix: /, methods: [POST]}
    queue: [app]
  - name: reads
    match: {path_prefix: /}
    forward: app
)";
};

TEST_F(PassThroughTest, RelaysStatusHeadersAndBody) {
  downstream_.SetResponder([](const ReceivedRequest& r) {
    Reply reply;
    reply.status = 203;
    reply.headers = {{"X-Answer", "42"}, {"Content-Type", "text/plain"}};
    reply.body = "hello from " + r.url;
    return reply;
  });
  ASSERT_TRUE(StartSluice(kRoutes));
  Request get;
  get.method = "GET";
  get.target = "/orders/7?full=1";
  get.headers = {{"X-Trace", "t-1"}, {"Connection", "keep-alive, X-Hop"}, {"X-Hop", "1"}};
  HttpClient client(sluice_.ingest_port());
  auto r = client.RoundTrip(get);
  ASSERT_TRUE(r) << client.error();
  EXPECT_EQ(r->status, 203);
  EXPECT_EQ(r->Header("X-Answer"), "42");
  EXPECT_EQ(r->body, "hello from /base/orders/7?full=1");
  EXPECT_EQ(r->Header("Via"), "1.1 sluice");
  EXPECT_FALSE(r->Header("Sluice-Message-Id")) << "a read is not queued";

  auto requests = downstream_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("X-Trace"), "t-1");
  EXPECT_FALSE(requests[0].Header("X-Hop")) << "named in Connection: hop-by-hop";
  EXPECT_EQ(requests[0].Header("Via"), "1.1 sluice");
  EXPECT_FALSE(requests[0].Header("Sluice-Message-Id"));
  // The same connection keeps working for the next request.
  auto again = client.RoundTrip(get);
  ASSERT_TRUE(again) << client.error();
  EXPECT_EQ(again->status, 203);
}

TEST_F(PassThroughTest, ReadsAreNotPacedByTheRate) {
  ASSERT_TRUE(StartSluice(kRoutes));  // rate: 1/s for queued deliveries
  HttpClient client(sluice_.ingest_port());
  Request get;
  get.method = "GET";
  get.target = "/health";
  for (int i = 0; i < 20; ++i) {
    auto r = client.RoundTrip(get);
    ASSERT_TRUE(r) << client.error();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(downstream_.Requests().size(), 20u);
}

TEST_F(PassThroughTest, UnreachableTargetIs502) {
  ASSERT_TRUE(StartSluice(kRoutes));
  downstream_.Stop();
  auto r = Get(sluice_.ingest_port(), "/orders/1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502) << r->body;
}

TEST_F(PassThroughTest, SlowTargetIs504) {
  downstream_.SetResponder([](const ReceivedRequest&) {
    Reply reply;
    reply.delay = Millis(2000);  // target timeout is 500ms
    return reply;
  });
  ASSERT_TRUE(StartSluice(kRoutes));
  auto r = Get(sluice_.ingest_port(), "/slow");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504) << r->body;
}

TEST_F(PassThroughTest, WritesOnTheSameListenerAreStillQueued) {
  ASSERT_TRUE(StartSluice(kRoutes));
  std::vector<Accepted> accepted = PostMany(3);
  ASSERT_EQ(accepted.size(), 3u);
  EXPECT_TRUE(WaitDelivered(accepted));
}

}  // namespace
}  // namespace sluice::e2e
