// The admin contract (INTERFACE.md "Admin listener" and "Signals"): the bearer token guards
// every /admin call and only those, and SIGTERM turns /readyz 503 while in-flight
// deliveries finish, then exits 0 without losing anything acknowledged.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/prometheus_text.h"
#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

using AdminContractTest = SluiceE2eTest;

// One admin call and what it answers when authorized, on a target with no dead letters.
struct AdminCall {
  const char* method;
  const char* path;
  // Exact status; 0 for "any 2xx"; kNothingToDo for "2xx, or 404 with JSON error
  // no_dead_letters" (the interface leaves open which one an empty dead-letter store gets).
  int expected_status;
};

constexpr int kNothingToDo = -1;

// In this order: pause before resume.
const std::vector<AdminCall>& AdminCalls() {
  static const std::vector<AdminCall> calls = {
      {"GET", "/admin/targets", 200},
      {"POST", "/admin/targets/app/pause", 0},
      {"POST", "/admin/targets/app/resume", 0},
      {"GET", "/admin/targets/app/dead-letters", 200},
      {"POST", "/admin/targets/app/dead-letters/replay", kNothingToDo},
      {"DELETE", "/admin/targets/app/dead-letters", kNothingToDo},
  };
  return calls;
}

std::string Describe(const AdminCall& call) { return std::string(call.method) + " " + call.path; }

// `call` on a fresh connection, with `Authorization: <authorization>` unless that is empty.
std::optional<HttpMessage> Send(uint16_t port, const AdminCall& call,
                                const std::string& authorization) {
  Request r;
  r.method = call.method;
  r.target = call.path;
  if (authorization.size()) r.headers = {{"Authorization", authorization}};
  HttpClient client(port, Millis(5'000));
  std::optional<HttpMessage> answer = client.RoundTrip(r);
  if (!answer) ADD_FAILURE() << Describe(call) << ": no answer: " << client.error();
  return answer;
}

// Checks the authorized answer to `call`.
void ExpectNormalAnswer(const AdminCall& call, const std::optional<HttpMessage>& answer,
                        const std::string& how) {
  if (!answer) return;
  const std::string what = Describe(call) + " (" + how + ")";
  if (call.expected_status == kNothingToDo && answer->status == 404) {
    EXPECT_EQ(JsonStringField(answer->body, "error"), "no_dead_letters")
        << what << ": " << answer->body;
  } else if (call.expected_status == 0 || call.expected_status == kNothingToDo) {
    EXPECT_EQ(answer->status / 100, 2) << what << ": " << answer->status << " " << answer->body;
  } else {
    EXPECT_EQ(answer->status, call.expected_status) << what << ": " << answer->body;
  }
}

double PausedGauge(const std::string& metrics) {
  return SumSamples(metrics, "sluice_target_paused", {{"target", "app"}}).value_or(-1);
}

TEST_F(AdminContractTest, TokenIsRequiredOnEveryAdminCall) {
  admin_options_ = ", token: s3cret";
  ASSERT_TRUE(StartSluice(kAppTarget));
  const uint16_t port = sluice_.admin_port();

  for (const AdminCall& call : AdminCalls()) {
    SCOPED_TRACE(Describe(call));
    std::optional<HttpMessage> anonymous = Send(port, call, "");
    if (anonymous) {
      EXPECT_EQ(anonymous->status, 401) << "without a token: " << anonymous->body;
      EXPECT_TRUE(anonymous->Header("WWW-Authenticate").has_value())
          << "401 without WWW-Authenticate";
    }
    for (const char* wrong :
         {"Bearer wrong", "Bearer s3cret2", "Bearer s3cre", "Basic s3cret", "s3cret", "Bearer "}) {
      std::optional<HttpMessage> denied = Send(port, call, wrong);
      if (denied) {
        EXPECT_EQ(denied->status, 401) << "Authorization: " << wrong << ": " << denied->body;
      }
    }
    // A rejected pause must not pause.
    if (std::string(call.path).ends_with("/pause")) {
      EXPECT_EQ(PausedGauge(Metrics()), 0) << "an unauthorized pause took effect";
    }
    ExpectNormalAnswer(call, Send(port, call, "Bearer s3cret"), "Bearer s3cret");
  }
}

TEST_F(AdminContractTest, WithoutATokenConfiguredAdminCallsNeedNone) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  const uint16_t port = sluice_.admin_port();
  for (const AdminCall& call : AdminCalls()) {
    SCOPED_TRACE(Describe(call));
    ExpectNormalAnswer(call, Send(port, call, ""), "no token");
  }
  // A stray Authorization header is ignored when no token is configured.
  for (const AdminCall& call : AdminCalls()) {
    SCOPED_TRACE(Describe(call));
    ExpectNormalAnswer(call, Send(port, call, "Bearer whatever"), "unneeded token");
  }
}

// With dead letters present: unauthorized replay/purge change nothing; authorized ones work.
TEST_F(AdminContractTest, UnauthorizedDeadLetterActionsHaveNoEffect) {
  admin_options_ = ", token: s3cret";
  auto reject = std::make_shared<std::atomic<bool>>(true);
  downstream_.SetResponder([reject](const ReceivedRequest&) {
    Reply reply;
    if (reject->load()) reply.status = 422;
    return reply;
  });
  ASSERT_TRUE(StartSluice(kAppTarget));
  const uint16_t port = sluice_.admin_port();
  std::vector<Accepted> accepted = PostMany(2);
  ASSERT_EQ(accepted.size(), 2u);
  ASSERT_TRUE(WaitForMetric(
      "sluice_dead_letters", {{"target", "app"}}, [](double v) { return v == 2; }, "== 2"));
  const size_t rejected_deliveries = downstream_.Count();

  const AdminCall replay{"POST", "/admin/targets/app/dead-letters/replay", 0};
  const AdminCall purge{"DELETE", "/admin/targets/app/dead-letters", 0};
  for (const AdminCall* call : {&replay, &purge}) {
    for (const char* auth : {"", "Bearer wrong"}) {
      std::optional<HttpMessage> denied = Send(port, *call, auth);
      if (denied) {
        EXPECT_EQ(denied->status, 401) << Describe(*call) << " with '" << auth << "'";
      }
    }
  }
  std::optional<HttpMessage> list =
      Send(port, {"GET", "/admin/targets/app/dead-letters", 200}, "Bearer s3cret");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  for (const Accepted& a : accepted) {
    EXPECT_NE(list->body.find(a.id), std::string::npos)
        << a.id << " gone after unauthorized replay/purge: " << list->body;
  }
  EXPECT_EQ(downstream_.Count(), rejected_deliveries) << "an unauthorized replay redelivered";

  reject->store(false);
  std::optional<HttpMessage> replayed = Send(port, replay, "Bearer s3cret");
  ASSERT_TRUE(replayed);
  EXPECT_EQ(replayed->status / 100, 2) << replayed->body;
  EXPECT_TRUE(WaitDelivered(accepted));
  EXPECT_TRUE(WaitForMetric(
      "sluice_dead_letters", {{"target", "app"}}, [](double v) { return v == 0; },
      "== 0 after replay"));
}

TEST_F(AdminContractTest, SigtermTurnsReadyz503WhileInFlightDeliveriesFinish) {
  // Each delivery takes ~1.5 s at the downstream, so some are in flight at SIGTERM.
  downstream_.SetResponder([](const ReceivedRequest&) {
    Reply reply;
    reply.delay = Millis(1'500);
    return reply;
  });
  const std::string config = R"(
shutdown_timeout: 10s
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@/base
    rate: unlimited
    concurrency: 2
    timeout: 5s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
)";
  ASSERT_TRUE(StartSluice(config));
  const uint16_t admin_port = sluice_.admin_port();

  PostOptions options;
  options.connections = 2;
  options.depths = {1, 2};
  std::vector<Accepted> accepted = PostMany(6, options);
  ASSERT_EQ(accepted.size(), 6u);
  ASSERT_TRUE(WaitForMetric(
      "sluice_delivery_in_flight", {{"target", "app"}}, [](double v) { return v >= 1; }, ">= 1"));
  ASSERT_TRUE(downstream_.WaitForCount(1, Millis(10'000))) << "no delivery reached downstream";
  // These arrived at the downstream and are still waiting for its answer.
  std::set<std::string> in_flight_bodies;
  for (const ReceivedRequest& r : downstream_.Requests()) in_flight_bodies.insert(r.body);
  ASSERT_FALSE(in_flight_bodies.empty());

  std::atomic<bool> exited{false};
  std::optional<ExitStatus> status;
  std::thread terminator([&] {
    status = sluice_.Terminate(Millis(20'000));
    exited = true;
  });

  // Poll /readyz until it says 503 or the process is gone (bounded).
  bool saw_503 = false;
  int saw_other_after_503 = 0;
  std::string last_readyz;
  Deadline poll_deadline(Millis(20'000));
  while (!exited.load() && !poll_deadline.Expired()) {
    std::optional<HttpMessage> ready = Get(admin_port, "/readyz", Millis(1'000));
    if (ready) {
      last_readyz = std::to_string(ready->status) + " " + ready->body;
      if (ready->status == 503) {
        saw_503 = true;
      } else if (saw_503) {
        ++saw_other_after_503;
      }
    }
    std::this_thread::sleep_for(Millis(20));
  }
  terminator.join();

  EXPECT_TRUE(saw_503) << "/readyz never answered 503 during shutdown; last answer: "
                       << last_readyz;
  EXPECT_EQ(saw_other_after_503, 0) << "/readyz went back from 503 during shutdown";
  ASSERT_TRUE(status) << "sluice outlived SIGTERM + 20 s (shutdown_timeout is 10s)\n"
                      << sluice_.LogTail();
  EXPECT_EQ(status->code, 0) << status->ToString() << "\n" << sluice_.LogTail();

  // Restart against a fast downstream: everything acknowledged arrives at least once.
  downstream_.SetResponder([](const ReceivedRequest&) { return Reply{}; });
  ASSERT_TRUE(RestartSluice());
  EXPECT_TRUE(WaitDelivered(accepted));
  EXPECT_TRUE(WaitForMetric(
      "sluice_queue_messages", {{"target", "app"}}, [](double v) { return v == 0; }, "== 0"));

  // The deliveries in flight at SIGTERM were finished (answered and recorded) before exit,
  // so the restarted process does not send them again.
  std::map<std::string, std::vector<ReceivedRequest>> by_body = DeliveriesByBody();
  for (const std::string& body : in_flight_bodies) {
    auto it = by_body.find(body);
    ASSERT_NE(it, by_body.end());
    EXPECT_EQ(it->second.size(), 1u)
        << "a delivery in flight at SIGTERM was sent again after restart, i.e. it was not "
           "finished and recorded during shutdown (body prefix: "
        << body.substr(0, 60) << ")";
  }
}

}  // namespace
}  // namespace sluice::e2e
