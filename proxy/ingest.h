#pragma once

#include <functional>
#include <string>
#include <vector>

#include "buffer/idempotency.h"
#include "buffer/queue.h"
#include "common/clock.h"
#include "common/uuid.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "proxy/drain_estimate.h"
#include "proxy/http_client.h"
#include "proxy/http_server.h"

namespace sluice::proxy {

// The ingest side: routes each request, stores queued ones in the log and answers 202
// only once the log says the record is durable (per buffer.fsync).
class Ingest {
 public:
  // Called on the loop thread when a message became durable, with its targets.
  using OnDurable = std::function<void(const std::vector<std::string>& targets)>;
  // Called when the log failed in a way that must stop the process (fsync error).
  using OnFatal = std::function<void(const common::Status&)>;
  // Sends a serialised request to a target synchronously (pass-through routes).
  using Forward = std::function<void(const std::string& target, std::string request, bool head,
                                     std::function<void(ClientResult)> done)>;

  // "config", "queue", "metrics" and "clock" must outlive this object.
  Ingest(const config::Config& config, buffer::Queue& queue, metrics::Metrics& metrics,
         const common::Clock& clock, const DrainEstimate& drain, OnDurable on_durable,
         OnFatal on_fatal, Forward forward);

  void Handle(HttpRequest&& request, Responder responder);
  // Counts a request the HTTP server refused before routing (400, 408, 413, 431, 501, 503).
  void CountRejected(int status);
  // From now on: 503, Retry-After: 1, Connection: close.
  void SetShuttingDown() { shutting_down_ = true; }
  // Appends still waiting for the disk.
  size_t pending() const { return pending_; }
  // Idempotency-Keys remembered from before a restart.
  void LoadIdempotencyKeys(std::vector<buffer::IdempotencyEntry> entries);
  // Forgets keys past idempotency.window (call periodically).
  void ExpireIdempotencyKeys();

 private:
  void Answer(Responder& responder, const std::string& route, common::Duration started, int status,
              std::initializer_list<HeaderField> headers, std::string_view body,
              bool close = false);
  void Answer(Responder& responder, const std::string& route, common::Duration started, int status,
              const HeaderList& headers, std::string_view body, bool close = false);
  void CountAnswer(const std::string& route, common::Duration started, int status);
  struct PendingAnswer;
  void Queue(HttpRequest&& request, Responder responder, const config::Route& route,
             common::Duration started);
  // Called once by each write a pending answer waits for; the last one answers and
  // frees it.
  void Settle(PendingAnswer* pending);
  void PassThrough(HttpRequest&& request, Responder responder, const config::Route& route,
                   common::Duration started);
  void AnswerQueueFull(Responder& responder, const std::string& route, common::Duration started);
  void AnswerUnavailable(Responder& responder, const std::string& route, common::Duration started);
  // Seconds a client should wait before retrying a full queue: until the oldest segment
  // is drained at the rate the targets have been draining.
  int RetryAfterSeconds() const;

  const config::Config& config_;
  buffer::Queue& queue_;
  metrics::Metrics& metrics_;
  const common::Clock& clock_;
  const DrainEstimate& drain_;
  OnDurable on_durable_;
  OnFatal on_fatal_;
  Forward forward_;
  common::UuidV7Generator ids_;
  // A million keys cost ~150 MB at most; past that the oldest are forgotten first.
  buffer::IdempotencyIndex idempotency_{1'000'000};
  bool shutting_down_ = false;
  size_t pending_ = 0;
};

}  // namespace sluice::proxy
