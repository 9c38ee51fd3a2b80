// Dispatch end to end: pacing (rate, concurrency), retries and backoff, Retry-After,
// timeouts, dead letters, FIFO ordering and fan-out to several targets.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

using DispatchTest = SluiceE2eTest;

// Answers `failure` to the first `n` attempts at each distinct body, then 200. (State is
// shared, not referenced: the responder may run until the fixture is torn down.)
Responder FailFirstAttempts(int n, Reply failure) {
  struct State {
    std::mutex mu;
    std::map<std::string, int> seen;
  };
  auto state = std::make_shared<State>();
  return [state, n, failure](const ReceivedRequest& r) {
    std::lock_guard<std::mutex> lock(state->mu);
    return ++state->seen[r.body] <= n ? failure : Reply{};
  };
}

// Every request the downstream saw (any answer), grouped by body, in arrival order.
std::map<std::string, std::vector<ReceivedRequest>> AttemptsByBody(const Downstream& d) {
  std::map<std::string, std::vector<ReceivedRequest>> by_body;
  for (ReceivedRequest& r : d.Requests()) by_body[r.body].push_back(std::move(r));
  return by_body;
}

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

TEST_F(DispatchTest, RateLimitPacesDeliveries) {
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: 100/s
    burst: 1
    concurrency: 4
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
)"));
  std::vector<Accepted> accepted = PostMany(500);
  ASSERT_EQ(accepted.size(), 500u);
  ASSERT_TRUE(WaitDelivered(accepted, Millis(30'000)));

  std::vector<SteadyClock::time_point> arrivals;
  for (const auto& [body, copies] : DeliveriesByBody()) {
    for (const ReceivedRequest& r : copies) arrivals.push_back(r.arrival);
  }
  std::sort(arrivals.begin(), arrivals.end());
  // 500 deliveries at 100/s with a bucket of 1 take at least 4.99 s (5% allowance).
  double span = std::chrono::duration<double>(arrivals.back() - arrivals.front()).count();
  EXPECT_GE(span, 499.0 / 100 * 0.95) << "deliveries came faster than rate: 100/s";
  // No one-second window holds more than rate + burst (+ tolerance for arrival jitter).
  size_t busiest = 0;
  for (size_t i = 0, j = 0; i < arrivals.size(); ++i) {
    while (j < arrivals.size() && arrivals[j] - arrivals[i] < std::chrono::seconds(1)) ++j;
    busiest = std::max(busiest, j - i);
  }
  EXPECT_LE(busiest, 100u + 1u + 9u) << "deliveries in the busiest 1-second window";
  RecordProperty("delivery_span_seconds", std::to_string(span));
  RecordProperty("busiest_second", static_cast<int>(busiest));
}

TEST_F(DispatchTest, FailedAttemptsAreRetriedWithTheSameIdAndNextAttemptNumber) {
  Reply unavailable;
  unavailable.status = 503;
  downstream_.SetResponder(FailFirstAttempts(2, unavailable));
  ASSERT_TRUE(StartSluice(kAppTarget));
  std::vector<Accepted> accepted = PostMany(20);
  ASSERT_EQ(accepted.size(), 20u);
  ASSERT_TRUE(WaitDelivered(accepted, Millis(20'000)));

  Findings findings;
  auto attempts = AttemptsByBody(downstream_);
  for (const Accepted& a : accepted) {
    const auto& tries = attempts[a.body];
    std::string ex = "seq " + std::to_string(a.seq);
    findings.Check(tries.size() == 3, "not exactly 3 attempts (503, 503, 200)",
                   ex + ": " + std::to_string(tries.size()));
    for (size_t i = 0; i < tries.size(); ++i) {
      findings.Check(tries[i].Header("Sluice-Attempt") == std::to_string(i + 1),
                     "Sluice-Attempt is not 1, 2, 3",
                     ex + " try " + std::to_string(i + 1) + ": " +
                         tries[i].Header("Sluice-Attempt").value_or("<absent>"));
      findings.Check(tries[i].Header("Sluice-Message-Id") == a.id, "id changed between attempts",
                     ex);
      findings.Check(tries[i].Header("Idempotency-Key") == a.id, "Idempotency-Key changed", ex);
    }
  }
  EXPECT_TRUE(findings.empty()) << findings.Summary();
}

TEST_F(DispatchTest, ConcurrencyLimitCapsDeliveriesInFlight) {
  // Each answer takes 50 ms, so a delivery occupies [arrival, arrival + 50 ms) at least.
  downstream_.SetResponder([](const ReceivedRequest&) {
    Reply reply;
    reply.delay = Millis(50);
    return reply;
  });
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 2
    timeout: 2s
)"));
  std::vector<Accepted> accepted = PostMany(20);
  ASSERT_EQ(accepted.size(), 20u);
  ASSERT_TRUE(WaitDelivered(accepted));

  std::vector<SteadyClock::time_point> arrivals;
  for (const ReceivedRequest& r : downstream_.Requests()) arrivals.push_back(r.arrival);
  std::sort(arrivals.begin(), arrivals.end());
  size_t most = 0;
  for (size_t i = 0; i < arrivals.size(); ++i) {
    size_t overlapping = 0;  // deliveries started in (arrival[i] - 50 ms, arrival[i]]
    for (size_t j = 0; j <= i; ++j) overlapping += arrivals[i] - arrivals[j] < Millis(50);
    most = std::max(most, overlapping);
  }
  EXPECT_LE(most, 2u) << "deliveries in flight at once with concurrency: 2";
  EXPECT_EQ(most, 2u) << "concurrency: 2 was never used";
  EXPECT_TRUE(WaitForMetric(
      "sluice_target_concurrency_limit", {{"target", "app"}}, [](double v) { return v == 2; },
      "== 2"));
}

TEST_F(DispatchTest, RetryAfterPausesTheWholeTarget) {
  downstream_.SetResponder([](const ReceivedRequest& r) {
    Reply reply;
    if (r.index == 0) {
      reply.status = 503;
      reply.headers = {{"Retry-After", "1"}};
    }
    return reply;
  });
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 1
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 5s}
)"));
  PostOptions one_by_one;
  one_by_one.connections = 1;
  one_by_one.depths = {1};
  std::vector<Accepted> accepted = PostMany(3, one_by_one);
  ASSERT_EQ(accepted.size(), 3u);
  ASSERT_TRUE(downstream_.WaitForCount(1, Millis(10'000)));
  EXPECT_TRUE(WaitForMetric(
      "sluice_target_paused", {{"target", "app"}}, [](double v) { return v == 1; },
      "== 1 during Retry-After", Millis(900)));
  ASSERT_TRUE(WaitDelivered(accepted, Millis(15'000)));

  std::vector<ReceivedRequest> requests = downstream_.Requests();
  ASSERT_EQ(requests.front().answered_status, 503);
  for (size_t i = 1; i < requests.size(); ++i) {
    EXPECT_GE(Seconds(requests[i].arrival - requests.front().arrival), 0.95)
        << "request " << i << " reached the target during the Retry-After pause";
  }
}

TEST_F(DispatchTest, RetryAfterIsCappedAtMaxBackoff) {
  Reply too_many;
  too_many.status = 429;
  too_many.headers = {{"Retry-After", "3600"}};
  downstream_.SetResponder(FailFirstAttempts(1, too_many));
  ASSERT_TRUE(StartSluice(kAppTarget));  // max_backoff: 500ms
  std::vector<Accepted> accepted = PostMany(1);
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_TRUE(WaitDelivered(accepted, Millis(10'000)))
      << "a Retry-After of an hour must be capped at max_backoff (500ms)";
}

TEST_F(DispatchTest, SlowAttemptTimesOutAndIsRetried) {
  // First attempts are answered only after 2 s, far beyond the 200 ms timeout.
  downstream_.SetResponder([](const ReceivedRequest& r) {
    Reply reply;
    if (r.Header("Sluice-Attempt") == "1") {
      reply.status = 500;  // never seen by sluice; marks the attempt as not delivered
      reply.delay = Millis(2'000);
    }
    return reply;
  });
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 4
    timeout: 200ms
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
)"));
  std::vector<Accepted> accepted = PostMany(3);
  ASSERT_EQ(accepted.size(), 3u);
  ASSERT_TRUE(WaitDelivered(accepted, Millis(15'000)));
  EXPECT_TRUE(WaitForMetric(
      "sluice_delivery_attempts_total", {{"target", "app"}, {"result", "timeout"}},
      [](double v) { return v >= 3; }, ">= 3"));
  auto attempts = AttemptsByBody(downstream_);
  for (const Accepted& a : accepted) {
    const auto& tries = attempts[a.body];
    ASSERT_GE(tries.size(), 2u);
    EXPECT_EQ(tries[1].Header("Sluice-Attempt"), "2");
    EXPECT_GE(Seconds(tries[1].arrival - tries[0].arrival), 0.19)
        << "retried before the 200ms timeout elapsed";
  }
}

TEST_F(DispatchTest, NonRetryableStatusIsDeadLetteredAsRejected) {
  downstream_.SetResponder([](const ReceivedRequest& r) {
    Reply reply;
    if (r.body == "reject-me") reply.status = 400;
    return reply;
  });
  ASSERT_TRUE(StartSluice(kAppTarget));
  HttpClient client(sluice_.ingest_port());
  ASSERT_EQ(StatusOf(client, Post("/orders/1", "reject-me")), 202);
  ASSERT_EQ(StatusOf(client, Post("/orders/2", "fine")), 202);

  ASSERT_TRUE(WaitForMetric(
      "sluice_messages_dead_lettered_total", {{"target", "app"}, {"reason", "rejected"}},
      [](double v) { return v == 1; }, "== 1"));
  EXPECT_TRUE(WaitForMetric(
      "sluice_dead_letters", {{"target", "app"}}, [](double v) { return v == 1; }, "== 1"));
  EXPECT_TRUE(WaitForMetric(
      "sluice_messages_delivered_total", {{"target", "app"}}, [](double v) { return v == 1; },
      "== 1"));
  EXPECT_EQ(AttemptsByBody(downstream_)["reject-me"].size(), 1u) << "a 400 must not be retried";
}

TEST_F(DispatchTest, ExhaustedAttemptsAreDeadLettered) {
  downstream_.SetResponder([](const ReceivedRequest&) {
    Reply reply;
    reply.status = 500;
    return reply;
  });
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    timeout: 2s
    retry: {max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms}
)"));
  HttpClient client(sluice_.ingest_port());
  ASSERT_EQ(StatusOf(client, Post("/orders/1", "doomed")), 202);
  ASSERT_TRUE(WaitForMetric(
      "sluice_messages_dead_lettered_total", {{"target", "app"}, {"reason", "max_attempts"}},
      [](double v) { return v == 1; }, "== 1"));
  auto tries = AttemptsByBody(downstream_)["doomed"];
  ASSERT_EQ(tries.size(), 3u) << "max_attempts: 3";
  for (size_t i = 0; i < tries.size(); ++i) {
    EXPECT_EQ(tries[i].Header("Sluice-Attempt"), std::to_string(i + 1));
  }
  EXPECT_TRUE(WaitForMetric(
      "sluice_delivery_retries_total", {{"target", "app"}}, [](double v) { return v == 2; },
      "== 2"));
}

TEST_F(DispatchTest, MessageOlderThanMaxAgeExpires) {
  downstream_.Stop();
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    timeout: 1s
    max_age: 1s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 200ms}
)"));
  HttpClient client(sluice_.ingest_port());
  ASSERT_EQ(StatusOf(client, Post("/orders/1", "stale")), 202);
  EXPECT_TRUE(WaitForMetric(
      "sluice_messages_dead_lettered_total", {{"target", "app"}, {"reason", "expired"}},
      [](double v) { return v == 1; }, "== 1"));
  EXPECT_TRUE(WaitForMetric(
      "sluice_queue_messages", {{"target", "app"}}, [](double v) { return v == 0; }, "== 0"));
}

TEST_F(DispatchTest, FifoTargetRetriesTheHeadBeforeAnythingElse) {
  auto first_body = std::make_shared<std::string>(MakePost(0).body);
  Reply unavailable;
  unavailable.status = 503;
  Responder fail_twice = FailFirstAttempts(2, unavailable);
  downstream_.SetResponder([first_body, fail_twice](const ReceivedRequest& r) {
    return r.body == *first_body ? fail_twice(r) : Reply{};
  });
  ASSERT_TRUE(StartSluice(R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    ordering: fifo
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 200ms}
)"));
  PostOptions in_order;
  in_order.connections = 1;
  in_order.depths = {1};
  std::vector<Accepted> accepted = PostMany(10, in_order);
  ASSERT_EQ(accepted.size(), 10u);
  ASSERT_TRUE(WaitDelivered(accepted));

  std::vector<std::string> order;
  for (const ReceivedRequest& r : downstream_.Requests()) order.push_back(r.body);
  std::vector<std::string> expected = {accepted[0].body, accepted[0].body};
  for (const Accepted& a : accepted) expected.push_back(a.body);
  EXPECT_TRUE(order == expected)
      << "fifo: the head is retried (503, 503, 200) before any later message is attempted";
}

TEST_F(DispatchTest, FanOutDeliversACopyToEveryTargetIndependently) {
  Downstream audit;
  ASSERT_TRUE(audit.Start()) << audit.error();
  std::string config = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
  audit:
    url: http://127.0.0.1:@AUDIT_PORT@
    rate: unlimited
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
routes:
  - name: all
    match: {path_prefix: /}
    queue: [app, audit]
)";
  config.replace(config.find("@AUDIT_PORT@"), 12, std::to_string(audit.port()));
  ASSERT_TRUE(StartSluice(config));
  audit.Stop();  // one target down must not hold back the other

  std::vector<Accepted> accepted = PostMany(20);
  ASSERT_EQ(accepted.size(), 20u);
  for (const Accepted& a : accepted) {
    std::vector<std::string> targets = JsonStringList(a.response.body, "targets");
    std::sort(targets.begin(), targets.end());
    EXPECT_EQ(targets, (std::vector<std::string>{"app", "audit"})) << a.response.body;
  }
  ASSERT_TRUE(WaitDelivered(accepted)) << "target app, while audit is down";
  ASSERT_TRUE(audit.StartAgain()) << audit.error();
  std::set<std::string> wanted;
  for (const Accepted& a : accepted) wanted.insert(a.body);
  ASSERT_TRUE(audit.WaitFor(
      [&](const std::vector<ReceivedRequest>& requests) {
        std::set<std::string> seen;
        for (const ReceivedRequest& r : requests) seen.insert(r.body);
        return seen == wanted;
      },
      Millis(20'000)))
      << "target audit after it came back";

  std::map<std::string, std::string> audit_ids;
  for (const ReceivedRequest& r : audit.Requests()) {
    audit_ids[r.body] = r.Header("Sluice-Message-Id").value_or("");
  }
  for (const Accepted& a : accepted) {
    EXPECT_EQ(audit_ids[a.body], a.id) << "one message, one id, for every target";
  }
  EXPECT_EQ(audit.Count(), 20u);
  EXPECT_EQ(downstream_.Count(), 20u);
}

// Start-up counts each target's queue from disk: from segment footers, and by reading
// the segment that holds a cursor. Counted right whether the last stop was clean (every
// segment sealed by sluice) or a kill -9 (the tail sealed by recovery).
TEST_F(DispatchTest, QueueDepthAfterARestartCountsEachTargetOfAFanOutRoute) {
  buffer_options_ = ", segment_bytes: 16KiB";  // a dozen messages per segment
  std::string config = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    retry: {max_attempts: 0, initial_backoff: 1s, max_backoff: 1s}
  audit:
    url: http://127.0.0.1:@AUDIT_PORT@
    rate: unlimited
    retry: {max_attempts: 0, initial_backoff: 1s, max_backoff: 1s}
routes:
  - name: both
    match: {path_prefix: /both/}
    queue: [app, audit]
  - name: app-only
    match: {path_prefix: /}
    queue: [app]
)";
  Downstream audit;  // never started: audit is down throughout
  ASSERT_TRUE(audit.Start()) << audit.error();
  audit.Stop();
  config.replace(config.find("@AUDIT_PORT@"), 12, std::to_string(audit.port()));
  ASSERT_TRUE(StartSluice(config));
  PostOptions options;
  options.make = [](int seq) {
    Request r = MakePost(seq);
    if (seq % 2 == 0) r.target = "/both" + r.target;
    return r;
  };
  // app takes the first 30, then goes down: its cursor stops inside a segment.
  std::vector<Accepted> first = PostMany(30, options);
  ASSERT_EQ(first.size(), 30u);
  ASSERT_TRUE(WaitDelivered(first));
  downstream_.Stop();
  options.first_seq = 30;
  ASSERT_EQ(PostMany(70, options).size(), 70u);
  auto queued = [&](const char* target, double want) {
    return WaitForMetric(
        "sluice_queue_messages", {{"target", target}}, [want](double v) { return v == want; },
        "== " + std::to_string(want));
  };
  ASSERT_TRUE(queued("app", 70));
  ASSERT_TRUE(queued("audit", 50));

  ASSERT_TRUE(sluice_.Terminate().has_value());
  ASSERT_TRUE(RestartSluice());
  EXPECT_TRUE(queued("app", 70)) << "after a clean stop";
  EXPECT_TRUE(queued("audit", 50)) << "after a clean stop";

  // Ten more (five for both) in a segment that the kill leaves unsealed.
  options.first_seq = 100;
  ASSERT_EQ(PostMany(10, options).size(), 10u);
  ASSERT_TRUE(queued("app", 80));
  sluice_.Kill9();
  ASSERT_TRUE(RestartSluice());
  EXPECT_TRUE(queued("app", 80)) << "after kill -9";
  EXPECT_TRUE(queued("audit", 55)) << "after kill -9";
}

}  // namespace
}  // namespace sluice::e2e
