#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "buffer/queue.h"
#include "metrics/metrics.h"
#include "proxy/dispatcher.h"
#include "proxy/http_server.h"

namespace sluice::proxy {

// The admin listener: /metrics, /livez, /readyz (alias /healthz), and the /admin/* API
// (targets, pause/resume, dead letters), the latter behind admin.token when it is set.
class Admin {
 public:
  using Dispatchers = std::map<std::string, std::unique_ptr<Dispatcher>>;
  // Called before each scrape so computed gauges are fresh.
  using RefreshGauges = std::function<void()>;

  // "log", "metrics", "dispatchers" and "token" must outlive this object; `token` is
  // read on every request, so a reload that changes it takes effect at once.
  Admin(buffer::Queue& queue, metrics::Metrics& metrics, const Dispatchers& dispatchers,
        const std::string& token, RefreshGauges refresh);
  void Handle(HttpRequest&& request, Responder responder);
  void SetShuttingDown() { shutting_down_ = true; }

 private:
  struct Check {
    const char* name;
    bool ok;
    std::string detail;
  };
  std::vector<Check> ReadinessChecks() const;
  void HandleHealth(const HttpRequest& request, std::string_view path, Responder& responder);
  void HandleApi(const HttpRequest& request, std::string_view path, Responder& responder);
  void ListTargets(Responder& responder);
  void ListDeadLetters(Dispatcher& target, const HttpRequest& request, Responder& responder);
  void ChangeDeadLetters(Dispatcher& target, bool replay, const HttpRequest& request,
                         Responder& responder);
  bool Authorized(const HttpRequest& request) const;

  buffer::Queue& queue_;
  metrics::Metrics& metrics_;
  const Dispatchers& dispatchers_;
  const std::string& token_;
  RefreshGauges refresh_;
  bool shutting_down_ = false;
};

}  // namespace sluice::proxy
