#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/e2e/deadline.h"
#include "tests/e2e/http_message.h"

namespace sluice::e2e {

// A blocking HTTP/1.1 client for one loopback connection, kept alive across requests.
// Every read waits at most `timeout` (per call), so a server bug fails a test instead of
// hanging it. Failures return false/nullopt and leave a description in error().
// Does not reconnect by itself: after the server closes, call Connect() again.
class HttpClient {
 public:
  explicit HttpClient(uint16_t port, Millis timeout = Millis(10'000));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // (Re)connects to 127.0.0.1:port. Send* connect lazily when not connected.
  bool Connect();
  void Close();
  bool connected() const { return fd_ >= 0; }

  bool SendRaw(std::string_view bytes);
  bool Send(const Request& request);
  // Waits for the next complete response.
  std::optional<HttpMessage> ReadResponse();
  // Send + ReadResponse.
  std::optional<HttpMessage> RoundTrip(const Request& request);
  // Writes all requests back to back, then reads as many responses; empty on any failure.
  std::vector<HttpMessage> Pipeline(const std::vector<Request>& requests);
  // True once the server has closed the connection (EOF or reset) before the deadline,
  // after consuming any further responses (available via ReadResponse()).
  bool WaitForClose();

  const std::string& error() const { return error_; }
  uint16_t port() const { return port_; }

 private:
  // Reads once (waiting up to the deadline) into the parser. False on timeout or error;
  // sets peer_closed_ on EOF.
  bool ReadSome(const Deadline& deadline);

  uint16_t port_;
  Millis timeout_;
  int fd_ = -1;
  bool peer_closed_ = false;
  std::unique_ptr<HttpParser> parser_;
  std::deque<HttpMessage> responses_;
  std::string error_;
};

// One-shot GET on a fresh connection.
std::optional<HttpMessage> Get(uint16_t port, const std::string& path,
                               Millis timeout = Millis(5'000));

// A loopback port that was free a moment ago (bind to port 0, read it, close).
uint16_t PickFreePort();

// True if something accepts TCP connections on 127.0.0.1:port.
bool PortAcceptsConnections(uint16_t port);

}  // namespace sluice::e2e
