#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "broker/amqp_connection.h"
#include "buffer/queue.h"
#include "common/clock.h"
#include "common/status.h"

namespace sluice::broker {

struct RabbitMqOptions {
  std::string url = "amqp://guest:guest@127.0.0.1:5672/";
  std::string exchange = "sluice";
  std::string queue_prefix = "sluice.";  // target queue: prefix + target; dead letters: + ".dead"
  // Each configured target with its consumer prefetch (basic.qos): the proxy passes the
  // target's concurrency limit, so a consumer holds no more than it can deliver at once.
  std::map<std::string, uint16_t> targets;
  uint16_t default_prefetch = 4;  // a target opened that `targets` does not name
  common::Duration connect_timeout = std::chrono::seconds(5);  // also every RPC's timeout
  common::Duration heartbeat = std::chrono::seconds(10);
  common::Duration reconnect_initial_backoff = std::chrono::milliseconds(100);
  common::Duration reconnect_max_backoff = std::chrono::seconds(5);
  // How long the owner thread waits for a synchronous answer from the broker
  // (ListDeadLetters, declaring a target added by a reload).
  common::Duration admin_timeout = std::chrono::seconds(10);
  // Appends handed over and not yet confirmed; beyond, Append answers kBusy (503 + Retry-After).
  size_t max_unconfirmed = 10000;
  // Close() waits this long for confirms of appends already handed over.
  common::Duration close_timeout = std::chrono::seconds(5);
  // ListDeadLetters / purge / replay look at no more than this many letters per call.
  size_t max_browse = 100000;
  // UnixNow() stamps replayed messages' ingest time; null: the system clock. Read on the
  // publisher thread.
  const common::Clock* clock = nullptr;
};

// buffer::Queue on RabbitMQ (AMQP 0-9-1, librabbitmq-c).
//
// Topology: one durable direct exchange (`exchange`); per target a durable quorum queue
// `prefix + target` bound with routing key `target`, and a durable quorum queue
// `prefix + target + ".dead"` for its dead letters (not bound: written through the
// default exchange). A message for several targets is ONE publish: routing key = the first
// target, the others in the BCC header (RabbitMQ's sender-selected distribution). A direct
// exchange with BCC was chosen over a headers exchange because routing stays a hash lookup
// per key (a headers exchange matches every binding against every message) and RabbitMQ
// strips BCC before delivery, so consumers see only the payload, which names the targets.
// The confirm covers every queue the message reached.
//
// Durability: Append's `done` runs OK only after the broker's publisher confirm
// (confirm.select); a nack or a connection lost before the confirm completes it with
// kUnavailable, and the client may retry: at least once. Messages are persistent and carry
// ingest_unix_ns in the header "sluice-ingest-ns" (and, in seconds, the timestamp).
// QueueEvents::on_commit gets, per basic.ack, how long the oldest append it covers waited
// for its confirm and how many appends it confirmed: the broker's group commit.
//
// Delivery: one consumer per target with manual acks and prefetch = the target's
// prefetch; Finish() acks. Several sluice instances consuming the same queues share its
// messages: the broker gives each to one consumer. A tag carries the consumer
// connection's generation in its top 24 bits, so Finish() of a message delivered on a
// connection that has since died is ignored (the broker redelivers it).
//
// Threads: a publisher thread owns one connection (channel 1: confirmed publishes;
// channel 2: declares, dead-letter browsing, purges) and a consumer thread owns another
// (one channel per target). Both reconnect with backoff when the broker goes away; while
// the publisher is disconnected Append answers kUnavailable and Availability() says why.
// Every callback runs in RunCompletions() on the owner thread.
//
// Not kept by this backend: idempotency keys live in memory only (AppendIdempotencyKey
// completes at once, TakeLoadedIdempotencyKeys() is empty), so they do not survive a
// restart; there are no bytes or segments to count (0), and no max_bytes (the broker's
// own limits apply; its refusals come back as kUnavailable).
class RabbitMqQueue : public buffer::Queue {
 public:
  // Starts the threads and waits up to connect_timeout for the first connection, so the
  // queues of options.targets exist and are counted when it returns OK. A broker that
  // cannot be reached is not an error here: the queue keeps trying and Availability()
  // says why. Errors: an unusable URL (kInvalidArgument).
  static common::Status Open(RabbitMqOptions options, buffer::QueueEvents events,
                             std::unique_ptr<RabbitMqQueue>* out);
  ~RabbitMqQueue() override;

  // A TargetQueue tag: the consumer connection's generation above this bit, the broker's
  // delivery tag below it.
  static constexpr int kTagGenerationShift = 40;

  // The prefetch of a target that OpenTarget(added=true) opens next (a reload).
  void SetPrefetch(const std::string& target, uint16_t prefetch);

  common::Status Append(std::string payload, uint64_t ingest_unix_ns, Done done) override;
  void Submit() override {}
  void RunCompletions() override;
  common::Status AppendIdempotencyKey(buffer::IdempotencyEntry entry, Done done) override;
  std::vector<buffer::IdempotencyEntry> TakeLoadedIdempotencyKeys() override { return {}; }
  uint64_t BacklogBeforeRoom(uint64_t) const override { return 0; }

  common::Status OpenTarget(const std::string& target, bool added,
                            std::unique_ptr<buffer::TargetQueue>* out) override;
  void RemoveTarget(const std::string& target) override;

  common::Status AppendDeadLetter(buffer::DeadLetter dl, Done done) override;
  // The count the publisher thread last saw (declare-ok after each change, and every few
  // seconds): letters other instances store show up with that delay.
  uint64_t DeadLetterCount(const std::string& target) const override;
  // Blocks the caller up to admin_timeout: the letters are browsed on the broker
  // (basic.get without ack, then the channel is closed so they stay queued).
  common::Status ListDeadLetters(const std::string& target,
                                 std::vector<buffer::DeadLetter>* out) const override;
  common::Status PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                  Done done) override;
  // As the disk log: each copy names `target` alone and is stamped received now. *queued
  // is 0: the count is known only when `done` runs (its value). Nothing to replay:
  // NotFound, returned at once when the known count is 0, else through `done`.
  common::Status ReplayDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                   Done done, size_t* queued) override;

  const char* kind() const override { return "rabbitmq"; }
  common::Status fatal_error() const override { return common::Status::OK(); }
  common::Status Availability() const override;
  void Reconfigure(const buffer::QueueTunables&) override {}
  uint64_t bytes() const override { return 0; }
  uint64_t max_bytes() const override { return 0; }
  size_t segment_count() const override { return 0; }
  void Close() override;

 private:
  struct Target;
  struct Op;
  struct Pending;
  struct SyncReply;
  class Publisher;
  class Consumer;
  class TargetQueueImpl;
  friend class TargetQueueImpl;

  RabbitMqQueue(RabbitMqOptions options, AmqpEndpoint endpoint, buffer::QueueEvents events);
  // Hands `op` to the publisher thread.
  common::Status Enqueue(std::unique_ptr<Op> op) const;
  // Runs `op` on the publisher thread and waits for its answer up to admin_timeout.
  common::Status Call(std::unique_ptr<Op> op, std::shared_ptr<SyncReply> reply) const;
  // Queues `done` for RunCompletions() and wakes the owner. Any thread; `append`: it
  // completes an Append (one fewer unconfirmed).
  void Complete(Done done, common::Status status, uint64_t value, bool append = false);
  Target* FindTarget(const std::string& name) const;
  Target* AddTarget(const std::string& name);  // REQUIRES: mu_ held

  const RabbitMqOptions options_;
  const AmqpEndpoint endpoint_;
  const buffer::QueueEvents events_;
  const common::SystemClock system_clock_;
  const common::Clock& clock_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;                      // a SyncReply is ready
  std::map<std::string, std::unique_ptr<Target>> targets_;  // never erased before Close
  std::map<std::string, uint16_t> prefetch_;                // SetPrefetch()
  struct Completion {
    Done done;
    common::Status status;
    uint64_t value;
  };
  std::vector<Completion> completions_;
  std::atomic<bool> closed_{false};

  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<Consumer> consumer_;
};

}  // namespace sluice::broker
