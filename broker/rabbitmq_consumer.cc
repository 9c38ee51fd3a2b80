#include <utility>

#include "broker/rabbitmq_threads.h"

namespace sluice::broker {

using common::Status;

namespace {

// A tag is the consumer connection's generation (top bits) and the broker's delivery tag
// on that connection's channel (low kTagGenerationShift bits): unique across reconnects,
// so an ack for a delivery of a dead connection can be recognised and dropped.
constexpr int kGenerationShift = RabbitMqQueue::kTagGenerationShift;
constexpr uint64_t kDeliveryTagMask = (uint64_t{1} << kGenerationShift) - 1;
constexpr uint64_t kGenerationMask = (uint64_t{1} << (64 - kGenerationShift)) - 1;

}  // namespace

void RabbitMqQueue::Consumer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void RabbitMqQueue::Consumer::Stop() {
  stopping_ = true;
  wake_.Signal();
  if (thread_.joinable()) thread_.join();
}

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

}  // namespace sluice::broker
