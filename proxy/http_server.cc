#include "proxy/http_server.h"

#include <algorithm>
#include <vector>

#include "proxy/lazy_deadline.h"
#include "proxy/logging.h"
#include "proxy/net_address.h"

namespace sluice::proxy {

// One accepted connection. Lives on the heap and never moves (libuv holds pointers to
// its handles); freed only after both handles' close callbacks ran.
class ServerConnection {
 public:
  explicit ServerConnection(HttpServer* server)
      : server_(server),
        parser_(server->options_.limits,
                RequestParser::Callbacks{
                    [this](const HttpRequest& r, bool expect) { OnHeaders(r, expect); },
                    [this](HttpRequest&& r) { OnRequest(std::move(r)); },
                    [this] { OnMessageBegin(); }}),
        deadline_(&timer_, OnTimer) {
    tcp_.data = this;
    timer_.data = this;
  }

  uv_tcp_t* tcp() { return &tcp_; }
  void set_peer_ip(std::string ip) { peer_ip_ = std::move(ip); }
  // The server is going away first: close without reporting back to it.
  void Detach() {
    server_ = nullptr;
    Close();
  }

  void Start() {
    uv_timer_init(server_->loop_, &timer_);
    deadline_.Set(server_->options_.idle_timeout);
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), OnAlloc, OnRead);
    reading_ = true;
  }

  // Refuses the connection at accept time (over max_connections).
  void Refuse() {
    uv_timer_init(server_->loop_, &timer_);
    auto slot = NewSlot();
    Responder(slot, peer_ip_).Send(503, {{"Retry-After", "1"}}, "", /*close=*/true);
  }

  void Close() {
    if (closing_) return;
    closing_ = true;
    for (auto& slot : slots_) slot->conn = nullptr;
    slots_.clear();
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), OnHandleClosed);
  }

  bool idle() const { return slots_.empty() && !parser_.in_request(); }

  // A slot became ready: write every ready response at the head, in order.
  void Flush() {
    if (closing_) return;
    size_t ready = 0;
    bool close = false;
    for (const auto& slot : slots_) {
      if (!slot->ready) break;
      ++ready;
      if (slot->close) {
        close = true;
        break;
      }
    }
    if (ready > 0) WriteSlots(ready);
    if (close) {
      for (auto& slot : slots_) slot->conn = nullptr;
      slots_.clear();
      StopReading();
      close_after_write_ = true;
      if (writes_in_flight_ == 0) {
        Close();
        return;
      }
    }
    if (closing_) return;
    if (!close && !reading_ && !eof_ && slots_.size() < server_->options_.max_pipelined) {
      uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), OnAlloc, OnRead);
      reading_ = true;
    }
    if (!close && eof_ && slots_.empty() && writes_in_flight_ == 0) Close();
    if (!close && idle()) deadline_.Set(server_->options_.idle_timeout);
  }

 private:
  struct WriteRequest {
    uv_write_t req;
    std::vector<std::string> chunks;
    ServerConnection* conn;
  };

  std::shared_ptr<ResponseSlot> NewSlot() {
    auto slot = std::make_shared<ResponseSlot>();
    slot->conn = this;
    slots_.push_back(slot);
    return slot;
  }

  void StopReading() {
    if (reading_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
  }

  // Writes the first n slots' responses and drops them. The socket usually takes them
  // all at once (uv_try_write, no allocation); only what it does not take waits in a
  // uv_write. libuv completes every uv_write through its pending queue and re-arms the
  // socket's epoll watcher afterwards: one epoll_ctl per response, which writing
  // directly avoids.
  void WriteSlots(size_t n) {
    auto& iov = server_->write_iov_;
    iov.clear();
    for (size_t i = 0; i < n; ++i) {
      std::string& bytes = slots_[i]->bytes;
      iov.push_back(uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size())));
    }
    size_t written = 0;
    if (writes_in_flight_ == 0) {
      int rc = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), iov.data(),
                            static_cast<unsigned>(iov.size()));
      if (rc > 0) written = static_cast<size_t>(rc);
    }
    std::vector<std::string> rest;
    for (size_t i = 0; i < n; ++i) {
      auto slot = std::move(slots_.front());
      slots_.pop_front();
      slot->conn = nullptr;
      std::string& bytes = slot->bytes;
      if (written >= bytes.size()) {
        written -= bytes.size();
        continue;
      }
      if (written > 0) {
        bytes.erase(0, written);
        written = 0;
      }
      rest.push_back(std::move(bytes));
    }
    // A failed uv_try_write (reset, broken pipe) is left to uv_write to report.
    if (!rest.empty()) Write(std::move(rest));
  }

  void Write(std::vector<std::string> chunks) {
    auto* w = new WriteRequest{{}, std::move(chunks), this};
    std::vector<uv_buf_t> bufs;
    bufs.reserve(w->chunks.size());
    for (auto& c : w->chunks)
      bufs.push_back(uv_buf_init(c.data(), static_cast<unsigned>(c.size())));
    w->req.data = w;
    ++writes_in_flight_;
    int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), bufs.data(),
                      static_cast<unsigned>(bufs.size()), OnWritten);
    if (rc != 0) {
      --writes_in_flight_;
      delete w;
      Close();
    }
  }

  static void OnWritten(uv_write_t* req, int status) {
    auto* w = static_cast<WriteRequest*>(req->data);
    ServerConnection* self = w->conn;
    delete w;
    --self->writes_in_flight_;
    if (self->closing_) return;
    if (status < 0 || (self->writes_in_flight_ == 0 && self->close_after_write_)) {
      self->Close();
      return;
    }
    if (self->eof_ && self->slots_.empty() && self->writes_in_flight_ == 0) self->Close();
  }

  // One read buffer for the whole server: libuv hands it to exactly one read callback,
  // which parses (and copies what it keeps) before the next allocation. Memory per idle
  // connection stays small, so max_connections bounds it cheaply.
  static void OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* self = static_cast<ServerConnection*>(handle->data);
    auto& shared = self->server_->read_buffer_;
    *buf = uv_buf_init(shared.data(), static_cast<unsigned>(shared.size()));
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<ServerConnection*>(stream->data);
    if (nread == 0) return;
    if (nread < 0) {
      // EOF or reset: answer what was asked (a half-closed client may still read).
      self->eof_ = true;
      self->StopReading();
      if (nread != UV_EOF || (self->slots_.empty() && self->writes_in_flight_ == 0)) self->Close();
      return;
    }
    if (!self->parser_.Feed(buf->base, static_cast<size_t>(nread))) {
      self->Reject(self->parser_.error_status());
    } else if (self->slots_.size() >= self->server_->options_.max_pipelined) {
      self->StopReading();
    }
    self->Flush();
  }

  void Reject(int status) {
    if (server_->reject_observer_) server_->reject_observer_(status);
    StopReading();
    Responder(NewSlot(), peer_ip_).Send(status, {}, "", /*close=*/true);
  }

  static void OnTimer(uv_timer_t* timer) {
    auto* self = static_cast<ServerConnection*>(timer->data);
    if (!self->deadline_.Expired()) return;
    if (self->parser_.in_request()) {
      self->Reject(408);  // the request did not arrive within read_timeout
      self->Flush();
    } else if (self->slots_.empty()) {
      self->Close();  // idle keep-alive connection
    }
  }

  static void OnHandleClosed(uv_handle_t* handle) {
    auto* self = static_cast<ServerConnection*>(handle->data);
    if (++self->handles_closed_ == 2) {
      if (self->server_ != nullptr) self->server_->Remove(self);
      delete self;
    }
  }

  void OnMessageBegin() { deadline_.Set(server_->options_.read_timeout); }

  void OnHeaders(const HttpRequest&, bool expect_continue) {
    // Only when nothing is queued ahead: an interim response must not overtake answers.
    if (expect_continue && slots_.empty()) Write({"HTTP/1.1 100 Continue\r\n\r\n"});
  }

  void OnRequest(HttpRequest&& request) {
    deadline_.Clear();
    // A response with Connection: close went (or is going) out: requests pipelined
    // behind it are not processed (RFC 9112, 9.6).
    if (closing_ || close_after_write_) return;
    bool keep_alive = request.keep_alive;
    auto slot = NewSlot();
    if (!keep_alive) {
      slot->close = true;
      StopReading();
    }
    server_->handler_(std::move(request), Responder(slot, peer_ip_));
  }

  HttpServer* server_;
  std::string peer_ip_;
  RequestParser parser_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  LazyDeadline deadline_;  // read timeout while a request arrives, idle timeout between
  std::deque<std::shared_ptr<ResponseSlot>> slots_;
  bool reading_ = false;
  bool eof_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
  int writes_in_flight_ = 0;
  int handles_closed_ = 0;
};

void Responder::Send(int status, const HeaderList& headers, std::string_view body, bool close) {
  if (slot_->ready) return;
  Deliver(SerializeResponse(status, headers, body, slot_->close || close), close);
}

void Responder::Send(int status, std::initializer_list<HeaderField> headers, std::string_view body,
                     bool close) {
  if (slot_->ready) return;
  Deliver(SerializeResponse(status, headers, body, slot_->close || close), close);
}

void Responder::Deliver(std::string bytes, bool close) {
  ResponseSlot& slot = *slot_;
  slot.ready = true;
  slot.close = slot.close || close;
  slot.bytes = std::move(bytes);
  if (slot.conn != nullptr) slot.conn->Flush();
}

HttpServer::HttpServer(uv_loop_t* loop, Options options, Handler handler)
    : loop_(loop), options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() {
  StopAccepting();
  auto connections = std::move(connections_);
  connections_.clear();
  for (auto* conn : connections) conn->Detach();
}

common::Status HttpServer::Listen(std::string* bound) {
  sockaddr_storage addr;
  if (!ResolveLiteral(options_.listen.host, options_.listen.port, &addr)) {
    return common::Status::InvalidArgument("cannot listen on " + options_.listen.host +
                                           ": not an IP address");
  }
  listener_ = new uv_tcp_t;
  uv_tcp_init(loop_, listener_);
  listener_->data = this;
  int rc = uv_tcp_bind(listener_, reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 1024, OnConnection);
  if (rc != 0) {
    StopAccepting();
    return common::Status::IoError(options_.name + " listen on " + options_.listen.host + ":" +
                                   std::to_string(options_.listen.port) + ": " + uv_strerror(rc));
  }
  sockaddr_storage local;
  int len = sizeof(local);
  uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&local), &len);
  *bound = FormatAddress(reinterpret_cast<sockaddr*>(&local));
  return common::Status::OK();
}

void HttpServer::StopAccepting() {
  if (listener_ == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t*>(listener_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  listener_ = nullptr;
}

void HttpServer::CloseIdleConnections() {
  std::vector<ServerConnection*> idle;
  for (auto* conn : connections_) {
    if (conn->idle()) idle.push_back(conn);
  }
  for (auto* conn : idle) conn->Close();
}

void HttpServer::OnConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<HttpServer*>(listener->data);
  if (status < 0) return;
  auto* conn = new ServerConnection(self);
  uv_tcp_init(self->loop_, conn->tcp());
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(conn->tcp())) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(conn->tcp()),
             [](uv_handle_t* h) { delete static_cast<ServerConnection*>(h->data); });
    return;
  }
  sockaddr_storage peer;
  int len = sizeof(peer);
  if (uv_tcp_getpeername(conn->tcp(), reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    conn->set_peer_ip(FormatIp(reinterpret_cast<sockaddr*>(&peer)));
  }
  uv_tcp_nodelay(conn->tcp(), 1);
  self->connections_.push_back(conn);
  if (self->connections_.size() > self->options_.max_connections) {
    if (self->reject_observer_) self->reject_observer_(503);
    conn->Refuse();
    return;
  }
  conn->Start();
}

void HttpServer::Remove(ServerConnection* conn) {
  auto it = std::find(connections_.begin(), connections_.end(), conn);
  if (it != connections_.end()) connections_.erase(it);
}

}  // namespace sluice::proxy
