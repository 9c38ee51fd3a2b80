#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "broker/dead_letter_view.h"
#include "buffer/queue.h"

struct rd_kafka_s;
struct rd_kafka_message_s;
struct rd_kafka_queue_s;

namespace sluice::broker {

struct KafkaOptions {
  std::string brokers = "127.0.0.1:9092";  // bootstrap.servers
  // Every message goes to this one topic; the targets are in the payload.
  std::string topic = "sluice";
  // One consumer group per target: group_prefix + target.
  std::string group_prefix = "sluice-";
  // How long the producer retries one message before its append fails (503). Keep it
  // below the clients' patience: the 202 waits for the delivery report.
  common::Duration delivery_timeout = std::chrono::seconds(10);
  // How often each target's safe offsets are committed (asynchronously).
  common::Duration commit_interval = std::chrono::milliseconds(200);
  // Per target: messages fetched and not finished past which fetching pauses; it
  // resumes at half. What is already fetched still arrives (bounded by librdkafka's
  // queued.max.messages.kbytes, set below its default), and a partition that has not
  // yet handed a message since its assignment pauses only after its first fetch (see
  // Target::ApplyBackpressure): the limit may be passed by that much.
  size_t max_unfinished = 1000;
  // Close(): how long the producer may take to deliver what it holds.
  common::Duration close_timeout = std::chrono::seconds(5);
  // A target's dead-letter topic is created at OpenTarget (if missing) with this many
  // partitions, the brokers' default replication and cleanup.policy=compact: compaction
  // keeps the newest record per message id and never expires a letter by age.
  int dead_letter_partitions = 1;
  // false: the operator creates them (else the first letter auto-creates one,
  // uncompacted: its letters then expire with the topic's retention). librdkafka 2.0's
  // mock cluster has no controller and never answers CreateTopics: tests turn it off.
  bool create_dead_letter_topics = true;
  // Extra librdkafka properties for every client (security, timeouts; tests shorten
  // the group timeouts). Applied last.
  std::vector<std::pair<std::string, std::string>> client_properties;
  // The same for the producer alone, applied after client_properties.
  std::vector<std::pair<std::string, std::string>> producer_properties;
};

// The Kafka backend (buffer.kind: kafka).
//
// Topology: one topic `topic` holds every message (value = EncodeMessage's bytes, header
// sluice-ingest-ns); each target reads it through its own consumer group
// `group_prefix + target` and skips the messages not addressed to it. Dead letters go to
// one topic per target, `topic + ".dead." + target`, keyed by message id, compacted: a
// purge writes tombstones (Kafka cannot delete one record). Each instance tails every
// dead-letter topic from its beginning through a group of its own
// (`group_prefix + "dead-reader-" + random`, never committed) and keeps the live letters
// in memory (DeadLetterView): O(letters) per instance.
//
// Guarantees: Append's `done` runs once the idempotent producer (acks=all) has the
// delivery report: OK when every in-sync replica has the message, Unavailable when it
// could not be stored within delivery_timeout, a non-retryable error after a fatal
// producer error. Delivery is at least once: a target commits only offsets below its
// lowest unfinished message per partition, so a crash redelivers what was in flight, and
// so does a rebalance for the partitions that move to another member (one that stays
// keeps its in-flight state). Order holds within a partition only. Tags are a per-target
// counter mapped to (partition, offset, assignment generation): unique, and a Finish for
// a partition since revoked is ignored.
//
// Idempotency keys live in memory only: AppendIdempotencyKey completes at once and
// nothing is loaded at open (a restart forgets them; a repeat is queued again).
//
// Threads: every Queue and TargetQueue method runs on the owner thread. librdkafka runs
// its own threads; one poller thread of ours serves the producer's delivery reports and
// the consumers, hands results over under a mutex and calls events.wake. Callbacks run
// only in RunCompletions().
class KafkaQueue final : public buffer::Queue {
 public:
  // Creates the producer (it connects in the background: Open does not wait for a
  // broker) and starts the poller thread. Targets are opened with OpenTarget.
  static common::Status Open(KafkaOptions options, buffer::QueueEvents events,
                             std::unique_ptr<KafkaQueue>* out);
  ~KafkaQueue() override;
  KafkaQueue(const KafkaQueue&) = delete;
  KafkaQueue& operator=(const KafkaQueue&) = delete;

  common::Status Append(std::string payload, uint64_t ingest_unix_ns, Done done) override;
  void Submit() override {}
  void RunCompletions() override;
  common::Status AppendIdempotencyKey(buffer::IdempotencyEntry entry, Done done) override;
  std::vector<buffer::IdempotencyEntry> TakeLoadedIdempotencyKeys() override { return {}; }
  uint64_t BacklogBeforeRoom(uint64_t) const override { return 0; }

  // Joins the target's consumer group. `added`: a group with no committed offset starts
  // at the topic's end (messages stored before were not addressed to it); otherwise at
  // its beginning.
  common::Status OpenTarget(const std::string& target, bool added,
                            std::unique_ptr<buffer::TargetQueue>* out) override;
  // Leaves the target's group (its partitions go to other instances); the TargetQueue
  // stays valid and hands out nothing more.
  void RemoveTarget(const std::string& target) override;

  common::Status AppendDeadLetter(buffer::DeadLetter dl, Done done) override;
  // As this instance knows them: its own letters at once, other instances' letters (and
  // the ones stored before it started) once the tailing reader has read them.
  uint64_t DeadLetterCount(const std::string& target) const override;
  common::Status ListDeadLetters(const std::string& target,
                                 std::vector<buffer::DeadLetter>* out) const override;
  // Writes a tombstone per letter; `done` gets the number stored.
  common::Status PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                  Done done) override;
  // Produces each letter's message again, addressed to `target` alone, and once it is
  // stored the letter's tombstone. `done` gets the number of letters removed.
  common::Status ReplayDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                   Done done, size_t* queued) override;

  const char* kind() const override { return "kafka"; }
  common::Status fatal_error() const override;
  // Unavailable while no broker is reachable (librdkafka reported all brokers down and
  // no request has succeeded since), or once closed.
  common::Status Availability() const override;
  void Reconfigure(const buffer::QueueTunables&) override {}
  uint64_t bytes() const override { return 0; }
  uint64_t max_bytes() const override { return 0; }
  size_t segment_count() const override { return 0; }
  // Stops taking appends, commits every target's safe offsets, leaves the groups,
  // flushes the producer (at most close_timeout; what is left fails Unavailable) and
  // runs the last callbacks.
  void Close() override;

  // Partitions of `topic` this instance's member of the target's group holds now
  // (admin views, tests).
  size_t AssignedPartitions(const std::string& target) const;
  // Records the target's member fetched again under the same assignment and dropped
  // (librdkafka moved its fetch position back; see Target::ApplyBackpressure).
  uint64_t RefetchedMessages(const std::string& target) const;

  // Tests: the producer, to inject a fatal error (rd_kafka_test_fatal_error).
  rd_kafka_s* producer_for_testing() const { return producer_; }
  // Tests: the target's consumer, to move its position (rd_kafka_seek_partitions).
  rd_kafka_s* consumer_for_testing(const std::string& target) const;

 private:
  class Target;
  class TargetHandle;
  struct Operation;
  struct Delivery;
  struct Completion {
    Done done;
    common::Status status;
    uint64_t value = 0;
  };

  KafkaQueue(KafkaOptions options, buffer::QueueEvents events);
  std::shared_ptr<Target> FindTarget(const std::string& target) const;  // open, not removed
  common::Status Start();
  common::Status StartDeadReader();
  // Produces one record; `d` is handed to the delivery report (deleted there, or here
  // when producing fails).
  common::Status Produce(const std::string& topic, const std::string& key, const std::string* value,
                         uint64_t ingest_unix_ns, uint64_t seq, Delivery* d);
  void OnDelivery(const rd_kafka_message_s* m);
  void OnProducerError(int err, const char* reason);
  void OnDeadRecord(const rd_kafka_message_s* m);
  // One part of `op` ended with `s` (counting `value`): completes it after the last.
  void EndPart(Operation& op, const common::Status& s, uint64_t value);
  void PushCompletion(Completion c);
  common::Status StatusOfDelivery(int err);
  std::string DeadTopic(const std::string& target) const;

  // Asks the brokers to create the target's compacted dead-letter topic; the answer is
  // read by the poller (an existing topic is fine).
  void CreateDeadTopic(const std::string& target);
  void ServeAdminResults();
  void PollLoop();
  void Poke();
  void ProbeBrokers();

  const KafkaOptions options_;
  const buffer::QueueEvents events_;
  rd_kafka_s* producer_ = nullptr;
  rd_kafka_s* dead_reader_ = nullptr;    // tails every target's dead-letter topic
  rd_kafka_queue_s* admin_q_ = nullptr;  // CreateTopics results
  std::thread poller_;

  std::mutex poke_mu_;  // never held while calling librdkafka
  std::condition_variable poke_cv_;
  bool poked_ = false;     // guarded by poke_mu_
  bool stopping_ = false;  // guarded by poke_mu_

  mutable std::mutex mu_;
  std::vector<Completion> completions_;         // guarded by mu_
  std::map<std::string, DeadLetterView> dead_;  // by target; guarded by mu_
  // Every target opened, removed ones too (their TargetQueues live until Close).
  std::vector<std::shared_ptr<Target>> targets_;  // guarded by mu_
  common::Status fatal_;                          // guarded by mu_
  bool brokers_down_ = false;                     // guarded by mu_
  bool closing_ = false;                          // guarded by mu_
  bool closed_ = false;                           // owner thread
};

}  // namespace sluice::broker
