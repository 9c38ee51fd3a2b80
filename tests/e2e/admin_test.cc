// The admin listener: health, metrics, the /admin API, and what it shows about a full
// buffer and config reloads.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/prometheus_text.h"
#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {
namespace {

using AdminTest = SluiceE2eTest;

TEST_F(AdminTest, HealthEndpointsAnswer200) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  for (const char* path : {"/livez", "/readyz", "/healthz"}) {
    std::optional<HttpMessage> r = Get(sluice_.admin_port(), path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
  }
}

TEST_F(AdminTest, MetricsCountDeliveries) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  PostOptions options;
  options.connections = 2;
  options.depths = {1, 4};
  std::vector<Accepted> accepted = PostMany(40, options);
  ASSERT_EQ(accepted.size(), 40u);
  ASSERT_TRUE(WaitDelivered(accepted));

  EXPECT_TRUE(WaitForMetric(
      "sluice_messages_delivered_total", {{"target", "app"}}, [](double v) { return v == 40; },
      "== 40"));
  EXPECT_TRUE(WaitForMetric(
      "sluice_queue_messages", {{"target", "app"}}, [](double v) { return v == 0; }, "== 0"));
  EXPECT_TRUE(WaitForMetric(
      "sluice_delivery_attempts_total", {{"target", "app"}, {"result", "2xx"}},
      [](double v) { return v == 40; }, "== 40"));

  std::optional<HttpMessage> r = Get(sluice_.admin_port(), "/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->Header("Content-Type").value_or("").starts_with("text/plain; version=0.0.4"))
      << r->Header("Content-Type").value_or("<absent>");
  const std::string& text = r->body;
  for (const char* family :
       {"sluice_http_requests_total", "sluice_queue_messages", "sluice_messages_delivered_total",
        "sluice_delivery_attempts_total", "sluice_buffer_bytes", "sluice_buffer_max_bytes",
        "sluice_received_bytes_total", "sluice_http_request_duration_seconds",
        "sluice_message_latency_seconds", "sluice_build_info"}) {
    EXPECT_TRUE(SumSamples(text, family) ||
                text.find(std::string("# TYPE ") + family + " ") != std::string::npos)
        << "metric family missing: " << family;
  }
  std::optional<double> answered = SumSamples(text, "sluice_http_requests_total");
  EXPECT_GE(answered.value_or(0), 40) << "sluice_http_requests_total counts every answer";
  std::optional<double> rate =
      SumSamples(text, "sluice_target_rate_limit_per_second", {{"target", "app"}});
  EXPECT_TRUE(rate && std::isinf(*rate)) << "rate: unlimited is exported as +Inf";
}

// POST with an empty body, e.g. an admin action.
Request EmptyPost(const std::string& path) { return Post(path, ""); }

TEST_F(AdminTest, TargetsAreListedAsJson) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  std::optional<HttpMessage> r = Get(sluice_.admin_port(), "/admin/targets");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(JsonStringField(r->body, "name"), "app") << r->body;
  for (const char* field :
       {"url", "queued", "oldest_age_seconds", "in_flight", "retrying", "dead_letters", "rate",
        "concurrency_limit", "limits_per", "buffer", "paused", "state"}) {
    EXPECT_NE(r->body.find(std::string("\"") + field + "\""), std::string::npos)
        << "field " << field << " missing: " << r->body;
  }
  EXPECT_EQ(JsonStringField(r->body, "limits_per"), "instance") << r->body;
  EXPECT_EQ(JsonStringField(r->body, "buffer"), "disk") << r->body;
}

TEST_F(AdminTest, PauseHoldsDeliveriesAndResumeReleasesThem) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  HttpClient admin(sluice_.admin_port());
  ASSERT_EQ(StatusOf(admin, EmptyPost("/admin/targets/app/pause")) / 100, 2);
  EXPECT_TRUE(WaitForMetric(
      "sluice_target_paused", {{"target", "app"}}, [](double v) { return v == 1; }, "== 1"));
  std::vector<Accepted> accepted = PostMany(10);
  ASSERT_EQ(accepted.size(), 10u);
  EXPECT_TRUE(WaitForMetric(
      "sluice_queue_messages", {{"target", "app"}}, [](double v) { return v == 10; },
      "== 10 while paused"));
  EXPECT_EQ(downstream_.Count(), 0u) << "delivered while paused";

  ASSERT_EQ(StatusOf(admin, EmptyPost("/admin/targets/app/resume")) / 100, 2);
  EXPECT_TRUE(WaitDelivered(accepted));
}

TEST_F(AdminTest, DeadLettersCanBeListedAndReplayed) {
  auto reject = std::make_shared<std::atomic<bool>>(true);
  downstream_.SetResponder([reject](const ReceivedRequest&) {
    Reply reply;
    if (reject->load()) reply.status = 422;
    return reply;
  });
  ASSERT_TRUE(StartSluice(kAppTarget));
  std::vector<Accepted> accepted = PostMany(3);
  ASSERT_EQ(accepted.size(), 3u);
  ASSERT_TRUE(WaitForMetric(
      "sluice_dead_letters", {{"target", "app"}}, [](double v) { return v == 3; }, "== 3"));

  std::optional<HttpMessage> list = Get(sluice_.admin_port(), "/admin/targets/app/dead-letters");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  for (const Accepted& a : accepted) {
    EXPECT_NE(list->body.find(a.id), std::string::npos) << a.id << " not listed: " << list->body;
  }
  EXPECT_EQ(JsonStringField(list->body, "reason"), "rejected") << list->body;

  reject->store(false);
  HttpClient admin(sluice_.admin_port());
  ASSERT_EQ(StatusOf(admin, EmptyPost("/admin/targets/app/dead-letters/replay")) / 100, 2);
  EXPECT_TRUE(WaitDelivered(accepted));
  EXPECT_TRUE(WaitForMetric(
      "sluice_dead_letters", {{"target", "app"}}, [](double v) { return v == 0; },
      "== 0 after replay"));
}

TEST_F(AdminTest, TokenGuardsAdminActionsButNotMetricsOrHealth) {
  admin_options_ = ", token: s3cret";
  ASSERT_TRUE(StartSluice(kAppTarget));
  uint16_t port = sluice_.admin_port();
  std::optional<HttpMessage> anonymous = Get(port, "/admin/targets");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);

  Request with_token;
  with_token.method = "GET";
  with_token.target = "/admin/targets";
  with_token.headers = {{"Authorization", "Bearer s3cret"}};
  HttpClient client(port);
  EXPECT_EQ(StatusOf(client, with_token), 200);
  with_token.headers = {{"Authorization", "Bearer wrong"}};
  EXPECT_EQ(StatusOf(client, with_token), 401);

  for (const char* open : {"/metrics", "/livez", "/readyz"}) {
    std::optional<HttpMessage> r = Get(port, open);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << open;
  }
}

TEST_F(AdminTest, FullBufferAnswers503AndRecoversWhenDrained) {
  buffer_options_ = ", max_bytes: 2MiB, segment_bytes: 1MiB";
  ASSERT_TRUE(StartSluice(kAppTarget));
  downstream_.Stop();

  // 1 KiB bodies until the first 503; 2 MiB of backlog is far fewer than 20000 requests.
  HttpClient client(sluice_.ingest_port());
  std::optional<HttpMessage> full;
  std::vector<Accepted> accepted;
  for (int seq = 0; seq < 20000 && !full; ++seq) {
    Request r = Post("/orders/" + std::to_string(seq),
                     std::string(1024, 'a' + seq % 26) + std::to_string(seq));
    std::optional<HttpMessage> answer = client.RoundTrip(r);
    ASSERT_TRUE(answer) << client.error();
    if (answer->status == 202) {
      accepted.push_back({seq, r.body, answer->Header("Sluice-Message-Id").value_or(""), *answer});
    } else {
      full = answer;
    }
  }
  ASSERT_TRUE(full) << "no 503 after 20000 x 1 KiB with max_bytes: 2MiB";
  EXPECT_EQ(full->status, 503);
  EXPECT_TRUE(full->Header("Retry-After")) << "503 queue_full needs Retry-After";
  EXPECT_EQ(JsonStringField(full->body, "error"), "queue_full") << full->body;
  // /readyz is 503 at max_bytes. A record that does not fit is refused a little below it,
  // where readiness may still say 200 (INTERFACE.md: "below max_bytes").
  std::string metrics = Metrics();
  double bytes = SumSamples(metrics, "sluice_buffer_bytes").value_or(-1);
  double max_bytes = SumSamples(metrics, "sluice_buffer_max_bytes").value_or(-1);
  EXPECT_EQ(max_bytes, 2 * 1024 * 1024);
  EXPECT_GT(bytes, max_bytes - 64 * 1024) << "queue_full answered far below max_bytes";
  std::optional<HttpMessage> ready = Get(sluice_.admin_port(), "/readyz");
  ASSERT_TRUE(ready);
  if (bytes >= max_bytes) {
    std::optional<HttpMessage> verbose = Get(sluice_.admin_port(), "/readyz?verbose");
    EXPECT_EQ(ready->status, 503) << "/readyz with sluice_buffer_bytes " << bytes
                                  << " >= " << max_bytes << "; /readyz?verbose: "
                                  << (verbose ? verbose->body : "no answer");
  }
  RecordProperty("readyz_when_queue_full", ready->status);
  EXPECT_TRUE(WaitForMetric(
      "sluice_ingest_rejected_total", {{"reason", "queue_full"}}, [](double v) { return v >= 1; },
      ">= 1"));

  ASSERT_TRUE(downstream_.StartAgain()) << downstream_.error();
  ASSERT_TRUE(WaitDelivered(accepted, Millis(60'000)));
  Deadline deadline(Millis(15'000));
  int status = 0;
  while (!deadline.Expired() && status != 202) {
    HttpClient again(sluice_.ingest_port());
    status = StatusOf(again, Post("/orders/after", "after the drain"));
    if (status != 202) std::this_thread::sleep_for(Millis(50));
  }
  EXPECT_EQ(status, 202) << "ingest did not recover after the backlog drained";
}

TEST_F(AdminTest, InvalidReloadKeepsTheRunningConfig) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  sluice_.WriteConfig(Config(std::string(kAppTarget) + "    colour: blue\n"));
  sluice_.Reload();
  ASSERT_TRUE(WaitForMetric(
      "sluice_config_last_reload_successful", {}, [](double v) { return v == 0; }, "== 0"));
  std::vector<Accepted> accepted = PostMany(5);
  ASSERT_EQ(accepted.size(), 5u);
  EXPECT_TRUE(WaitDelivered(accepted));
  EXPECT_NE(sluice_.Log().find("colour"), std::string::npos) << "the reload error is not logged";
}

TEST_F(AdminTest, ValidReloadAppliesANewRate) {
  ASSERT_TRUE(StartSluice(kAppTarget));
  std::string slower = kAppTarget;
  slower.replace(slower.find("rate: unlimited"), 15, "rate: 5/s");
  sluice_.WriteConfig(Config(slower));
  sluice_.Reload();
  EXPECT_TRUE(WaitForMetric(
      "sluice_target_rate_limit_per_second", {{"target", "app"}}, [](double v) { return v == 5; },
      "== 5 after SIGHUP"));
  EXPECT_TRUE(WaitForMetric(
      "sluice_config_last_reload_successful", {}, [](double v) { return v == 1; }, "== 1"));
}

}  // namespace
}  // namespace sluice::e2e
