#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/deadline.h"
#include "tests/e2e/http_message.h"

namespace sluice::e2e {

// One request as the downstream saw it.
struct ReceivedRequest {
  size_t index = 0;  // 0-based arrival order across all connections
  int connection = 0;
  std::string method;
  std::string url;
  Headers headers;
  std::string body;
  SteadyClock::time_point arrival;
  int answered_status = 0;

  std::optional<std::string> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

// What the downstream answers to one request.
struct Reply {
  int status = 200;
  Headers headers;
  std::string body;
  Millis delay{0};  // wait this long before answering (cut short by Stop())
  // Instead of answering, abort the connection with a TCP reset (SO_LINGER 0), after
  // `delay`. The request is recorded with answered_status 0.
  bool reset = false;
};

// Decides the reply; called on a connection thread, without the downstream's lock held.
using Responder = std::function<Reply(const ReceivedRequest&)>;

// A loopback HTTP/1.1 server standing in for a target: keep-alive and pipelining, one
// thread per connection, records every request, answers through a scriptable Responder
// (default: 200 with an empty body). Stop() simulates the target going down: the listener
// and every connection are closed, so connects are refused until StartAgain().
class Downstream {
 public:
  Downstream();
  ~Downstream();
  Downstream(const Downstream&) = delete;
  Downstream& operator=(const Downstream&) = delete;

  // Binds 127.0.0.1:port (0 = any free port) with SO_REUSEADDR and starts accepting.
  bool Start(uint16_t port = 0);
  // Closes the listener and all connections; joins every thread.
  void Stop();
  // Start() on the port used before.
  bool StartAgain() { return Start(port_); }

  uint16_t port() const { return port_; }
  const std::string& error() const { return error_; }

  void SetResponder(Responder responder);

  std::vector<ReceivedRequest> Requests() const;
  size_t Count() const;
  // Waits until at least n requests have arrived.
  bool WaitForCount(size_t n, Millis timeout) const;
  // Waits until `done(requests)` holds; re-evaluated on every arrival.
  bool WaitFor(const std::function<bool(const std::vector<ReceivedRequest>&)>& done,
               Millis timeout) const;

 private:
  struct Connection {
    int fd = -1;
    int id = 0;
    std::thread thread;
    std::atomic<bool> finished{false};
  };

  void AcceptLoop();
  void Serve(Connection* conn);
  // Answers one request; false if the connection must close.
  bool Answer(Connection* conn, HttpMessage message);
  bool WriteAll(int fd, const std::string& bytes);
  // Waits up to `ms` unless Stop() is called; false if stopped.
  bool SleepUnlessStopped(Millis ms);
  void ReapFinished();

  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd, readable once Stop() begins
  std::thread acceptor_;
  std::list<std::unique_ptr<Connection>> connections_;  // owned by the acceptor thread
  int next_connection_id_ = 0;
  std::string error_;

  mutable std::mutex mu_;
  mutable std::condition_variable arrived_;
  std::vector<ReceivedRequest> requests_;
  size_t next_index_ = 0;
  Responder responder_;
};

}  // namespace sluice::e2e
