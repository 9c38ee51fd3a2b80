#include "tests/torture/load_generator.h"

#include <algorithm>
#include <optional>
#include <random>

#include "tests/e2e/http_client.h"

namespace sluice::torture {

using e2e::HttpClient;
using e2e::HttpMessage;
using e2e::Request;
using e2e::SteadyClock;

LoadGenerator::LoadGenerator(uint16_t port, LoadOptions options)
    : port_(port), options_(std::move(options)) {}

LoadGenerator::~LoadGenerator() { Stop(); }

void LoadGenerator::Start() {
  stop_ = false;
  for (int c = 0; c < options_.clients; ++c) threads_.emplace_back([this, c] { Client(c); });
}

void LoadGenerator::Stop() {
  stop_ = true;
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void LoadGenerator::Client(int index) {
  std::mt19937_64 rng(std::random_device{}() + static_cast<uint64_t>(index));
  std::uniform_int_distribution<size_t> size(options_.min_body,
                                             std::max(options_.min_body, options_.max_body));
  const auto period = options_.rate_per_client > 0
                          ? std::chrono::duration_cast<SteadyClock::duration>(
                                std::chrono::duration<double>(1.0 / options_.rate_per_client))
                          : SteadyClock::duration::zero();
  HttpClient client(port_, options_.timeout);
  auto next_send = SteadyClock::now();
  for (uint64_t n = 0; !stop_; ++n) {
    if (period.count() > 0) {
      // Paced; after a stall, carry on at the rate instead of bursting to catch up.
      next_send = std::max(next_send + period, SteadyClock::now() - period);
      std::this_thread::sleep_until(next_send);
    }
    std::string name = options_.tag + "/" + std::to_string(index) + "/" + std::to_string(n);
    Request request;
    request.method = "POST";
    request.target = "/" + name;
    request.headers = {{"Content-Type", "application/octet-stream"}};
    std::string body = "{\"req\":\"" + name + "\",\"pad\":\"";
    size_t want = std::max(size(rng), body.size() + 2);
    body += std::string(want - body.size() - 2, static_cast<char>('a' + n % 26)) + "\"}";
    request.body = body;

    std::optional<HttpMessage> answer = client.RoundTrip(request);
    Outcome outcome{std::move(body), answer ? answer->status : 0, ""};
    if (answer && answer->status == 202) {
      outcome.id = answer->Header("Sluice-Message-Id").value_or("");
    }
    if (!answer || !answer->keep_alive) client.Close();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++status_counts_[outcome.status];
      outcomes_.push_back(std::move(outcome));
    }
    // Refused or cut off: sluice is (re)starting. Do not spin on connect.
    if (!answer) std::this_thread::sleep_for(Millis(5));
  }
}

std::vector<Outcome> LoadGenerator::Outcomes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outcomes_;
}

std::map<std::string, std::string> LoadGenerator::Acknowledged() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> acked;
  for (const Outcome& o : outcomes_) {
    if (o.status == 202) acked.emplace(o.body, o.id);
  }
  return acked;
}

std::set<std::string> LoadGenerator::SentBodies() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> sent;
  for (const Outcome& o : outcomes_) sent.insert(o.body);
  return sent;
}

size_t LoadGenerator::CountStatus(int status) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = status_counts_.find(status);
  return it == status_counts_.end() ? 0 : it->second;
}

size_t LoadGenerator::sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outcomes_.size();
}

}  // namespace sluice::torture
