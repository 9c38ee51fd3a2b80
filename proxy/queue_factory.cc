#include "proxy/queue_factory.h"

#include <algorithm>

#include "aws/credentials.h"
#include "broker/kafka_queue.h"
#include "broker/rabbitmq_queue.h"
#include "broker/sqs_queue.h"
#include "buffer/disk_queue.h"
#include "proxy/logging.h"

namespace sluice::proxy {
namespace {

buffer::FsyncPolicy ToPolicy(config::FsyncMode mode) {
  switch (mode) {
    case config::FsyncMode::kBatch:
      return buffer::FsyncPolicy::kBatch;
    case config::FsyncMode::kInterval:
      return buffer::FsyncPolicy::kInterval;
    case config::FsyncMode::kNever:
      return buffer::FsyncPolicy::kNever;
  }
  return buffer::FsyncPolicy::kBatch;
}

common::Status OpenDiskQueue(const config::Config& config, const buffer::QueueEvents& events,
                             std::unique_ptr<buffer::Queue>* out) {
  buffer::LogOptions options;
  options.dir = config.buffer.dir;
  options.segment_bytes = config.buffer.segment_bytes;
  options.max_bytes = config.buffer.max_bytes;
  options.fsync = ToPolicy(config.buffer.fsync);
  options.fsync_interval = config.buffer.fsync_interval;
  for (const auto& t : config.targets) options.targets.push_back(t.name);
  // Every request read in one loop iteration reaches the writer together, when the
  // proxy calls Submit() just before the loop would wait: one lock and at most one
  // wake-up per iteration.
  options.explicit_submit = true;
  buffer::RecoveryReport report;
  buffer::QueueCountStats counted;
  std::unique_ptr<buffer::DiskQueue> disk;
  common::Status s = buffer::DiskQueue::Open(options, events, &disk, &report, &counted);
  if (!s.ok()) return s;
  logging::Info("buffer recovered", {{"dir", config.buffer.dir},
                                     {"segments", uint64_t{report.segments}},
                                     {"first_seq", report.first_seq},
                                     {"next_seq", report.next_seq},
                                     {"truncated_bytes", report.truncated_bytes}});
  logging::Info("queues counted",
                {{"segments_from_footers", uint64_t{counted.segments_from_footers}},
                 {"segments_read", uint64_t{counted.segments_read}},
                 {"records_read", counted.records_read}});
  *out = std::move(disk);
  return common::Status::OK();
}

// What a consumer may hold unacknowledged: as many as the target may have in flight.
uint16_t PrefetchOf(const config::Target& t) {
  return static_cast<uint16_t>(std::clamp<uint32_t>(t.concurrency.most_in_flight(), 1, 65535));
}

common::Status OpenRabbitMqQueue(const config::Config& config, const buffer::QueueEvents& events,
                                 std::unique_ptr<buffer::Queue>* out) {
  broker::RabbitMqOptions options;
  options.url = config.buffer.rabbitmq.url;
  options.exchange = config.buffer.rabbitmq.exchange;
  options.queue_prefix = config.buffer.rabbitmq.queue_prefix;
  for (const auto& t : config.targets) options.targets[t.name] = PrefetchOf(t);
  std::unique_ptr<broker::RabbitMqQueue> queue;
  common::Status s = broker::RabbitMqQueue::Open(options, events, &queue);
  if (!s.ok()) return s;
  common::Status available = queue->Availability();
  logging::Info("buffer opened", {{"kind", "rabbitmq"},
                                  {"exchange", options.exchange},
                                  {"queue_prefix", options.queue_prefix},
                                  {"available", available.ok() ? "yes" : available.ToString()}});
  *out = std::move(queue);
  return common::Status::OK();
}

common::Status OpenKafkaQueue(const config::Config& config, const buffer::QueueEvents& events,
                              std::unique_ptr<buffer::Queue>* out) {
  broker::KafkaOptions options;
  options.brokers = config.buffer.kafka.brokers;
  options.topic = config.buffer.kafka.topic;
  options.group_prefix = config.buffer.kafka.group_prefix;
  std::unique_ptr<broker::KafkaQueue> queue;
  common::Status s = broker::KafkaQueue::Open(options, events, &queue);
  if (!s.ok()) return s;
  logging::Info("buffer opened", {{"kind", "kafka"},
                                  {"brokers", options.brokers},
                                  {"topic", options.topic},
                                  {"group_prefix", options.group_prefix}});
  *out = std::move(queue);
  return common::Status::OK();
}

common::Status OpenSqsQueue(const config::Config& config, uv_loop_t* loop,
                            const common::Clock& clock, const buffer::QueueEvents& events,
                            std::unique_ptr<buffer::Queue>* out) {
  broker::SqsOptions options;
  options.region = config.buffer.sqs.region;
  options.endpoint = config.buffer.sqs.endpoint;
  options.queue_prefix = config.buffer.sqs.queue_prefix;
  options.visibility_timeout = config.buffer.sqs.visibility_timeout;
  common::Status s = aws::Credentials::FromEnvironment(&options.credentials);
  if (!s.ok()) return s;
  for (const auto& t : config.targets) {
    broker::SqsTargetOptions target;
    target.name = t.name;
    target.concurrency = PrefetchOf(t);
    options.targets.push_back(target);
  }
  std::unique_ptr<broker::SqsQueue> queue;
  s = broker::SqsQueue::Open(loop, clock, options, events, &queue);
  if (!s.ok()) return s;
  logging::Info("buffer opened", {{"kind", "sqs"},
                                  {"region", options.region},
                                  {"endpoint", options.endpoint},
                                  {"queue_prefix", options.queue_prefix}});
  *out = std::move(queue);
  return common::Status::OK();
}

}  // namespace

buffer::QueueTunables TunablesOf(const config::BufferConfig& buffer) {
  buffer::QueueTunables t;
  t.max_bytes = buffer.max_bytes;
  t.segment_bytes = buffer.segment_bytes;
  t.fsync = ToPolicy(buffer.fsync);
  t.fsync_interval = buffer.fsync_interval;
  return t;
}

common::Status OpenQueue(const config::Config& config, uv_loop_t* loop, const common::Clock& clock,
                         const buffer::QueueEvents& events, std::unique_ptr<buffer::Queue>* out) {
  if (config.buffer.kind == "disk") return OpenDiskQueue(config, events, out);
  if (config.buffer.kind == "rabbitmq") return OpenRabbitMqQueue(config, events, out);
  if (config.buffer.kind == "kafka") return OpenKafkaQueue(config, events, out);
  if (config.buffer.kind == "sqs") return OpenSqsQueue(config, loop, clock, events, out);
  return common::Status::InvalidArgument("buffer.kind \"" + config.buffer.kind +
                                         "\" is not built in");
}

}  // namespace sluice::proxy
