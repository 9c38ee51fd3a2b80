#include "proxy/admin.h"

namespace sluice::proxy {

Admin::Admin(buffer::Log& log, metrics::Metrics& metrics, RefreshGauges refresh)
    : log_(log), metrics_(metrics), refresh_(std::move(refresh)) {}

std::vector<Admin::Check> Admin::ReadinessChecks() const {
  common::Status fatal = log_.fatal_error();
  bool below_max = log_.bytes() < log_.max_bytes();
  return {
      {"buffer_open", fatal.ok(), fatal.ok() ? "" : fatal.ToString()},
      {"buffer_below_max_bytes", below_max,
       below_max ? "" : "buffer at max_bytes: ingest answers 503"},
      {"not_shutting_down", !shutting_down_, shutting_down_ ? "draining" : ""},
  };
}

void Admin::Handle(HttpRequest&& request, Responder responder) {
  std::string_view path = request.Path();
  bool known = path == "/metrics" || path == "/livez" || path == "/readyz" || path == "/healthz";
  if (!known) {
    responder.Send(404, {{"Content-Type", "text/plain; charset=utf-8"}}, "not found\n");
    return;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    responder.Send(405, {{"Allow", "GET, HEAD"}, {"Content-Type", "text/plain; charset=utf-8"}},
                   "method not allowed\n");
    return;
  }
  if (path == "/metrics") {
    if (refresh_) refresh_();
    responder.Send(200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                   metrics_.Serialize());
    return;
  }
  if (path == "/livez") {
    responder.Send(200, {{"Content-Type", "text/plain; charset=utf-8"}}, "ok\n");
    return;
  }
  // /readyz and /healthz
  auto checks = ReadinessChecks();
  bool ready = true;
  for (const auto& c : checks) ready = ready && c.ok;
  std::string body;
  if (request.target.find("verbose") != std::string::npos) {
    for (const auto& c : checks) {
      body.append(c.ok ? "[+] " : "[-] ").append(c.name).append(c.ok ? " ok" : " failed");
      if (!c.detail.empty()) body.append(": ").append(c.detail);
      body.append("\n");
    }
  }
  body.append(ready ? "ok\n" : "not ready\n");
  responder.Send(ready ? 200 : 503, {{"Content-Type", "text/plain; charset=utf-8"}}, body);
}

}  // namespace sluice::proxy
