#include "proxy/proxy.h"

#include <csignal>

#include "proxy/logging.h"
#include "proxy/queue_factory.h"
#include "proxy/systemd_notify.h"
#include "proxy/version.h"

namespace sluice::proxy {

using common::Status;

Proxy::Proxy(config::Config config) : config_(std::move(config)), metrics_(kVersion) {
  uv_loop_init(&loop_);
}

Proxy::~Proxy() {
  // Handles were closed in Finish(); run the loop once more for their close callbacks.
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

int Proxy::Run() {
  Status s = Start();
  if (!s.ok()) {
    logging::Error("cannot start", {{"error", s.ToString()}});
    Finish();
    return s.code() == Status::Code::kBusy ? 2 : 1;
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

Status Proxy::Start() {
  uv_async_init(&loop_, &log_async_, OnAsync);
  log_async_.data = this;
  uv_signal_init(&loop_, &sigterm_);
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sighup_);
  sighup_.data = this;
  uv_signal_start(
      &sighup_, [](uv_signal_t* h, int) { static_cast<Proxy*>(h->data)->Reload(); }, SIGHUP);
  uv_timer_init(&loop_, &drain_timer_);
  uv_timer_init(&loop_, &sample_timer_);
  sigterm_.data = sigint_.data = drain_timer_.data = sample_timer_.data = this;
  uv_signal_start(&sigterm_, OnSignal, SIGTERM);
  uv_signal_start(&sigint_, OnSignal, SIGINT);
  ::signal(SIGPIPE, SIG_IGN);

  buffer::QueueEvents events;
  events.wake = [this] { uv_async_send(&log_async_); };
  events.on_commit = [this](common::Duration fsync, size_t records) {
    if (config_.buffer.fsync == config::FsyncMode::kBatch) {
      metrics_.fsync_duration().Observe(std::chrono::duration<double>(fsync).count());
    }
    metrics_.batch_records().Observe(static_cast<double>(records));
  };
  Status s = OpenQueue(config_, &loop_, clock_, events, &queue_);
  if (!s.ok()) return s;
  // Before each poll: this iteration's appends go to the backend together.
  uv_prepare_init(&loop_, &log_submit_);
  log_submit_.data = this;
  uv_prepare_start(&log_submit_,
                   [](uv_prepare_t* h) { static_cast<Proxy*>(h->data)->queue_->Submit(); });
  metrics_.buffer_max_bytes().Set(static_cast<double>(queue_->max_bytes()));

  for (const auto& t : config_.targets) {
    std::unique_ptr<buffer::TargetQueue> source;
    s = queue_->OpenTarget(t.name, /*added=*/false, &source);
    if (!s.ok()) return s;
    logging::Info("target ready", {{"target", t.name},
                                   {"url", t.url},
                                   {"queued", source->queued_at_open()},
                                   {"progress", source->progress()}});
    dispatchers_[t.name] =
        std::make_unique<Dispatcher>(&loop_, t, *queue_, std::move(source), metrics_, clock_);
  }

  ingest_ = std::make_unique<Ingest>(
      config_, *queue_, metrics_, clock_, drain_estimate_,
      [this](const std::vector<std::string>& targets) {
        for (const auto& t : targets) {
          auto it = dispatchers_.find(t);
          if (it != dispatchers_.end()) it->second->OnQueued(1);
        }
      },
      [this](const Status& error) {
        logging::Error("storage failure: stopping", {{"error", error.ToString()}});
        BeginShutdown(1, /*drain=*/false);
      },
      [this](const std::string& target, std::string request, bool head,
             std::function<void(ClientResult)> done) {
        auto it = dispatchers_.find(target);
        if (it == dispatchers_.end()) {
          ClientResult refused;
          refused.error = ClientResult::Error::kRefused;
          done(std::move(refused));
          return;
        }
        it->second->Forward(std::move(request), head, std::move(done));
      });
  ingest_->LoadIdempotencyKeys(queue_->TakeLoadedIdempotencyKeys());
  admin_ = std::make_unique<Admin>(*queue_, metrics_, dispatchers_, config_.admin.token,
                                   [this] { RefreshGauges(); });

  HttpServer::Options ingest_options;
  ingest_options.name = "ingest";
  ingest_options.listen = config_.listen;
  ingest_options.limits.max_header_bytes = config_.limits.max_header_bytes;
  ingest_options.limits.max_body_bytes = config_.limits.max_body_bytes;
  ingest_options.max_connections = config_.limits.max_connections;
  ingest_options.read_timeout = config_.limits.read_timeout;
  ingest_server_ = std::make_unique<HttpServer>(
      &loop_, ingest_options,
      [this](HttpRequest&& r, Responder responder) { ingest_->Handle(std::move(r), responder); });
  ingest_server_->set_reject_observer([this](int status) { ingest_->CountRejected(status); });

  HttpServer::Options admin_options;
  admin_options.name = "admin";
  admin_options.listen = config_.admin.listen;
  admin_options.max_connections = 256;
  admin_options.read_timeout = std::chrono::seconds(10);
  admin_server_ = std::make_unique<HttpServer>(
      &loop_, admin_options,
      [this](HttpRequest&& r, Responder responder) { admin_->Handle(std::move(r), responder); });

  std::string bound;
  s = ingest_server_->Listen(&bound);
  if (!s.ok()) return s;
  logging::Info("listening", {{"listener", "ingest"}, {"addr", bound}});
  s = admin_server_->Listen(&bound);
  if (!s.ok()) return s;
  logging::Info("listening", {{"listener", "admin"}, {"addr", bound}});

  for (auto& [name, d] : dispatchers_) d->Pump();
  SampleDrain();
  uv_timer_start(
      &sample_timer_, [](uv_timer_t* t) { static_cast<Proxy*>(t->data)->SampleDrain(); }, 1000,
      1000);
  logging::Info("ready", {{"version", kVersion}});
  NotifySystemd("READY=1\nSTATUS=accepting and delivering");
  return Status::OK();
}

void Proxy::OnAsync(uv_async_t* handle) { static_cast<Proxy*>(handle->data)->OnLogCompletions(); }

void Proxy::OnLogCompletions() {
  queue_->RunCompletions();
  for (auto& [name, d] : dispatchers_) d->Pump();
  if (shutting_down_) CheckDrained();
}

void Proxy::OnSignal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Proxy*>(handle->data);
  logging::Info("signal received: draining", {{"signal", signum}});
  self->BeginShutdown(0, /*drain=*/true);
}

// SIGTERM: readiness goes 503, the ingest listener closes, requests still arriving on
// open connections get 503 + Connection: close, appends in progress are answered,
// in-flight deliveries finish (bounded by shutdown_timeout), cursors are synced.
void Proxy::BeginShutdown(int exit_code, bool drain) {
  exit_code_ = std::max(exit_code_, exit_code);
  if (shutting_down_ && drain) return;
  shutting_down_ = true;
  NotifySystemd("STOPPING=1\nSTATUS=draining");
  if (admin_) admin_->SetShuttingDown();
  if (ingest_) ingest_->SetShuttingDown();
  if (ingest_server_) {
    ingest_server_->StopAccepting();
    ingest_server_->CloseIdleConnections();
  }
  for (auto& [name, d] : dispatchers_) d->Stop();
  drain_deadline_ =
      clock_.Now() + (drain ? config_.shutdown_timeout : std::chrono::milliseconds(200));
  uv_timer_start(
      &drain_timer_, [](uv_timer_t* t) { static_cast<Proxy*>(t->data)->CheckDrained(); }, 10, 10);
}

void Proxy::CheckDrained() {
  bool drained = ingest_ == nullptr || ingest_->pending() == 0;
  for (auto& [name, d] : dispatchers_) drained = drained && d->in_flight() == 0;
  if (!drained && clock_.Now() < drain_deadline_) return;
  if (!drained) logging::Warn("shutdown_timeout reached with deliveries in flight");
  Finish();
}

void Proxy::Finish() {
  uv_timer_stop(&drain_timer_);
  uv_timer_stop(&sample_timer_);
  uv_signal_stop(&sighup_);
  ingest_server_.reset();
  admin_server_.reset();
  for (auto& [name, d] : dispatchers_) d->Stop();
  for (auto& d : retiring_) d->Stop();
  if (queue_) {
    // Finishes queued appends and dead letters, runs their callbacks (the dispatchers
    // are still alive for them), then syncs cursors.
    queue_->Close();
    common::Status fatal = queue_->fatal_error();
    if (!fatal.ok()) exit_code_ = 1;
  }
  dispatchers_.clear();
  retiring_.clear();
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  logging::Info("stopped", {{"exit_code", exit_code_}});
}

void Proxy::SampleDrain() {
  std::erase_if(retiring_, [](const auto& d) { return d->in_flight() == 0; });
  if (ingest_) ingest_->ExpireIdempotencyKeys();
  uint64_t low = UINT64_MAX;
  for (auto& [name, d] : dispatchers_) low = std::min(low, d->progress());
  if (low != UINT64_MAX) drain_estimate_.Sample(clock_.Now(), low);
}

void Proxy::RefreshGauges() {
  for (auto& [name, d] : dispatchers_) d->RefreshGauges();
  metrics_.buffer_bytes().Set(static_cast<double>(queue_->bytes()));
  metrics_.buffer_segments().Set(static_cast<double>(queue_->segment_count()));
}

}  // namespace sluice::proxy

namespace sluice::proxy {

void Proxy::Reload() {
  if (shutting_down_) return;
  config::LoadResult loaded = config::LoadFile(config_.file);
  if (!loaded.ok()) {
    for (const auto& error : loaded.errors) {
      logging::Error("config reload failed: keeping the running configuration", {{"error", error}});
    }
    metrics_.config_last_reload_successful().Set(0);
    return;
  }
  config::Config& next = *loaded.config;
  auto needs_restart = [&](const char* key, bool changed) {
    if (changed) logging::Warn("config change needs a restart; not applied", {{"key", key}});
  };
  needs_restart("listen", !(next.listen == config_.listen));
  needs_restart("admin.listen", !(next.admin.listen == config_.admin.listen));
  needs_restart("buffer.dir", next.buffer.dir != config_.buffer.dir);
  needs_restart("buffer.kind", next.buffer.kind != config_.buffer.kind);
  needs_restart("buffer.rabbitmq", !(next.buffer.rabbitmq == config_.buffer.rabbitmq));
  needs_restart("buffer.kafka", !(next.buffer.kafka == config_.buffer.kafka));
  needs_restart("buffer.sqs", !(next.buffer.sqs == config_.buffer.sqs));
  next.listen = config_.listen;
  next.admin.listen = config_.admin.listen;
  next.buffer.dir = config_.buffer.dir;
  next.buffer.kind = config_.buffer.kind;
  next.buffer.rabbitmq = config_.buffer.rabbitmq;
  next.buffer.kafka = config_.buffer.kafka;
  next.buffer.sqs = config_.buffer.sqs;

  ApplyTargets(next);
  queue_->Reconfigure(TunablesOf(next.buffer));
  metrics_.buffer_max_bytes().Set(static_cast<double>(next.buffer.max_bytes));
  RequestParser::Limits limits;
  limits.max_header_bytes = next.limits.max_header_bytes;
  limits.max_body_bytes = next.limits.max_body_bytes;
  ingest_server_->SetLimits(limits, next.limits.max_connections, next.limits.read_timeout);
  // Ingest (routes) and Admin (token) read config_ on every request.
  config_ = std::move(next);
  metrics_.config_last_reload_successful().Set(1);
  NotifySystemd("STATUS=configuration reloaded");
  logging::Info("config reloaded", {{"file", config_.file},
                                    {"targets", uint64_t{config_.targets.size()}},
                                    {"routes", uint64_t{config_.routes.size()}}});
}

// Added targets get a cursor and a dispatcher; removed ones stop starting deliveries
// and retire once their in-flight attempts end (their queue stays on disk); changed ones
// are reconfigured in place, keeping in-flight and retrying messages.
void Proxy::ApplyTargets(const config::Config& next) {
  for (auto it = dispatchers_.begin(); it != dispatchers_.end();) {
    if (next.FindTarget(it->first) != nullptr) {
      ++it;
      continue;
    }
    logging::Info("target removed", {{"target", it->first}});
    it->second->Stop();
    queue_->RemoveTarget(it->first);
    retiring_.push_back(std::move(it->second));
    it = dispatchers_.erase(it);
  }
  for (const auto& t : next.targets) {
    auto it = dispatchers_.find(t.name);
    if (it != dispatchers_.end()) {
      it->second->Reconfigure(t);
      continue;
    }
    std::unique_ptr<buffer::TargetQueue> source;
    queue_->SetTargetConcurrency(t.name, t.concurrency.most_in_flight());
    Status s = queue_->OpenTarget(t.name, /*added=*/true, &source);
    if (!s.ok()) {
      logging::Error("cannot add target", {{"target", t.name}, {"error", s.ToString()}});
      continue;
    }
    logging::Info("target added", {{"target", t.name},
                                   {"url", t.url},
                                   {"queued", source->queued_at_open()},
                                   {"progress", source->progress()}});
    auto d = std::make_unique<Dispatcher>(&loop_, t, *queue_, std::move(source), metrics_, clock_);
    d->Pump();
    dispatchers_[t.name] = std::move(d);
  }
}

}  // namespace sluice::proxy
