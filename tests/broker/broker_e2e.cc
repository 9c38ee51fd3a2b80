#include "tests/broker/broker_e2e.h"

#include <cstdio>
#include <set>

#include "tests/e2e/http_client.h"

namespace sluice::e2e {
namespace {

// A target that takes 20 ms per delivery, 4 at a time: a backlog builds, so a kill lands
// with messages in flight and others still queued.
constexpr const char* kSlowTarget = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 4
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
)";

}  // namespace

::testing::AssertionResult BrokerE2eTest::DeliversEachAcceptedRequestOnce(int n,
                                                                          const std::string& kind) {
  if (auto r = StartSluice(); !r) return r;
  std::vector<Accepted> accepted = PostMany(n);
  if (accepted.size() != static_cast<size_t>(n)) {
    return ::testing::AssertionFailure() << accepted.size() << " of " << n << " accepted";
  }
  if (auto r = WaitDelivered(accepted); !r) return r;
  if (int d = CountDuplicates(accepted); d != 0) {
    return ::testing::AssertionFailure() << d << " duplicates without a crash";
  }
  auto by_body = DeliveriesByBody();
  for (const auto& a : accepted) {
    if (by_body[a.body].empty() || by_body[a.body][0].Header("Sluice-Message-Id") != a.id) {
      return ::testing::AssertionFailure() << "delivery of " << a.id << " lacks its id";
    }
  }
  auto targets = Get(sluice_.admin_port(), "/admin/targets");
  if (!targets || JsonStringField(targets->body, "buffer") != kind) {
    return ::testing::AssertionFailure()
           << "/admin/targets does not name " << kind << ": " << (targets ? targets->body : "");
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult BrokerE2eTest::Kill9LosesNothingAcknowledged(int n, size_t before_kill,
                                                                        Millis redelivery_wait) {
  downstream_.SetResponder([](const ReceivedRequest&) {
    Reply reply;
    reply.delay = Millis(20);
    return reply;
  });
  if (auto r = StartSluice(kSlowTarget); !r) return r;
  std::vector<Accepted> accepted = PostMany(n);
  if (accepted.size() != static_cast<size_t>(n)) {
    return ::testing::AssertionFailure() << accepted.size() << " of " << n << " accepted";
  }
  if (!downstream_.WaitForCount(before_kill, Millis(10'000))) {
    return ::testing::AssertionFailure() << "fewer than " << before_kill << " delivered";
  }
  sluice_.Kill9();
  size_t delivered = downstream_.Count();
  if (delivered >= accepted.size()) {
    return ::testing::AssertionFailure() << "everything was delivered before the kill";
  }
  if (auto r = RestartSluice(); !r) return r;
  if (auto r = WaitDelivered(accepted, redelivery_wait); !r) return r;
  std::printf("[ broker   ] %s: kill -9 of sluice after %zu deliveries: %d duplicates of %d\n",
              ::testing::UnitTest::GetInstance()->current_test_suite()->name(), delivered,
              CountDuplicates(accepted), n);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult BrokerE2eTest::TwoInstancesDeliverEachMessageOnce(int n) {
  if (auto r = StartSluice(); !r) return r;
  SluiceProcess second;
  second.WriteConfig(Config(kAppTarget));
  if (!second.Start()) return ::testing::AssertionFailure() << second.error();
  std::vector<Accepted> accepted = PostMany(n);
  int second_ok = 0;
  for (int i = 0; i < n; ++i) {
    HttpClient client(second.ingest_port());
    if (StatusOf(client, MakePost(100'000 + i)) == 202) ++second_ok;
  }
  if (accepted.size() != static_cast<size_t>(n) || second_ok != n) {
    return ::testing::AssertionFailure()
           << accepted.size() << " and " << second_ok << " of " << n << " accepted";
  }
  if (!downstream_.WaitForCount(2 * n, Millis(60'000))) {
    return ::testing::AssertionFailure() << "only " << downstream_.Count() << " delivered";
  }
  if (auto r = WaitForMetric(
          "sluice_delivery_in_flight", {{"target", "app"}}, [](double v) { return v == 0; },
          "== 0");
      !r) {
    return r;
  }
  std::set<std::string> ids;
  for (const auto& r : downstream_.Requests()) {
    auto id = r.Header("Sluice-Message-Id");
    if (!id) return ::testing::AssertionFailure() << "a delivery without Sluice-Message-Id";
    if (!ids.insert(*id).second) return ::testing::AssertionFailure() << "twice: " << *id;
  }
  if (ids.size() != static_cast<size_t>(2 * n)) {
    return ::testing::AssertionFailure() << ids.size() << " distinct of " << 2 * n;
  }
  for (uint16_t port : {sluice_.admin_port(), second.admin_port()}) {
    auto targets = Get(port, "/admin/targets");
    if (!targets || JsonStringField(targets->body, "limits_per") != "instance") {
      return ::testing::AssertionFailure()
             << "/admin/targets lacks limits_per: " << (targets ? targets->body : "");
    }
  }
  // Graceful shutdown on a broker: in-flight deliveries finish, the connection closes,
  // exit 0.
  std::optional<ExitStatus> exit = second.Terminate();
  if (!exit || exit->code != 0) {
    return ::testing::AssertionFailure()
           << "SIGTERM: " << (exit ? exit->ToString() : "did not exit") << "\n"
           << second.LogTail();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace sluice::e2e
