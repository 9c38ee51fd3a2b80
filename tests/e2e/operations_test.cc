// Operating sluice: one process per buffer.dir, the admin API's errors, and a failing
// target that never holds back a healthy one.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>

#include "tests/e2e/child_process.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

class OperationsTest : public SluiceE2eTest {};

TEST_F(OperationsTest, SecondProcessOnTheSameBufferDirExits2) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  CommandResult second = RunCommand({SluiceBinaryPath(), "--config", sluice_.ConfigPath()},
                                    sluice_.dir(), Millis(10'000));
  ASSERT_FALSE(second.timed_out) << "the second sluice did not exit";
  EXPECT_EQ(second.status.code, 2) << second.err;
  EXPECT_NE(second.err.find("LOCK"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("another sluice"), std::string::npos) << second.err;
  // The first one is unaffected.
  auto ready = Get(sluice_.admin_port(), "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
}

TEST_F(OperationsTest, AdminApiAnswers404And405AsJson) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  uint16_t port = sluice_.admin_port();
  auto unknown_target = Get(port, "/admin/targets/nope/dead-letters");
  ASSERT_TRUE(unknown_target);
  EXPECT_EQ(unknown_target->status, 404);
  EXPECT_EQ(JsonStringField(unknown_target->body, "error"), "unknown_target");
  auto unknown_path = Get(port, "/admin/whatever");
  ASSERT_TRUE(unknown_path);
  EXPECT_EQ(unknown_path->status, 404);
  auto not_admin = Get(port, "/nothing-here");
  ASSERT_TRUE(not_admin);
  EXPECT_EQ(not_admin->status, 404);

  HttpClient client(port);
  auto get_pause = client.RoundTrip([] {
    Request r;
    r.method = "GET";
    r.target = "/admin/targets/app/pause";
    return r;
  }());
  ASSERT_TRUE(get_pause);
  EXPECT_EQ(get_pause->status, 405) << "mutations are POST/DELETE only";
  EXPECT_EQ(get_pause->Header("Allow"), "POST");
  auto post_metrics = client.RoundTrip(Post("/metrics", ""));
  ASSERT_TRUE(post_metrics);
  EXPECT_EQ(post_metrics->status, 405);
  auto bad_id = client.RoundTrip(Post("/admin/targets/app/dead-letters/replay?id=zzz", ""));
  ASSERT_TRUE(bad_id);
  EXPECT_EQ(bad_id->status, 400);
}

TEST_F(OperationsTest, ReadyzVerboseListsEachCheck) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  auto r = Get(sluice_.admin_port(), "/readyz?verbose");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  for (const char* check : {"buffer_open", "buffer_below_max_bytes", "not_shutting_down"}) {
    EXPECT_NE(r->body.find(check), std::string::npos) << r->body;
  }
  auto alias = Get(sluice_.admin_port(), "/healthz");
  ASSERT_TRUE(alias);
  EXPECT_EQ(alias->status, 200);
}

// A target answering 503 for as long as the test wants (at least 10 s) while a second
// target of the same fan-out route keeps receiving at its own pace.
TEST_F(OperationsTest, FailingTargetNeverDelaysAHealthyOne) {
  auto failing = std::make_shared<std::atomic<bool>>(true);
  Downstream broken;
  broken.SetResponder([failing](const ReceivedRequest&) {
    Reply reply;
    if (failing->load()) reply.status = 503;
    return reply;
  });
  ASSERT_TRUE(broken.Start()) << broken.error();
  std::string config = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: 20/s
    burst: 1
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
  flaky:
    url: http://127.0.0.1:@FLAKY_PORT@
    rate: 20/s
    burst: 1
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
routes:
  - match: {path_prefix: /}
    queue: [app, flaky]
)";
  config.replace(config.find("@FLAKY_PORT@"), 12, std::to_string(broken.port()));
  ASSERT_TRUE(StartSluice(config));
  auto started = SteadyClock::now();
  std::vector<Accepted> accepted = PostMany(100);
  ASSERT_EQ(accepted.size(), 100u);
  // Everything reaches the healthy target while the other one still fails.
  ASSERT_TRUE(WaitDelivered(accepted, Millis(60'000)));
  EXPECT_TRUE(failing->load());
  EXPECT_GT(broken.Count(), 0u) << "the failing target was tried meanwhile";
  double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  RecordProperty("healthy_target_rate_per_s", std::to_string(100 / seconds));
  // Keep it failing for at least 10 s in all, then let it recover and drain.
  while (SteadyClock::now() - started < Millis(10'000)) {
    std::this_thread::sleep_for(Millis(100));
  }
  failing->store(false);
  ASSERT_TRUE(broken.WaitFor(
      [](const std::vector<ReceivedRequest>& requests) {
        std::set<std::string> delivered;
        for (const auto& r : requests) {
          if (r.answered_status == 200) delivered.insert(r.body);
        }
        return delivered.size() == 100;
      },
      Millis(30'000)))
      << "the failing target gets everything once it recovers";
}

}  // namespace
}  // namespace sluice::e2e
