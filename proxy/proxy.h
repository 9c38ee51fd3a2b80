#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <string>

#include "buffer/queue.h"
#include "common/clock.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "proxy/admin.h"
#include "proxy/dispatcher.h"
#include "proxy/drain_estimate.h"
#include "proxy/http_server.h"
#include "proxy/ingest.h"

namespace sluice::proxy {

// The running sidecar: one libuv loop with the ingest and admin listeners, one
// dispatcher per target, the queue (the disk log and its writer thread, or a broker),
// and the signal handlers.
class Proxy {
 public:
  explicit Proxy(config::Config config);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Opens the log, recovers, binds, serves until SIGTERM/SIGINT or a fatal error.
  // Returns the process exit code: 0 clean, 1 runtime failure.
  int Run();

 private:
  common::Status Start();
  void BeginShutdown(int exit_code, bool drain);
  void CheckDrained();
  void Finish();
  void OnLogCompletions();
  void RefreshGauges();
  void SampleDrain();
  // SIGHUP: load the file again and apply what changed; on any error keep running on
  // the old configuration.
  void Reload();
  void ApplyTargets(const config::Config& next);

  static void OnAsync(uv_async_t* handle);
  static void OnSignal(uv_signal_t* handle, int signum);

  config::Config config_;
  common::SystemClock clock_;
  uv_loop_t loop_;
  uv_async_t log_async_;
  uv_prepare_t log_submit_;  // before each poll: hands this iteration's appends to the writer
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uv_signal_t sighup_;
  uv_timer_t drain_timer_;
  uv_timer_t sample_timer_;  // once a second: drain rate and computed gauges
  metrics::Metrics metrics_;
  DrainEstimate drain_estimate_;
  std::unique_ptr<buffer::Queue> queue_;
  std::unique_ptr<Ingest> ingest_;
  std::unique_ptr<Admin> admin_;
  std::unique_ptr<HttpServer> ingest_server_;
  std::unique_ptr<HttpServer> admin_server_;
  std::map<std::string, std::unique_ptr<Dispatcher>> dispatchers_;
  // Targets removed by a reload, finishing their in-flight attempts.
  std::vector<std::unique_ptr<Dispatcher>> retiring_;
  bool shutting_down_ = false;
  int exit_code_ = 0;
  common::Duration drain_deadline_{0};
};

}  // namespace sluice::proxy
