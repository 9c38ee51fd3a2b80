#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/units.h"

namespace sluice::config {

using common::Duration;
using namespace std::chrono_literals;

struct HostPort {
  std::string host;  // "127.0.0.1", "::1", "0.0.0.0", "localhost"
  uint16_t port = 0;
  bool operator==(const HostPort&) const = default;
};

// http://host:port[/base]; https is not supported (sluice is a loopback sidecar).
struct Url {
  std::string host;
  uint16_t port = 80;
  std::string base_path;  // "" or "/base" without a trailing slash
  bool operator==(const Url&) const = default;
};

enum class FsyncMode { kBatch, kInterval, kNever };

// buffer.kind: rabbitmq. One quorum queue per target, bound to `exchange`.
struct RabbitMqConfig {
  std::string url = "amqp://guest:guest@127.0.0.1:5672/";
  std::string exchange = "sluice";
  std::string queue_prefix = "sluice.";  // queue name = prefix + target
  bool operator==(const RabbitMqConfig&) const = default;
};

// buffer.kind: kafka. One topic; one consumer group per target.
struct KafkaConfig {
  std::string brokers = "127.0.0.1:9092";  // comma-separated host:port bootstrap list
  std::string topic = "sluice";
  std::string group_prefix = "sluice-";  // group id = prefix + target
  bool operator==(const KafkaConfig&) const = default;
};

// buffer.kind: sqs. One queue per target.
struct SqsConfig {
  std::string region = "us-east-1";
  std::string endpoint;  // "" = the region's public endpoint
  std::string queue_prefix = "sluice-";
  // A received message stays hidden this long, and sluice extends it while the message is
  // in flight or waiting for a retry: how soon a crashed instance's messages reappear.
  Duration visibility_timeout = 30s;
  bool operator==(const SqsConfig&) const = default;
};

struct BufferConfig {
  std::string kind = "disk";
  std::string dir = "./var/sluice";
  uint64_t max_bytes = 1ull << 30;
  uint64_t segment_bytes = 64ull << 20;
  FsyncMode fsync = FsyncMode::kBatch;
  Duration fsync_interval = 10ms;
  RabbitMqConfig rabbitmq;
  KafkaConfig kafka;
  SqsConfig sqs;
};

struct Limits {
  uint64_t max_body_bytes = 1ull << 20;
  uint64_t max_header_bytes = 64ull << 10;
  uint32_t max_connections = 10000;
  Duration read_timeout = 30s;
};

struct AdminConfig {
  HostPort listen{"127.0.0.1", 9901};
  std::string token;
};

struct RetryPolicy {
  uint32_t max_attempts = 10;  // 0 = no limit
  Duration initial_backoff = 200ms;
  Duration max_backoff = 60s;
  bool on_connect_failure = true;
  bool on_timeout = true;
  std::vector<int> on_status = {408, 425, 429, 500, 502, 503, 504};
  bool respect_retry_after = true;

  bool RetriesStatus(int status) const;
};

struct Concurrency {
  bool adaptive = false;
  uint32_t limit = 4;  // static limit (adaptive: the starting limit, = max)
  uint32_t min = 1;    // adaptive bounds
  uint32_t max = 64;
  // The most deliveries the target may ever have in flight at once (a broker consumer's
  // prefetch, an SQS receive width).
  uint32_t most_in_flight() const { return adaptive ? max : limit; }
};

enum class Ordering { kNone, kFifo };

struct Target {
  std::string name;  // [a-z0-9_-]+
  std::string url;   // as written
  Url parsed_url;
  common::Rate rate{100};
  uint32_t burst = 1;
  Concurrency concurrency;
  Duration timeout = 10s;
  Ordering ordering = Ordering::kNone;  // fifo forces concurrency 1
  RetryPolicy retry;
  Duration max_age = 72h;
};

struct Route {
  std::string name;  // default "route<N>" (1-based); the implicit route: "default"
  std::string path_prefix = "/";
  std::vector<std::string> methods;  // upper case; empty = any method
  std::vector<std::string> queue;    // target names (fan-out); empty when forward is set
  std::string forward;               // target name for pass-through; empty when queue is set

  bool Matches(std::string_view method, std::string_view path) const;
};

struct Config {
  std::string file;  // the path it was loaded from
  HostPort listen{"127.0.0.1", 8080};
  AdminConfig admin;
  BufferConfig buffer;
  Limits limits;
  Duration shutdown_timeout = 20s;
  Duration idempotency_window = 24h;
  std::vector<Target> targets;  // in file order; at least one
  std::vector<Route> routes;    // in file order; when the file has none: one "default" route
                                // with path_prefix "/" queueing to every target

  const Target* FindTarget(std::string_view name) const;
  // First route (in order) whose prefix and method match; nullptr when none does.
  const Route* MatchRoute(std::string_view method, std::string_view path) const;
};

// Either a valid Config or one or more errors, each formatted
// "FILE:LINE:COL: key.path: message" (1-based line and column).
struct LoadResult {
  std::optional<Config> config;
  std::vector<std::string> errors;
  bool ok() const { return config.has_value(); }
};

// Looks up an environment variable for ${VAR} expansion; nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Errors about the file itself have no position: "FILE: cannot read: <strerror>".
LoadResult LoadFile(const std::string& path);
// `file` is only used in error messages and Config::file.
LoadResult LoadString(std::string_view yaml, const std::string& file);
// As above, with `env` instead of the process environment (tests, reload dry runs).
LoadResult LoadString(std::string_view yaml, const std::string& file, const EnvLookup& env);

// Key paths in messages: mapping keys joined by ".", list items by 0-based index, e.g.
// "targets.orders.retry.retry_on[2]", "routes[0].match.path_prefix"; "(root)" for the
// document itself and "yaml" for syntax errors. (Default route *names* count from 1:
// "route1" is routes[0].)

}  // namespace sluice::config
