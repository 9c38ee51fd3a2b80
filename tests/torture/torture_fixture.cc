#include "tests/torture/torture_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <sstream>
#include <thread>

#include "tests/e2e/temp_dir.h"

namespace sluice::torture {
namespace {

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t pos = s->find(from); pos != std::string::npos; pos = s->find(from, pos + to.size())) {
    s->replace(pos, from.size(), to);
  }
}

bool CanBind(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string Shorten(const std::string& body) {
  return body.size() <= 60 ? body : body.substr(0, 60) + "...";
}

}  // namespace

uint16_t PickPortBelowEphemeralRange() {
  int low = 32768;
  std::istringstream(e2e::ReadFile("/proc/sys/net/ipv4/ip_local_port_range")) >> low;
  low = std::clamp(low, 2048, 65535);
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(std::max(1024, low / 2), low - 1);
  for (int tries = 0; tries < 200; ++tries) {
    uint16_t port = static_cast<uint16_t>(pick(rng));
    if (CanBind(port)) return port;
  }
  return 0;
}

std::string DeliveryAudit::Describe(size_t examples) const {
  std::string out = std::to_string(acked) + " acknowledged, " + std::to_string(delivered) +
                    " delivered, " + std::to_string(lost.size()) + " lost, " +
                    std::to_string(duplicates) + " duplicate copies, " +
                    std::to_string(unknown.size()) + " unknown, " +
                    std::to_string(wrong_id.size()) + " with a wrong id";
  auto list = [&](const char* what, const std::vector<std::string>& items) {
    for (size_t i = 0; i < items.size() && i < examples; ++i) {
      out += std::string("\n    ") + what + ": " + Shorten(items[i]);
    }
  };
  list("lost", lost);
  list("unknown", unknown);
  list("wrong id", wrong_id);
  return out;
}

DeliveryAudit Audit(const std::vector<ReceivedRequest>& received,
                    const std::map<std::string, std::string>& acked_body_to_id,
                    const std::set<std::string>& sent_bodies) {
  DeliveryAudit audit;
  std::map<std::string, size_t> copies;  // 2xx answers per body
  std::set<std::string> unknown;
  for (const ReceivedRequest& r : received) {
    if (sent_bodies.count(r.body) == 0) {
      unknown.insert(r.body);
      continue;
    }
    if (r.answered_status / 100 != 2) continue;
    ++copies[r.body];
    auto acked = acked_body_to_id.find(r.body);
    if (acked == acked_body_to_id.end()) continue;
    if (r.Header("Sluice-Message-Id") != acked->second) {
      audit.wrong_id.push_back(r.body + " carried " + r.Header("Sluice-Message-Id").value_or("-") +
                               ", 202 said " + acked->second);
    }
  }
  audit.unknown.assign(unknown.begin(), unknown.end());
  audit.acked = acked_body_to_id.size();
  for (const auto& [body, id] : acked_body_to_id) {
    auto it = copies.find(body);
    if (it == copies.end()) {
      audit.lost.push_back(body + " (id " + id + ")");
      continue;
    }
    ++audit.delivered;
    audit.duplicates += it->second - 1;
  }
  for (const auto& [body, n] : copies) {
    if (acked_body_to_id.count(body) == 0) ++audit.unacked_delivered;
  }
  return audit;
}

e2e::Responder DeliveryTracker::Wrap(e2e::Responder inner) {
  return [this, inner = std::move(inner)](const ReceivedRequest& r) {
    e2e::Reply reply = inner(r);
    if (reply.status / 100 == 2 && !reply.reset) {
      std::lock_guard<std::mutex> lock(mu_);
      first_.emplace(r.body, r.arrival);
    }
    return reply;
  };
}

size_t DeliveryTracker::CountDelivered(const std::map<std::string, std::string>& bodies) const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [body, id] : bodies) n += first_.count(body);
  return n;
}

std::map<std::string, SteadyClock::time_point> DeliveryTracker::FirstDelivery() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_;
}

void TortureTest::SetUp() {
  SluiceE2eTest::SetUp();
  if (HasFatalFailure() || IsSkipped()) return;
  ingest_port_ = PickPortBelowEphemeralRange();
  do {
    admin_port_ = PickPortBelowEphemeralRange();
  } while (admin_port_ == ingest_port_);
  ASSERT_NE(ingest_port_, 0) << "no free port below the ephemeral range";
  ASSERT_NE(admin_port_, 0) << "no free port below the ephemeral range";
}

void TortureTest::TearDown() {
  SluiceE2eTest::TearDown();
  if (sluice_.running()) sluice_.Kill9();
  downstream_.Stop();
}

std::string TortureTest::FixedPortConfig(const std::string& body, const std::string& buffer_dir,
                                         const std::map<std::string, std::string>& vars) const {
  std::string yaml = "listen: 127.0.0.1:" + std::to_string(ingest_port_) + "\n";
  yaml += "admin: {listen: 127.0.0.1:" + std::to_string(admin_port_) + admin_options_ + "}\n";
  yaml += "buffer: {dir: " + buffer_dir + ", fsync: batch" + buffer_options_ + "}\n";
  yaml += body;
  ReplaceAll(&yaml, "@DOWNSTREAM_PORT@", std::to_string(downstream_.port()));
  ReplaceAll(&yaml, "@BUFFER_DIR@", buffer_dir);
  for (const auto& [from, to] : vars) ReplaceAll(&yaml, from, to);
  return yaml;
}

::testing::AssertionResult TortureTest::StartWith(const std::string& yaml) {
  sluice_.WriteConfig(yaml);
  if (!sluice_.Start()) return ::testing::AssertionFailure() << sluice_.error();
  return ::testing::AssertionSuccess();
}

void TortureTest::Report(const std::string& key, const std::string& value) {
  std::printf("[ torture  ] %s: %s\n", key.c_str(), value.c_str());
  std::fflush(stdout);
  RecordProperty(key, value);
}

void TortureTest::Report(const std::string& key, double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", value);
  Report(key, std::string(text));
}

::testing::AssertionResult TortureTest::WaitFor(const std::function<bool()>& done, Millis timeout) {
  Deadline deadline(timeout);
  while (!done()) {
    if (std::optional<e2e::ExitStatus> exited = sluice_.UnexpectedExit()) {
      return ::testing::AssertionFailure() << "sluice exited (" << exited->ToString() << ")";
    }
    if (deadline.Expired()) {
      return ::testing::AssertionFailure() << "not within " << timeout.count() << " ms";
    }
    std::this_thread::sleep_for(Millis(50));
  }
  return ::testing::AssertionSuccess();
}

}  // namespace sluice::torture
