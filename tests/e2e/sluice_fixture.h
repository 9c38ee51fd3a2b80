#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/deadline.h"
#include "tests/e2e/downstream.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/sluice_process.h"

namespace sluice::e2e {

// A request sluice answered 202.
struct Accepted {
  int seq = 0;
  std::string body;
  std::string id;  // Sluice-Message-Id (equal to the JSON body's "id")
  HttpMessage response;
};

struct PostOptions {
  int connections = 4;
  // Pipelining depth of connection c is depths[c % size]: 1 = one request at a time.
  std::vector<int> depths = {1, 1, 8, 32};
  int first_seq = 0;
  // Builds request `seq`; MakePost by default.
  std::function<Request(int seq)> make;
};

// Collects problems across hundreds of similar checks and reports each kind once, with a
// count and the first example, instead of hundreds of identical failures.
class Findings {
 public:
  void Check(bool ok, const std::string& what, const std::string& example);
  bool empty() const { return counts_.empty(); }
  std::string Summary() const;

 private:
  std::map<std::string, std::pair<int, std::string>> counts_;
};

// The default request `seq`: POST /orders/<seq>?seq=<seq>&src=e2e with a distinct JSON
// body of 200..1024 bytes.
Request MakePost(int seq);

// POST `target` with `body` (Content-Length framing).
Request Post(std::string target, std::string body);

// Status of the answer to `request` on `client`; -1 (and a test failure) if there is none.
int StatusOf(HttpClient& client, const Request& request);

// UUIDv7 text form, e.g. 0190f8a3-5b2c-7d4e-9f00-1a2b3c4d5e6f.
bool LooksLikeUuidV7(const std::string& id);
// The "id" string and "targets" list of a 202 JSON body (minimal extraction, no JSON library).
std::optional<std::string> JsonStringField(const std::string& json, const std::string& key);
std::vector<std::string> JsonStringList(const std::string& json, const std::string& key);

// The standard e2e fixture: a Downstream standing in for target "app" and one sluice
// process whose config is written per test. Verbs: StartSluice, PostMany, WaitDelivered,
// Metrics, WaitForMetric. On failure the temp dir is kept and the log tail printed.
class SluiceE2eTest : public ::testing::Test {
 protected:
  // Target "app" at the downstream, base path /base, unlimited rate, concurrency 8, short
  // backoff and no attempt limit (an outage in a test never dead-letters): the usual target
  // for tests that are not about pacing.
  static constexpr const char* kAppTarget = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@/base
    rate: unlimited
    concurrency: 8
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
)";

  void SetUp() override;
  void TearDown() override;

  // The full config: listeners on port 0, a batch-fsync buffer in the temp dir (plus
  // buffer_options_, admin_options_), then `body`. @DOWNSTREAM_PORT@ and @BUFFER_DIR@ are
  // replaced.
  std::string Config(const std::string& body) const;
  // Writes Config(body) and starts sluice (ready when /readyz says 200).
  ::testing::AssertionResult StartSluice(const std::string& body = kAppTarget);
  // Kill -9 or SIGTERM, then start again with the same config and buffer dir.
  ::testing::AssertionResult RestartSluice();

  // Sends n distinct requests over several keep-alive connections in parallel; every one
  // must be answered 202 with a well-formed id (failures are reported). Returns the 202s in
  // seq order.
  std::vector<Accepted> PostMany(int n, PostOptions options = {});

  // Waits until the downstream has answered 2xx to a request carrying each accepted body.
  ::testing::AssertionResult WaitDelivered(const std::vector<Accepted>& accepted,
                                           Millis timeout = Millis(30'000));
  // Downstream requests answered 2xx, grouped by body.
  std::map<std::string, std::vector<ReceivedRequest>> DeliveriesByBody() const;
  // Number of accepted bodies delivered more than once (extra copies counted).
  int CountDuplicates(const std::vector<Accepted>& accepted) const;

  // GET /metrics on the admin port; empty on failure.
  std::string Metrics() const;
  // Polls /metrics until the sum of samples `name{labels}` satisfies `ok`.
  ::testing::AssertionResult WaitForMetric(const std::string& name,
                                           const std::map<std::string, std::string>& labels,
                                           const std::function<bool(double)>& ok,
                                           const std::string& expectation,
                                           Millis timeout = Millis(15'000));

  // Appended inside the flow mappings of `buffer:` / `admin:`, e.g. ", max_bytes: 2MiB".
  std::string buffer_options_;
  std::string admin_options_;
  Downstream downstream_;
  SluiceProcess sluice_;
};

}  // namespace sluice::e2e
