#include "metrics/metrics.h"

#include <dirent.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

namespace sluice::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Latency buckets from 0.5 ms to 60 s: fsyncs sit at the low end, slow targets high.
const Histogram::BucketBoundaries kLatencyBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// Message latency (accepted -> delivered) spans seconds to days while a target is down.
const Histogram::BucketBoundaries kMessageLatencyBuckets = {
    0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600};
const Histogram::BucketBoundaries kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

std::string CodeLabel(int code) { return std::to_string(code); }

}  // namespace

Counter& TargetMetrics::AttemptResult(int status) {
  if (status >= 200 && status < 300) return *attempts_2xx;
  if (status >= 300 && status < 400) return *attempts_3xx;
  if (status >= 400 && status < 500) return *attempts_4xx;
  return *attempts_5xx;
}

Metrics::Metrics(std::string_view version) : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  http_requests_family_ = &BuildCounter()
                               .Name("sluice_http_requests_total")
                               .Help("Ingest answers by route and status code.")
                               .Register(r);
  request_duration_family_ = &BuildHistogram()
                                  .Name("sluice_http_request_duration_seconds")
                                  .Help("Ingest request received to answer sent, fsync included.")
                                  .Register(r);
  received_bytes_ = &BuildCounter()
                         .Name("sluice_received_bytes_total")
                         .Help("Request body bytes accepted.")
                         .Register(r)
                         .Add({});
  rejected_family_ = &BuildCounter()
                          .Name("sluice_ingest_rejected_total")
                          .Help("Ingest requests refused, by reason.")
                          .Register(r);
  buffer_bytes_ = &BuildGauge()
                       .Name("sluice_buffer_bytes")
                       .Help("Bytes of queued data on disk.")
                       .Register(r)
                       .Add({});
  buffer_max_bytes_ = &BuildGauge()
                           .Name("sluice_buffer_max_bytes")
                           .Help("Configured buffer.max_bytes.")
                           .Register(r)
                           .Add({});
  buffer_segments_ = &BuildGauge()
                          .Name("sluice_buffer_segments")
                          .Help("Segment files in the buffer.")
                          .Register(r)
                          .Add({});
  fsync_duration_ = &BuildHistogram()
                         .Name("sluice_buffer_fsync_duration_seconds")
                         .Help("Duration of one group commit's fdatasync.")
                         .Register(r)
                         .Add({}, kLatencyBuckets);
  batch_records_ = &BuildHistogram()
                        .Name("sluice_buffer_batch_records")
                        .Help("Records per group commit.")
                        .Register(r)
                        .Add({}, kBatchBuckets);
  queue_messages_family_ = &BuildGauge()
                                .Name("sluice_queue_messages")
                                .Help("Messages not yet delivered or dead-lettered.")
                                .Register(r);
  oldest_age_family_ = &BuildGauge()
                            .Name("sluice_queue_oldest_message_age_seconds")
                            .Help("Age of the oldest pending message (0 if none).")
                            .Register(r);
  attempts_family_ = &BuildCounter()
                          .Name("sluice_delivery_attempts_total")
                          .Help("Delivery attempts by result.")
                          .Register(r);
  delivery_duration_family_ = &BuildHistogram()
                                   .Name("sluice_delivery_duration_seconds")
                                   .Help("Duration of one delivery attempt.")
                                   .Register(r);
  message_latency_family_ = &BuildHistogram()
                                 .Name("sluice_message_latency_seconds")
                                 .Help("Time from acceptance to delivery.")
                                 .Register(r);
  delivered_family_ = &BuildCounter()
                           .Name("sluice_messages_delivered_total")
                           .Help("Messages delivered (2xx).")
                           .Register(r);
  retries_family_ = &BuildCounter()
                         .Name("sluice_delivery_retries_total")
                         .Help("Attempts scheduled for retry.")
                         .Register(r);
  dead_lettered_family_ = &BuildCounter()
                               .Name("sluice_messages_dead_lettered_total")
                               .Help("Messages moved to the dead-letter store, by reason.")
                               .Register(r);
  dead_letters_family_ =
      &BuildGauge().Name("sluice_dead_letters").Help("Dead letters stored.").Register(r);
  in_flight_family_ = &BuildGauge()
                           .Name("sluice_delivery_in_flight")
                           .Help("Delivery attempts in flight.")
                           .Register(r);
  rate_limit_family_ = &BuildGauge()
                            .Name("sluice_target_rate_limit_per_second")
                            .Help("Configured delivery rate (+Inf if unlimited).")
                            .Register(r);
  concurrency_limit_family_ = &BuildGauge()
                                   .Name("sluice_target_concurrency_limit")
                                   .Help("Current concurrency limit.")
                                   .Register(r);
  paused_family_ = &BuildGauge()
                        .Name("sluice_target_paused")
                        .Help("1 when paused by admin or Retry-After.")
                        .Register(r);
  BuildGauge()
      .Name("sluice_build_info")
      .Help("Build information; always 1.")
      .Register(r)
      .Add({{"version", std::string(version)}})
      .Set(1);
  config_reload_ok_ = &BuildGauge()
                           .Name("sluice_config_last_reload_successful")
                           .Help("1 if the last configuration load succeeded.")
                           .Register(r)
                           .Add({});
  config_reload_ok_->Set(1);

  process_rss_ = &BuildGauge()
                      .Name("process_resident_memory_bytes")
                      .Help("Resident memory size in bytes.")
                      .Register(r)
                      .Add({});
  process_cpu_ = &BuildCounter()
                      .Name("process_cpu_seconds_total")
                      .Help("Total user and system CPU time spent in seconds.")
                      .Register(r)
                      .Add({});
  process_open_fds_ = &BuildGauge()
                           .Name("process_open_fds")
                           .Help("Number of open file descriptors.")
                           .Register(r)
                           .Add({});
  process_start_time_ = &BuildGauge()
                             .Name("process_start_time_seconds")
                             .Help("Start time of the process since unix epoch in seconds.")
                             .Register(r)
                             .Add({});
  process_start_time_->Set(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
}

Counter& Metrics::HttpRequests(const std::string& route, int code) {
  std::lock_guard lock(mu_);
  auto& slot = http_requests_[{route, code}];
  if (slot == nullptr) {
    slot = &http_requests_family_->Add({{"route", route}, {"code", CodeLabel(code)}});
  }
  return *slot;
}

Histogram& Metrics::RequestDuration(const std::string& route) {
  std::lock_guard lock(mu_);
  auto& slot = request_duration_[route];
  if (slot == nullptr) slot = &request_duration_family_->Add({{"route", route}}, kLatencyBuckets);
  return *slot;
}

Counter& Metrics::IngestRejected(const std::string& reason) {
  std::lock_guard lock(mu_);
  auto& slot = rejected_[reason];
  if (slot == nullptr) slot = &rejected_family_->Add({{"reason", reason}});
  return *slot;
}

TargetMetrics& Metrics::ForTarget(const std::string& target) {
  std::lock_guard lock(mu_);
  auto it = targets_.find(target);
  if (it != targets_.end()) return it->second;
  prometheus::Labels l{{"target", target}};
  auto with = [&](const char* key, const char* value) {
    prometheus::Labels labels = l;
    labels[key] = value;
    return labels;
  };
  TargetMetrics m{
      &queue_messages_family_->Add(l),
      &oldest_age_family_->Add(l),
      &attempts_family_->Add(with("result", "2xx")),
      &attempts_family_->Add(with("result", "3xx")),
      &attempts_family_->Add(with("result", "4xx")),
      &attempts_family_->Add(with("result", "5xx")),
      &attempts_family_->Add(with("result", "timeout")),
      &attempts_family_->Add(with("result", "connect_failure")),
      &delivery_duration_family_->Add(l, kLatencyBuckets),
      &message_latency_family_->Add(l, kMessageLatencyBuckets),
      &delivered_family_->Add(l),
      &retries_family_->Add(l),
      &dead_lettered_family_->Add(with("reason", "rejected")),
      &dead_lettered_family_->Add(with("reason", "max_attempts")),
      &dead_lettered_family_->Add(with("reason", "expired")),
      &dead_letters_family_->Add(l),
      &in_flight_family_->Add(l),
      &rate_limit_family_->Add(l),
      &concurrency_limit_family_->Add(l),
      &paused_family_->Add(l),
  };
  return targets_.emplace(target, m).first->second;
}

void Metrics::RefreshProcessMetrics() {
  long page = ::sysconf(_SC_PAGESIZE);
  std::ifstream statm("/proc/self/statm");
  long size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) process_rss_->Set(double(resident_pages) * page);

  struct rusage ru;
  if (::getrusage(RUSAGE_SELF, &ru) == 0) {
    double cpu = double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    if (cpu > cpu_seconds_reported_) {
      process_cpu_->Increment(cpu - cpu_seconds_reported_);
      cpu_seconds_reported_ = cpu;
    }
  }
  if (DIR* d = ::opendir("/proc/self/fd")) {
    int n = 0;
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
    process_open_fds_->Set(n - 3);  // ".", ".." and the directory's own fd
  }
}

std::string Metrics::Serialize() {
  std::lock_guard lock(mu_);
  RefreshProcessMetrics();
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace sluice::metrics
