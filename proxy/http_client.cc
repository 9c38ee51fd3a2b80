#include "proxy/http_client.h"

#include <algorithm>
#include <cstring>

#include "proxy/lazy_deadline.h"
#include "proxy/net_address.h"

namespace sluice::proxy {

// One upstream connection. Heap-allocated, never moves; freed after its handles close.
class ClientConnection {
 public:
  explicit ClientConnection(HttpClientPool* pool) : pool_(pool) {
    tcp_.data = this;
    timer_.data = this;
    connect_req_.data = this;
    resolve_req_.data = this;
    llhttp_settings_init(&settings_);
    settings_.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      return From(p)->OnHeaderField(at, n);
    };
    settings_.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      return From(p)->OnHeaderValue(at, n);
    };
    settings_.on_header_value_complete = [](llhttp_t* p) {
      return From(p)->OnHeaderValueComplete();
    };
    settings_.on_headers_complete = [](llhttp_t* p) { return From(p)->OnHeadersComplete(); };
    settings_.on_body = [](llhttp_t* p, const char* at, size_t n) {
      return From(p)->OnBody(at, n);
    };
    settings_.on_message_complete = [](llhttp_t* p) { return From(p)->OnMessageComplete(); };
    uv_tcp_init(pool_->loop_, &tcp_);
    uv_timer_init(pool_->loop_, &timer_);
  }

  // Starts a request on this connection: connects first when new.
  void Start(std::string request, bool head, common::Duration timeout, HttpClientPool::Done done,
             bool reused) {
    request_ = std::move(request);
    head_ = head;
    done_ = std::move(done);
    reused_ = reused;
    timeout_ = timeout;
    got_response_bytes_ = false;
    response_ = HttpResponse();
    response_.headers.reserve(12);  // one allocation for a typical response's headers
    llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
    parser_.data = this;
    deadline_.Set(timeout);
    if (connected_) {
      WriteRequest();
    } else {
      Connect();
    }
  }

  void Close() {
    if (closing_) return;
    closing_ = true;
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), OnHandleClosed);
  }

  // Idle keep-alive connection: watch for the server closing it.
  void WatchIdle() { idle_ = true; }

 private:
  static ClientConnection* From(llhttp_t* p) { return static_cast<ClientConnection*>(p->data); }

  void Connect() {
    sockaddr_storage addr;
    if (ResolveLiteral(pool_->host_, pool_->port_, &addr)) {
      ConnectTo(reinterpret_cast<sockaddr*>(&addr));
      return;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(pool_->loop_, &resolve_req_, OnResolved, pool_->host_.c_str(),
                            std::to_string(pool_->port_).c_str(), &hints);
    resolving_ = rc == 0;
    if (rc != 0) Finish(ClientResult::Error::kConnectFailure, uv_strerror(rc));
  }

  static void OnResolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    auto* self = static_cast<ClientConnection*>(req->data);
    self->resolving_ = false;
    if (self->closing_) {
      if (res) uv_freeaddrinfo(res);
      if (self->handles_closed_ == 2) delete self;  // the close finished while resolving
      return;
    }
    if (status != 0 || res == nullptr) {
      if (res) uv_freeaddrinfo(res);
      if (!self->closing_) self->Finish(ClientResult::Error::kConnectFailure, uv_strerror(status));
      return;
    }
    if (!self->closing_) self->ConnectTo(res->ai_addr);
    uv_freeaddrinfo(res);
  }

  void ConnectTo(const sockaddr* addr) {
    int rc = uv_tcp_connect(&connect_req_, &tcp_, addr, OnConnected);
    if (rc != 0) Finish(ClientResult::Error::kConnectFailure, uv_strerror(rc));
  }

  static void OnConnected(uv_connect_t* req, int status) {
    auto* self = static_cast<ClientConnection*>(req->data);
    if (self->closing_) return;
    if (status != 0) {
      self->Finish(ClientResult::Error::kConnectFailure, uv_strerror(status));
      return;
    }
    self->connected_ = true;
    uv_tcp_nodelay(&self->tcp_, 1);
    uv_read_start(reinterpret_cast<uv_stream_t*>(&self->tcp_), OnAlloc, OnRead);
    self->WriteRequest();
  }

  // uv_try_write first, as in the server (see ServerConnection::WriteSlots): a request
  // the socket takes whole costs no uv_write and no epoll re-arm afterwards. A failed
  // try (reset, broken pipe) is left to uv_write to report.
  void WriteRequest() {
    idle_ = false;
    uv_buf_t buf = uv_buf_init(request_.data(), static_cast<unsigned>(request_.size()));
    int tried = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1);
    if (tried > 0) {
      if (static_cast<size_t>(tried) == request_.size()) return;
      buf.base += tried;
      buf.len -= static_cast<size_t>(tried);
    }
    write_req_.data = this;
    int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, OnWritten);
    if (rc != 0) Finish(ClientResult::Error::kConnectFailure, uv_strerror(rc));
  }

  static void OnWritten(uv_write_t* req, int status) {
    auto* self = static_cast<ClientConnection*>(req->data);
    if (status != 0 && !self->closing_ && self->done_) {
      self->Finish(ClientResult::Error::kConnectFailure, uv_strerror(status));
    }
  }

  // One buffer per pool, as in the server: each read is consumed before the next.
  static void OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* self = static_cast<ClientConnection*>(handle->data);
    auto& shared = self->pool_->read_buffer_;
    *buf = uv_buf_init(shared.data(), static_cast<unsigned>(shared.size()));
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<ClientConnection*>(stream->data);
    if (nread == 0 || self->closing_) return;
    if (!self->done_) {
      // Bytes or EOF on an idle connection: the server closed it or misbehaves.
      self->pool_->Release(self, false);
      return;
    }
    if (nread < 0) {
      // A response without Content-Length ends at EOF: llhttp_finish completes it (and
      // returns HPE_PAUSED from our on_message_complete, so look at complete_ only).
      if (nread == UV_EOF && self->got_response_bytes_) (void)llhttp_finish(&self->parser_);
      if (self->complete_) {
        self->Finish(ClientResult::Error::kNone, "");
        return;
      }
      self->Finish(ClientResult::Error::kConnectFailure,
                   self->got_response_bytes_ ? "connection closed mid-response"
                                             : uv_strerror(static_cast<int>(nread)));
      return;
    }
    self->got_response_bytes_ = true;
    llhttp_errno_t err = llhttp_execute(&self->parser_, buf->base, static_cast<size_t>(nread));
    if (self->complete_) {
      self->Finish(ClientResult::Error::kNone, "");
    } else if (err != HPE_OK) {
      self->Finish(ClientResult::Error::kConnectFailure,
                   std::string("bad response: ") + llhttp_errno_name(err));
    }
  }

  static void OnTimeout(uv_timer_t* timer) {
    auto* self = static_cast<ClientConnection*>(timer->data);
    if (!self->deadline_.Expired()) return;
    self->Finish(ClientResult::Error::kTimeout, "timeout");
  }

  int OnHeaderField(const char* at, size_t n) {
    if (in_value_) {
      response_.headers.emplace_back(std::move(field_), std::move(value_));
      field_.clear();
      value_.clear();
      in_value_ = false;
    }
    field_.append(at, n);
    return 0;
  }
  int OnHeaderValue(const char* at, size_t n) {
    in_value_ = true;
    value_.append(at, n);
    return 0;
  }
  int OnHeaderValueComplete() {
    response_.headers.emplace_back(std::move(field_), std::move(value_));
    field_.clear();
    value_.clear();
    in_value_ = false;
    return 0;
  }
  int OnHeadersComplete() {
    response_.status = parser_.status_code;
    response_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
    // 1 tells llhttp that no body follows (the response to a HEAD request).
    return head_ ? 1 : 0;
  }
  int OnBody(const char* at, size_t n) {
    size_t room =
        pool_->max_response_body_ - std::min(pool_->max_response_body_, response_.body.size());
    response_.body.append(at, std::min(n, room));  // the rest is read and dropped
    if (n > room) body_truncated_ = true;
    return 0;
  }
  int OnMessageComplete() {
    if (parser_.status_code >= 100 && parser_.status_code < 200) {
      // An interim response (100 Continue): the final one follows.
      response_ = HttpResponse();
      return 0;
    }
    complete_ = true;
    response_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
    return HPE_PAUSED;  // one response per request: stop here
  }

  void Finish(ClientResult::Error error, std::string detail) {
    if (!done_) return;
    deadline_.Clear();
    // A reused keep-alive connection that the server had closed: try once more on a
    // fresh connection. The request was never processed (nothing came back).
    if (error == ClientResult::Error::kConnectFailure && reused_ && !got_response_bytes_) {
      auto done = std::move(done_);
      done_ = nullptr;
      pool_->Release(this, false);
      pool_->Send(std::move(request_), head_, timeout_, std::move(done));
      return;
    }
    ClientResult result;
    result.error = error;
    result.error_detail = std::move(detail);
    bool reusable = error == ClientResult::Error::kNone && response_.keep_alive && complete_;
    if (error == ClientResult::Error::kNone) result.response = std::move(response_);
    result.body_truncated = body_truncated_;
    body_truncated_ = false;
    auto done = std::move(done_);
    done_ = nullptr;
    complete_ = false;
    pool_->Release(this, reusable);
    done(std::move(result));
  }

  static void OnHandleClosed(uv_handle_t* handle) {
    auto* self = static_cast<ClientConnection*>(handle->data);
    if (++self->handles_closed_ == 2 && !self->resolving_) delete self;
  }

  HttpClientPool* pool_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  LazyDeadline deadline_{&timer_, OnTimeout};  // the request's timeout
  uv_connect_t connect_req_;
  uv_getaddrinfo_t resolve_req_;
  uv_write_t write_req_;
  llhttp_settings_t settings_;
  llhttp_t parser_;
  std::string request_;
  bool head_ = false;
  common::Duration timeout_{};
  HttpClientPool::Done done_;
  HttpResponse response_;
  std::string field_;
  std::string value_;
  bool in_value_ = false;
  bool complete_ = false;
  bool body_truncated_ = false;
  bool connected_ = false;
  bool reused_ = false;
  bool idle_ = false;
  bool got_response_bytes_ = false;
  bool closing_ = false;
  bool resolving_ = false;  // a uv_getaddrinfo callback is still due
  int handles_closed_ = 0;
};

HttpClientPool::HttpClientPool(uv_loop_t* loop, std::string host, uint16_t port,
                               size_t max_response_body)
    : loop_(loop), host_(std::move(host)), port_(port), max_response_body_(max_response_body) {}

HttpClientPool::~HttpClientPool() {
  closing_ = true;
  for (auto* conn : all_) conn->Close();
}

void HttpClientPool::Send(std::string request, bool head, common::Duration timeout, Done done) {
  if (!idle_.empty()) {
    ClientConnection* conn = idle_.back();
    idle_.pop_back();
    conn->Start(std::move(request), head, timeout, std::move(done), /*reused=*/true);
    return;
  }
  auto* conn = new ClientConnection(this);
  all_.push_back(conn);
  conn->Start(std::move(request), head, timeout, std::move(done), /*reused=*/false);
}

void HttpClientPool::Release(ClientConnection* conn, bool reusable) {
  auto idle_it = std::find(idle_.begin(), idle_.end(), conn);
  if (idle_it != idle_.end()) idle_.erase(idle_it);
  if (reusable && !closing_) {
    conn->WatchIdle();
    idle_.push_back(conn);
    return;
  }
  auto it = std::find(all_.begin(), all_.end(), conn);
  if (it != all_.end()) all_.erase(it);
  conn->Close();
}

void HttpClientPool::CloseIdle() {
  auto idle = std::move(idle_);
  idle_.clear();
  for (auto* conn : idle) Release(conn, false);
}

}  // namespace sluice::proxy
