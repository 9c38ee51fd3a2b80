#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "broker/rabbitmq_threads.h"
#include "buffer/message.h"

namespace sluice::broker {

using buffer::DeadLetter;
using common::Status;

namespace {

// The publisher connection's channels: confirmed publishes on one, RPCs on the other (a
// browse closes its channel to give the letters back, which must not cost the confirms).
constexpr amqp_channel_t kPublishChannel = 1;
constexpr amqp_channel_t kAdminChannel = 2;

// How often the publisher re-reads the dead-letter queues' depths (other instances add).
constexpr auto kDeadCountRefresh = std::chrono::seconds(5);

std::optional<common::Uuid> IdOf(std::string_view payload) {
  auto view = buffer::DecodeMessageView(payload);
  if (!view) return std::nullopt;
  return view->id;
}

}  // namespace

void RabbitMqQueue::Publisher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void RabbitMqQueue::Publisher::Stop() {
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

}  // namespace sluice::broker
