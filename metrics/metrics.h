#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace sluice::metrics {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

// The per-target series, looked up once and kept (label lookups are not free).
struct TargetMetrics {
  Gauge* queue_messages;
  Gauge* oldest_message_age_seconds;
  Counter* attempts_2xx;
  Counter* attempts_3xx;
  Counter* attempts_4xx;
  Counter* attempts_5xx;
  Counter* attempts_timeout;
  Counter* attempts_connect_failure;
  Histogram* delivery_duration_seconds;
  Histogram* message_latency_seconds;
  Counter* delivered;
  Counter* retries;
  Counter* dead_lettered_rejected;
  Counter* dead_lettered_max_attempts;
  Counter* dead_lettered_expired;
  Gauge* dead_letters;
  Gauge* in_flight;
  Gauge* rate_limit_per_second;
  Gauge* concurrency_limit;
  Gauge* paused;

  Counter& AttemptResult(int status);  // by status class
};

// Every sluice metric family, named as INTERFACE.md fixes them. Thread-safe (the
// prometheus-cpp types are); the writer thread observes fsync timings directly.
class Metrics {
 public:
  explicit Metrics(std::string_view version);

  Counter& HttpRequests(const std::string& route, int code);
  Histogram& RequestDuration(const std::string& route);
  Counter& IngestRejected(const std::string& reason);
  Counter& received_bytes() { return *received_bytes_; }
  Gauge& buffer_bytes() { return *buffer_bytes_; }
  Gauge& buffer_max_bytes() { return *buffer_max_bytes_; }
  Gauge& buffer_segments() { return *buffer_segments_; }
  Histogram& fsync_duration() { return *fsync_duration_; }
  Histogram& batch_records() { return *batch_records_; }
  Gauge& config_last_reload_successful() { return *config_reload_ok_; }
  TargetMetrics& ForTarget(const std::string& target);

  // Prometheus text format 0.0.4, process_* metrics refreshed first.
  std::string Serialize();

 private:
  void RefreshProcessMetrics();

  std::shared_ptr<prometheus::Registry> registry_;
  std::mutex mu_;  // guards the lookup caches below
  std::map<std::pair<std::string, int>, Counter*> http_requests_;
  std::map<std::string, Histogram*> request_duration_;
  std::map<std::string, Counter*> rejected_;
  std::map<std::string, TargetMetrics> targets_;

  prometheus::Family<Counter>* http_requests_family_;
  prometheus::Family<Histogram>* request_duration_family_;
  prometheus::Family<Counter>* rejected_family_;
  prometheus::Family<Gauge>* queue_messages_family_;
  prometheus::Family<Gauge>* oldest_age_family_;
  prometheus::Family<Counter>* attempts_family_;
  prometheus::Family<Histogram>* delivery_duration_family_;
  prometheus::Family<Histogram>* message_latency_family_;
  prometheus::Family<Counter>* delivered_family_;
  prometheus::Family<Counter>* retries_family_;
  prometheus::Family<Counter>* dead_lettered_family_;
  prometheus::Family<Gauge>* dead_letters_family_;
  prometheus::Family<Gauge>* in_flight_family_;
  prometheus::Family<Gauge>* rate_limit_family_;
  prometheus::Family<Gauge>* concurrency_limit_family_;
  prometheus::Family<Gauge>* paused_family_;

  Counter* received_bytes_;
  Gauge* buffer_bytes_;
  Gauge* buffer_max_bytes_;
  Gauge* buffer_segments_;
  Histogram* fsync_duration_;
  Histogram* batch_records_;
  Gauge* config_reload_ok_;

  Gauge* process_rss_;
  Counter* process_cpu_;
  Gauge* process_open_fds_;
  Gauge* process_start_time_;
  double cpu_seconds_reported_ = 0;
};

}  // namespace sluice::metrics
