#include "proxy/dispatcher.h"

#include <algorithm>
#include <random>

#include "proxy/logging.h"
#include "proxy/upstream_request.h"

namespace sluice::proxy {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using Seconds = std::chrono::duration<double>;
// A pass-through response larger than this is answered 502 rather than held in memory.
constexpr size_t kMaxForwardResponseBytes = 16 << 20;

}  // namespace

Dispatcher::Dispatcher(uv_loop_t* loop, const config::Target& target, buffer::Queue& queue,
                       std::unique_ptr<buffer::TargetQueue> source, metrics::Metrics& metrics,
                       const common::Clock& clock)
    : loop_(loop),
      target_(target),
      queue_(queue),
      source_(std::move(source)),
      metrics_(metrics.ForTarget(target.name)),
      clock_(clock),
      bucket_(target.rate, target.burst, clock),
      pacing_timer_(loop, [this] { Pump(); }),
      limit_(target.concurrency.limit),  // ConfigureConcurrency() sets the real one
      backoff_(target.retry.initial_backoff, target.retry.max_backoff, std::random_device{}()),
      max_retrying_(std::max<size_t>(64, 4 * size_t{target.concurrency.limit})),
      queued_(static_cast<int64_t>(source_->queued_at_open())),
      timer_(new uv_timer_t),
      forward_client_(std::make_unique<HttpClientPool>(
          loop, target.parsed_url.host, target.parsed_url.port, kMaxForwardResponseBytes)),
      client_(std::make_unique<HttpClientPool>(loop, target.parsed_url.host, target.parsed_url.port,
                                               64 << 10)) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  ConfigureConcurrency();
  metrics_.queue_messages->Set(static_cast<double>(queued_));
  metrics_.rate_limit_per_second->Set(target.rate.per_second);
  metrics_.dead_letters->Set(static_cast<double>(queue_.DeadLetterCount(target.name)));
}

Dispatcher::~Dispatcher() {
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void Dispatcher::OnQueued(uint64_t n) {
  queued_ += static_cast<int64_t>(n);
  metrics_.queue_messages->Set(static_cast<double>(queued()));
}

void Dispatcher::Stop() {
  stopped_ = true;
  uv_timer_stop(timer_);
  pacing_timer_.Stop();
  auto waiting = std::move(forwards_);
  forwards_.clear();
  for (auto& w : waiting) {
    ClientResult refused;
    refused.error = ClientResult::Error::kRefused;
    refused.error_detail = "shutting down";
    w.done(std::move(refused));
  }
}

void Dispatcher::Forward(std::string request, bool head, ForwardDone done) {
  if (stopped_ || forwards_.size() >= kMaxWaitingForwards) {
    ClientResult refused;
    refused.error = ClientResult::Error::kRefused;
    refused.error_detail = stopped_ ? "shutting down" : "too many requests waiting";
    done(std::move(refused));
    return;
  }
  forwards_.push_back(WaitingForward{std::move(request), head, std::move(done)});
  Pump();
}

void Dispatcher::StartForward() {
  (void)limit_.TryAcquire();  // checked by the caller
  WaitingForward w = std::move(forwards_.front());
  forwards_.pop_front();
  ++forwards_in_flight_;
  metrics_.in_flight->Set(static_cast<double>(in_flight()));
  forward_client_->Send(std::move(w.request), w.head, target_.timeout,
                        [this, done = std::move(w.done)](ClientResult r) {
                          limit_.Release();
                          --forwards_in_flight_;
                          metrics_.in_flight->Set(static_cast<double>(in_flight()));
                          done(std::move(r));
                          Pump();
                        });
}

void Dispatcher::Pump() {
  if (pumping_) {
    pump_again_ = true;  // re-entered from a callback: finish the outer pass first
    return;
  }
  pumping_ = true;
  do {
    pump_again_ = false;
    bool waiting_for_token = false;
    bool batch_started = false;
    common::Duration now = clock_.Now();
    // Pass-through first: a client is waiting on the other end.
    while (!stopped_ && !forwards_.empty() && limit_.in_flight() < limit_.limit()) {
      StartForward();
    }
    while (!stopped_ && !admin_paused_ && now >= paused_until_ &&
           limit_.in_flight() < limit_.limit()) {
      FillLookahead();
      bool has_due_retry = !retries_.empty() && retries_.begin()->first <= now;
      bool fifo_blocked = target_.ordering == config::Ordering::kFifo && !retries_.empty();
      bool has_fresh = next_ != nullptr && !fifo_blocked && retries_.size() < max_retrying_;
      if (!has_due_retry && !has_fresh) break;
      // At high rates deliveries start in batches: a pass starts none until a batch's
      // worth of tokens is there, then as many as there are.
      if (!batch_started && bucket_.TimeUntilTokens(BatchTokens()) > common::Duration::zero()) {
        waiting_for_token = true;
        break;
      }
      batch_started = true;
      if (!bucket_.TryTake()) {
        waiting_for_token = true;
        break;
      }
      StartAttempt(TakeNext(now));
    }
    if (!stopped_) ArmTimer(now, waiting_for_token);
  } while (pump_again_);
  pumping_ = false;
}

// Takes the next message from the queue into a delivery, unless one is waiting. The
// message is decoded in place: the views point into its payload, and a Delivery lives on
// the heap and never moves.
void Dispatcher::FillLookahead() {
  if (next_ != nullptr) return;
  if (spare_ == nullptr) spare_ = std::make_unique<Delivery>();
  common::Status error;
  auto result = source_->Next(&spare_->queued, &error);
  if (source_->skipped() != skipped_logged_) {
    logging::EmitLimited(logging::Level::kError, "undecodable messages skipped",
                         {{"target", target_.name}, {"skipped", source_->skipped()}});
    skipped_logged_ = source_->skipped();
  }
  if (result == buffer::TargetQueue::Result::kMessage) {
    next_ = std::move(spare_);
  } else if (result == buffer::TargetQueue::Result::kError) {
    logging::EmitLimited(logging::Level::kError, "reading the queue failed",
                         {{"target", target_.name}, {"error", error.ToString()}});
  }
}

std::unique_ptr<Dispatcher::Delivery> Dispatcher::TakeNext(common::Duration now) {
  if (!retries_.empty() && retries_.begin()->first <= now) {
    auto node = retries_.extract(retries_.begin());
    return std::move(node.mapped());
  }
  return std::move(next_);
}

void Dispatcher::StartAttempt(std::unique_ptr<Delivery> d) {
  (void)limit_.TryAcquire();  // checked by the caller: in_flight < limit
  ++d->attempts;
  d->in_flight_at_start = limit_.in_flight();
  uint64_t tag = d->queued.tag;
  std::string request = BuildRequest(*d);
  bool head = d->queued.message.method == "HEAD";
  d->attempt_started = clock_.Now();
  in_flight_[tag] = std::move(d);
  metrics_.in_flight->Set(static_cast<double>(in_flight()));
  // Two words of capture: std::function keeps them without allocating.
  client_->Send(std::move(request), head, target_.timeout,
                [this, tag](ClientResult r) { OnAttemptDone(tag, std::move(r)); });
}

std::string Dispatcher::BuildRequest(const Delivery& d) const {
  const buffer::MessageView& m = d.queued.message;
  char id[common::Uuid::kTextSize];
  m.id.Format(id);
  return BuildUpstreamRequest(target_.parsed_url, m.method, m.target, m.headers, m.body,
                              m.client_addr,
                              UpstreamExtras{std::string_view(id, sizeof(id)), d.attempts});
}

void Dispatcher::OnAttemptDone(uint64_t tag, ClientResult result) {
  limit_.Release();
  // A pool retired by a reload goes once nothing runs on it. Safe even from inside that
  // pool's own callback: its connections are freed only in their close callbacks.
  std::erase_if(retired_clients_, [](const auto& pool) { return pool->busy_count() == 0; });
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return;
  std::unique_ptr<Delivery> d = std::move(it->second);
  in_flight_.erase(it);
  metrics_.in_flight->Set(static_cast<double>(in_flight()));
  common::Duration now = clock_.Now();
  common::Duration started = d->attempt_started;
  metrics_.delivery_duration_seconds->Observe(Seconds(now - started).count());

  const config::RetryPolicy& policy = target_.retry;
  Outcome outcome;
  switch (result.error) {
    case ClientResult::Error::kTimeout:
      metrics_.attempts_timeout->Increment();
      d->last_status = 0;
      outcome = policy.on_timeout ? Outcome::kRetry : Outcome::kReject;
      break;
    case ClientResult::Error::kConnectFailure:
      metrics_.attempts_connect_failure->Increment();
      d->last_status = 0;
      outcome = policy.on_connect_failure ? Outcome::kRetry : Outcome::kReject;
      break;
    case ClientResult::Error::kNone:
    default: {
      int status = result.response.status;
      metrics_.AttemptResult(status).Increment();
      d->last_status = status;
      if (status >= 200 && status < 300) {
        outcome = Outcome::kDelivered;
      } else {
        outcome = policy.RetriesStatus(status) ? Outcome::kRetry : Outcome::kReject;
      }
    }
  }

  if (adaptive_ != nullptr && result.error != ClientResult::Error::kConnectFailure) {
    int status = result.error == ClientResult::Error::kNone ? result.response.status : 0;
    if (result.error == ClientResult::Error::kTimeout || status == 429 || status == 503) {
      adaptive_->OnOverload();
    } else {
      adaptive_->OnSuccess(now - started, d->in_flight_at_start);
    }
    if (adaptive_->limit() != limit_.limit()) {
      limit_.SetLimit(adaptive_->limit());
      metrics_.concurrency_limit->Set(limit_.limit());
    }
  }

  if (outcome == Outcome::kDelivered) {
    metrics_.delivered->Increment();
    double age = Seconds(clock_.UnixNow() - common::Duration(d->queued.ingest_unix_ns)).count();
    metrics_.message_latency_seconds->Observe(std::max(0.0, age));
    Finish(d->queued.tag);
  } else if (outcome == Outcome::kReject) {
    logging::EmitLimited(logging::Level::kWarn, "delivery rejected",
                         {{"target", target_.name},
                          {"id", d->queued.message.id.ToString()},
                          {"attempt", int64_t{d->attempts}},
                          {"status", d->last_status},
                          {"error", result.error_detail}});
    DeadLetter(std::move(d), "rejected");
  } else {
    common::Duration age = clock_.UnixNow() - common::Duration(d->queued.ingest_unix_ns);
    if (policy.max_attempts != 0 && d->attempts >= policy.max_attempts) {
      DeadLetter(std::move(d), "max_attempts");
    } else if (age >= target_.max_age) {
      DeadLetter(std::move(d), "expired");
    } else {
      ScheduleRetry(std::move(d), now, result);
    }
  }
  Pump();
}

void Dispatcher::ScheduleRetry(std::unique_ptr<Delivery> d, common::Duration now,
                               const ClientResult& r) {
  metrics_.retries->Increment();
  common::Duration due = now + backoff_.Next(d->attempts);
  int status = r.error == ClientResult::Error::kNone ? r.response.status : 0;
  if (target_.retry.respect_retry_after && (status == 429 || status == 503)) {
    if (const std::string* value = FindHeader(r.response.headers, "Retry-After")) {
      if (auto delay = limiter::ParseRetryAfter(*value, clock_.UnixNow())) {
        // The target asked everyone to wait: pause the whole target, capped.
        common::Duration pause = std::min(*delay, target_.retry.max_backoff);
        paused_until_ = std::max(paused_until_, now + pause);
        due = std::max(due, paused_until_);
        UpdatePausedGauge();
      }
    }
  }
  logging::EmitLimited(logging::Level::kDebug, "delivery will be retried",
                       {{"target", target_.name},
                        {"id", d->queued.message.id.ToString()},
                        {"attempt", int64_t{d->attempts}},
                        {"status", d->last_status},
                        {"error", r.error_detail},
                        {"retry_in_ms", int64_t{duration_cast<milliseconds>(due - now).count()}}});
  retries_.emplace(due, std::move(d));
}

void Dispatcher::DeadLetter(std::unique_ptr<Delivery> d, const char* reason) {
  buffer::DeadLetter dl;
  dl.target = target_.name;
  dl.seq = d->queued.tag;
  dl.ingest_unix_ns = d->queued.ingest_unix_ns;
  dl.dead_unix_ns = static_cast<uint64_t>(clock_.UnixNow().count());
  dl.reason = reason;
  dl.attempts = d->attempts;
  dl.last_status = d->last_status;
  dl.payload = d->queued.payload;
  std::string why = reason;
  uint64_t tag = d->queued.tag;
  common::Status s =
      queue_.AppendDeadLetter(std::move(dl), [this, tag, why](const common::Status& st, uint64_t) {
        if (!st.ok()) {
          // Not stored: the message stays unfinished and is delivered again after a restart.
          logging::EmitLimited(logging::Level::kError, "dead letter not stored",
                               {{"target", target_.name}, {"error", st.ToString()}});
          return;
        }
        if (why == "rejected")
          metrics_.dead_lettered_rejected->Increment();
        else if (why == "max_attempts")
          metrics_.dead_lettered_max_attempts->Increment();
        else
          metrics_.dead_lettered_expired->Increment();
        metrics_.dead_letters->Set(static_cast<double>(queue_.DeadLetterCount(target_.name)));
        Finish(tag);
        Pump();
      });
  if (!s.ok()) {
    logging::EmitLimited(logging::Level::kError, "dead letter not stored",
                         {{"target", target_.name}, {"error", s.ToString()}});
  }
  logging::EmitLimited(logging::Level::kWarn, "message dead-lettered",
                       {{"target", target_.name},
                        {"id", d->queued.message.id.ToString()},
                        {"reason", reason},
                        {"attempt", int64_t{d->attempts}},
                        {"status", d->last_status}});
}

void Dispatcher::Finish(uint64_t tag) {
  source_->Finish(tag);
  --queued_;
  metrics_.queue_messages->Set(static_cast<double>(queued()));
}

void Dispatcher::ArmTimer(common::Duration now, bool waiting_for_token) {
  // Wake for what unblocks the next start: a token, a retry falling due, a pause ending.
  // A retry already due is waiting for a token or a free slot, not for time; a slot
  // freeing up pumps from the completion, so it needs no timer (and a zero timer here
  // would spin the loop).
  //
  // Tokens have a nanosecond timer of their own: a millisecond timer's rounding and
  // lateness cost the rate whatever the bucket cannot hold (at burst 1, nearly all of it).
  // It is re-armed only when the tokens are due sooner than it would fire, and left armed
  // when none is awaited: a needless wake-up costs one Pump, whereas re-arming a timerfd
  // at every Pump would cost a system call per completed delivery.
  if (waiting_for_token) {
    common::Duration at = clock_.Now();
    common::Duration wait = bucket_.TimeUntilTokens(BatchTokens());
    if (wait != common::Duration::max() && (!pacing_timer_.armed() || at + wait < token_due_)) {
      token_due_ = at + wait;
      pacing_timer_.Start(wait);
    }
  }
  common::Duration wake = common::Duration::max();
  if (!retries_.empty() && retries_.begin()->first > now) {
    wake = std::min(wake, retries_.begin()->first);
  }
  if (paused_until_ > now) {
    wake = std::min(wake, paused_until_);
  } else if (paused_until_ != common::Duration(0)) {
    paused_until_ = common::Duration(0);
    UpdatePausedGauge();
  }
  if (wake == common::Duration::max()) {
    uv_timer_stop(timer_);
    return;
  }
  // libuv timers tick in milliseconds: round up so we never wake early.
  auto ns = std::max<int64_t>(0, (wake - now).count());
  uint64_t ms = static_cast<uint64_t>((ns + 999'999) / 1'000'000);
  uv_timer_start(timer_, OnTimer, ms, 0);
}

// Tokens to wait for before starting deliveries: a batch (TokenBucket::TokensPerWakeUp: a
// millisecond's worth at high rates, at most half the burst), but no more than there are
// free slots to start them in.
uint32_t Dispatcher::BatchTokens() const {
  uint32_t free = limit_.in_flight() < limit_.limit() ? limit_.limit() - limit_.in_flight() : 1;
  return std::clamp<uint32_t>(free, 1, bucket_.TokensPerWakeUp());
}

void Dispatcher::Reconfigure(const config::Target& target) {
  bool new_url = target.parsed_url.host != target_.parsed_url.host ||
                 target.parsed_url.port != target_.parsed_url.port;
  target_ = target;
  bucket_.Reconfigure(target.rate, target.burst);
  ConfigureConcurrency();
  backoff_ = limiter::Backoff(target.retry.initial_backoff, target.retry.max_backoff,
                              std::random_device{}());
  max_retrying_ = std::max<size_t>(64, 4 * size_t{target.concurrency.limit});
  if (new_url) {
    retired_clients_.push_back(std::move(client_));
    retired_clients_.push_back(std::move(forward_client_));
    forward_client_ = std::make_unique<HttpClientPool>(
        loop_, target.parsed_url.host, target.parsed_url.port, kMaxForwardResponseBytes);
    client_ = std::make_unique<HttpClientPool>(loop_, target.parsed_url.host,
                                               target.parsed_url.port, 64 << 10);
  }
  metrics_.rate_limit_per_second->Set(target.rate.per_second);
  Pump();
}

void Dispatcher::ConfigureConcurrency() {
  const config::Concurrency& c = target_.concurrency;
  if (!c.adaptive) {
    adaptive_.reset();
    limit_.SetLimit(c.limit);
  } else if (adaptive_ == nullptr) {
    adaptive_ = std::make_unique<limiter::AdaptiveConcurrency>(c.min, c.max, clock_);
    limit_.SetLimit(adaptive_->limit());
  } else {
    adaptive_->Reconfigure(c.min, c.max);
    limit_.SetLimit(adaptive_->limit());
  }
  metrics_.concurrency_limit->Set(limit_.limit());
}

void Dispatcher::Pause() {
  admin_paused_ = true;
  UpdatePausedGauge();
  logging::Info("target paused", {{"target", target_.name}});
}

void Dispatcher::Resume() {
  admin_paused_ = false;
  UpdatePausedGauge();
  logging::Info("target resumed", {{"target", target_.name}});
  Pump();
}

void Dispatcher::UpdatePausedGauge() {
  bool backoff = paused_until_ > clock_.Now();
  metrics_.paused->Set(admin_paused_ || backoff ? 1 : 0);
}

const char* Dispatcher::state() const {
  if (stopped_) return "stopped";
  if (admin_paused_) return "paused";
  if (paused_until_ > clock_.Now()) return "backoff";
  if (in_flight_.empty() && retries_.empty() && queued_ == 0) return "idle";
  return "active";
}

void Dispatcher::OnTimer(uv_timer_t* timer) { static_cast<Dispatcher*>(timer->data)->Pump(); }

void Dispatcher::RefreshGauges() {
  FillLookahead();
  uint64_t oldest = UINT64_MAX;
  if (next_) oldest = next_->queued.ingest_unix_ns;
  for (const auto& [tag, d] : in_flight_) oldest = std::min(oldest, d->queued.ingest_unix_ns);
  for (const auto& [due, d] : retries_) oldest = std::min(oldest, d->queued.ingest_unix_ns);
  double age = 0;
  if (oldest != UINT64_MAX) {
    age = std::max(0.0, Seconds(clock_.UnixNow() - common::Duration(oldest)).count());
  }
  oldest_age_seconds_ = age;
  metrics_.oldest_message_age_seconds->Set(age);
}

}  // namespace sluice::proxy
