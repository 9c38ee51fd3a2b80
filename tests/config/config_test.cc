// Loading valid files: every key, and every default.

#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/config/config_test_util.h"

namespace sluice::config {
namespace {

using namespace std::chrono_literals;

// The smallest useful file, as in INTERFACE.md.
constexpr std::string_view kSmallest = R"(listen: 127.0.0.1:8080
targets:
  app:
    url: http://127.0.0.1:9000
    rate: 50/s
)";

// Every key, none of them at its default.
constexpr std::string_view kEveryKey = R"(listen: "[::1]:8080"
admin:
  listen: 0.0.0.0:0
  token: s3cret
buffer:
  kind: disk
  dir: /tmp/sluice-test
  max_bytes: 2GiB
  segment_bytes: 4KiB
  fsync: interval
  fsync_interval: 5ms
  rabbitmq:
    url: amqp://app:pw@rabbit.internal:5673/prod
    exchange: ingest
    queue_prefix: "app."
  kafka:
    brokers: k1:9092,k2:9093
    topic: app-ingest
    group_prefix: "app-"
  sqs:
    region: eu-west-1
    endpoint: "http://127.0.0.1:9324"
    queue_prefix: "app-"
    visibility_timeout: 2m
limits:
  max_body_bytes: 2MB
  max_header_bytes: 16KiB
  max_connections: 500
  read_timeout: 15s
shutdown_timeout: 5s
idempotency:
  window: 1h
targets:
  orders:
    url: http://127.0.0.1:9000/api/
    rate: 120/m
    burst: 5
    concurrency: 8
    timeout: 2500ms
    ordering: none
    retry:
      max_attempts: 0
      initial_backoff: 50ms
      max_backoff: 5s
      retry_on: [timeout, 503, 429]
      respect_retry_after: false
    max_age: 1h
  audit:
    url: http://[::1]
    rate: unlimited
    concurrency: {adaptive: true, min: 2, max: 32}
  ledger:
    url: http://localhost:8081
    ordering: fifo
    concurrency: 16
routes:
  - name: writes
    match:
      path_prefix: /orders
      methods: [post, PUT]
    queue: [orders, audit]
  - match: { path_prefix: /ledger }
    queue: ledger
  - forward: orders
)";

TEST(ConfigLoad, SmallestFileGetsEveryDefault) {
  Config c = MustLoad(kSmallest);
  EXPECT_EQ(c.file, "sluice.yaml");
  EXPECT_EQ(c.listen, (HostPort{"127.0.0.1", 8080}));
  EXPECT_EQ(c.admin.listen, (HostPort{"127.0.0.1", 9901}));
  EXPECT_EQ(c.admin.token, "");
  EXPECT_EQ(c.buffer.kind, "disk");
  EXPECT_EQ(c.buffer.dir, "./var/sluice");
  EXPECT_EQ(c.buffer.max_bytes, 1ull << 30);
  EXPECT_EQ(c.buffer.segment_bytes, 64ull << 20);
  EXPECT_EQ(c.buffer.fsync, FsyncMode::kBatch);
  EXPECT_EQ(c.buffer.fsync_interval, 10ms);
  EXPECT_EQ(c.limits.max_body_bytes, 1ull << 20);
  EXPECT_EQ(c.limits.max_header_bytes, 64ull << 10);
  EXPECT_EQ(c.limits.max_connections, 10000u);
  EXPECT_EQ(c.limits.read_timeout, 30s);
  EXPECT_EQ(c.shutdown_timeout, 20s);
  EXPECT_EQ(c.idempotency_window, 24h);

  ASSERT_EQ(c.targets.size(), 1u);
  const Target& app = c.targets[0];
  EXPECT_EQ(app.name, "app");
  EXPECT_EQ(app.url, "http://127.0.0.1:9000");
  EXPECT_EQ(app.parsed_url, (Url{"127.0.0.1", 9000, ""}));
  EXPECT_DOUBLE_EQ(app.rate.per_second, 50);
  EXPECT_EQ(app.burst, 1u);
  EXPECT_FALSE(app.concurrency.adaptive);
  EXPECT_EQ(app.concurrency.limit, 4u);
  EXPECT_EQ(app.timeout, 10s);
  EXPECT_EQ(app.ordering, Ordering::kNone);
  EXPECT_EQ(app.retry.max_attempts, 10u);
  EXPECT_EQ(app.retry.initial_backoff, 200ms);
  EXPECT_EQ(app.retry.max_backoff, 60s);
  EXPECT_TRUE(app.retry.on_connect_failure);
  EXPECT_TRUE(app.retry.on_timeout);
  EXPECT_EQ(app.retry.on_status, (std::vector<int>{408, 425, 429, 500, 502, 503, 504}));
  EXPECT_TRUE(app.retry.respect_retry_after);
  EXPECT_EQ(app.max_age, 72h);

  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].name, "default");
  EXPECT_EQ(c.routes[0].path_prefix, "/");
  EXPECT_TRUE(c.routes[0].methods.empty());
  EXPECT_EQ(c.routes[0].queue, (std::vector<std::string>{"app"}));
  EXPECT_EQ(c.routes[0].forward, "");
}

TEST(ConfigLoad, EveryKeyIsRead) {
  Config c = MustLoad(kEveryKey);
  EXPECT_EQ(c.listen, (HostPort{"::1", 8080}));
  EXPECT_EQ(c.admin.listen, (HostPort{"0.0.0.0", 0}));
  EXPECT_EQ(c.admin.token, "s3cret");
  EXPECT_EQ(c.buffer.kind, "disk");
  EXPECT_EQ(c.buffer.dir, "/tmp/sluice-test");
  EXPECT_EQ(c.buffer.max_bytes, 2ull << 30);
  EXPECT_EQ(c.buffer.segment_bytes, 4096u);
  EXPECT_EQ(c.buffer.fsync, FsyncMode::kInterval);
  EXPECT_EQ(c.buffer.fsync_interval, 5ms);
  EXPECT_EQ(c.buffer.rabbitmq,
            (RabbitMqConfig{"amqp://app:pw@rabbit.internal:5673/prod", "ingest", "app."}));
  EXPECT_EQ(c.buffer.kafka, (KafkaConfig{"k1:9092,k2:9093", "app-ingest", "app-"}));
  EXPECT_EQ(c.buffer.sqs, (SqsConfig{"eu-west-1", "http://127.0.0.1:9324", "app-", 2min}));
  EXPECT_EQ(c.limits.max_body_bytes, 2'000'000u);
  EXPECT_EQ(c.limits.max_header_bytes, 16u << 10);
  EXPECT_EQ(c.limits.max_connections, 500u);
  EXPECT_EQ(c.limits.read_timeout, 15s);
  EXPECT_EQ(c.shutdown_timeout, 5s);
  EXPECT_EQ(c.idempotency_window, 1h);

  ASSERT_EQ(c.targets.size(), 3u);  // in file order
  const Target& orders = c.targets[0];
  EXPECT_EQ(orders.name, "orders");
  EXPECT_EQ(orders.url, "http://127.0.0.1:9000/api/");
  EXPECT_EQ(orders.parsed_url, (Url{"127.0.0.1", 9000, "/api"}));
  EXPECT_DOUBLE_EQ(orders.rate.per_second, 2);
  EXPECT_EQ(orders.burst, 5u);
  EXPECT_FALSE(orders.concurrency.adaptive);
  EXPECT_EQ(orders.concurrency.limit, 8u);
  EXPECT_EQ(orders.timeout, 2500ms);
  EXPECT_EQ(orders.ordering, Ordering::kNone);
  EXPECT_EQ(orders.retry.max_attempts, 0u);
  EXPECT_EQ(orders.retry.initial_backoff, 50ms);
  EXPECT_EQ(orders.retry.max_backoff, 5s);
  EXPECT_FALSE(orders.retry.on_connect_failure);
  EXPECT_TRUE(orders.retry.on_timeout);
  EXPECT_EQ(orders.retry.on_status, (std::vector<int>{503, 429}));
  EXPECT_FALSE(orders.retry.respect_retry_after);
  EXPECT_EQ(orders.max_age, 1h);

  const Target& audit = c.targets[1];
  EXPECT_EQ(audit.name, "audit");
  EXPECT_EQ(audit.parsed_url, (Url{"::1", 80, ""}));
  EXPECT_TRUE(audit.rate.unlimited());
  EXPECT_TRUE(std::isinf(audit.rate.per_second));
  EXPECT_TRUE(audit.concurrency.adaptive);
  EXPECT_EQ(audit.concurrency.min, 2u);
  EXPECT_EQ(audit.concurrency.max, 32u);
  EXPECT_EQ(audit.concurrency.limit, 32u);  // adaptive starts at max

  const Target& ledger = c.targets[2];
  EXPECT_EQ(ledger.parsed_url, (Url{"localhost", 8081, ""}));
  EXPECT_EQ(ledger.ordering, Ordering::kFifo);
  EXPECT_FALSE(ledger.concurrency.adaptive);
  EXPECT_EQ(ledger.concurrency.limit, 1u);  // fifo overrides "concurrency: 16"

  ASSERT_EQ(c.routes.size(), 3u);
  EXPECT_EQ(c.routes[0].name, "writes");
  EXPECT_EQ(c.routes[0].path_prefix, "/orders");
  EXPECT_EQ(c.routes[0].methods, (std::vector<std::string>{"POST", "PUT"}));
  EXPECT_EQ(c.routes[0].queue, (std::vector<std::string>{"orders", "audit"}));
  EXPECT_EQ(c.routes[0].forward, "");
  EXPECT_EQ(c.routes[1].name, "route2");
  EXPECT_EQ(c.routes[1].path_prefix, "/ledger");
  EXPECT_TRUE(c.routes[1].methods.empty());
  EXPECT_EQ(c.routes[1].queue, (std::vector<std::string>{"ledger"}));
  EXPECT_EQ(c.routes[2].name, "route3");
  EXPECT_EQ(c.routes[2].path_prefix, "/");
  EXPECT_TRUE(c.routes[2].queue.empty());
  EXPECT_EQ(c.routes[2].forward, "orders");
}

TEST(ConfigLoad, DefaultRouteQueuesToEveryTargetInFileOrder) {
  Config c = MustLoad(R"(
targets:
  b: {url: "http://127.0.0.1:1"}
  a: {url: "http://127.0.0.1:2"}
  c: {url: "http://127.0.0.1:3"}
)");
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].name, "default");
  EXPECT_EQ(c.routes[0].queue, (std::vector<std::string>{"b", "a", "c"}));
  // An empty "routes:" is the same as none.
  Config empty_routes = MustLoad("targets: {a: {url: 'http://h:1'}}\nroutes:\n");
  ASSERT_EQ(empty_routes.routes.size(), 1u);
  EXPECT_EQ(empty_routes.routes[0].name, "default");
}

TEST(ConfigLoad, EmptySectionsKeepDefaults) {
  Config c = MustLoad("admin:\nbuffer:\nlimits: {}\ntargets: {a: {url: 'http://h:1'}}\n");
  EXPECT_EQ(c.admin.listen, (HostPort{"127.0.0.1", 9901}));
  EXPECT_EQ(c.buffer.dir, "./var/sluice");
  EXPECT_EQ(c.limits.max_connections, 10000u);
}

TEST(ConfigLoad, IdempotencyWindowZeroTurnsItOff) {
  Config c = MustLoad("idempotency: {window: 0}\ntargets: {a: {url: 'http://h:1'}}\n");
  EXPECT_EQ(c.idempotency_window, Duration(0));
  c = MustLoad("idempotency: {window: 0s}\ntargets: {a: {url: 'http://h:1'}}\n");
  EXPECT_EQ(c.idempotency_window, Duration(0));
}

TEST(ConfigLoad, ScalarFormsAreAccepted) {
  Config c = MustLoad(R"(
targets:
  a:
    url: http://h:1
    retry: {retry_on: connect-failure, respect_retry_after: yes}
routes:
  - match: {methods: get}
    queue: a
)");
  EXPECT_TRUE(c.targets[0].retry.on_connect_failure);
  EXPECT_FALSE(c.targets[0].retry.on_timeout);
  EXPECT_TRUE(c.targets[0].retry.on_status.empty());
  EXPECT_EQ(c.routes[0].methods, (std::vector<std::string>{"GET"}));
}

TEST(ConfigLoad, EnvironmentIsExpandedInValues) {
  FakeEnv env;
  env.Set("PORT", "9000");
  env.Set("RATE", "7/s");
  env.Set("EMPTY", "");
  Config c = MustLoad(R"(
admin:
  token: ${TOKEN:-dev-token}
targets:
  app:
    url: http://127.0.0.1:${PORT}/a$$b
    rate: ${RATE:?set RATE}
    timeout: ${EMPTY:-3s}
)",
                      env);
  EXPECT_EQ(c.admin.token, "dev-token");
  EXPECT_EQ(c.targets[0].url, "http://127.0.0.1:9000/a$b");
  EXPECT_EQ(c.targets[0].parsed_url.base_path, "/a$b");
  EXPECT_DOUBLE_EQ(c.targets[0].rate.per_second, 7);
  EXPECT_EQ(c.targets[0].timeout, 3s);
}

TEST(ConfigLoad, LoadStringWithoutEnvUsesTheProcessEnvironment) {
  ASSERT_EQ(::setenv("SLUICE_CONFIG_TEST_URL", "http://127.0.0.1:7777", 1), 0);
  LoadResult result = LoadString("targets: {a: {url: '${SLUICE_CONFIG_TEST_URL}'}}", "x.yaml");
  ::unsetenv("SLUICE_CONFIG_TEST_URL");
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  EXPECT_EQ(result.config->targets[0].parsed_url.port, 7777);
  EXPECT_EQ(result.config->file, "x.yaml");
}

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-config-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, std::string_view contents) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }

  std::string dir_;
};

TEST_F(ConfigFileTest, LoadsAFile) {
  std::string path = Write("sluice.yaml", kSmallest);
  LoadResult result = LoadFile(path);
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  EXPECT_EQ(result.config->file, path);
  EXPECT_EQ(result.config->targets[0].name, "app");
}

TEST_F(ConfigFileTest, ErrorsNameTheFile) {
  std::string path = Write("bad.yaml", "targets: {app: {url: 'http://h:1', rate: fast}}\n");
  LoadResult result = LoadFile(path);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.errors,
            (std::vector<std::string>{
                path + ":1:42: targets.app.rate: expected a rate like \"100/s\", got "
                       "\"fast\""}));
}

TEST_F(ConfigFileTest, MissingFile) {
  std::string path = dir_ + "/nope.yaml";
  LoadResult result = LoadFile(path);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.errors,
            (std::vector<std::string>{path + ": cannot read: No such file or directory"}));
}

TEST_F(ConfigFileTest, DirectoryInsteadOfFile) {
  LoadResult result = LoadFile(dir_);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.errors, (std::vector<std::string>{dir_ + ": cannot read: Is a directory"}));
}

}  // namespace
}  // namespace sluice::config
