#include "proxy/ingest.h"

#include "buffer/message.h"
#include "proxy/logging.h"

namespace sluice::proxy {
namespace {

using Seconds = std::chrono::duration<double>;
constexpr const char* kNoRoute = "none";  // route label for requests that have no route

std::string JsonError(std::string_view code) {
  return std::string("{\"error\":\"").append(code).append("\"}");
}

const char* RejectReason(int status) {
  switch (status) {
    case 408:
      return "timeout";
    case 413:
      return "too_large";
    case 431:
      return "too_large";
    case 503:
      return "queue_full";
    default:
      return "bad_request";
  }
}

}  // namespace

Ingest::Ingest(const config::Config& config, buffer::Log& log, metrics::Metrics& metrics,
               const common::Clock& clock, const DrainEstimate& drain, OnDurable on_durable,
               OnFatal on_fatal)
    : config_(config),
      log_(log),
      metrics_(metrics),
      clock_(clock),
      drain_(drain),
      on_durable_(std::move(on_durable)),
      on_fatal_(std::move(on_fatal)) {}

void Ingest::Answer(Responder& responder, const std::string& route, common::Duration started,
                    int status, const HeaderList& headers, std::string_view body, bool close) {
  metrics_.HttpRequests(route, status).Increment();
  metrics_.RequestDuration(route).Observe(Seconds(clock_.Now() - started).count());
  responder.Send(status, headers, body, close);
}

void Ingest::CountRejected(int status) {
  metrics_.HttpRequests(kNoRoute, status).Increment();
  metrics_.IngestRejected(RejectReason(status)).Increment();
}

void Ingest::Handle(HttpRequest&& request, Responder responder) {
  common::Duration started = clock_.Now();
  if (shutting_down_) {
    metrics_.IngestRejected("shutting_down").Increment();
    Answer(responder, kNoRoute, started, 503,
           {{"Retry-After", "1"}, {"Content-Type", "application/json"}}, JsonError("shutting_down"),
           /*close=*/true);
    return;
  }
  const config::Route* route = config_.MatchRoute(request.method, request.Path());
  if (route == nullptr) {
    metrics_.IngestRejected("no_route").Increment();
    Answer(responder, kNoRoute, started, 404, {{"Content-Type", "application/json"}},
           JsonError("no_route"));
    return;
  }
  if (!route->forward.empty()) {
    // Pass-through routes are delivery's job (see issue: pass-through); until then they
    // answer honestly rather than queue a read.
    Answer(responder, route->name, started, 501, {{"Content-Type", "application/json"}},
           JsonError("forward_not_supported"));
    return;
  }
  Queue(std::move(request), std::move(responder), *route, started);
}

void Ingest::Queue(HttpRequest&& request, Responder responder, const config::Route& route,
                   common::Duration started) {
  buffer::Message message;
  common::Duration unix_now = clock_.UnixNow();
  message.id = ids_.Next(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(unix_now).count()));
  message.method = std::move(request.method);
  message.target = std::move(request.target);
  message.client_addr = responder.peer_ip();
  message.route = route.name;
  message.targets = route.queue;
  message.headers = std::move(request.headers);
  message.body = std::move(request.body);
  size_t body_bytes = message.body.size();

  std::string id = message.id.ToString();
  std::string answer = "{\"id\":\"" + id + "\",\"targets\":[";
  for (size_t i = 0; i < route.queue.size(); ++i) {
    answer.append(i ? ",\"" : "\"").append(route.queue[i]).append("\"");
  }
  answer.append("]}");

  auto done = [this, responder, route_name = route.name, targets = route.queue, id,
               answer = std::move(answer), started,
               body_bytes](const common::Status& s, uint64_t) mutable {
    --pending_;
    if (s.ok()) {
      metrics_.received_bytes().Increment(static_cast<double>(body_bytes));
      Answer(responder, route_name, started, 202,
             {{"Sluice-Message-Id", id}, {"Content-Type", "application/json"}}, answer);
      on_durable_(targets);
    } else if (s.IsNoSpace()) {
      metrics_.IngestRejected("queue_full").Increment();
      Answer(responder, route_name, started, 503,
             {{"Retry-After", std::to_string(RetryAfterSeconds())},
              {"Content-Type", "application/json"}},
             JsonError("queue_full"));
    } else {
      Answer(responder, route_name, started, 500, {{"Content-Type", "application/json"}},
             JsonError("storage_failure"), /*close=*/true);
      on_fatal_(s);
    }
  };
  common::Status s = log_.Append(buffer::EncodeMessage(message),
                                 static_cast<uint64_t>(unix_now.count()), std::move(done));
  if (s.ok()) {
    ++pending_;
    return;
  }
  if (s.code() == common::Status::Code::kBusy) {
    metrics_.IngestRejected("queue_full").Increment();
    Answer(responder, route.name, started, 503,
           {{"Retry-After", std::to_string(RetryAfterSeconds())},
            {"Content-Type", "application/json"}},
           JsonError("queue_full"));
    return;
  }
  Answer(responder, route.name, started, 500, {{"Content-Type", "application/json"}},
         JsonError("storage_failure"), /*close=*/true);
  on_fatal_(s);
}

int Ingest::RetryAfterSeconds() const {
  uint64_t reclaim_at = log_.NextReclaimSeq();
  uint64_t low = drain_.low_water();
  return drain_.RetryAfterSeconds(reclaim_at > low ? reclaim_at - low : 0);
}

}  // namespace sluice::proxy
