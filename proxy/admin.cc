#include "proxy/admin.h"

#include <charconv>
#include <optional>

#include "buffer/message.h"
#include "common/json_writer.h"
#include "proxy/logging.h"

namespace sluice::proxy {

using common::JsonWriter;
namespace {

const HeaderList kJson = {{"Content-Type", "application/json"}};
const HeaderList kText = {{"Content-Type", "text/plain; charset=utf-8"}};

void SendError(Responder& r, int status, std::string_view code, HeaderList headers = kJson) {
  JsonWriter json;
  json.BeginObject().Key("error").String(code).EndObject();
  r.Send(status, headers, json.str());
}

// The value of `name` in the query string (no percent-decoding: ids and numbers only).
std::optional<std::string> QueryParam(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name) {
      return std::string(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// "/admin/targets/NAME/rest" -> NAME and "/rest".
bool SplitTargetPath(std::string_view path, std::string_view* name, std::string_view* rest) {
  constexpr std::string_view kPrefix = "/admin/targets/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view tail = path.substr(kPrefix.size());
  size_t slash = tail.find('/');
  *name = tail.substr(0, slash);
  *rest = slash == std::string_view::npos ? std::string_view() : tail.substr(slash);
  return !name->empty();
}

}  // namespace

Admin::Admin(buffer::Queue& queue, metrics::Metrics& metrics, const Dispatchers& dispatchers,
             const std::string& token, RefreshGauges refresh)
    : queue_(queue),
      metrics_(metrics),
      dispatchers_(dispatchers),
      token_(token),
      refresh_(std::move(refresh)) {}

std::vector<Admin::Check> Admin::ReadinessChecks() const {
  common::Status fatal = queue_.fatal_error();
  common::Status available = queue_.Availability();
  bool full = available.code() == common::Status::Code::kBusy;
  return {
      {"buffer_open", fatal.ok(), fatal.ok() ? "" : fatal.ToString()},
      {"buffer_below_max_bytes", !full, full ? "buffer at max_bytes: ingest answers 503" : ""},
      {"buffer_reachable", available.ok() || full || !fatal.ok(),
       available.IsUnavailable() ? available.ToString() : ""},
      {"not_shutting_down", !shutting_down_, shutting_down_ ? "draining" : ""},
  };
}

bool Admin::Authorized(const HttpRequest& request) const {
  if (token_.empty()) return true;
  const std::string* auth = FindHeader(request.headers, "Authorization");
  if (auth == nullptr || auth->size() < 7 || !EqualsIgnoreCase(auth->substr(0, 7), "Bearer ")) {
    return false;
  }
  std::string_view given = std::string_view(*auth).substr(7);
  // Compare in time independent of where the first difference is.
  if (given.size() != token_.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ token_[i]);
  return diff == 0;
}

void Admin::Handle(HttpRequest&& request, Responder responder) {
  std::string_view path = request.Path();
  if (path == "/admin" || path.substr(0, 7) == "/admin/") {
    if (!Authorized(request)) {
      HeaderList headers = kJson;
      headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sluice\"");
      SendError(responder, 401, "unauthorized", headers);
      return;
    }
    HandleApi(request, path, responder);
    return;
  }
  HandleHealth(request, path, responder);
}

void Admin::HandleHealth(const HttpRequest& request, std::string_view path, Responder& responder) {
  bool known = path == "/metrics" || path == "/livez" || path == "/readyz" || path == "/healthz";
  if (!known) {
    responder.Send(404, kText, "not found\n");
    return;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    responder.Send(405, {{"Allow", "GET, HEAD"}, kText[0]}, "method not allowed\n");
    return;
  }
  if (path == "/metrics") {
    if (refresh_) refresh_();
    responder.Send(200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                   metrics_.Serialize());
    return;
  }
  if (path == "/livez") {
    responder.Send(200, kText, "ok\n");
    return;
  }
  auto checks = ReadinessChecks();
  bool ready = true;
  for (const auto& c : checks) ready = ready && c.ok;
  std::string body;
  if (QueryParam(request.target, "verbose")) {
    for (const auto& c : checks) {
      body.append(c.ok ? "[+] " : "[-] ").append(c.name).append(c.ok ? " ok" : " failed");
      if (!c.detail.empty()) body.append(": ").append(c.detail);
      body.append("\n");
    }
  }
  body.append(ready ? "ok\n" : "not ready\n");
  responder.Send(ready ? 200 : 503, kText, body);
}

void Admin::HandleApi(const HttpRequest& request, std::string_view path, Responder& responder) {
  const std::string& method = request.method;
  auto method_not_allowed = [&](const char* allow) {
    HeaderList headers = kJson;
    headers.emplace_back("Allow", allow);
    SendError(responder, 405, "method_not_allowed", headers);
  };
  if (path == "/admin/targets") {
    if (method != "GET") return method_not_allowed("GET");
    ListTargets(responder);
    return;
  }
  std::string_view name;
  std::string_view rest;
  if (!SplitTargetPath(path, &name, &rest)) return SendError(responder, 404, "not_found");
  auto it = dispatchers_.find(std::string(name));
  if (it == dispatchers_.end()) return SendError(responder, 404, "unknown_target");
  Dispatcher& target = *it->second;

  if (rest == "/pause" || rest == "/resume") {
    if (method != "POST") return method_not_allowed("POST");
    if (rest == "/pause") {
      target.Pause();
    } else {
      target.Resume();
    }
    JsonWriter json;
    json.BeginObject()
        .Key("name")
        .String(target.name())
        .Key("paused")
        .Bool(target.paused_by_admin());
    json.EndObject();
    responder.Send(200, kJson, json.str());
    return;
  }
  if (rest == "/dead-letters") {
    if (method == "GET") return ListDeadLetters(target, request, responder);
    if (method == "DELETE") return ChangeDeadLetters(target, /*replay=*/false, request, responder);
    return method_not_allowed("GET, DELETE");
  }
  if (rest == "/dead-letters/replay") {
    if (method != "POST") return method_not_allowed("POST");
    return ChangeDeadLetters(target, /*replay=*/true, request, responder);
  }
  SendError(responder, 404, "not_found");
}

void Admin::ListTargets(Responder& responder) {
  if (refresh_) refresh_();
  JsonWriter json;
  json.BeginArray();
  for (const auto& [name, d] : dispatchers_) {
    const config::Target& t = d->target();
    json.BeginObject();
    json.Key("name").String(name);
    json.Key("url").String(t.url);
    json.Key("queued").Uint(d->queued());
    json.Key("oldest_age_seconds").Number(d->oldest_age_seconds());
    json.Key("in_flight").Uint(d->in_flight());
    json.Key("retrying").Uint(d->retrying());
    json.Key("dead_letters").Uint(queue_.DeadLetterCount(name));
    if (t.rate.unlimited()) {
      json.Key("rate").String("unlimited");
    } else {
      json.Key("rate").Number(t.rate.per_second);
    }
    json.Key("concurrency_limit").Uint(d->concurrency_limit());
    // rate, burst and concurrency hold for this instance: on a broker several instances
    // share the queue, and each paces its own deliveries.
    json.Key("limits_per").String("instance");
    json.Key("buffer").String(queue_.kind());
    json.Key("paused").Bool(d->paused_by_admin());
    json.Key("state").String(d->state());
    json.EndObject();
  }
  json.EndArray();
  responder.Send(200, kJson, json.str());
}

void Admin::ListDeadLetters(Dispatcher& target, const HttpRequest& request, Responder& responder) {
  size_t limit = 100;
  if (auto v = QueryParam(request.target, "limit")) {
    size_t parsed = 0;
    auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), parsed);
    if (ec != std::errc() || ptr != v->data() + v->size() || parsed == 0) {
      return SendError(responder, 400, "bad_limit");
    }
    limit = std::min<size_t>(parsed, 10000);
  }
  std::optional<std::string> after = QueryParam(request.target, "after");
  if (after && !common::Uuid::Parse(*after)) return SendError(responder, 400, "bad_id");

  std::vector<buffer::DeadLetter> letters;
  common::Status s = queue_.ListDeadLetters(target.name(), &letters);
  if (!s.ok()) return SendError(responder, 500, s.ToString());
  JsonWriter json;
  json.BeginArray();
  bool skipping = after.has_value();
  size_t emitted = 0;
  for (const auto& letter : letters) {
    auto message = buffer::DecodeMessage(letter.payload);
    if (!message) continue;
    std::string id = message->id.ToString();
    if (skipping) {
      if (id == *after) skipping = false;
      continue;
    }
    if (emitted++ == limit) break;
    json.BeginObject();
    json.Key("id").String(id);
    json.Key("received_at").String(logging::FormatUtc(letter.ingest_unix_ns));
    json.Key("attempts").Uint(letter.attempts);
    json.Key("last_status").Int(letter.last_status);
    json.Key("reason").String(letter.reason);
    json.Key("method").String(message->method);
    json.Key("path").String(message->target);
    json.Key("size").Uint(message->body.size());
    json.EndObject();
  }
  json.EndArray();
  responder.Send(200, kJson, json.str());
}

void Admin::ChangeDeadLetters(Dispatcher& target, bool replay, const HttpRequest& request,
                              Responder& responder) {
  std::optional<common::Uuid> id;
  if (auto v = QueryParam(request.target, "id")) {
    id = common::Uuid::Parse(*v);
    if (!id) return SendError(responder, 400, "bad_id");
  }
  std::string name = target.name();
  const Dispatchers& dispatchers = dispatchers_;
  metrics::Metrics& metrics = metrics_;
  buffer::Queue& queue = queue_;
  auto done = [responder, replay, name, &dispatchers, &metrics, &queue](const common::Status& s,
                                                                        uint64_t count) mutable {
    metrics.ForTarget(name).dead_letters->Set(static_cast<double>(queue.DeadLetterCount(name)));
    if (!s.ok()) {
      SendError(responder, 500, s.ToString());
      return;
    }
    if (replay) {
      auto it = dispatchers.find(name);
      if (it != dispatchers.end()) it->second->Pump();
    }
    logging::Info(replay ? "dead letters replayed" : "dead letters purged",
                  {{"target", name}, {"count", count}});
    JsonWriter json;
    json.BeginObject().Key(replay ? "replayed" : "purged").Uint(count).EndObject();
    responder.Send(200, kJson, json.str());
  };
  size_t queued = 0;
  common::Status s = replay ? queue_.ReplayDeadLetters(name, id, done, &queued)
                            : queue_.PurgeDeadLetters(name, id, done);
  if (s.IsNotFound()) return SendError(responder, 404, "no_dead_letters");
  if (!s.ok()) return SendError(responder, 503, s.ToString());
  // The copies are queued for this target now; its depth counts them from here.
  if (replay) target.OnQueued(queued);
}

}  // namespace sluice::proxy
