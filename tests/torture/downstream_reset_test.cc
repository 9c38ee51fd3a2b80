// The harness's Reply::reset, used by the flaky target of the kill -9 torture.
#include <gtest/gtest.h>

#include "tests/e2e/downstream.h"
#include "tests/e2e/http_client.h"

namespace sluice::e2e {
namespace {

TEST(DownstreamReset, AbortsTheConnectionAndRecordsNoAnswer) {
  Downstream target;
  ASSERT_TRUE(target.Start()) << target.error();
  target.SetResponder([](const ReceivedRequest& r) {
    Reply reply;
    reply.reset = r.url == "/reset";
    return reply;
  });
  HttpClient client(target.port(), Millis(5'000));
  Request reset;
  reset.target = "/reset";
  reset.body = "x";
  EXPECT_FALSE(client.RoundTrip(reset)) << "an answer despite the reset";
  EXPECT_FALSE(client.connected());

  Request fine;
  fine.target = "/fine";
  std::optional<HttpMessage> answer = client.RoundTrip(fine);  // reconnects
  ASSERT_TRUE(answer) << client.error();
  EXPECT_EQ(answer->status, 200);

  std::vector<ReceivedRequest> seen = target.Requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].answered_status, 0);
  EXPECT_EQ(seen[1].answered_status, 200);
}

}  // namespace
}  // namespace sluice::e2e
