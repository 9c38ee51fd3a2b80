#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/deadline.h"

namespace sluice::torture {

using e2e::Millis;

struct LoadOptions {
  int clients = 4;
  // Requests per second per client; 0 = the next request as soon as the answer came.
  double rate_per_client = 0;
  // Body sizes are drawn uniformly from [min_body, max_body].
  size_t min_body = 64;
  size_t max_body = 2048;
  // Tags bodies and paths, so bodies of different generators never collide.
  std::string tag = "load";
  Millis timeout{5'000};
};

// What became of one request.
struct Outcome {
  std::string body;
  int status = 0;  // 0: no answer (refused, reset, closed, timed out)
  std::string id;  // Sluice-Message-Id of a 202
};

// A load generator standing in for real clients: `clients` threads, each on one keep-alive
// connection to 127.0.0.1:port, sending distinct POSTs (/<tag>/<client>/<n>, a unique body
// of random size) and recording each outcome when the request finishes; after Stop() every
// body that was ever (partly) sent is recorded. A request that gets no answer is simply not
// acknowledged: the client closes, waits a little and reconnects, so the load survives
// sluice being killed and restarted on the same port.
class LoadGenerator {
 public:
  LoadGenerator(uint16_t port, LoadOptions options);
  ~LoadGenerator();
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  void Start();
  // Stops sending and joins the clients (each finishes or abandons its request in flight).
  void Stop();

  // Every request so far, in no particular order.
  std::vector<Outcome> Outcomes() const;
  // Acknowledged bodies -> their ids.
  std::map<std::string, std::string> Acknowledged() const;
  // Every body sent (acknowledged or not).
  std::set<std::string> SentBodies() const;
  size_t CountStatus(int status) const;
  size_t sent() const;

 private:
  void Client(int index);

  const uint16_t port_;
  const LoadOptions options_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::vector<Outcome> outcomes_;
  std::map<int, size_t> status_counts_;
};

}  // namespace sluice::torture
