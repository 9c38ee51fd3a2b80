#include "proxy/ingest.h"

#include <memory>
#include <optional>

#include "buffer/message.h"
#include "proxy/logging.h"
#include "proxy/upstream_request.h"

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

Ingest::Ingest(const config::Config& config, buffer::Queue& queue, metrics::Metrics& metrics,
               const common::Clock& clock, const DrainEstimate& drain, OnDurable on_durable,
               OnFatal on_fatal, Forward forward)
    : config_(config),
      queue_(queue),
      metrics_(metrics),
      clock_(clock),
      drain_(drain),
      on_durable_(std::move(on_durable)),
      on_fatal_(std::move(on_fatal)),
      forward_(std::move(forward)) {}

void Ingest::CountAnswer(const std::string& route, common::Duration started, int status) {
  metrics_.HttpRequests(route, status).Increment();
  metrics_.RequestDuration(route).Observe(Seconds(clock_.Now() - started).count());
}

void Ingest::Answer(Responder& responder, const std::string& route, common::Duration started,
                    int status, std::initializer_list<HeaderField> headers, std::string_view body,
                    bool close) {
  CountAnswer(route, started, status);
  responder.Send(status, headers, body, close);
}

void Ingest::Answer(Responder& responder, const std::string& route, common::Duration started,
                    int status, const HeaderList& headers, std::string_view body, bool close) {
  CountAnswer(route, started, status);
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
    PassThrough(std::move(request), std::move(responder), *route, started);
    return;
  }
  Queue(std::move(request), std::move(responder), *route, started);
}

namespace {

// FNV-1a over what makes two requests "the same" for an Idempotency-Key: method,
// request-target and body (the draft's request fingerprint).
uint64_t Fingerprint(std::string_view method, std::string_view target, std::string_view body) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](std::string_view part) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
    h ^= 0xff;  // separator: ("ab","c") and ("a","bc") differ
    h *= 0x100000001b3ull;
  };
  mix(method);
  mix(target);
  mix(body);
  return h;
}

std::string AcceptedBody(std::string_view id, const std::vector<std::string>& targets) {
  size_t size = 32 + id.size();
  for (const auto& t : targets) size += t.size() + 3;
  std::string answer;
  answer.reserve(size);
  answer.append("{\"id\":\"").append(id).append("\",\"targets\":[");
  for (size_t i = 0; i < targets.size(); ++i) {
    answer.append(i ? ",\"" : "\"").append(targets[i]).append("\"");
  }
  answer.append("]}");
  return answer;
}

constexpr size_t kMaxIdempotencyKeyBytes = 255;

}  // namespace

// An accepted request waits for its record and, with an Idempotency-Key, for the key's
// entry: the 202 goes out when both are durable.
struct Ingest::PendingAnswer {
  Responder responder;
  std::string route;
  std::vector<std::string> targets;
  common::Uuid id;
  std::optional<std::string> scoped_key;
  common::Duration started;
  size_t body_bytes = 0;
  int outstanding = 0;
  common::Status record_status;
  common::Status key_status;
};

void Ingest::Queue(HttpRequest&& request, Responder responder, const config::Route& route,
                   common::Duration started) {
  common::Duration unix_now = clock_.UnixNow();
  uint64_t now_ns = static_cast<uint64_t>(unix_now.count());
  const HeaderList kJson = {{"Content-Type", "application/json"}};

  std::optional<std::string> scoped_key;
  uint64_t fingerprint = 0;
  if (config_.idempotency_window.count() > 0) {
    if (const std::string* key = FindHeader(request.headers, "Idempotency-Key")) {
      if (key->empty() || key->size() > kMaxIdempotencyKeyBytes) {
        metrics_.IngestRejected("bad_request").Increment();
        Answer(responder, route.name, started, 400, kJson, JsonError("bad_idempotency_key"));
        return;
      }
      scoped_key = route.name + "\n" + *key;
      fingerprint = Fingerprint(request.method, request.target, request.body);
      if (const auto* seen = idempotency_.Find(*scoped_key, now_ns)) {
        if (seen->entry.fingerprint != fingerprint) {
          Answer(responder, route.name, started, 422, kJson, JsonError("idempotency_key_reused"));
        } else if (seen->pending) {
          // The first request with this key is still being stored (draft: 409).
          Answer(responder, route.name, started, 409,
                 {{"Retry-After", "1"}, {"Content-Type", "application/json"}},
                 JsonError("idempotency_key_in_progress"));
        } else {
          char text[common::Uuid::kTextSize];
          seen->entry.id.Format(text);
          std::string_view id(text, sizeof(text));
          Answer(responder, route.name, started, 202,
                 {{"Sluice-Message-Id", id},
                  {"Sluice-Duplicate", "true"},
                  {"Content-Type", "application/json"}},
                 AcceptedBody(id, route.queue));
        }
        return;
      }
    }
  }

  buffer::Message message;
  message.id = ids_.Next(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(unix_now).count()));
  message.method = std::move(request.method);
  message.target = std::move(request.target);
  message.client_addr = responder.peer_ip();
  message.route = route.name;
  message.targets = route.queue;
  message.headers = std::move(request.headers);
  message.body = std::move(request.body);
  std::string payload = buffer::EncodeMessage(message);

  // Owned by the writes it waits for: the last Settle() deletes it. Two pointers keep
  // the callbacks inside std::function's own storage (no allocation each).
  auto* pending =
      new PendingAnswer{responder,           route.name,         std::move(message.targets),
                        message.id,          scoped_key,         started,
                        message.body.size(), scoped_key ? 2 : 1, common::Status::OK(),
                        common::Status::OK()};

  common::Status s = queue_.Append(std::move(payload), now_ns,
                                   [this, pending](const common::Status& st, uint64_t) {
                                     pending->record_status = st;
                                     Settle(pending);
                                   });
  if (!s.ok()) {
    delete pending;
    if (s.code() == common::Status::Code::kBusy) {
      AnswerQueueFull(responder, route.name, started);
      return;
    }
    if (s.IsUnavailable()) {
      AnswerUnavailable(responder, route.name, started);
      return;
    }
    Answer(responder, route.name, started, 500, kJson, JsonError("storage_failure"),
           /*close=*/true);
    on_fatal_(s);
    return;
  }
  ++pending_;
  if (!scoped_key) return;

  buffer::IdempotencyEntry entry;
  entry.scoped_key = *scoped_key;
  entry.id = message.id;
  entry.fingerprint = fingerprint;
  entry.expires_unix_ns = now_ns + static_cast<uint64_t>(config_.idempotency_window.count());
  idempotency_.Insert(entry, /*pending=*/true);
  s = queue_.AppendIdempotencyKey(std::move(entry),
                                  [this, pending](const common::Status& st, uint64_t) {
                                    pending->key_status = st;
                                    Settle(pending);
                                  });
  if (!s.ok()) {
    pending->key_status = s;
    Settle(pending);
  }
}

void Ingest::Settle(PendingAnswer* p) {
  if (--p->outstanding > 0) return;
  std::unique_ptr<PendingAnswer> owned(p);
  --pending_;
  const common::Status& s = p->record_status;
  if (p->scoped_key) {
    if (s.ok()) {
      // Remembered even when the key's own write failed for space: it still dedupes
      // until a restart, and the message is stored either way.
      idempotency_.MarkDone(*p->scoped_key);
    } else {
      idempotency_.Erase(*p->scoped_key);
    }
  }
  if (s.ok()) {
    if (!p->key_status.ok() && !p->key_status.IsNoSpace()) {
      on_fatal_(p->key_status);  // the record is durable: answer 202, then stop
    }
    metrics_.received_bytes().Increment(static_cast<double>(p->body_bytes));
    char text[common::Uuid::kTextSize];
    p->id.Format(text);
    std::string_view id(text, sizeof(text));
    Answer(p->responder, p->route, p->started, 202,
           {{"Sluice-Message-Id", id}, {"Content-Type", "application/json"}},
           AcceptedBody(id, p->targets));
    on_durable_(p->targets);
  } else if (s.IsNoSpace() || s.code() == common::Status::Code::kBusy) {
    AnswerQueueFull(p->responder, p->route, p->started);
  } else if (s.IsUnavailable()) {
    AnswerUnavailable(p->responder, p->route, p->started);
  } else {
    Answer(p->responder, p->route, p->started, 500, {{"Content-Type", "application/json"}},
           JsonError("storage_failure"), /*close=*/true);
    on_fatal_(s);
  }
}

void Ingest::LoadIdempotencyKeys(std::vector<buffer::IdempotencyEntry> entries) {
  for (auto& e : entries) idempotency_.Insert(std::move(e), /*pending=*/false);
}

void Ingest::ExpireIdempotencyKeys() {
  idempotency_.Expire(static_cast<uint64_t>(clock_.UnixNow().count()));
}

// A `forward:` route: the request goes to the target now and its answer comes back as
// is (status, headers, body); 502 when the target cannot be reached or answers
// garbage, 504 when it does not answer within the target's timeout.
void Ingest::PassThrough(HttpRequest&& request, Responder responder, const config::Route& route,
                         common::Duration started) {
  const config::Target* target = config_.FindTarget(route.forward);
  const HeaderList kJson = {{"Content-Type", "application/json"}};
  if (target == nullptr) {  // a reload removed it between match and here: cannot happen today
    Answer(responder, route.name, started, 502, kJson, JsonError("no_target"));
    return;
  }
  bool head = request.method == "HEAD";
  std::string bytes =
      BuildUpstreamRequest(target->parsed_url, request.method, request.target, request.headers,
                           request.body, responder.peer_ip(), UpstreamExtras{});
  forward_(target->name, std::move(bytes), head,
           [this, responder, route_name = route.name, started](ClientResult r) mutable {
             const HeaderList json = {{"Content-Type", "application/json"}};
             switch (r.error) {
               case ClientResult::Error::kNone:
                 if (r.body_truncated) {
                   Answer(responder, route_name, started, 502, json,
                          JsonError("response_too_large"));
                 } else {
                   Answer(responder, route_name, started, r.response.status,
                          RelayResponseHeaders(r.response.headers), r.response.body);
                 }
                 return;
               case ClientResult::Error::kTimeout:
                 Answer(responder, route_name, started, 504, json, JsonError("gateway_timeout"));
                 return;
               case ClientResult::Error::kRefused:
                 Answer(responder, route_name, started, 503,
                        {{"Retry-After", "1"}, {"Content-Type", "application/json"}},
                        JsonError("unavailable"));
                 return;
               case ClientResult::Error::kConnectFailure:
               default:
                 Answer(responder, route_name, started, 502, json, JsonError("bad_gateway"));
                 return;
             }
           });
}

// Buffer at max_bytes (or the disk full): 503 with the time the oldest segment needs to
// drain at the measured rate.
void Ingest::AnswerQueueFull(Responder& responder, const std::string& route,
                             common::Duration started) {
  metrics_.IngestRejected("queue_full").Increment();
  Answer(
      responder, route, started, 503,
      {{"Retry-After", std::to_string(RetryAfterSeconds())}, {"Content-Type", "application/json"}},
      JsonError("queue_full"));
}

// A broker that cannot be reached or did not confirm: nothing is known to be stored, and
// the client may try again shortly (a retry may duplicate what the broker did keep).
void Ingest::AnswerUnavailable(Responder& responder, const std::string& route,
                               common::Duration started) {
  metrics_.IngestRejected("unavailable").Increment();
  Answer(responder, route, started, 503,
         {{"Retry-After", "1"}, {"Content-Type", "application/json"}}, JsonError("unavailable"));
}

int Ingest::RetryAfterSeconds() const {
  return drain_.RetryAfterSeconds(queue_.BacklogBeforeRoom(drain_.low_water()));
}

}  // namespace sluice::proxy
