#include "broker/amqp_connection.h"

#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <chrono>
#include <cstring>
#include <vector>

namespace sluice::broker {
namespace {

using common::Status;

amqp_bytes_t Bytes(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

timeval ToTimeval(common::Duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us < 0) us = 0;
  timeval tv;
  tv.tv_sec = static_cast<time_t>(us / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
  return tv;
}

std::string Text(amqp_bytes_t b) { return std::string(static_cast<const char*>(b.bytes), b.len); }

// Why the broker closed the channel or the connection, from its close method.
std::string ServerReason(const amqp_rpc_reply_t& reply) {
  if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD && reply.reply.decoded != nullptr) {
    auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
    return "connection closed by broker: " + std::to_string(m->reply_code) + " " +
           Text(m->reply_text);
  }
  if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD && reply.reply.decoded != nullptr) {
    auto* m = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
    return "channel closed by broker: " + std::to_string(m->reply_code) + " " + Text(m->reply_text);
  }
  return "broker closed the connection";
}

}  // namespace

Status ParseAmqpUrl(const std::string& url, AmqpEndpoint* out) {
  // amqp_parse_url cuts its argument into the pieces it points at: parse a copy.
  std::vector<char> copy(url.begin(), url.end());
  copy.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(copy.data(), &info) != AMQP_STATUS_OK) {
    return Status::InvalidArgument("not an AMQP URL (amqp://user:pass@host:port/vhost): " + url);
  }
  if (info.ssl) return Status::InvalidArgument("amqps:// is not supported: " + url);
  out->host = info.host;
  out->port = info.port;
  out->user = info.user;
  out->password = info.password;
  out->vhost = info.vhost;
  if (out->vhost.empty()) out->vhost = "/";
  return Status::OK();
}

AmqpConnection::~AmqpConnection() { Close(); }

Status AmqpConnection::Open(const AmqpEndpoint& endpoint, common::Duration timeout,
                            common::Duration heartbeat) {
  Close();
  state_ = amqp_new_connection();
  if (state_ == nullptr) return Status::Unavailable("amqp_new_connection failed");
  healthy_ = true;
  amqp_socket_t* socket = amqp_tcp_socket_new(state_);
  if (socket == nullptr) {
    Close();
    return Status::Unavailable("amqp_tcp_socket_new failed");
  }
  timeval tv = ToTimeval(timeout);
  int rc = amqp_socket_open_noblock(socket, endpoint.host.c_str(), endpoint.port, &tv);
  if (rc != AMQP_STATUS_OK) {
    healthy_ = false;
    Close();
    return Status::Unavailable("connect to " + endpoint.host + ":" + std::to_string(endpoint.port) +
                               ": " + amqp_error_string2(rc));
  }
  // Every later RPC (declare, get, close) waits at most this long: a broker that stops
  // answering costs a reconnect, never a hung thread.
  amqp_set_handshake_timeout(state_, &tv);
  amqp_set_rpc_timeout(state_, &tv);
  int heartbeat_s =
      static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(heartbeat).count());
  // Capabilities RabbitMQ acts on only when the client announces them: connection.blocked
  // (resource alarms are told, not silently stall publishes) and consumer cancel notices.
  amqp_table_entry_t capabilities[2];
  capabilities[0].key = amqp_cstring_bytes("connection.blocked");
  capabilities[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
  capabilities[0].value.value.boolean = 1;
  capabilities[1].key = amqp_cstring_bytes("consumer_cancel_notify");
  capabilities[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
  capabilities[1].value.value.boolean = 1;
  amqp_table_entry_t properties[2];
  properties[0].key = amqp_cstring_bytes("product");
  properties[0].value.kind = AMQP_FIELD_KIND_UTF8;
  properties[0].value.value.bytes = amqp_cstring_bytes("sluice");
  properties[1].key = amqp_cstring_bytes("capabilities");
  properties[1].value.kind = AMQP_FIELD_KIND_TABLE;
  properties[1].value.value.table.num_entries = 2;
  properties[1].value.value.table.entries = capabilities;
  amqp_table_t client_properties;
  client_properties.num_entries = 2;
  client_properties.entries = properties;
  amqp_rpc_reply_t reply = amqp_login_with_properties(
      state_, endpoint.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat_s, &client_properties,
      AMQP_SASL_METHOD_PLAIN, endpoint.user.c_str(), endpoint.password.c_str());
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    Status s = Fail("login", reply);
    Close();
    return s;
  }
  return Status::OK();
}

void AmqpConnection::Close() {
  if (state_ == nullptr) return;
  // A connection that failed gets no close handshake: it would only wait for a timeout.
  if (healthy_) amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(state_);
  state_ = nullptr;
  healthy_ = false;
}

int AmqpConnection::fd() const { return state_ ? amqp_get_sockfd(state_) : -1; }

Status AmqpConnection::Fail(std::string_view what, amqp_rpc_reply_t reply) {
  healthy_ = false;
  std::string why;
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return Status::OK();
    case AMQP_RESPONSE_NONE:
      why = "no reply";
      break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      why = amqp_error_string2(reply.library_error);
      break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      why = ServerReason(reply);
      break;
  }
  return Status::Unavailable("amqp " + std::string(what) + ": " + why);
}

Status AmqpConnection::LastRpc(std::string_view what) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return Status::OK();
  return Fail(what, reply);
}

Status AmqpConnection::OpenChannel(amqp_channel_t channel) {
  amqp_channel_open(state_, channel);
  return LastRpc("channel.open");
}

Status AmqpConnection::CloseChannel(amqp_channel_t channel) {
  amqp_rpc_reply_t reply = amqp_channel_close(state_, channel, AMQP_REPLY_SUCCESS);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) return Fail("channel.close", reply);
  return Status::OK();
}

Status AmqpConnection::ConfirmSelect(amqp_channel_t channel) {
  amqp_confirm_select(state_, channel);
  return LastRpc("confirm.select");
}

Status AmqpConnection::Qos(amqp_channel_t channel, uint16_t prefetch) {
  // global=false: RabbitMQ applies the limit to each consumer started after it.
  amqp_basic_qos(state_, channel, 0, prefetch, 0);
  return LastRpc("basic.qos");
}

Status AmqpConnection::DeclareDirectExchange(amqp_channel_t channel, const std::string& name) {
  amqp_exchange_declare(state_, channel, Bytes(name), amqp_cstring_bytes("direct"),
                        /*passive=*/0, /*durable=*/1, /*auto_delete=*/0, /*internal=*/0,
                        amqp_empty_table);
  return LastRpc("exchange.declare " + name);
}

Status AmqpConnection::DeclareQuorumQueue(amqp_channel_t channel, const std::string& name,
                                          uint32_t* ready) {
  amqp_table_entry_t type;
  type.key = amqp_cstring_bytes("x-queue-type");
  type.value.kind = AMQP_FIELD_KIND_UTF8;
  type.value.value.bytes = amqp_cstring_bytes("quorum");
  amqp_table_t args;
  args.num_entries = 1;
  args.entries = &type;
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(state_, channel, Bytes(name), /*passive=*/0, /*durable=*/1,
                         /*exclusive=*/0, /*auto_delete=*/0, args);
  if (ok == nullptr) return LastRpc("queue.declare " + name);
  if (ready != nullptr) *ready = ok->message_count;
  return Status::OK();
}

Status AmqpConnection::Bind(amqp_channel_t channel, const std::string& queue,
                            const std::string& exchange, const std::string& key) {
  amqp_queue_bind(state_, channel, Bytes(queue), Bytes(exchange), Bytes(key), amqp_empty_table);
  return LastRpc("queue.bind " + queue);
}

Status AmqpConnection::Consume(amqp_channel_t channel, const std::string& queue) {
  amqp_basic_consume(state_, channel, Bytes(queue), amqp_empty_bytes, /*no_local=*/0,
                     /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
  return LastRpc("basic.consume " + queue);
}

Status AmqpConnection::Purge(amqp_channel_t channel, const std::string& queue, uint32_t* purged) {
  amqp_queue_purge_ok_t* ok = amqp_queue_purge(state_, channel, Bytes(queue));
  if (ok == nullptr) return LastRpc("queue.purge " + queue);
  *purged = ok->message_count;
  return Status::OK();
}

Status AmqpConnection::Ack(amqp_channel_t channel, uint64_t delivery_tag) {
  int rc = amqp_basic_ack(state_, channel, delivery_tag, /*multiple=*/0);
  if (rc != AMQP_STATUS_OK) {
    healthy_ = false;
    return Status::Unavailable(std::string("amqp basic.ack: ") + amqp_error_string2(rc));
  }
  return Status::OK();
}

Status AmqpConnection::Publish(amqp_channel_t channel, const std::string& exchange,
                               std::string_view routing_key,
                               const std::vector<std::string_view>& bcc, uint64_t ingest_unix_ns,
                               std::string_view body) {
  std::vector<amqp_field_value_t> bcc_values(bcc.size());
  for (size_t i = 0; i < bcc.size(); ++i) {
    bcc_values[i].kind = AMQP_FIELD_KIND_UTF8;
    bcc_values[i].value.bytes = Bytes(bcc[i]);
  }
  amqp_table_entry_t headers[2];
  int num_headers = 0;
  headers[num_headers].key = amqp_cstring_bytes(kIngestHeader);
  headers[num_headers].value.kind = AMQP_FIELD_KIND_I64;
  headers[num_headers].value.value.i64 = static_cast<int64_t>(ingest_unix_ns);
  ++num_headers;
  if (!bcc.empty()) {
    headers[num_headers].key = amqp_cstring_bytes("BCC");
    headers[num_headers].value.kind = AMQP_FIELD_KIND_ARRAY;
    headers[num_headers].value.value.array.num_entries = static_cast<int>(bcc_values.size());
    headers[num_headers].value.value.array.entries = bcc_values.data();
    ++num_headers;
  }
  amqp_basic_properties_t props;
  std::memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG;
  props.content_type = amqp_cstring_bytes("application/x-sluice-message");
  props.delivery_mode = 2;  // persistent
  props.timestamp = ingest_unix_ns / 1'000'000'000;
  props.headers.num_entries = num_headers;
  props.headers.entries = headers;
  int rc = amqp_basic_publish(state_, channel, Bytes(exchange), Bytes(routing_key),
                              /*mandatory=*/0, /*immediate=*/0, &props, Bytes(body));
  if (rc != AMQP_STATUS_OK) {
    healthy_ = false;
    return Status::Unavailable(std::string("amqp basic.publish: ") + amqp_error_string2(rc));
  }
  return Status::OK();
}

Status AmqpConnection::ReadFrame(amqp_frame_t* frame, common::Duration timeout, bool* got) {
  timeval tv = ToTimeval(timeout);
  int rc = amqp_simple_wait_frame_noblock(state_, frame, &tv);
  *got = false;
  if (rc == AMQP_STATUS_TIMEOUT) return Status::OK();
  if (rc != AMQP_STATUS_OK) {
    healthy_ = false;
    return Status::Unavailable(std::string("amqp read: ") + amqp_error_string2(rc));
  }
  *got = true;
  return Status::OK();
}

bool AmqpConnection::HasBufferedFrames() {
  return amqp_frames_enqueued(state_) || amqp_data_in_buffer(state_);
}

Status AmqpConnection::ReadContent(amqp_channel_t channel, Content* out) {
  amqp_message_t message;
  amqp_rpc_reply_t reply = amqp_read_message(state_, channel, &message, 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) return Fail("read message", reply);
  out->ingest_unix_ns = 0;
  const amqp_basic_properties_t& props = message.properties;
  if (props._flags & AMQP_BASIC_TIMESTAMP_FLAG) {
    out->ingest_unix_ns = props.timestamp * 1'000'000'000;
  }
  if (props._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < props.headers.num_entries; ++i) {
      const amqp_table_entry_t& e = props.headers.entries[i];
      if (Text(e.key) != kIngestHeader) continue;
      if (e.value.kind == AMQP_FIELD_KIND_I64 && e.value.value.i64 >= 0) {
        out->ingest_unix_ns = static_cast<uint64_t>(e.value.value.i64);
      } else if (e.value.kind == AMQP_FIELD_KIND_U64) {
        out->ingest_unix_ns = e.value.value.u64;
      }
    }
  }
  out->body.assign(static_cast<const char*>(message.body.bytes), message.body.len);
  amqp_destroy_message(&message);
  return Status::OK();
}

Status AmqpConnection::Get(amqp_channel_t channel, const std::string& queue, bool* got,
                           uint64_t* delivery_tag, Content* out) {
  *got = false;
  amqp_rpc_reply_t reply = amqp_basic_get(state_, channel, Bytes(queue), /*no_ack=*/0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) return Fail("basic.get " + queue, reply);
  if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return Status::OK();
  if (reply.reply.id != AMQP_BASIC_GET_OK_METHOD) {
    healthy_ = false;
    return Status::Unavailable("amqp basic.get: unexpected reply");
  }
  *delivery_tag = static_cast<amqp_basic_get_ok_t*>(reply.reply.decoded)->delivery_tag;
  Status s = ReadContent(channel, out);
  if (s.ok()) *got = true;
  return s;
}

void AmqpConnection::ReleaseBuffers() {
  if (state_ != nullptr) amqp_maybe_release_buffers(state_);
}

}  // namespace sluice::broker
