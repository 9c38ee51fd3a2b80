// Delivery end to end: what the target receives, and what survives a target outage,
// kill -9 and SIGTERM.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

using DeliveryTest = SluiceE2eTest;

// Everything a client may send that must be forwarded, kept, replaced or dropped.
Request DecoratedPost(int seq) {
  Request r = MakePost(seq);
  r.headers.insert(r.headers.begin(), {"Host", "orders.example.test:8080"});
  r.headers.push_back({"X-Custom", "custom-" + std::to_string(seq)});
  r.headers.push_back({"Connection", "keep-alive, X-Hop"});
  r.headers.push_back({"X-Hop", "1"});
  r.headers.push_back({"Keep-Alive", "timeout=5"});
  r.headers.push_back({"Proxy-Authorization", "x"});
  r.headers.push_back({"Proxy-Connection", "keep-alive"});
  r.headers.push_back({"TE", "trailers"});
  if (seq % 10 == 0) r.headers.push_back({"Idempotency-Key", "key-" + std::to_string(seq)});
  if (seq % 7 == 0) r.headers.push_back({"X-Forwarded-For", "10.0.0.7"});
  return r;
}

std::string Joined(const ReceivedRequest& r, const std::string& name) {
  std::string out;
  for (const std::string& v : FindHeaders(r.headers, name)) out += (out.empty() ? "" : ", ") + v;
  return out;
}

bool ContainsIgnoreCase(std::string haystack, std::string needle) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  return lower(haystack).find(lower(needle)) != std::string::npos;
}

TEST_F(DeliveryTest, EveryAcceptedRequestIsDeliveredOnceWithForwardedHeaders) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  PostOptions options;
  options.make = DecoratedPost;
  std::vector<Accepted> accepted = PostMany(500, options);
  ASSERT_EQ(accepted.size(), 500u);

  std::set<std::string> ids;
  for (const Accepted& a : accepted) {
    ids.insert(a.id);
    EXPECT_EQ(JsonStringList(a.response.body, "targets"), std::vector<std::string>{"app"})
        << a.response.body;
  }
  EXPECT_EQ(ids.size(), 500u) << "message ids must be distinct";

  ASSERT_TRUE(WaitDelivered(accepted));
  auto by_body = DeliveriesByBody();
  Findings findings;
  for (const Accepted& a : accepted) {
    const std::vector<ReceivedRequest>& copies = by_body[a.body];
    findings.Check(
        copies.size() == 1, "body not delivered exactly once",
        "seq " + std::to_string(a.seq) + " delivered " + std::to_string(copies.size()) + " times");
    if (copies.empty()) continue;
    const ReceivedRequest& d = copies.front();
    std::string seq = std::to_string(a.seq);
    std::string ex = "seq " + seq + " (id " + a.id + ")";
    auto header = [&](const char* name) { return d.Header(name).value_or("<absent>"); };

    findings.Check(d.method == "POST", "method changed", ex + ": " + d.method);
    findings.Check(d.url == "/base/orders/" + seq + "?seq=" + seq + "&src=e2e",
                   "path/query not base + original", ex + ": " + d.url);
    findings.Check(header("Sluice-Message-Id") == a.id, "Sluice-Message-Id differs from the 202 id",
                   ex + ": " + header("Sluice-Message-Id"));
    findings.Check(header("Sluice-Attempt") == "1", "Sluice-Attempt is not 1",
                   ex + ": " + header("Sluice-Attempt"));
    std::string key = a.seq % 10 == 0 ? "key-" + seq : a.id;
    findings.Check(header("Idempotency-Key") == key,
                   "Idempotency-Key is not the client's key or the id",
                   ex + ": expected " + key + ", got " + header("Idempotency-Key"));
    std::string xff = Joined(d, "X-Forwarded-For");
    findings.Check(xff.find("127.0.0.1") != std::string::npos, "X-Forwarded-For lacks 127.0.0.1",
                   ex + ": " + xff);
    if (a.seq % 7 == 0) {
      findings.Check(xff.starts_with("10.0.0.7") && xff.find("127.0.0.1") > 8,
                     "X-Forwarded-For not appended to the client's", ex + ": " + xff);
    }
    findings.Check(Joined(d, "Via") == "1.1 sluice", "Via is not \"1.1 sluice\"",
                   ex + ": " + Joined(d, "Via"));
    findings.Check(header("Host") == "orders.example.test:8080", "Host not kept",
                   ex + ": " + header("Host"));
    findings.Check(header("X-Custom") == "custom-" + seq, "X-Custom not kept",
                   ex + ": " + header("X-Custom"));
    findings.Check(header("Content-Type") == "application/json", "Content-Type not kept",
                   ex + ": " + header("Content-Type"));
    findings.Check(header("Content-Length") == std::to_string(a.body.size()),
                   "Content-Length missing or wrong", ex + ": " + header("Content-Length"));
    for (const char* hop : {"X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "TE",
                            "Trailer", "Transfer-Encoding", "Upgrade"}) {
      findings.Check(!d.Header(hop), std::string("hop-by-hop header forwarded: ") + hop,
                     ex + ": " + header(hop));
    }
    findings.Check(!ContainsIgnoreCase(Joined(d, "Connection"), "x-hop"),
                   "client's Connection header forwarded", ex + ": " + Joined(d, "Connection"));
  }
  EXPECT_TRUE(findings.empty()) << "deliveries:\n" << findings.Summary();
}

TEST_F(DeliveryTest, TargetDownIsRetriedUntilItComesBack) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  downstream_.Stop();
  std::vector<Accepted> accepted = PostMany(50);
  ASSERT_EQ(accepted.size(), 50u);
  // Every message fails to connect at least once and is retried (about twice each).
  ASSERT_TRUE(WaitForMetric(
      "sluice_delivery_attempts_total", {{"target", "app"}, {"result", "connect_failure"}},
      [](double v) { return v >= 100; }, ">= 100"));
  EXPECT_TRUE(WaitForMetric(
      "sluice_delivery_retries_total", {{"target", "app"}}, [](double v) { return v > 0; }, "> 0"));
  EXPECT_EQ(downstream_.Count(), 0u);

  ASSERT_TRUE(downstream_.StartAgain()) << downstream_.error();
  ASSERT_TRUE(WaitDelivered(accepted, Millis(20'000)));
  auto by_body = DeliveriesByBody();
  Findings findings;
  for (const Accepted& a : accepted) {
    const auto& copies = by_body[a.body];
    std::string ex = "seq " + std::to_string(a.seq);
    findings.Check(copies.size() == 1, "not delivered exactly once",
                   ex + ": " + std::to_string(copies.size()) + " copies");
    if (copies.empty()) continue;
    std::string attempt = copies.front().Header("Sluice-Attempt").value_or("<absent>");
    findings.Check(std::atoi(attempt.c_str()) >= 2,
                   "Sluice-Attempt does not count the failed connects", ex + ": " + attempt);
    findings.Check(copies.front().Header("Sluice-Message-Id") == a.id, "Sluice-Message-Id changed",
                   ex);
  }
  EXPECT_TRUE(findings.empty()) << findings.Summary();
}

TEST_F(DeliveryTest, AcknowledgedMessagesSurviveKill9) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  downstream_.Stop();
  std::vector<Accepted> accepted = PostMany(200);
  ASSERT_EQ(accepted.size(), 200u);
  sluice_.Kill9();

  ASSERT_TRUE(downstream_.StartAgain()) << downstream_.error();
  ASSERT_TRUE(RestartSluice());
  ASSERT_TRUE(WaitDelivered(accepted));
  int duplicates = CountDuplicates(accepted);
  RecordProperty("duplicates", duplicates);
  std::printf("[ e2e      ] kill -9 with target down: %d duplicate deliveries of 200\n",
              duplicates);
  auto by_body = DeliveriesByBody();
  std::set<std::string> ids;
  for (const Accepted& a : accepted) {
    ids.insert(a.id);
    EXPECT_EQ(by_body[a.body].front().Header("Sluice-Message-Id"), a.id)
        << "seq " << a.seq << ": the id must survive the restart";
  }
  // Ids are unique across restarts.
  PostOptions more;
  more.first_seq = 1000;
  for (const Accepted& a : PostMany(20, more)) {
    EXPECT_EQ(ids.count(a.id), 0u) << a.id << " was already issued before the restart";
  }
}

TEST_F(DeliveryTest, Kill9DuringDeliveryLosesNothing) {
  // A slow target (4 x 20 ms in flight: at most 200/s) so the kill lands mid-backlog.
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
  std::vector<Accepted> accepted = PostMany(300);
  ASSERT_EQ(accepted.size(), 300u);
  ASSERT_TRUE(downstream_.WaitForCount(50, Millis(10'000)));
  sluice_.Kill9();
  size_t before_restart = downstream_.Count();
  ASSERT_LT(before_restart, accepted.size()) << "everything was delivered before the kill";

  ASSERT_TRUE(RestartSluice());
  ASSERT_TRUE(WaitDelivered(accepted));
  int duplicates = CountDuplicates(accepted);
  RecordProperty("delivered_before_kill", static_cast<int>(before_restart));
  RecordProperty("duplicates", duplicates);
  std::printf("[ e2e      ] kill -9 mid-delivery after %zu deliveries: %d duplicates of 300\n",
              before_restart, duplicates);
}

TEST_F(DeliveryTest, SigtermExitsCleanlyAndKeepsQueuedMessages) {
  ASSERT_TRUE(StartSluice(std::string("shutdown_timeout: 2s\n") + kAppTarget));
  downstream_.Stop();
  std::vector<Accepted> accepted = PostMany(20);
  ASSERT_EQ(accepted.size(), 20u);
  std::optional<ExitStatus> exit = sluice_.Terminate();
  ASSERT_TRUE(exit) << "sluice did not exit within 25 s of SIGTERM";
  EXPECT_EQ(exit->code, 0) << exit->ToString();

  ASSERT_TRUE(downstream_.StartAgain()) << downstream_.error();
  ASSERT_TRUE(RestartSluice());
  ASSERT_TRUE(WaitDelivered(accepted, Millis(20'000)));
}

}  // namespace
}  // namespace sluice::e2e
