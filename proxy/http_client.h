#pragma once

#include <llhttp.h>
#include <uv.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "proxy/http_message.h"

namespace sluice::proxy {

struct ClientResult {
  enum class Error {
    kNone,
    kConnectFailure,  // refused, reset, closed before a complete response, DNS failure
    kTimeout,         // no complete response within the attempt's timeout
    kRefused,         // not sent: sluice is shutting down or too many are waiting
  };
  Error error = Error::kNone;
  std::string error_detail;
  HttpResponse response;        // valid when error == kNone
  bool body_truncated = false;  // the body exceeded the pool's max_response_body
};

class ClientConnection;

// HTTP/1.1 client for one upstream (host:port) with keep-alive connection reuse. One
// request per connection at a time (no pipelining to targets: a slow response must not
// delay the others). Lives on the loop thread.
class HttpClientPool {
 public:
  using Done = std::function<void(ClientResult)>;

  HttpClientPool(uv_loop_t* loop, std::string host, uint16_t port, size_t max_response_body);
  ~HttpClientPool();
  HttpClientPool(const HttpClientPool&) = delete;
  HttpClientPool& operator=(const HttpClientPool&) = delete;

  // Sends a serialised request. `done` runs exactly once on the loop thread (from inside
  // Send when the connection fails at once). `head`: no body follows the response.
  void Send(std::string request, bool head, common::Duration timeout, Done done);
  // Closes idle connections; busy ones close when their request ends.
  void CloseIdle();
  size_t idle_count() const { return idle_.size(); }
  // Connections with a request in progress.
  size_t busy_count() const { return all_.size() - idle_.size(); }

 private:
  friend class ClientConnection;
  void Release(ClientConnection* conn, bool reusable);

  uv_loop_t* loop_;
  std::string host_;
  uint16_t port_;
  size_t max_response_body_;
  std::vector<ClientConnection*> idle_;
  std::vector<ClientConnection*> all_;
  std::array<char, 64 * 1024> read_buffer_;  // shared by the pool's connections
  bool closing_ = false;
};

}  // namespace sluice::proxy
