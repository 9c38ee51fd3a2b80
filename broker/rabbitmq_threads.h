#pragma once

// The parts of RabbitMqQueue its threads share: the per-target state, the work handed to
// the publisher thread, and the two thread classes. Only broker/rabbitmq_*.cc include it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "broker/amqp_connection.h"
#include "broker/event_fd.h"
#include "broker/rabbitmq_queue.h"
#include "buffer/dead_letter.h"
#include "common/status.h"

namespace sluice::broker {

using SteadyClock = std::chrono::steady_clock;

// How long an idle broker thread sleeps in poll(2) before it lets librabbitmq look at the
// connection again (heartbeats are sent and checked only while it reads).
inline constexpr auto kIdlePoll = std::chrono::milliseconds(500);
// At most this many frames are read before a thread looks at its inbox again.
inline constexpr int kFramesPerDrain = 256;

struct RabbitMqQueue::Target {
  struct Delivery {
    uint64_t tag;
    uint64_t ingest_unix_ns;
    std::string payload;
  };

  Target(std::string target_name, const RabbitMqOptions& options, uint16_t target_prefetch,
         amqp_channel_t consumer_channel)
      : name(std::move(target_name)),
        queue(options.queue_prefix + name),
        dead_queue(options.queue_prefix + name + ".dead"),
        prefetch(target_prefetch),
        channel(consumer_channel) {}

  const std::string name;
  const std::string queue;
  const std::string dead_queue;
  const uint16_t prefetch;
  const amqp_channel_t channel;  // on the consumer connection

  // Under mu_: bounded by the prefetch (what the broker lets one consumer hold).
  std::deque<Delivery> ready;
  bool consuming = false;  // opened and not removed

  // Written by the publisher thread.
  std::atomic<bool> declared{false};
  std::atomic<uint64_t> ready_at_declare{0};
  std::atomic<uint64_t> dead_letters{0};
};

// Work for the publisher thread.
struct RabbitMqQueue::Op {
  enum class Kind { kAppend, kDeadLetter, kPurge, kReplay, kList, kDeclare };
  Kind kind = Kind::kAppend;
  std::string payload;  // kAppend: the message; kDeadLetter: EncodeDeadLetterPayload
  uint64_t ingest_unix_ns = 0;
  std::string target;
  std::optional<common::Uuid> id;
  Done done;                         // cleared once handed on
  bool unconfirmed = false;          // an Append counted in Publisher::unconfirmed_
  std::shared_ptr<SyncReply> reply;  // kList, kDeclare; cleared once answered
};

// The answer to a synchronous Call(), under mu_.
struct RabbitMqQueue::SyncReply {
  bool done = false;
  common::Status status;
  std::vector<buffer::DeadLetter> letters;
};

// A publish waiting for its confirm.
struct RabbitMqQueue::Pending {
  std::function<void(const common::Status&)> on_result;
  SteadyClock::time_point sent;
  bool append;  // counted in QueueEvents::on_commit
};

class RabbitMqQueue::Publisher {
 public:
  explicit Publisher(RabbitMqQueue& q) : q_(q), backoff_(q.options_.reconnect_initial_backoff) {}

  void Start();
  // Lets the thread publish what was handed over and wait for its confirms (up to
  // close_timeout), then joins it.
  void Stop();
  void Signal() { wake_.Signal(); }

  // Under q_.mu_.
  std::deque<std::unique_ptr<Op>> inbox_;
  bool connected_ = false;
  std::string blocked_;  // connection.blocked's reason while the broker blocks publishing
  common::Status down_ = common::Status::Unavailable("rabbitmq: not connected yet");
  uint64_t attempts_ = 0;   // connection attempts finished
  size_t unconfirmed_ = 0;  // appends handed over and not completed

 private:
  void Run();
  common::Status Connect();
  // Closes the connection and fails every publish waiting for a confirm with `why`.
  void Drop(const common::Status& why);
  void Fail(Op& op, const common::Status& why);
  void Answer(Op& op, common::Status status, std::vector<buffer::DeadLetter> letters = {});
  common::Status Handle(Op& op);
  common::Status DeclareTarget(const std::string& name);
  common::Status Publish(const std::string& exchange, std::string_view key,
                         const std::vector<std::string_view>& bcc, uint64_t ingest_unix_ns,
                         std::string_view body,
                         std::function<void(const common::Status&)> on_result, bool append = false);
  common::Status DrainFrames();
  // Runs the callbacks of the publishes a basic.ack / basic.nack covers and reports the
  // confirmed appends to QueueEvents::on_commit (the broker's "group commit").
  void Resolve(uint64_t tag, bool multiple, const common::Status& status);
  // Letters of `dead_queue` taken with basic.get and not acked: they stay the channel's
  // until it is recycled (RecycleAdminChannel returns them) or they are acked.
  struct Browsed {
    uint64_t delivery_tag;
    buffer::DeadLetter letter;
  };
  common::Status Browse(const std::string& target, const std::string& dead_queue,
                        std::vector<Browsed>* out);
  common::Status RecycleAdminChannel();
  common::Status RefreshDeadCount(Target& t);
  void SetBrowsedCount(Target& t, size_t left, size_t browsed);
  common::Status Purge(Op& op, Target& t);
  common::Status Replay(Op& op, Target& t);
  common::Status List(Op& op, Target& t);

  // Closes conn_ where Stop() cannot shut its socket down at the same time.
  void CloseConnection();

  RabbitMqQueue& q_;
  EventFd wake_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex fd_mu_;
  std::condition_variable exited_cv_;
  int socket_fd_ = -1;  // under fd_mu_: conn_'s socket while open
  bool exited_ = false;

  // The thread's own.
  AmqpConnection conn_;
  common::Duration backoff_;
  uint64_t next_seq_ = 1;
  std::map<uint64_t, Pending> pending_;
  std::set<std::string> declared_;  // on this connection
  SteadyClock::time_point next_refresh_{};
};

class RabbitMqQueue::Consumer {
 public:
  explicit Consumer(RabbitMqQueue& q) : q_(q), backoff_(q.options_.reconnect_initial_backoff) {}

  void Start();
  // Acks what was finished, then joins the thread.
  void Stop();
  void Signal() { wake_.Signal(); }

  // Under q_.mu_: tags Finish()ed, to be acked.
  std::vector<std::pair<Target*, uint64_t>> acks_;

 private:
  void Run();
  common::Status Sync();  // starts and stops consumers as targets are opened and removed
  common::Status SendAcks();
  common::Status DrainFrames(bool* delivered);
  void Drop();

  RabbitMqQueue& q_;
  EventFd wake_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  // The thread's own.
  AmqpConnection conn_;
  common::Duration backoff_;
  uint64_t generation_ = 0;
  std::map<amqp_channel_t, Target*> consuming_;  // on this connection
};

}  // namespace sluice::broker
