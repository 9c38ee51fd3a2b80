#pragma once

#include <uv.h>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "proxy/http_message.h"
#include "proxy/request_parser.h"

namespace sluice::proxy {

class ServerConnection;

// One response, in request order on its connection. Shared between the connection and
// whoever answers, so a client that hangs up while its request waits for fsync is fine.
struct ResponseSlot {
  ServerConnection* conn = nullptr;  // null once the connection is gone
  bool ready = false;
  bool close = false;
  std::string bytes;
};

// A handle for answering one request, now or later, on the loop thread.
class Responder {
 public:
  explicit Responder(std::shared_ptr<ResponseSlot> slot, std::string peer_ip)
      : slot_(std::move(slot)), peer_ip_(std::move(peer_ip)) {}
  void Send(int status, const HeaderList& headers, std::string_view body, bool close = false);
  void Send(int status, std::initializer_list<HeaderField> headers, std::string_view body,
            bool close = false);
  bool connected() const { return slot_->conn != nullptr; }
  const std::string& peer_ip() const { return peer_ip_; }

 private:
  void Deliver(std::string bytes, bool close);

  std::shared_ptr<ResponseSlot> slot_;
  std::string peer_ip_;
};

// HTTP/1.1 server on a libuv loop: keep-alive, pipelining (answers in request order),
// Content-Length and chunked bodies, limits on connections, headers, bodies and time.
class HttpServer {
 public:
  struct Options {
    std::string name;  // "ingest", "admin": for logs
    config::HostPort listen;
    RequestParser::Limits limits;
    uint32_t max_connections = 10000;
    common::Duration read_timeout = std::chrono::seconds(30);
    common::Duration idle_timeout = std::chrono::seconds(75);
    size_t max_pipelined = 128;  // unanswered requests per connection before reads pause
  };
  using Handler = std::function<void(HttpRequest&& request, Responder responder)>;
  // Observes requests refused by the server itself (parse errors, limits, timeouts).
  using RejectObserver = std::function<void(int status)>;

  HttpServer(uv_loop_t* loop, Options options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; *bound is "host:port" with the real port (listen port 0 picks one).
  common::Status Listen(std::string* bound);
  // A reload: limits apply to connections accepted from now on; timeouts at once.
  void SetLimits(RequestParser::Limits limits, uint32_t max_connections,
                 common::Duration read_timeout) {
    options_.limits = limits;
    options_.max_connections = max_connections;
    options_.read_timeout = read_timeout;
  }
  // Closes the listener; open connections stay until they finish or are closed.
  void StopAccepting();
  // Closes every connection that has no unanswered request.
  void CloseIdleConnections();
  size_t connection_count() const { return connections_.size(); }
  void set_reject_observer(RejectObserver observer) { reject_observer_ = std::move(observer); }

 private:
  friend class ServerConnection;
  static void OnConnection(uv_stream_t* server, int status);
  void Remove(ServerConnection* conn);

  uv_loop_t* loop_;
  Options options_;
  Handler handler_;
  RejectObserver reject_observer_;
  uv_tcp_t* listener_ = nullptr;             // freed in its close callback
  std::array<char, 64 * 1024> read_buffer_;  // shared by all connections (see OnAlloc)
  std::vector<uv_buf_t> write_iov_;          // scratch for one connection's write
  std::deque<ServerConnection*> connections_;
};

}  // namespace sluice::proxy
