#include "tests/e2e/sluice_fixture.h"

#include <algorithm>
#include <regex>
#include <set>
#include <thread>

#include "tests/e2e/prometheus_text.h"

namespace sluice::e2e {
namespace {

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t pos = s->find(from); pos != std::string::npos; pos = s->find(from, pos + to.size())) {
    s->replace(pos, from.size(), to);
  }
}

// The sample lines of `text` whose name starts with `prefix` (for failure messages).
std::string SampleLines(const std::string& text, const std::string& prefix) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    if (text.compare(pos, prefix.size(), prefix) == 0)
      out += "    " + text.substr(pos, nl - pos) + "\n";
    pos = nl + 1;
  }
  return out;
}

}  // namespace

void Findings::Check(bool ok, const std::string& what, const std::string& example) {
  if (ok) return;
  auto& [count, first] = counts_[what];
  if (count++ == 0) first = example;
}

std::string Findings::Summary() const {
  std::string out;
  for (const auto& [what, entry] : counts_) {
    out +=
        "  " + what + ": " + std::to_string(entry.first) + " time(s), e.g. " + entry.second + "\n";
  }
  return out;
}

bool LooksLikeUuidV7(const std::string& id) {
  static const std::regex kUuidV7(
      "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}");
  return std::regex_match(id, kUuidV7);
}

std::optional<std::string> JsonStringField(const std::string& json, const std::string& key) {
  std::regex re("\"" + key + "\"\\s*:\\s*\"([^\"]*)\"");
  std::smatch m;
  if (!std::regex_search(json, m, re)) return std::nullopt;
  return m[1].str();
}

std::vector<std::string> JsonStringList(const std::string& json, const std::string& key) {
  std::regex list_re("\"" + key + "\"\\s*:\\s*\\[([^\\]]*)\\]");
  std::smatch m;
  std::vector<std::string> items;
  if (!std::regex_search(json, m, list_re)) return items;
  std::string inner = m[1].str();
  static const std::regex item_re("\"([^\"]*)\"");
  for (std::sregex_iterator it(inner.begin(), inner.end(), item_re), end; it != end; ++it) {
    items.push_back((*it)[1].str());
  }
  return items;
}

void SluiceE2eTest::SetUp() {
  if (SluiceBinaryPath().empty()) {
    GTEST_FAIL() << "sluice binary not found: build target `sluice` or set SLUICE_BINARY";
  }
  ASSERT_TRUE(downstream_.Start()) << downstream_.error();
}

void SluiceE2eTest::TearDown() {
  if (std::optional<ExitStatus> exited = sluice_.UnexpectedExit()) {
    ADD_FAILURE() << "sluice exited during the test (" << exited->ToString() << ")";
  }
  if (HasFailure()) {
    sluice_.KeepFiles();
    std::printf("[ e2e      ] kept %s (config, buffer, log)\n--- sluice log tail ---\n%s\n",
                sluice_.dir().c_str(), sluice_.LogTail(40).c_str());
  }
}

std::string SluiceE2eTest::Config(const std::string& body) const {
  std::string yaml = "listen: 127.0.0.1:0\n";
  yaml += "admin: {listen: 127.0.0.1:0" + admin_options_ + "}\n";
  yaml += "buffer: {dir: @BUFFER_DIR@, fsync: batch" + buffer_options_ + "}\n";
  yaml += body;
  ReplaceAll(&yaml, "@DOWNSTREAM_PORT@", std::to_string(downstream_.port()));
  ReplaceAll(&yaml, "@BUFFER_DIR@", sluice_.BufferDir());
  return yaml;
}

::testing::AssertionResult SluiceE2eTest::StartSluice(const std::string& body) {
  sluice_.WriteConfig(Config(body));
  if (!sluice_.Start()) return ::testing::AssertionFailure() << sluice_.error();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult SluiceE2eTest::RestartSluice() {
  if (!sluice_.Restart()) return ::testing::AssertionFailure() << sluice_.error();
  return ::testing::AssertionSuccess();
}

Request Post(std::string target, std::string body) {
  Request r;
  r.method = "POST";
  r.target = std::move(target);
  r.body = std::move(body);
  return r;
}

int StatusOf(HttpClient& client, const Request& request) {
  std::optional<HttpMessage> answer = client.RoundTrip(request);
  if (!answer) {
    ADD_FAILURE() << request.method << " " << request.target << ": " << client.error();
    return -1;
  }
  return answer->status;
}

Request MakePost(int seq) {
  std::string head = "{\"seq\":" + std::to_string(seq) + ",\"pad\":\"";
  size_t size = 200 + static_cast<size_t>(seq) * 37 % 825;  // 200..1024 bytes
  std::string body = head + std::string(size - head.size() - 2, 'a' + seq % 26) + "\"}";
  Request r;
  r.method = "POST";
  r.target = "/orders/" + std::to_string(seq) + "?seq=" + std::to_string(seq) + "&src=e2e";
  r.headers = {{"Content-Type", "application/json"}};
  r.body = std::move(body);
  return r;
}

std::vector<Accepted> SluiceE2eTest::PostMany(int n, PostOptions options) {
  if (!options.make) options.make = &MakePost;
  const int connections = std::max(1, options.connections);
  std::vector<std::optional<Accepted>> results(static_cast<size_t>(n));
  std::vector<std::string> errors(static_cast<size_t>(connections));
  std::vector<std::thread> threads;
  uint16_t port = sluice_.ingest_port();
  for (int c = 0; c < connections; ++c) {
    int depth = std::max(1, options.depths.empty()
                                ? 1
                                : options.depths[static_cast<size_t>(c) % options.depths.size()]);
    threads.emplace_back([&, c, depth] {
      HttpClient client(port);
      std::vector<int> mine;
      for (int i = c; i < n; i += connections) mine.push_back(i);
      for (size_t start = 0; start < mine.size(); start += static_cast<size_t>(depth)) {
        std::vector<Request> batch;
        std::vector<int> seqs;
        for (size_t k = start; k < std::min(mine.size(), start + depth); ++k) {
          seqs.push_back(options.first_seq + mine[k]);
          batch.push_back(options.make(seqs.back()));
        }
        std::vector<HttpMessage> responses = client.Pipeline(batch);
        if (responses.size() != batch.size()) {
          errors[static_cast<size_t>(c)] =
              "connection " + std::to_string(c) + ": " + client.error();
          return;
        }
        for (size_t k = 0; k < batch.size(); ++k) {
          Accepted a;
          a.seq = seqs[k];
          a.body = batch[k].body;
          a.id = responses[k].Header("Sluice-Message-Id").value_or("");
          a.response = std::move(responses[k]);
          results[static_cast<size_t>(seqs[k] - options.first_seq)] = std::move(a);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& e : errors) {
    if (!e.empty()) ADD_FAILURE() << "PostMany: " << e;
  }

  Findings findings;
  std::vector<Accepted> accepted;
  for (auto& r : results) {
    if (!r) continue;
    const HttpMessage& resp = r->response;
    std::string example = "seq " + std::to_string(r->seq) + " -> " + std::to_string(resp.status) +
                          " " + resp.body.substr(0, 200);
    findings.Check(resp.status == 202, "status is not 202", example);
    findings.Check(LooksLikeUuidV7(r->id), "Sluice-Message-Id is not a UUIDv7", example);
    findings.Check(JsonStringField(resp.body, "id") == r->id,
                   "JSON body id differs from Sluice-Message-Id", example);
    findings.Check(resp.Header("Content-Type").value_or("").starts_with("application/json"),
                   "Content-Type is not application/json", example);
    if (resp.status == 202) accepted.push_back(std::move(*r));
  }
  EXPECT_TRUE(findings.empty()) << "PostMany(" << n << ") answers:\n" << findings.Summary();
  return accepted;
}

::testing::AssertionResult SluiceE2eTest::WaitDelivered(const std::vector<Accepted>& accepted,
                                                        Millis timeout) {
  std::set<std::string> wanted;
  for (const Accepted& a : accepted) wanted.insert(a.body);
  size_t delivered = 0;
  auto all_delivered = [&](const std::vector<ReceivedRequest>& requests) {
    std::set<std::string> seen;
    for (const ReceivedRequest& r : requests) {
      if (r.answered_status / 100 == 2 && wanted.count(r.body) != 0) seen.insert(r.body);
    }
    delivered = seen.size();
    return delivered == wanted.size();
  };
  // Waits in slices so that a dead sluice fails the wait at once.
  Deadline deadline(timeout);
  std::optional<ExitStatus> exited;
  while (!downstream_.WaitFor(all_delivered, Millis(std::min(100, deadline.RemainingMs())))) {
    exited = sluice_.UnexpectedExit();
    if (exited || deadline.Expired()) break;
  }
  if (delivered == wanted.size()) return ::testing::AssertionSuccess();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  failure << "only " << delivered << " of " << wanted.size() << " accepted bodies delivered";
  if (exited) return failure << ": sluice exited (" << exited->ToString() << ")";
  return failure << " within " << timeout.count() << " ms (downstream saw " << downstream_.Count()
                 << " requests)";
}

std::map<std::string, std::vector<ReceivedRequest>> SluiceE2eTest::DeliveriesByBody() const {
  std::map<std::string, std::vector<ReceivedRequest>> by_body;
  for (ReceivedRequest& r : downstream_.Requests()) {
    if (r.answered_status / 100 == 2) by_body[r.body].push_back(std::move(r));
  }
  return by_body;
}

int SluiceE2eTest::CountDuplicates(const std::vector<Accepted>& accepted) const {
  auto by_body = DeliveriesByBody();
  int duplicates = 0;
  for (const Accepted& a : accepted) {
    auto it = by_body.find(a.body);
    if (it != by_body.end() && it->second.size() > 1) {
      duplicates += static_cast<int>(it->second.size()) - 1;
    }
  }
  return duplicates;
}

std::string SluiceE2eTest::Metrics() const {
  std::optional<HttpMessage> r = Get(sluice_.admin_port(), "/metrics");
  return r && r->status == 200 ? r->body : "";
}

::testing::AssertionResult SluiceE2eTest::WaitForMetric(
    const std::string& name, const std::map<std::string, std::string>& labels,
    const std::function<bool(double)>& ok, const std::string& expectation, Millis timeout) {
  Deadline deadline(timeout);
  std::optional<double> value;
  std::string scrape_error;
  std::string text;
  for (;;) {
    std::optional<HttpMessage> r = Get(sluice_.admin_port(), "/metrics");
    scrape_error = !r ? "no answer" : r->status != 200 ? "status " + std::to_string(r->status) : "";
    text = r ? r->body : "";
    value = SumSamples(text, name, labels);
    if (value && ok(*value)) return ::testing::AssertionSuccess();
    if (deadline.Expired()) break;
    if (std::optional<ExitStatus> exited = sluice_.UnexpectedExit()) {
      return ::testing::AssertionFailure()
             << "waiting for " << name << ": sluice exited (" << exited->ToString() << ")";
    }
    std::this_thread::sleep_for(Millis(20));
  }
  std::string shown;
  for (const auto& [k, v] : labels) shown += (shown.empty() ? "" : ",") + k + "=\"" + v + "\"";
  shown = name + "{" + shown + "}";
  return ::testing::AssertionFailure()
         << shown << " expected " << expectation << " within " << timeout.count()
         << " ms; last value: " << (value ? std::to_string(*value) : std::string("absent"))
         << (scrape_error.empty() ? "" : " (GET /metrics: " + scrape_error + ")") << "\n"
         << SampleLines(text, "sluice_queue_") << SampleLines(text, "sluice_messages_")
         << SampleLines(text, "sluice_delivery_in_flight");
}

}  // namespace sluice::e2e
