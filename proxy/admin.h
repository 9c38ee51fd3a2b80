#pragma once

#include <functional>
#include <string>
#include <vector>

#include "buffer/log.h"
#include "metrics/metrics.h"
#include "proxy/http_server.h"

namespace sluice::proxy {

// The admin listener: /metrics, /livez, /readyz (and its alias /healthz).
class Admin {
 public:
  // Called before each scrape so computed gauges are fresh.
  using RefreshGauges = std::function<void()>;

  Admin(buffer::Log& log, metrics::Metrics& metrics, RefreshGauges refresh);
  void Handle(HttpRequest&& request, Responder responder);
  void SetShuttingDown() { shutting_down_ = true; }

 private:
  struct Check {
    const char* name;
    bool ok;
    std::string detail;
  };
  std::vector<Check> ReadinessChecks() const;

  buffer::Log& log_;
  metrics::Metrics& metrics_;
  RefreshGauges refresh_;
  bool shutting_down_ = false;
};

}  // namespace sluice::proxy
