#pragma once

#include <amqp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace sluice::broker {

// Where a broker is and who we are there: an AMQP URI (amqp://user:pass@host:port/vhost).
struct AmqpEndpoint {
  std::string host;
  int port = 5672;
  std::string user;
  std::string password;
  std::string vhost;
};

// InvalidArgument for what is not an amqp:// URI (amqps is not built in). An empty vhost
// ("amqp://host/", the default URL in INTERFACE.md) means "/", as most clients take it;
// "%2f" names it explicitly.
common::Status ParseAmqpUrl(const std::string& url, AmqpEndpoint* out);

// One AMQP 0-9-1 connection (librabbitmq-c). librabbitmq connections are not thread-safe:
// an AmqpConnection is used by one thread only. Every failure is Status::Unavailable: the
// caller drops the connection and makes a new one, so there is no partial state to repair.
class AmqpConnection {
 public:
  AmqpConnection() = default;
  ~AmqpConnection();
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  // TCP connect, handshake and login, each within `timeout`; `heartbeat` 0 disables
  // heartbeats (librabbitmq services them while it reads or publishes).
  common::Status Open(const AmqpEndpoint& endpoint, common::Duration timeout,
                      common::Duration heartbeat);
  // Best effort connection.close, then frees everything. Safe to call twice.
  void Close();
  bool is_open() const { return state_ != nullptr; }
  amqp_connection_state_t state() { return state_; }
  int fd() const;

  common::Status OpenChannel(amqp_channel_t channel);
  // Returns the channel's unacknowledged deliveries to their queues.
  common::Status CloseChannel(amqp_channel_t channel);
  common::Status ConfirmSelect(amqp_channel_t channel);
  common::Status Qos(amqp_channel_t channel, uint16_t prefetch);
  common::Status DeclareDirectExchange(amqp_channel_t channel, const std::string& name);
  // A durable quorum queue; *ready (optional) gets the messages ready in it.
  common::Status DeclareQuorumQueue(amqp_channel_t channel, const std::string& name,
                                    uint32_t* ready);
  common::Status Bind(amqp_channel_t channel, const std::string& queue, const std::string& exchange,
                      const std::string& key);
  common::Status Consume(amqp_channel_t channel, const std::string& queue);
  common::Status Purge(amqp_channel_t channel, const std::string& queue, uint32_t* purged);
  common::Status Ack(amqp_channel_t channel, uint64_t delivery_tag);
  // Persistent (delivery_mode 2), `ingest_unix_ns` in the header kIngestHeader and (in
  // seconds) the timestamp property; `bcc` adds routing keys (sender-selected
  // distribution) that RabbitMQ strips before delivery.
  common::Status Publish(amqp_channel_t channel, const std::string& exchange,
                         std::string_view routing_key, const std::vector<std::string_view>& bcc,
                         uint64_t ingest_unix_ns, std::string_view body);

  // The next frame within `timeout` (0: only what is already here). *got false: none.
  common::Status ReadFrame(amqp_frame_t* frame, common::Duration timeout, bool* got);
  // Frames librabbitmq has read or queued but not handed out yet: read them before
  // waiting on fd().
  bool HasBufferedFrames();
  // A delivery's header and body frames, after its basic.deliver / basic.get-ok.
  struct Content {
    uint64_t ingest_unix_ns = 0;
    std::string body;
  };
  common::Status ReadContent(amqp_channel_t channel, Content* out);
  // One basic.get without auto-ack: *got false when the queue has nothing ready.
  common::Status Get(amqp_channel_t channel, const std::string& queue, bool* got,
                     uint64_t* delivery_tag, Content* out);
  // Frees librabbitmq's per-connection buffers when nothing refers to them any more.
  void ReleaseBuffers();

  static constexpr const char* kIngestHeader = "sluice-ingest-ns";

 private:
  common::Status Fail(std::string_view what, amqp_rpc_reply_t reply);
  common::Status LastRpc(std::string_view what);

  amqp_connection_state_t state_ = nullptr;
  bool healthy_ = false;  // no failure seen: Close() may say goodbye
};

}  // namespace sluice::broker
