#include "proxy/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace sluice::proxy {
namespace {

using namespace std::chrono_literals;

// A loopback upstream that answers each request with scripted bytes. Requests are read
// up to the end of the headers plus Content-Length; the script sees the request number
// (0-based, across connections) and says what to send and whether to close after.
class ScriptedUpstream {
 public:
  struct Reply {
    std::string bytes;   // sent as is; empty = send nothing
    bool close = false;  // close the connection after sending
    bool hang = false;   // never answer (until the test ends)
    bool reset = false;  // close with RST (SO_LINGER 0)
  };
  using Script = std::function<Reply(int request_number)>;

  explicit ScriptedUpstream(Script script) : script_(std::move(script)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedUpstream() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  int requests() const { return requests_; }

 private:
  // Single-threaded: one connection at a time is enough for these tests.
  void Serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      ++accepted_;
      ServeConnection(fd);
    }
  }

  void ServeConnection(int fd) {
    std::string buf;
    for (;;) {
      std::optional<std::string> request = ReadRequest(fd, &buf);
      if (!request) break;
      Reply reply = script_(requests_++);
      if (reply.hang) {
        while (!stop_) std::this_thread::sleep_for(5ms);
        break;
      }
      if (!reply.bytes.empty()) (void)!::write(fd, reply.bytes.data(), reply.bytes.size());
      if (reply.reset) {
        linger l{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        break;
      }
      if (reply.close) break;
    }
    ::close(fd);
  }

  std::optional<std::string> ReadRequest(int fd, std::string* buf) {
    for (;;) {
      size_t end = buf->find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        size_t cl = buf->find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(buf->substr(cl + 16));
        if (buf->size() >= end + 4 + length) {
          std::string request = buf->substr(0, end + 4 + length);
          buf->erase(0, end + 4 + length);
          return request;
        }
      }
      pollfd p{fd, POLLIN, 0};
      if (stop_) return std::nullopt;
      if (::poll(&p, 1, 20) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::read(fd, chunk, sizeof(chunk));
      if (n <= 0) return std::nullopt;
      buf->append(chunk, static_cast<size_t>(n));
    }
  }

  Script script_;
  int listen_fd_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
};

class HttpClientTest : public ::testing::Test {
 protected:
  HttpClientTest() { uv_loop_init(&loop_); }
  ~HttpClientTest() override {
    pool_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
  }

  void UsePort(uint16_t port) {
    pool_ = std::make_unique<HttpClientPool>(&loop_, "127.0.0.1", port, 1 << 20);
  }

  // Sends one request and runs the loop until its callback fires (or 5 s pass).
  ClientResult Send(
      std::string request = "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
      common::Duration timeout = 2s, bool head = false) {
    std::optional<ClientResult> result;
    pool_->Send(std::move(request), head, timeout, [&](ClientResult r) { result = std::move(r); });
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!result && std::chrono::steady_clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    EXPECT_TRUE(result.has_value()) << "no callback within 5 s";
    return result.value_or(ClientResult{});
  }

  uv_loop_t loop_;
  std::unique_ptr<HttpClientPool> pool_;
};

const char* kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

TEST_F(HttpClientTest, KeepAliveReusesOneConnection) {
  ScriptedUpstream up([](int) { return ScriptedUpstream::Reply{kOk}; });
  UsePort(up.port());
  for (int i = 0; i < 5; ++i) {
    ClientResult r = Send();
    ASSERT_EQ(r.error, ClientResult::Error::kNone) << r.error_detail;
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.body, "ok");
  }
  EXPECT_EQ(up.accepted(), 1);
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(HttpClientTest, ResponseDelimitedByCloseIsComplete) {
  ScriptedUpstream up([](int) {
    return ScriptedUpstream::Reply{"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nbody until close", true};
  });
  UsePort(up.port());
  ClientResult r = Send();
  ASSERT_EQ(r.error, ClientResult::Error::kNone) << r.error_detail;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "body until close");
  EXPECT_EQ(up.requests(), 1) << "a complete response must not be retried";
}

TEST_F(HttpClientTest, ChunkedResponse) {
  ScriptedUpstream up([](int) {
    return ScriptedUpstream::Reply{
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nbusy\r\n0\r\n\r\n"};
  });
  UsePort(up.port());
  ClientResult r = Send();
  ASSERT_EQ(r.error, ClientResult::Error::kNone) << r.error_detail;
  EXPECT_EQ(r.response.status, 503);
  EXPECT_EQ(r.response.body, "busy");
  ASSERT_NE(FindHeader(r.response.headers, "retry-after"), nullptr);
  EXPECT_EQ(*FindHeader(r.response.headers, "retry-after"), "7");
}

TEST_F(HttpClientTest, InterimContinueThenFinalResponse) {
  ScriptedUpstream up([](int) {
    return ScriptedUpstream::Reply{std::string("HTTP/1.1 100 Continue\r\n\r\n") + kOk};
  });
  UsePort(up.port());
  ClientResult r = Send();
  ASSERT_EQ(r.error, ClientResult::Error::kNone) << r.error_detail;
  EXPECT_EQ(r.response.status, 200);
}

TEST_F(HttpClientTest, HeadResponseHasNoBody) {
  ScriptedUpstream up([](int n) {
    return ScriptedUpstream::Reply{n == 0 ? "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                                          : kOk};
  });
  UsePort(up.port());
  ClientResult r = Send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", 2s, /*head=*/true);
  ASSERT_EQ(r.error, ClientResult::Error::kNone) << r.error_detail;
  EXPECT_EQ(r.response.status, 200);
  ClientResult second = Send();  // the connection is still in sync
  ASSERT_EQ(second.error, ClientResult::Error::kNone) << second.error_detail;
  EXPECT_EQ(second.response.body, "ok");
}

TEST_F(HttpClientTest, ConnectionRefusedIsConnectFailure) {
  uint16_t port;
  {
    ScriptedUpstream up([](int) { return ScriptedUpstream::Reply{kOk}; });
    port = up.port();
  }  // closed: nothing listens there now
  UsePort(port);
  ClientResult r = Send();
  EXPECT_EQ(r.error, ClientResult::Error::kConnectFailure);
}

TEST_F(HttpClientTest, SilentUpstreamTimesOut) {
  ScriptedUpstream up([](int) { return ScriptedUpstream::Reply{"", false, true, false}; });
  UsePort(up.port());
  ClientResult r = Send("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 100ms);
  EXPECT_EQ(r.error, ClientResult::Error::kTimeout);
  EXPECT_EQ(pool_->idle_count(), 0u) << "a timed-out connection must not be reused";
}

TEST_F(HttpClientTest, ResetMidResponseIsConnectFailure) {
  ScriptedUpstream up([](int) {
    return ScriptedUpstream::Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", false,
                                   false, true};
  });
  UsePort(up.port());
  ClientResult r = Send();
  EXPECT_EQ(r.error, ClientResult::Error::kConnectFailure);
}

TEST_F(HttpClientTest, StaleKeepAliveConnectionIsRetriedOnAFreshOne) {
  // The upstream answers and closes right after, without saying so: the pooled
  // connection is dead by the time the next request goes out.
  ScriptedUpstream up([](int) { return ScriptedUpstream::Reply{kOk, /*close=*/true}; });
  UsePort(up.port());
  ASSERT_EQ(Send().error, ClientResult::Error::kNone);
  std::this_thread::sleep_for(50ms);  // let the upstream's FIN arrive (not a wait for us)
  ClientResult r = Send();
  ASSERT_EQ(r.error, ClientResult::Error::kNone) << r.error_detail;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(up.accepted(), 2);
}

}  // namespace
}  // namespace sluice::proxy
