#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::broker::testing {

// An HTTP/1.1 server on 127.0.0.1 that answers SQS calls as a test scripts them: for
// the failures the emulator cannot produce (5xx, throttling, malformed answers). A thread
// per connection, keep-alive; everything stops within the destructor.
class FakeSqs {
 public:
  struct Answer {
    int status = 200;
    std::string body = "{}";
    int delay_ms = 0;  // before answering (an empty long poll)
  };
  // Called on the server's threads, one call at a time: the action ("SendMessage") and
  // the request body.
  using Handler = std::function<Answer(const std::string& action, const std::string& body)>;

  explicit FakeSqs(Handler handler);
  ~FakeSqs();
  FakeSqs(const FakeSqs&) = delete;
  FakeSqs& operator=(const FakeSqs&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void SetHandler(Handler handler);
  // Every call so far: action, body.
  std::vector<std::pair<std::string, std::string>> calls();
  size_t Count(const std::string& action);

 private:
  void Accept();
  void Serve(int fd);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  Handler handler_;
  std::vector<std::pair<std::string, std::string>> calls_;
  std::thread accept_thread_;
  std::vector<std::thread> connections_;  // guarded by mu_
};

}  // namespace sluice::broker::testing
