#include "broker/rabbitmq_queue.h"

#include <utility>

#include "broker/rabbitmq_threads.h"
#include "buffer/message.h"

namespace sluice::broker {

using buffer::DeadLetter;
using common::Status;

namespace {

Status Blocked(const std::string& reason) {
  return Status::Unavailable("rabbitmq: the broker blocks publishing (" + reason + ")");
}

}  // namespace

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