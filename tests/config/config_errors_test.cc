// Every kind of problem in a file, with the exact line a user sees:
// "FILE:LINE:COL: key.path: message" (1-based line and column).

#include <gtest/gtest.h>

#include "config/config.h"
#include "tests/config/config_test_util.h"

namespace sluice::config {
namespace {

using Lines = std::vector<std::string>;

// A valid target to put next to the key under test.
constexpr std::string_view kTargets = "targets: {app: {url: 'http://h:1'}}\n";

std::string WithTargets(std::string_view yaml) { return std::string(yaml) + std::string(kTargets); }

TEST(ConfigErrors, UnknownKeyPointsAtTheKey) {
  EXPECT_EQ(LoadErrors(R"(targets:
  app:
    url: http://h:1
    rtae: 5/s
)"),
            Lines{"sluice.yaml:4:5: targets.app.rtae: unknown key"});
  EXPECT_EQ(LoadErrors(WithTargets("listne: 127.0.0.1:1\n")),
            Lines{"sluice.yaml:1:1: listne: unknown key"});
  EXPECT_EQ(LoadErrors(WithTargets("<<: {listen: 127.0.0.1:1}\n")),
            Lines{"sluice.yaml:1:1: <<: unknown key (YAML merge keys are not supported)"});
}

TEST(ConfigErrors, BadRateAsInTheInterfaceExample) {
  EXPECT_EQ(LoadErrors(R"(listen: 127.0.0.1:8080
admin:
  listen: 127.0.0.1:9901
buffer:
  dir: ./var/sluice
  fsync: batch
limits:
  max_body_bytes: 1MiB
targets:
  orders:
    url: http://127.0.0.1:9000
    rate: fast
)"),
            Lines{"sluice.yaml:12:11: targets.orders.rate: expected a rate like \"100/s\", got "
                  "\"fast\""});
}

TEST(ConfigErrors, BadRates) {
  for (const char* rate : {"0/s", "10", "10/d", "-1/s", "/s", "1e3/s"}) {
    EXPECT_EQ(LoadErrors("targets: {a: {url: 'http://h:1', rate: '" + std::string(rate) + "'}}"),
              Lines{"sluice.yaml:1:40: targets.a.rate: expected a rate like \"100/s\", got \"" +
                    std::string(rate) + "\""});
  }
}

TEST(ConfigErrors, BadSize) {
  EXPECT_EQ(LoadErrors(WithTargets("buffer:\n  max_bytes: 1 gig\n")),
            Lines{"sluice.yaml:2:14: buffer.max_bytes: expected a size like \"64MiB\", got "
                  "\"1 gig\""});
  EXPECT_EQ(LoadErrors(WithTargets("limits: {max_body_bytes: -1}\n")),
            Lines{"sluice.yaml:1:26: limits.max_body_bytes: expected a size like \"64MiB\", got "
                  "\"-1\""});
  EXPECT_EQ(LoadErrors(WithTargets("limits: {max_body_bytes: 99999999999TiB}\n")),
            Lines{"sluice.yaml:1:26: limits.max_body_bytes: expected a size like \"64MiB\", got "
                  "\"99999999999TiB\""});
}

TEST(ConfigErrors, BadDuration) {
  EXPECT_EQ(LoadErrors(WithTargets("shutdown_timeout: 20\n")),
            Lines{"sluice.yaml:1:19: shutdown_timeout: expected a duration like \"30s\", got "
                  "\"20\""});
  EXPECT_EQ(LoadErrors(WithTargets("limits: {read_timeout: 1.5s}\n")),
            Lines{"sluice.yaml:1:24: limits.read_timeout: expected a duration like \"30s\", got "
                  "\"1.5s\""});
  EXPECT_EQ(LoadErrors(WithTargets("limits: {read_timeout: 0s}\n")),
            Lines{"sluice.yaml:1:24: limits.read_timeout: must be greater than 0"});
}

TEST(ConfigErrors, BadUrl) {
  auto url_error = [](const std::string& url) {
    return LoadErrors("targets:\n  app:\n    url: '" + url + "'\n");
  };
  const std::string prefix =
      "sluice.yaml:3:10: targets.app.url: expected a URL like \"http://127.0.0.1:9000\", got ";
  EXPECT_EQ(url_error("https://h"), Lines{prefix + "\"https://h\" (https is not supported)"});
  EXPECT_EQ(url_error("127.0.0.1:9000"),
            Lines{prefix + "\"127.0.0.1:9000\" (it must start with \"http://\")"});
  EXPECT_EQ(url_error("http://h:0"),
            Lines{prefix + "\"http://h:0\" (the port must be a number from 1 to 65535)"});
  EXPECT_EQ(url_error("http:///x"), Lines{prefix + "\"http:///x\" (the host is missing)"});
  EXPECT_EQ(LoadErrors("targets: {app: {rate: 1/s}}"),
            Lines{"sluice.yaml:1:11: targets.app: missing required key \"url\""});
}

TEST(ConfigErrors, BadListenAddress) {
  EXPECT_EQ(LoadErrors(WithTargets("listen: 127.0.0.1:70000\n")),
            Lines{"sluice.yaml:1:9: listen: expected host:port like \"127.0.0.1:8080\", got "
                  "\"127.0.0.1:70000\" (the port must be a number from 0 to 65535)"});
  EXPECT_EQ(LoadErrors(WithTargets("listen: ::1:8080\n")),
            Lines{"sluice.yaml:1:9: listen: expected host:port like \"127.0.0.1:8080\", got "
                  "\"::1:8080\" (an IPv6 address needs brackets, like \"[::1]:8080\")"});
  EXPECT_EQ(LoadErrors(WithTargets("admin: {listen: localhost}\n")),
            Lines{"sluice.yaml:1:17: admin.listen: expected host:port like \"127.0.0.1:8080\", "
                  "got \"localhost\" (the port is missing)"});
}

TEST(ConfigErrors, ListenerAndAdminOnTheSameAddress) {
  EXPECT_EQ(LoadErrors(WithTargets("listen: 127.0.0.1:9000\nadmin: {listen: 127.0.0.1:9000}\n")),
            Lines{"sluice.yaml:2:17: admin.listen: must differ from listen (127.0.0.1:9000)"});
  // Against the default admin address.
  EXPECT_EQ(LoadErrors(WithTargets("listen: 127.0.0.1:9901\n")),
            Lines{"sluice.yaml:1:9: listen: must differ from admin.listen (127.0.0.1:9901)"});
  // Port 0 picks a free port for each: no clash.
  EXPECT_EQ(LoadErrors(WithTargets("listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\n")),
            Lines{});
}

TEST(ConfigErrors, UnknownTargetInRoute) {
  EXPECT_EQ(
      LoadErrors(R"(targets:
  app: {url: 'http://h:1'}
routes:
  - queue: [app, billing]
  - forward: ledger
)"),
      (Lines{"sluice.yaml:4:18: routes[0].queue[1]: unknown target \"billing\" (targets: app)",
             "sluice.yaml:5:14: routes[1].forward: unknown target \"ledger\" (targets: app)"}));
}

TEST(ConfigErrors, RouteNeedsExactlyOneOfQueueAndForward) {
  EXPECT_EQ(LoadErrors(R"(targets:
  app: {url: 'http://h:1'}
routes:
  - queue: app
    forward: app
  - name: nothing
)"),
            (Lines{"sluice.yaml:4:5: routes[0]: set either queue or forward, not both",
                   "sluice.yaml:6:5: routes[1]: needs either queue (fan-out to targets) or "
                   "forward (pass-through)"}));
}

TEST(ConfigErrors, RouteDetails) {
  EXPECT_EQ(LoadErrors(R"(targets:
  app: {url: 'http://h:1'}
routes:
  - match: {path_prefix: orders, methods: [GET, "P OST"]}
    queue: [app, app]
  - name: route1
    queue: []
  - match: {methods: []}
    forward: app
  - []
)"),
            (Lines{
                "sluice.yaml:4:26: routes[0].match.path_prefix: expected a path starting with "
                "\"/\", got \"orders\"",
                "sluice.yaml:4:49: routes[0].match.methods[1]: expected an HTTP method like "
                "\"POST\", got \"P OST\"",
                "sluice.yaml:5:18: routes[0].queue[1]: target \"app\" is listed twice",
                "sluice.yaml:6:5: routes[1]: duplicate route name \"route1\" (also routes[0])",
                "sluice.yaml:7:12: routes[1].queue: expected at least one target",
                "sluice.yaml:8:22: routes[2].match.methods: expected at least one method (leave "
                "methods out to match any)",
                "sluice.yaml:10:5: routes[3]: expected a mapping, got a list",
            }));
  EXPECT_EQ(LoadErrors(WithTargets("routes: []\n")),
            Lines{"sluice.yaml:1:9: routes: expected at least one route (leave routes out for the "
                  "default route)"});
  EXPECT_EQ(LoadErrors(WithTargets("routes: {queue: app}\n")),
            Lines{"sluice.yaml:1:9: routes: expected a list, got a mapping"});
}

TEST(ConfigErrors, NoTargets) {
  EXPECT_EQ(LoadErrors("listen: 127.0.0.1:8080\n"),
            Lines{"sluice.yaml:1:1: targets: missing; at least one target is required"});
  EXPECT_EQ(LoadErrors("targets: {}\n"),
            Lines{"sluice.yaml:1:10: targets: at least one target is required"});
  EXPECT_EQ(LoadErrors("targets:\n"),
            Lines{"sluice.yaml:1:1: targets: at least one target is required"});
}

TEST(ConfigErrors, BadTargetName) {
  EXPECT_EQ(LoadErrors("targets:\n  Orders:\n    url: http://h:1\n  a.b: {url: 'http://h:2'}\n"),
            (Lines{"sluice.yaml:2:3: targets.Orders: a target name may only contain a-z, 0-9, "
                   "\"_\" and \"-\"",
                   "sluice.yaml:4:3: targets.a.b: a target name may only contain a-z, 0-9, \"_\" "
                   "and \"-\""}));
}

TEST(ConfigErrors, TargetValues) {
  EXPECT_EQ(LoadErrors(R"(targets:
  a:
    url: http://h:1
    burst: 0
    concurrency: 0
    ordering: lifo
    timeout: 0ms
    max_age: forever
  b:
    url: http://h:1
    concurrency: {adaptive: true, min: 8, max: 4}
  c:
    url: http://h:1
    concurrency: {adaptive: false, max: 4, limit: 2}
)"),
            (Lines{
                "sluice.yaml:4:12: targets.a.burst: expected an integer >= 1, got \"0\"",
                "sluice.yaml:5:18: targets.a.concurrency: expected an integer >= 1, got \"0\"",
                "sluice.yaml:6:15: targets.a.ordering: expected one of none, fifo, got \"lifo\"",
                "sluice.yaml:7:14: targets.a.timeout: must be greater than 0",
                "sluice.yaml:8:14: targets.a.max_age: expected a duration like \"30s\", got "
                "\"forever\"",
                "sluice.yaml:11:40: targets.b.concurrency.min: concurrency.min (8) must not "
                "exceed concurrency.max (4)",
                "sluice.yaml:14:29: targets.c.concurrency.adaptive: a fixed limit is written as a "
                "number, like \"concurrency: 4\"",
                "sluice.yaml:14:44: targets.c.concurrency.limit: unknown key",
            }));
  EXPECT_EQ(LoadErrors("targets: {a: {url: 'http://h:1', burst: 99999999999}}"),
            Lines{"sluice.yaml:1:41: targets.a.burst: expected an integer from 1 to 4294967295, "
                  "got \"99999999999\""});
}

TEST(ConfigErrors, RetryValues) {
  EXPECT_EQ(LoadErrors(R"(targets:
  a:
    url: http://h:1
    retry:
      max_attempts: -1
      initial_backoff: 2m
      retry_on: [timeout, 600, reset]
      respect_retry_after: maybe
)"),
            (Lines{
                "sluice.yaml:5:21: targets.a.retry.max_attempts: expected an integer >= 0, got "
                "\"-1\"",
                "sluice.yaml:6:24: targets.a.retry.initial_backoff: must not exceed "
                "retry.max_backoff",
                "sluice.yaml:7:27: targets.a.retry.retry_on[1]: expected \"connect-failure\", "
                "\"timeout\" or an HTTP status from 100 to 599, got \"600\"",
                "sluice.yaml:7:32: targets.a.retry.retry_on[2]: expected \"connect-failure\", "
                "\"timeout\" or an HTTP status from 100 to 599, got \"reset\"",
                "sluice.yaml:8:28: targets.a.retry.respect_retry_after: expected true or false, "
                "got \"maybe\"",
            }));
}

TEST(ConfigErrors, BufferValues) {
  EXPECT_EQ(LoadErrors(WithTargets(R"(buffer:
  kind: disk
  dir: ""
  segment_bytes: 1KiB
  fsync: sometimes
  kafka: {brokers: 127.0.0.1:9092, topc: x}
  sqs: [us-east-1]
)")),
            (Lines{
                "sluice.yaml:3:8: buffer.dir: expected a non-empty string, got \"\"",
                "sluice.yaml:4:18: buffer.segment_bytes: must be at least 4KiB, got 1KiB",
                "sluice.yaml:5:10: buffer.fsync: expected one of batch, interval, never, got "
                "\"sometimes\"",
                "sluice.yaml:6:36: buffer.kafka.topc: unknown key",
                "sluice.yaml:7:8: buffer.sqs: expected a mapping, got a list",
            }));
  EXPECT_EQ(LoadErrors(WithTargets(R"(buffer:
  kind: rabbitmq
  rabbitmq: {url: "http://broker:5672/", exchange: "", queue_prefix: "a b"}
  kafka: {brokers: "k1:9092,k2", topic: "t/x"}
  sqs: {region: "eu west", endpoint: "sqs.local", queue_prefix: "a.b", visibility_timeout: 1500ms}
)")),
            (Lines{
                "sluice.yaml:3:19: buffer.rabbitmq.url: expected a URL like "
                "amqp://user:password@host:5672/vhost, got \"http://broker:5672/\"",
                "sluice.yaml:3:52: buffer.rabbitmq.exchange: expected a non-empty string, got "
                "\"\"",
                "sluice.yaml:3:70: buffer.rabbitmq.queue_prefix: expected letters, digits, '.', "
                "'_' or '-', got \"a b\"",
                "sluice.yaml:4:20: buffer.kafka.brokers: expected host:port[,host:port...], got "
                "\"k1:9092,k2\"",
                "sluice.yaml:4:41: buffer.kafka.topic: expected letters, digits, '.', '_' or '-', "
                "got \"t/x\"",
                "sluice.yaml:5:17: buffer.sqs.region: expected letters, digits, '_' or '-', got "
                "\"eu west\"",
                "sluice.yaml:5:38: buffer.sqs.endpoint: expected \"\" or a URL like "
                "https://sqs.us-east-1.amazonaws.com, got \"sqs.local\"",
                "sluice.yaml:5:65: buffer.sqs.queue_prefix: expected letters, digits, '_' or '-', "
                "got \"a.b\"",
                "sluice.yaml:5:92: buffer.sqs.visibility_timeout: must be whole seconds from 1s "
                "to 12h",
            }));
  EXPECT_EQ(LoadErrors(WithTargets("buffer: {kind: s3}\n")),
            Lines{"sluice.yaml:1:16: buffer.kind: expected one of disk, rabbitmq, kafka, sqs, got "
                  "\"s3\""});
  EXPECT_EQ(LoadErrors(WithTargets("buffer: {max_bytes: 1MiB}\n")),
            Lines{"sluice.yaml:1:21: buffer.max_bytes: must be at least buffer.segment_bytes "
                  "(64MiB), got 1MiB"});
  EXPECT_EQ(LoadErrors(WithTargets("buffer: {segment_bytes: 2GiB}\n")),
            Lines{"sluice.yaml:1:25: buffer.segment_bytes: must not exceed buffer.max_bytes "
                  "(1GiB), got 2GiB"});
}

TEST(ConfigErrors, YamlSyntaxError) {
  EXPECT_EQ(LoadErrors("targets: [a\nb: 2\n"),
            Lines{"sluice.yaml:2:2: yaml: end of sequence flow not found"});
  EXPECT_EQ(LoadErrors("targets:\n  a: 1\n b: 2\n"),
            Lines{"sluice.yaml:3:2: yaml: end of map not found"});
  EXPECT_EQ(LoadErrors("targets: *nowhere\n"),
            Lines{"sluice.yaml:1:10: yaml: the referenced anchor is not defined"});
}

TEST(ConfigErrors, MoreThanOneDocument) {
  EXPECT_EQ(LoadErrors(WithTargets("---\nlisten: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n")),
            Lines{"sluice.yaml:4:1: yaml: expected one document, found 2"});
}

// yaml-cpp 0.7's LoadAll never returns on these (issue 1040): the load must, with an error.
TEST(ConfigErrors, InputThatHangsYamlCppLoadAllIsAnError) {
  EXPECT_EQ(LoadErrors(","), Lines{"sluice.yaml:1:1: yaml: not a YAML document sluice can read"});
  EXPECT_EQ(LoadErrors("targets:\n  a: {url: http://a}\n---\n,\n"),
            Lines{"sluice.yaml:1:1: yaml: not a YAML document sluice can read"});
}

TEST(ConfigErrors, WrongNodeType) {
  EXPECT_EQ(LoadErrors("targets:\n  - app\n"),
            Lines{"sluice.yaml:2:3: targets: expected a mapping, got a list"});
  EXPECT_EQ(LoadErrors("targets: {app: [http://h:1]}\n"),
            Lines{"sluice.yaml:1:16: targets.app: expected a mapping, got a list"});
  EXPECT_EQ(LoadErrors("targets: {app: {url: {host: h}}}\n"),
            Lines{"sluice.yaml:1:22: targets.app.url: expected a URL like "
                  "\"http://127.0.0.1:9000\", got a mapping"});
  EXPECT_EQ(LoadErrors(WithTargets("limits: 5\n")),
            Lines{"sluice.yaml:1:9: limits: expected a mapping, got \"5\""});
  EXPECT_EQ(LoadErrors(WithTargets("? [a, b]\n: 1\n")),
            Lines{"sluice.yaml:1:3: (root): expected a name as key, got a list"});
}

TEST(ConfigErrors, EmptyValuePointsAtTheKey) {
  EXPECT_EQ(LoadErrors("targets:\n  app:\n    url:\n    rate: 1/s\n"),
            Lines{"sluice.yaml:3:5: targets.app.url: expected a URL like "
                  "\"http://127.0.0.1:9000\", got nothing"});
}

TEST(ConfigErrors, DocumentIsNotAMapping) {
  EXPECT_EQ(LoadErrors(""), Lines{"sluice.yaml:1:1: (root): the file is empty; expected a "
                                  "mapping with at least \"targets\""});
  EXPECT_EQ(LoadErrors("# only a comment\n"),
            Lines{"sluice.yaml:1:1: (root): the file is empty; expected a mapping with at least "
                  "\"targets\""});
  EXPECT_EQ(LoadErrors("- a\n- b\n"),
            Lines{"sluice.yaml:1:1: (root): expected a mapping, got a list"});
  EXPECT_EQ(LoadErrors("hello"),
            Lines{"sluice.yaml:1:1: (root): expected a mapping, got \"hello\""});
}

TEST(ConfigErrors, DuplicateKey) {
  EXPECT_EQ(LoadErrors("targets:\n  a: {url: 'http://h:1'}\n  a: {url: 'http://h:2'}\n"),
            Lines{"sluice.yaml:3:3: targets.a: duplicate key (first given at line 2)"});
}

TEST(ConfigErrors, EnvironmentExpansion) {
  FakeEnv env;
  env.Set("EMPTY", "");
  EXPECT_EQ(LoadErrors(R"(targets:
  a:
    url: http://h:${PORT}
    rate: ${RATE:?give the rate of target a}
    timeout: ${EMPTY:?}
    max_age: ${BROKEN
    burst: ${1X}
)",
                       env),
            (Lines{
                "sluice.yaml:3:10: targets.a.url: environment variable \"PORT\" is not set",
                "sluice.yaml:4:11: targets.a.rate: environment variable \"RATE\" is not set: give "
                "the rate of target a",
                "sluice.yaml:5:14: targets.a.timeout: environment variable \"EMPTY\" is not set",
                "sluice.yaml:6:14: targets.a.max_age: unterminated \"${\" (write \"$$\" for a "
                "literal \"$\")",
                "sluice.yaml:7:12: targets.a.burst: invalid reference \"${1X}\": expected "
                "${NAME}, ${NAME:-default} or ${NAME:?message}",
            }));
  // An expanded value is checked like a written one.
  env.Set("RATE", "fast");
  EXPECT_EQ(LoadErrors("targets: {a: {url: 'http://h:1', rate: '${RATE}'}}", env),
            Lines{"sluice.yaml:1:40: targets.a.rate: expected a rate like \"100/s\", got "
                  "\"fast\""});
}

TEST(ConfigErrors, AllProblemsAreReportedInDocumentOrder) {
  EXPECT_EQ(LoadErrors(R"(listen: localhost
targets:
  orders:
    url: http://127.0.0.1:9000
    rate: fast
    burst: 0
  Audit:
    url: ftp://x
    colour: blue
routes:
  - queue: [orders, nope]
    forward: orders
shutdown_timeout: soon
)"),
            (Lines{
                "sluice.yaml:1:9: listen: expected host:port like \"127.0.0.1:8080\", got "
                "\"localhost\" (the port is missing)",
                "sluice.yaml:5:11: targets.orders.rate: expected a rate like \"100/s\", got "
                "\"fast\"",
                "sluice.yaml:6:12: targets.orders.burst: expected an integer >= 1, got \"0\"",
                "sluice.yaml:7:3: targets.Audit: a target name may only contain a-z, 0-9, \"_\" "
                "and \"-\"",
                "sluice.yaml:8:10: targets.Audit.url: expected a URL like "
                "\"http://127.0.0.1:9000\", got \"ftp://x\" (it must start with \"http://\")",
                "sluice.yaml:9:5: targets.Audit.colour: unknown key",
                "sluice.yaml:11:5: routes[0]: set either queue or forward, not both",
                "sluice.yaml:11:21: routes[0].queue[1]: unknown target \"nope\" (targets: orders, "
                "Audit)",
                "sluice.yaml:13:19: shutdown_timeout: expected a duration like \"30s\", got "
                "\"soon\"",
            }));
}

}  // namespace
}  // namespace sluice::config
