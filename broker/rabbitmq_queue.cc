#include "broker/rabbitmq_queue.h"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <utility>

#include "broker/event_fd.h"
#include "buffer/message.h"

namespace sluice::broker {

using buffer::DeadLetter;
using common::Status;
using SteadyClock = std::chrono::steady_clock;

namespace {

// A tag is the consumer connection's generation (top 24 bits) and the broker's delivery
// tag on that connection's channel (low 40 bits): unique across reconnects, so an ack for
// a delivery of a dead connection can be recognised and dropped.
constexpr int kGenerationShift = 40;
constexpr uint64_t kDeliveryTagMask = (uint64_t{1} << kGenerationShift) - 1;
constexpr uint64_t kGenerationMask = (uint64_t{1} << (64 - kGenerationShift)) - 1;

// The publisher connection's channels: confirmed publishes on one, RPCs on the other (a
// browse closes its channel to give the letters back, which must not cost the confirms).
constexpr amqp_channel_t kPublishChannel = 1;
constexpr amqp_channel_t kAdminChannel = 2;

// How long an idle broker thread sleeps in poll(2) before it lets librabbitmq look at the
// connection again (heartbeats are sent and checked only while it reads).
constexpr auto kIdlePoll = std::chrono::milliseconds(500);
// How often the publisher re-reads the dead-letter queues' depths (other instances add).
constexpr auto kDeadCountRefresh = std::chrono::seconds(5);
// At most this many frames are read before a thread looks at its inbox again.
constexpr int kFramesPerDrain = 256;

Status Blocked(const std::string& reason) {
  return Status::Unavailable("rabbitmq: the broker blocks publishing (" + reason + ")");
}

std::optional<common::Uuid> IdOf(std::string_view payload) {
  auto view = buffer::DecodeMessageView(payload);
  if (!view) return std::nullopt;
  return view->id;
}

}  // namespace

// One target: its queues, the consumer's channel and the deliveries waiting for Next().
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
  Status status;
  std::vector<DeadLetter> letters;
};

// A publish waiting for its confirm.
struct RabbitMqQueue::Pending {
  std::function<void(const Status&)> on_result;
  SteadyClock::time_point sent;
  bool append;  // counted in QueueEvents::on_commit
};

// ---------------------------------------------------------------------------------------
// Publisher thread: appends, dead letters and the admin operations, on one connection.

class RabbitMqQueue::Publisher {
 public:
  explicit Publisher(RabbitMqQueue& q) : q_(q), backoff_(q.options_.reconnect_initial_backoff) {}

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stopping_ = true;
    wake_.Signal();
    {
      // A publish stuck in send(2) (a broker that stopped reading, say under a resource
      // alarm) would never see stopping_: past close_timeout its socket is shut down.
      std::unique_lock<std::mutex> lock(fd_mu_);
      if (!exited_cv_.wait_for(lock, q_.options_.close_timeout + std::chrono::seconds(1),
                               [&] { return exited_; }) &&
          socket_fd_ >= 0) {
        shutdown(socket_fd_, SHUT_RDWR);
      }
    }
    if (thread_.joinable()) thread_.join();
  }
  void Signal() { wake_.Signal(); }

  // Under q_.mu_.
  std::deque<std::unique_ptr<Op>> inbox_;
  bool connected_ = false;
  std::string blocked_;  // connection.blocked's reason while the broker blocks publishing
  Status down_ = Status::Unavailable("rabbitmq: not connected yet");
  uint64_t attempts_ = 0;   // connection attempts finished
  size_t unconfirmed_ = 0;  // appends handed over and not completed

 private:
  void Run();
  Status Connect();
  // Closes the connection and fails every publish waiting for a confirm with `why`.
  void Drop(const Status& why);
  void Fail(Op& op, const Status& why);
  void Answer(Op& op, Status status, std::vector<DeadLetter> letters = {});
  Status Handle(Op& op);
  Status DeclareTarget(const std::string& name);
  Status Publish(const std::string& exchange, std::string_view key,
                 const std::vector<std::string_view>& bcc, uint64_t ingest_unix_ns,
                 std::string_view body, std::function<void(const Status&)> on_result,
                 bool append = false);
  Status DrainFrames();
  // Runs the callbacks of the publishes a basic.ack / basic.nack covers and reports the
  // confirmed appends to QueueEvents::on_commit (the broker's "group commit").
  void Resolve(uint64_t tag, bool multiple, const Status& status);
  // Letters of `dead_queue` taken with basic.get and not acked: they stay the channel's
  // until it is recycled (RecycleAdminChannel returns them) or they are acked.
  struct Browsed {
    uint64_t delivery_tag;
    DeadLetter letter;
  };
  Status Browse(const std::string& target, const std::string& dead_queue,
                std::vector<Browsed>* out);
  Status RecycleAdminChannel();
  Status RefreshDeadCount(Target& t);
  void SetBrowsedCount(Target& t, size_t left, size_t browsed);
  Status Purge(Op& op, Target& t);
  Status Replay(Op& op, Target& t);
  Status List(Op& op, Target& t);

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

void RabbitMqQueue::Publisher::Run() {
  std::optional<SteadyClock::time_point> stop_deadline;
  for (;;) {
    if (stopping_ && !stop_deadline) stop_deadline = SteadyClock::now() + q_.options_.close_timeout;
    if (!conn_.is_open()) {
      Status s = stopping_ ? Status::Unavailable("rabbitmq: closed") : Connect();
      {
        std::lock_guard<std::mutex> lock(q_.mu_);
        ++attempts_;
        connected_ = s.ok();
        if (!s.ok()) down_ = s;
      }
      q_.cv_.notify_all();
      if (!s.ok()) {
        std::deque<std::unique_ptr<Op>> ops;
        {
          std::lock_guard<std::mutex> lock(q_.mu_);
          ops.swap(inbox_);
        }
        for (auto& op : ops) Fail(*op, s);
        if (stopping_) break;
        WaitReadable(-1, wake_, backoff_);
        backoff_ = std::min(backoff_ * 2, q_.options_.reconnect_max_backoff);
        continue;
      }
      backoff_ = q_.options_.reconnect_initial_backoff;
    }

    std::deque<std::unique_ptr<Op>> ops;
    {
      std::lock_guard<std::mutex> lock(q_.mu_);
      ops.swap(inbox_);
    }
    Status s;
    for (auto& op : ops) {
      if (s.ok()) s = Handle(*op);
      if (!s.ok()) Fail(*op, s);
    }
    if (s.ok()) s = DrainFrames();
    if (s.ok() && SteadyClock::now() >= next_refresh_) {
      next_refresh_ = SteadyClock::now() + kDeadCountRefresh;
      std::vector<Target*> targets;
      {
        std::lock_guard<std::mutex> lock(q_.mu_);
        for (auto& [name, t] : q_.targets_) targets.push_back(t.get());
      }
      for (Target* t : targets) {
        if (s.ok() && declared_.count(t->name)) s = RefreshDeadCount(*t);
      }
    }
    if (!s.ok()) {
      Drop(s);
      continue;
    }
    bool idle;
    {
      std::lock_guard<std::mutex> lock(q_.mu_);
      idle = inbox_.empty();
    }
    idle = idle && !conn_.HasBufferedFrames();
    if (stop_deadline && idle && (pending_.empty() || SteadyClock::now() >= *stop_deadline)) {
      break;
    }
    if (idle) WaitReadable(conn_.fd(), wake_, stop_deadline ? kIdlePoll / 10 : kIdlePoll);
  }
  Drop(Status::Unavailable("rabbitmq: closed before the broker confirmed"));
  std::deque<std::unique_ptr<Op>> ops;
  {
    std::lock_guard<std::mutex> lock(q_.mu_);
    ops.swap(inbox_);
    connected_ = false;
    down_ = Status::Unavailable("rabbitmq: closed");
  }
  for (auto& op : ops) Fail(*op, Status::Unavailable("rabbitmq: closed"));
  q_.cv_.notify_all();
  {
    std::lock_guard<std::mutex> lock(fd_mu_);
    exited_ = true;
  }
  exited_cv_.notify_all();
}

void RabbitMqQueue::Publisher::CloseConnection() {
  std::lock_guard<std::mutex> lock(fd_mu_);
  conn_.Close();
  socket_fd_ = -1;
}

Status RabbitMqQueue::Publisher::Connect() {
  const RabbitMqOptions& o = q_.options_;
  Status s = conn_.Open(q_.endpoint_, o.connect_timeout, o.heartbeat);
  if (s.ok()) {
    std::lock_guard<std::mutex> lock(fd_mu_);
    socket_fd_ = conn_.fd();
  }
  if (s.ok()) s = conn_.OpenChannel(kPublishChannel);
  if (s.ok()) s = conn_.ConfirmSelect(kPublishChannel);
  if (s.ok()) s = conn_.OpenChannel(kAdminChannel);
  if (s.ok()) s = conn_.DeclareDirectExchange(kAdminChannel, o.exchange);
  next_seq_ = 1;
  declared_.clear();
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(q_.mu_);
    for (auto& [name, t] : q_.targets_) names.push_back(name);
  }
  for (const auto& name : names) {
    if (s.ok()) s = DeclareTarget(name);
  }
  if (!s.ok()) CloseConnection();
  next_refresh_ = SteadyClock::now() + kDeadCountRefresh;
  {
    std::lock_guard<std::mutex> lock(q_.mu_);
    blocked_.clear();
  }
  return s;
}

Status RabbitMqQueue::Publisher::DeclareTarget(const std::string& name) {
  const RabbitMqOptions& o = q_.options_;
  const std::string queue = o.queue_prefix + name;
  const std::string dead_queue = queue + ".dead";
  uint32_t ready = 0;
  uint32_t dead = 0;
  Status s = conn_.DeclareQuorumQueue(kAdminChannel, queue, &ready);
  if (s.ok()) s = conn_.Bind(kAdminChannel, queue, o.exchange, name);
  if (s.ok()) s = conn_.DeclareQuorumQueue(kAdminChannel, dead_queue, &dead);
  if (!s.ok()) return s;
  declared_.insert(name);
  if (Target* t = q_.FindTarget(name)) {
    t->ready_at_declare = ready;
    t->dead_letters = dead;
    t->declared = true;
  }
  return s;
}

void RabbitMqQueue::Publisher::Drop(const Status& why) {
  CloseConnection();
  declared_.clear();
  std::map<uint64_t, Pending> pending;
  pending.swap(pending_);
  for (auto& [seq, p] : pending) p.on_result(why);
  {
    std::lock_guard<std::mutex> lock(q_.mu_);
    connected_ = false;
    down_ = why;
  }
}

void RabbitMqQueue::Publisher::Fail(Op& op, const Status& why) {
  if (op.done || op.unconfirmed) {
    q_.Complete(std::move(op.done), why, 0, op.unconfirmed);
    op.done = nullptr;
    op.unconfirmed = false;
  }
  if (op.reply) Answer(op, why);
}

void RabbitMqQueue::Publisher::Answer(Op& op, Status status, std::vector<DeadLetter> letters) {
  {
    std::lock_guard<std::mutex> lock(q_.mu_);
    op.reply->status = std::move(status);
    op.reply->letters = std::move(letters);
    op.reply->done = true;
  }
  op.reply = nullptr;
  q_.cv_.notify_all();
}

Status RabbitMqQueue::Publisher::Publish(const std::string& exchange, std::string_view key,
                                         const std::vector<std::string_view>& bcc,
                                         uint64_t ingest_unix_ns, std::string_view body,
                                         std::function<void(const Status&)> on_result,
                                         bool append) {
  Status s = conn_.Publish(kPublishChannel, exchange, key, bcc, ingest_unix_ns, body);
  if (!s.ok()) {
    on_result(s);
    return s;
  }
  // Confirms number the channel's publishes from 1, in order.
  pending_.emplace(next_seq_++, Pending{std::move(on_result), SteadyClock::now(), append});
  return s;
}

Status RabbitMqQueue::Publisher::Handle(Op& op) {
  Status s;
  if (op.kind == Op::Kind::kAppend) {
    std::vector<std::string_view> targets;
    if (!buffer::DecodeMessageTargets(op.payload, &targets) || targets.empty()) {
      Fail(op, Status::InvalidArgument("message names no target"));
      return s;
    }
    // Every queue the message names must exist and be bound before the publish: the
    // exchange drops what matches no binding, and the confirm would still come.
    for (std::string_view t : targets) {
      if (s.ok() && !declared_.count(std::string(t))) s = DeclareTarget(std::string(t));
    }
    if (!s.ok()) return s;
    std::vector<std::string_view> bcc(targets.begin() + 1, targets.end());
    RabbitMqQueue* q = &q_;
    Done done = std::move(op.done);
    op.done = nullptr;
    op.unconfirmed = false;  // the confirm's callback counts it now
    s = Publish(
        q_.options_.exchange, targets[0], bcc, op.ingest_unix_ns, op.payload,
        [q, done = std::move(done)](const Status& result) mutable {
          q->Complete(std::move(done), result, 0, /*append=*/true);
        },
        /*append=*/true);
    return s;
  }

  Target* t = q_.FindTarget(op.target);
  if (t == nullptr && op.kind != Op::Kind::kDeadLetter) {
    Fail(op, Status::NotFound("rabbitmq: no target " + op.target));
    return s;
  }
  if (!declared_.count(op.target)) s = DeclareTarget(op.target);
  if (!s.ok()) return s;

  switch (op.kind) {
    case Op::Kind::kAppend:
      break;
    case Op::Kind::kDeclare:
      Answer(op, Status::OK());
      return s;
    case Op::Kind::kDeadLetter: {
      RabbitMqQueue* q = &q_;
      Done done = std::move(op.done);
      op.done = nullptr;
      // Through the default exchange straight into the dead-letter queue: it is bound to
      // nothing, so no fan-out ever reaches it.
      return Publish(std::string(), q_.options_.queue_prefix + op.target + ".dead", {},
                     op.ingest_unix_ns, op.payload,
                     [q, t, done = std::move(done)](const Status& result) mutable {
                       if (result.ok() && t != nullptr) ++t->dead_letters;
                       q->Complete(std::move(done), result, 0);
                     });
    }
    case Op::Kind::kPurge:
      return Purge(op, *t);
    case Op::Kind::kReplay:
      return Replay(op, *t);
    case Op::Kind::kList:
      return List(op, *t);
  }
  return s;
}

Status RabbitMqQueue::Publisher::Browse(const std::string& target, const std::string& dead_queue,
                                        std::vector<Browsed>* out) {
  while (out->size() < q_.options_.max_browse) {
    bool got = false;
    uint64_t tag = 0;
    AmqpConnection::Content content;
    Status s = conn_.Get(kAdminChannel, dead_queue, &got, &tag, &content);
    if (!s.ok()) return s;
    if (!got) break;
    auto letter = buffer::DecodeDeadLetterPayload(content.body, 0, content.ingest_unix_ns);
    // A letter this version cannot read stays where it is (the channel gives it back).
    if (!letter) continue;
    letter->target = target;
    out->push_back(Browsed{tag, std::move(*letter)});
  }
  return Status::OK();
}

Status RabbitMqQueue::Publisher::RecycleAdminChannel() {
  Status s = conn_.CloseChannel(kAdminChannel);
  if (s.ok()) s = conn_.OpenChannel(kAdminChannel);
  return s;
}

void RabbitMqQueue::Publisher::SetBrowsedCount(Target& t, size_t left, size_t browsed) {
  // A browse that stopped at max_browse saw only part of the queue. Otherwise what it saw
  // is the count: the letters given back by closing the channel return to the quorum
  // queue asynchronously, so a declare-ok right after would miss them.
  if (browsed < q_.options_.max_browse) t.dead_letters = left;
  next_refresh_ = SteadyClock::now() + kDeadCountRefresh;
}

Status RabbitMqQueue::Publisher::RefreshDeadCount(Target& t) {
  uint32_t n = 0;
  Status s = conn_.DeclareQuorumQueue(kAdminChannel, t.dead_queue, &n);
  if (s.ok()) t.dead_letters = n;
  return s;
}

Status RabbitMqQueue::Publisher::Purge(Op& op, Target& t) {
  uint64_t removed = 0;
  Status s;
  if (!op.id) {
    uint32_t n = 0;
    s = conn_.Purge(kAdminChannel, t.dead_queue, &n);
    removed = n;
  } else {
    std::vector<Browsed> letters;
    s = Browse(t.name, t.dead_queue, &letters);
    for (const Browsed& b : letters) {
      if (s.ok() && IdOf(b.letter.payload) == op.id) {
        s = conn_.Ack(kAdminChannel, b.delivery_tag);
        ++removed;
      }
    }
    if (s.ok()) s = RecycleAdminChannel();
    if (s.ok()) SetBrowsedCount(t, letters.size() - removed, letters.size());
  }
  if (s.ok() && !op.id) s = RefreshDeadCount(t);
  if (!s.ok()) return s;
  q_.Complete(std::move(op.done), Status::OK(), removed);
  op.done = nullptr;
  return s;
}

Status RabbitMqQueue::Publisher::Replay(Op& op, Target& t) {
  std::vector<Browsed> letters;
  Status s = Browse(t.name, t.dead_queue, &letters);
  if (!s.ok()) return s;
  const size_t browsed = letters.size();
  // As the disk log does: each copy names this target alone and is received now (an old
  // ingest time would expire it again at once under max_age).
  std::vector<std::string> copies;
  std::erase_if(letters, [&](const Browsed& b) {
    auto message = buffer::DecodeMessage(b.letter.payload);
    if (!message || (op.id && message->id != *op.id)) return true;
    message->targets = {t.name};
    copies.push_back(buffer::EncodeMessage(*message));
    return false;
  });
  if (letters.empty()) {
    s = RecycleAdminChannel();
    if (!s.ok()) return s;
    q_.Complete(std::move(op.done),
                Status::NotFound(op.id ? "no dead letter with that id" : "no dead letters"), 0);
    op.done = nullptr;
    return s;
  }
  // The copies go to this target's queue alone (routing key = target, no BCC); a letter
  // is removed only once every copy is confirmed. A failure in between leaves both: at
  // least once.
  struct Outcome {
    size_t resolved = 0;
    Status first_error;
  };
  auto outcome = std::make_shared<Outcome>();
  const auto now_ns = static_cast<uint64_t>(q_.clock_.UnixNow().count());
  for (const std::string& copy : copies) {
    s = Publish(q_.options_.exchange, t.name, {}, now_ns, copy, [outcome](const Status& result) {
      ++outcome->resolved;
      if (!result.ok() && outcome->first_error.ok()) outcome->first_error = result;
    });
    if (!s.ok()) return s;
  }
  const auto deadline = SteadyClock::now() + q_.options_.admin_timeout;
  while (outcome->resolved < letters.size()) {
    if (SteadyClock::now() >= deadline) {
      return Status::Unavailable("rabbitmq: replayed messages not confirmed in time");
    }
    s = DrainFrames();
    if (!s.ok()) return s;
    if (outcome->resolved < letters.size()) WaitReadable(conn_.fd(), wake_, kIdlePoll / 10);
  }
  if (!outcome->first_error.ok()) {
    s = RecycleAdminChannel();
    if (!s.ok()) return s;
    q_.Complete(std::move(op.done), outcome->first_error, 0);
    op.done = nullptr;
    return s;
  }
  for (const Browsed& b : letters) {
    if (s.ok()) s = conn_.Ack(kAdminChannel, b.delivery_tag);
  }
  if (s.ok()) s = RecycleAdminChannel();
  if (s.ok()) SetBrowsedCount(t, browsed - letters.size(), browsed);
  if (!s.ok()) return s;
  q_.Complete(std::move(op.done), Status::OK(), letters.size());
  op.done = nullptr;
  return s;
}

Status RabbitMqQueue::Publisher::List(Op& op, Target& t) {
  std::vector<Browsed> browsed;
  Status s = Browse(t.name, t.dead_queue, &browsed);
  if (s.ok()) s = RecycleAdminChannel();
  if (!s.ok()) return s;
  std::vector<DeadLetter> letters;
  letters.reserve(browsed.size());
  for (Browsed& b : browsed) letters.push_back(std::move(b.letter));
  // Oldest letter first, whatever order the queue gave them back in after earlier
  // browses (a quorum queue may return a browsed letter behind later ones).
  std::stable_sort(letters.begin(), letters.end(), [](const DeadLetter& a, const DeadLetter& b) {
    return a.dead_unix_ns < b.dead_unix_ns;
  });
  SetBrowsedCount(t, letters.size(), letters.size());
  Answer(op, Status::OK(), std::move(letters));
  return s;
}

Status RabbitMqQueue::Publisher::DrainFrames() {
  for (int i = 0; i < kFramesPerDrain; ++i) {
    amqp_frame_t frame;
    bool got = false;
    Status s = conn_.ReadFrame(&frame, common::Duration::zero(), &got);
    if (!s.ok()) return s;
    if (!got) break;
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        Resolve(ack->delivery_tag, ack->multiple, Status::OK());
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto* nack = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
        Resolve(nack->delivery_tag, nack->multiple,
                Status::Unavailable("rabbitmq: the broker refused the message (basic.nack)"));
        break;
      }
      case AMQP_CONNECTION_BLOCKED_METHOD: {
        auto* blocked = static_cast<amqp_connection_blocked_t*>(frame.payload.method.decoded);
        std::string reason(static_cast<const char*>(blocked->reason.bytes), blocked->reason.len);
        std::lock_guard<std::mutex> lock(q_.mu_);
        blocked_ = reason.empty() ? "blocked" : reason;
        break;
      }
      case AMQP_CONNECTION_UNBLOCKED_METHOD: {
        std::lock_guard<std::mutex> lock(q_.mu_);
        blocked_.clear();
        break;
      }
      case AMQP_CHANNEL_CLOSE_METHOD: {
        auto* close = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
        return Status::Unavailable(
            "rabbitmq: channel closed by broker: " + std::to_string(close->reply_code) + " " +
            std::string(static_cast<const char*>(close->reply_text.bytes), close->reply_text.len));
      }
      case AMQP_CONNECTION_CLOSE_METHOD: {
        auto* close = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
        return Status::Unavailable(
            "rabbitmq: connection closed by broker: " + std::to_string(close->reply_code) + " " +
            std::string(static_cast<const char*>(close->reply_text.bytes), close->reply_text.len));
      }
      default:
        break;
    }
  }
  conn_.ReleaseBuffers();
  return Status::OK();
}

void RabbitMqQueue::Publisher::Resolve(uint64_t tag, bool multiple, const Status& status) {
  auto first = multiple ? pending_.begin() : pending_.find(tag);
  auto last = multiple ? pending_.upper_bound(tag) : first;
  if (!multiple && first != pending_.end()) ++last;
  size_t appends = 0;
  std::optional<SteadyClock::time_point> oldest;
  for (auto it = first; it != last; ++it) {
    if (!it->second.append) continue;
    ++appends;
    if (!oldest) oldest = it->second.sent;
  }
  // Observers first: whoever the callbacks wake sees the commit already counted.
  if (appends > 0 && status.ok() && q_.events_.on_commit) {
    q_.events_.on_commit(SteadyClock::now() - *oldest, appends);
  }
  for (auto it = first; it != last;) {
    it->second.on_result(status);
    it = pending_.erase(it);
  }
}

// ---------------------------------------------------------------------------------------
// Consumer thread: one channel per target, deliveries in, acks out.

class RabbitMqQueue::Consumer {
 public:
  explicit Consumer(RabbitMqQueue& q) : q_(q), backoff_(q.options_.reconnect_initial_backoff) {}

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stopping_ = true;
    wake_.Signal();
    if (thread_.joinable()) thread_.join();
  }
  void Signal() { wake_.Signal(); }

  // Under q_.mu_: tags Finish()ed, to be acked.
  std::vector<std::pair<Target*, uint64_t>> acks_;

 private:
  void Run();
  Status Sync();  // starts and stops consumers as targets are opened and removed
  Status SendAcks();
  Status DrainFrames(bool* delivered);
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

void RabbitMqQueue::Consumer::Run() {
  while (!stopping_) {
    if (!conn_.is_open()) {
      Status s = conn_.Open(q_.endpoint_, q_.options_.connect_timeout, q_.options_.heartbeat);
      if (!s.ok()) {
        WaitReadable(-1, wake_, backoff_);
        backoff_ = std::min(backoff_ * 2, q_.options_.reconnect_max_backoff);
        continue;
      }
      generation_ = (generation_ + 1) & kGenerationMask;
      if (generation_ == 0) generation_ = 1;
    }
    bool delivered = false;
    Status s = Sync();
    if (s.ok()) s = SendAcks();
    if (s.ok()) s = DrainFrames(&delivered);
    if (delivered && q_.events_.wake) q_.events_.wake();
    if (!s.ok()) {
      // A broker that takes the connection but refuses the consumers must not make this
      // thread spin: wait before the next connection too.
      Drop();
      WaitReadable(-1, wake_, backoff_);
      backoff_ = std::min(backoff_ * 2, q_.options_.reconnect_max_backoff);
      continue;
    }
    backoff_ = q_.options_.reconnect_initial_backoff;
    bool idle;
    {
      std::lock_guard<std::mutex> lock(q_.mu_);
      idle = acks_.empty();
    }
    idle = idle && !conn_.HasBufferedFrames();
    if (idle) WaitReadable(conn_.fd(), wake_, kIdlePoll);
  }
  // What was finished before Close() is acked before the goodbye, so the broker does not
  // hand it out again.
  if (conn_.is_open() && SendAcks().ok()) conn_.Close();
  conn_.Close();
}

void RabbitMqQueue::Consumer::Drop() {
  conn_.Close();
  consuming_.clear();
  // What this connection delivered and nobody took yet goes back to the broker with it;
  // what was taken will be Finish()ed with a tag of a dead generation, and ignored.
  std::lock_guard<std::mutex> lock(q_.mu_);
  for (auto& [name, t] : q_.targets_) t->ready.clear();
  acks_.clear();
}

Status RabbitMqQueue::Consumer::Sync() {
  std::vector<Target*> start;
  std::vector<Target*> stop;
  {
    std::lock_guard<std::mutex> lock(q_.mu_);
    for (auto& [name, t] : q_.targets_) {
      bool on = consuming_.count(t->channel) > 0;
      if (t->consuming && !on) start.push_back(t.get());
      if (!t->consuming && on) stop.push_back(t.get());
    }
  }
  Status s;
  for (Target* t : stop) {
    // Closing the channel hands its unacked deliveries back to the queue.
    if (s.ok()) s = conn_.CloseChannel(t->channel);
    consuming_.erase(t->channel);
  }
  for (Target* t : start) {
    if (s.ok()) s = conn_.OpenChannel(t->channel);
    if (s.ok()) s = conn_.Qos(t->channel, t->prefetch);
    // Declared here too, so consuming never depends on the publisher having got there first.
    if (s.ok()) s = conn_.DeclareQuorumQueue(t->channel, t->queue, nullptr);
    if (s.ok()) s = conn_.Consume(t->channel, t->queue);
    if (s.ok()) consuming_[t->channel] = t;
  }
  return s;
}

Status RabbitMqQueue::Consumer::SendAcks() {
  std::vector<std::pair<Target*, uint64_t>> acks;
  {
    std::lock_guard<std::mutex> lock(q_.mu_);
    acks.swap(acks_);
  }
  Status s;
  for (auto [t, tag] : acks) {
    if ((tag >> kGenerationShift) != generation_) continue;  // delivered on a dead connection
    if (!consuming_.count(t->channel)) continue;             // its channel was closed since
    if (s.ok()) s = conn_.Ack(t->channel, tag & kDeliveryTagMask);
  }
  return s;
}

Status RabbitMqQueue::Consumer::DrainFrames(bool* delivered) {
  for (int i = 0; i < kFramesPerDrain; ++i) {
    amqp_frame_t frame;
    bool got = false;
    Status s = conn_.ReadFrame(&frame, common::Duration::zero(), &got);
    if (!s.ok()) return s;
    if (!got) break;
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_DELIVER_METHOD: {
        auto* deliver = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded);
        const uint64_t delivery_tag = deliver->delivery_tag;
        const amqp_channel_t channel = frame.channel;
        AmqpConnection::Content content;
        s = conn_.ReadContent(channel, &content);
        if (!s.ok()) return s;
        auto it = consuming_.find(channel);
        if (it == consuming_.end()) break;  // a channel being closed: the broker requeues
        std::lock_guard<std::mutex> lock(q_.mu_);
        it->second->ready.push_back(
            Target::Delivery{(generation_ << kGenerationShift) | (delivery_tag & kDeliveryTagMask),
                             content.ingest_unix_ns, std::move(content.body)});
        *delivered = true;
        break;
      }
      case AMQP_BASIC_CANCEL_METHOD:
        return Status::Unavailable("rabbitmq: the broker cancelled a consumer");
      case AMQP_CHANNEL_CLOSE_METHOD:
        return Status::Unavailable("rabbitmq: the broker closed a consumer channel");
      case AMQP_CONNECTION_CLOSE_METHOD:
        return Status::Unavailable("rabbitmq: the broker closed the consumer connection");
      default:
        break;
    }
  }
  conn_.ReleaseBuffers();
  return Status::OK();
}

// ---------------------------------------------------------------------------------------

class RabbitMqQueue::TargetQueueImpl : public buffer::TargetQueue {
 public:
  TargetQueueImpl(RabbitMqQueue& q, Target& t, uint64_t queued_at_open)
      : q_(q), t_(t), queued_at_open_(queued_at_open) {}

  Result Next(buffer::QueuedMessage* out, Status*) override {
    for (;;) {
      Target::Delivery d;
      {
        std::lock_guard<std::mutex> lock(q_.mu_);
        if (t_.ready.empty() || !t_.consuming) return Result::kCaughtUp;
        d = std::move(t_.ready.front());
        t_.ready.pop_front();
      }
      out->tag = d.tag;
      out->ingest_unix_ns = d.ingest_unix_ns;
      out->payload = std::move(d.payload);
      auto view = buffer::DecodeMessageView(out->payload);
      if (view) {
        out->message = std::move(*view);
        return Result::kMessage;
      }
      // Not a message this version can read: acked, so it does not come back forever.
      ++skipped_;
      Finish(out->tag);
    }
  }

  void Finish(uint64_t tag) override {
    {
      std::lock_guard<std::mutex> lock(q_.mu_);
      q_.consumer_->acks_.emplace_back(&t_, tag);
    }
    ++progress_;
    q_.consumer_->Signal();
  }

  uint64_t queued_at_open() const override { return queued_at_open_; }
  uint64_t progress() const override { return progress_; }
  uint64_t skipped() const override { return skipped_; }

 private:
  RabbitMqQueue& q_;
  Target& t_;
  const uint64_t queued_at_open_;
  uint64_t progress_ = 0;
  uint64_t skipped_ = 0;
};

// ---------------------------------------------------------------------------------------

Status RabbitMqQueue::Open(RabbitMqOptions options, buffer::QueueEvents events,
                           std::unique_ptr<RabbitMqQueue>* out) {
  AmqpEndpoint endpoint;
  Status s = ParseAmqpUrl(options.url, &endpoint);
  if (!s.ok()) return s;
  if (options.exchange.empty()) {
    return Status::InvalidArgument("rabbitmq: exchange must not be empty");
  }
  std::unique_ptr<RabbitMqQueue> q(
      new RabbitMqQueue(std::move(options), std::move(endpoint), std::move(events)));
  {
    std::lock_guard<std::mutex> lock(q->mu_);
    for (const auto& [name, prefetch] : q->options_.targets) q->AddTarget(name);
  }
  q->publisher_ = std::make_unique<Publisher>(*q);
  q->consumer_ = std::make_unique<Consumer>(*q);
  q->publisher_->Start();
  q->consumer_->Start();
  {
    // The first attempt ends within connect_timeout per step; this wait is a backstop.
    std::unique_lock<std::mutex> lock(q->mu_);
    q->cv_.wait_for(lock, q->options_.connect_timeout * 4,
                    [&] { return q->publisher_->attempts_ > 0; });
  }
  *out = std::move(q);
  return Status::OK();
}

RabbitMqQueue::RabbitMqQueue(RabbitMqOptions options, AmqpEndpoint endpoint,
                             buffer::QueueEvents events)
    : options_(std::move(options)),
      endpoint_(std::move(endpoint)),
      events_(std::move(events)),
      clock_(options_.clock != nullptr ? *options_.clock : system_clock_) {}

RabbitMqQueue::~RabbitMqQueue() { Close(); }

void RabbitMqQueue::Close() {
  if (closed_.exchange(true)) return;
  // Appends already handed over are still published and their confirms awaited (up to
  // close_timeout); their callbacks wait for a last RunCompletions().
  if (publisher_) publisher_->Stop();
  if (consumer_) consumer_->Stop();
}

RabbitMqQueue::Target* RabbitMqQueue::FindTarget(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = targets_.find(name);
  return it == targets_.end() ? nullptr : it->second.get();
}

RabbitMqQueue::Target* RabbitMqQueue::AddTarget(const std::string& name) {
  auto it = targets_.find(name);
  if (it != targets_.end()) return it->second.get();
  uint16_t prefetch = options_.default_prefetch;
  auto p = prefetch_.find(name);
  if (p != prefetch_.end()) {
    prefetch = p->second;
  } else if (auto o = options_.targets.find(name); o != options_.targets.end()) {
    prefetch = o->second;
  }
  if (prefetch == 0) prefetch = 1;  // 0 would mean "unlimited" to the broker
  // Consumer channels are numbered from 1 in the order targets appear; never reused.
  auto channel = static_cast<amqp_channel_t>(targets_.size() + 1);
  auto t = std::make_unique<Target>(name, options_, prefetch, channel);
  Target* raw = t.get();
  targets_.emplace(name, std::move(t));
  return raw;
}

void RabbitMqQueue::SetPrefetch(const std::string& target, uint16_t prefetch) {
  std::lock_guard<std::mutex> lock(mu_);
  prefetch_[target] = prefetch;
}

void RabbitMqQueue::Complete(Done done, Status status, uint64_t value, bool append) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (append) --publisher_->unconfirmed_;
    if (done) completions_.push_back(Completion{std::move(done), std::move(status), value});
  }
  if (events_.wake) events_.wake();
}

Status RabbitMqQueue::Enqueue(std::unique_ptr<Op> op) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Status::Unavailable("rabbitmq: closed");
    if (!publisher_->connected_) return publisher_->down_;
    if (op->kind == Op::Kind::kAppend) {
      // A blocked broker would take the publish into a socket it no longer reads.
      if (!publisher_->blocked_.empty()) return Blocked(publisher_->blocked_);
      if (publisher_->unconfirmed_ >= options_.max_unconfirmed) {
        return Status::Busy("rabbitmq: too many messages waiting for the broker's confirm");
      }
      ++publisher_->unconfirmed_;
      op->unconfirmed = true;
    }
    publisher_->inbox_.push_back(std::move(op));
  }
  publisher_->Signal();
  return Status::OK();
}

Status RabbitMqQueue::Call(std::unique_ptr<Op> op, std::shared_ptr<SyncReply> reply) const {
  op->reply = reply;
  Status s = Enqueue(std::move(op));
  if (!s.ok()) return s;
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, options_.admin_timeout, [&] { return reply->done; })) {
    return Status::Unavailable("rabbitmq: no answer from the broker in time");
  }
  return reply->status;
}

Status RabbitMqQueue::Append(std::string payload, uint64_t ingest_unix_ns, Done done) {
  std::vector<std::string_view> targets;
  if (!buffer::DecodeMessageTargets(payload, &targets) || targets.empty()) {
    return Status::InvalidArgument("rabbitmq: message names no target");
  }
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kAppend;
  op->payload = std::move(payload);
  op->ingest_unix_ns = ingest_unix_ns;
  op->done = std::move(done);
  return Enqueue(std::move(op));
}

void RabbitMqQueue::RunCompletions() {
  std::vector<Completion> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready.swap(completions_);
  }
  for (Completion& c : ready) c.done(c.status, c.value);
}

Status RabbitMqQueue::AppendIdempotencyKey(buffer::IdempotencyEntry, Done done) {
  // Kept in memory only (by the proxy's index): nothing to store on this backend.
  Complete(std::move(done), Status::OK(), 0);
  return Status::OK();
}

Status RabbitMqQueue::OpenTarget(const std::string& target, bool,
                                 std::unique_ptr<buffer::TargetQueue>* out) {
  Target* t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t = AddTarget(target);
    t->consuming = true;
  }
  if (!t->declared) {
    // Best effort: without a broker the consumer declares the queue once it connects.
    auto op = std::make_unique<Op>();
    op->kind = Op::Kind::kDeclare;
    op->target = target;
    (void)Call(std::move(op), std::make_shared<SyncReply>());
  }
  *out = std::make_unique<TargetQueueImpl>(*this, *t, t->ready_at_declare.load());
  consumer_->Signal();
  return Status::OK();
}

void RabbitMqQueue::RemoveTarget(const std::string& target) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = targets_.find(target);
    if (it == targets_.end()) return;
    it->second->consuming = false;
    it->second->ready.clear();
  }
  consumer_->Signal();
}

Status RabbitMqQueue::AppendDeadLetter(DeadLetter dl, Done done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kDeadLetter;
  op->target = dl.target;
  op->ingest_unix_ns = dl.ingest_unix_ns;
  op->payload = buffer::EncodeDeadLetterPayload(dl);
  op->done = std::move(done);
  return Enqueue(std::move(op));
}

uint64_t RabbitMqQueue::DeadLetterCount(const std::string& target) const {
  Target* t = FindTarget(target);
  return t ? t->dead_letters.load() : 0;
}

Status RabbitMqQueue::ListDeadLetters(const std::string& target,
                                      std::vector<DeadLetter>* out) const {
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kList;
  op->target = target;
  auto reply = std::make_shared<SyncReply>();
  Status s = Call(std::move(op), reply);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  *out = std::move(reply->letters);
  return s;
}

Status RabbitMqQueue::PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                       Done done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kPurge;
  op->target = target;
  op->id = id;
  op->done = std::move(done);
  return Enqueue(std::move(op));
}

Status RabbitMqQueue::ReplayDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                        Done done, size_t* queued) {
  if (queued != nullptr) *queued = 0;
  if (!id && DeadLetterCount(target) == 0) return Status::NotFound("no dead letters");
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kReplay;
  op->target = target;
  op->id = id;
  op->done = std::move(done);
  return Enqueue(std::move(op));
}

Status RabbitMqQueue::Availability() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::Unavailable("rabbitmq: closed");
  if (!publisher_->connected_) return publisher_->down_;
  if (!publisher_->blocked_.empty()) return Blocked(publisher_->blocked_);
  return Status::OK();
}

}  // namespace sluice::broker
