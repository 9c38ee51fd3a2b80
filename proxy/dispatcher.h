#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "buffer/message.h"
#include "buffer/queue.h"
#include "common/clock.h"
#include "config/config.h"
#include "limiter/limiter.h"
#include "metrics/metrics.h"
#include "proxy/http_client.h"
#include "proxy/pacing_timer.h"

namespace sluice::proxy {

// Delivers one target's messages: takes them from its TargetQueue in order,
// starts each attempt when the token bucket and the concurrency limit allow, retries
// with full-jitter backoff, pauses on Retry-After, dead-letters what cannot be
// delivered, and tells the queue which messages are finished.
//
// Memory is O(in flight + retrying): the retry set is bounded, and while it is full
// fresh messages stay in the queue.
class Dispatcher {
 public:
  // "queue" must outlive this object; `source` is the target's share of it.
  Dispatcher(uv_loop_t* loop, const config::Target& target, buffer::Queue& queue,
             std::unique_ptr<buffer::TargetQueue> source, metrics::Metrics& metrics,
             const common::Clock& clock);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Starts what can be started now; called when records became readable and after
  // every event of its own.
  void Pump();
  // Pass-through (a `forward:` route): sends a serialised client request now, ahead of
  // queued deliveries, within the concurrency limit (not the rate: reads are not paced,
  // and an admin pause does not hold them). `done` gets the target's answer.
  using ForwardDone = std::function<void(ClientResult)>;
  void Forward(std::string request, bool head, ForwardDone done);
  // `n` new messages for this target became durable.
  void OnQueued(uint64_t n);
  // Stop starting deliveries (shutdown); in-flight ones finish.
  void Stop();
  // Refreshes gauges that are computed, not counted (oldest message age).
  void RefreshGauges();
  // A reload changed this target: rate, burst, concurrency, timeout, retry policy and
  // URL apply to attempts started from now on; in-flight and retrying messages stay.
  void Reconfigure(const config::Target& target);
  // Admin: stop / restart starting deliveries; queued messages stay.
  void Pause();
  void Resume();
  bool paused_by_admin() const { return admin_paused_; }
  // "active", "idle", "paused" (admin), "backoff" (Retry-After pause), "stopped".
  const char* state() const;
  double oldest_age_seconds() const { return oldest_age_seconds_; }
  const config::Target& target() const { return target_; }
  uint32_t concurrency_limit() const { return limit_.limit(); }

  const std::string& name() const { return target_.name; }
  // Attempts and pass-through requests in progress.
  size_t in_flight() const { return in_flight_.size() + forwards_in_flight_; }
  size_t retrying() const { return retries_.size(); }
  uint64_t queued() const { return queued_ > 0 ? static_cast<uint64_t>(queued_) : 0; }
  // How far the target has drained (TargetQueue::progress).
  uint64_t progress() const { return source_->progress(); }

 private:
  struct Delivery {
    buffer::QueuedMessage queued;  // the payload is kept for dead-lettering
    uint32_t attempts = 0;
    int last_status = 0;
    uint32_t in_flight_at_start = 0;  // for the adaptive limit: was the limit in use?
    common::Duration attempt_started{0};
  };
  enum class Outcome { kDelivered, kRetry, kReject };

  void FillLookahead();
  std::unique_ptr<Delivery> TakeNext(common::Duration now);
  void StartAttempt(std::unique_ptr<Delivery> delivery);
  void OnAttemptDone(uint64_t seq, ClientResult result);
  void ScheduleRetry(std::unique_ptr<Delivery> d, common::Duration now, const ClientResult& r);
  void DeadLetter(std::unique_ptr<Delivery> d, const char* reason);
  void Finish(uint64_t tag);
  void ArmTimer(common::Duration now, bool waiting_for_token);
  uint32_t BatchTokens() const;
  void UpdatePausedGauge();
  void ConfigureConcurrency();
  std::string BuildRequest(const Delivery& d) const;
  static void OnTimer(uv_timer_t* timer);

  uv_loop_t* loop_;
  config::Target target_;
  buffer::Queue& queue_;
  std::unique_ptr<buffer::TargetQueue> source_;
  metrics::TargetMetrics& metrics_;
  const common::Clock& clock_;
  limiter::TokenBucket bucket_;
  // Wakes when the awaited tokens are due, to the nanosecond; retries and pauses use timer_.
  PacingTimer pacing_timer_;
  common::Duration token_due_{0};  // when pacing_timer_ fires, while armed
  limiter::ConcurrencyLimit limit_;
  std::unique_ptr<limiter::AdaptiveConcurrency> adaptive_;  // concurrency: {adaptive: true}
  limiter::Backoff backoff_;
  size_t max_retrying_;

  struct WaitingForward {
    std::string request;
    bool head;
    ForwardDone done;
  };
  void StartForward();
  static constexpr size_t kMaxWaitingForwards = 1024;
  std::deque<WaitingForward> forwards_;
  size_t forwards_in_flight_ = 0;

  std::unique_ptr<Delivery> next_;   // read ahead: the next fresh message
  std::unique_ptr<Delivery> spare_;  // reused while the queue has nothing
  std::unordered_map<uint64_t, std::unique_ptr<Delivery>> in_flight_;   // by tag
  std::multimap<common::Duration, std::unique_ptr<Delivery>> retries_;  // by due time
  // Signed: a message can be delivered before the ingest callback that counts it runs
  // (records are readable once durable; the 202 callbacks run a little later), and a
  // broker shared by several instances delivers messages other instances stored.
  int64_t queued_ = 0;
  common::Duration paused_until_{0};
  bool stopped_ = false;
  bool admin_paused_ = false;
  double oldest_age_seconds_ = 0;
  uint64_t skipped_logged_ = 0;  // source_->skipped() when last logged
  bool pumping_ = false;
  bool pump_again_ = false;

  uv_timer_t* timer_;  // heap: freed in its close callback, which may outlive us
  // Pools for a URL changed by a reload, kept until their last attempt ends.
  std::vector<std::unique_ptr<HttpClientPool>> retired_clients_;
  std::unique_ptr<HttpClientPool> forward_client_;  // relays whole responses
  std::unique_ptr<HttpClientPool> client_;          // last: destroyed first
};

}  // namespace sluice::proxy
