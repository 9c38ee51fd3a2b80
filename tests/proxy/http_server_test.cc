// HttpServer on a real loop, with a blocking loopback client on another thread: how
// answers are written and when a connection stops taking requests.
#include "proxy/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace sluice::proxy {
namespace {

using namespace std::chrono_literals;

// Connects to 127.0.0.1:port, sends `bytes` in one write, reads until the server closes
// (or 10 s pass) and returns what it read.
std::string SendAndReadToClose(uint16_t port, const std::string& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::send(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size())) {
    char buf[64 * 1024];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return got;
}

size_t CountStatusLines(const std::string& bytes) {
  size_t count = 0;
  for (size_t at = bytes.find("HTTP/1.1 "); at != std::string::npos;
       at = bytes.find("HTTP/1.1 ", at + 1)) {
    ++count;
  }
  return count;
}

class HttpServerTest : public testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    server_.reset();
    uv_run(&loop_, UV_RUN_NOWAIT);  // close callbacks
    uv_loop_close(&loop_);
  }

  // Starts the server with `handler` and returns its port.
  uint16_t Start(HttpServer::Handler handler) {
    HttpServer::Options options;
    options.name = "test";
    options.listen = config::HostPort{"127.0.0.1", 0};
    server_ = std::make_unique<HttpServer>(&loop_, options, std::move(handler));
    std::string bound;
    EXPECT_TRUE(server_->Listen(&bound).ok());
    return static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
  }

  // Runs the loop while `client` runs on its own thread (bounded by 20 s).
  std::string RunClient(uint16_t port, const std::string& bytes) {
    std::atomic<bool> done{false};
    std::string got;
    std::thread client([&] {
      got = SendAndReadToClose(port, bytes);
      done = true;
    });
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(1ms);
    }
    client.join();
    return got;
  }

  uv_loop_t loop_;
  std::unique_ptr<HttpServer> server_;
};

// An answer with Connection: close ends the connection: requests pipelined behind it,
// already in the same read, are not handed to the handler (RFC 9112, 9.6).
TEST_F(HttpServerTest, NothingIsHandledBehindAnAnswerThatCloses) {
  std::vector<std::string> handled;
  uint16_t port = Start([&](HttpRequest&& r, Responder responder) {
    handled.push_back(r.target);
    if (r.target == "/close") {
      responder.Send(503, {{"Retry-After", "1"}}, "", /*close=*/true);
    } else {
      responder.Send(200, {}, "ok");
    }
  });
  std::string got = RunClient(port,
                              "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /close HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(handled, (std::vector<std::string>{"/first", "/close"}));
  EXPECT_EQ(CountStatusLines(got), 2u) << got;
  EXPECT_NE(got.find("HTTP/1.1 503"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
}

// An answer larger than the socket takes at once: the part uv_try_write leaves goes out
// through uv_write, in order, and the connection closes only after all of it.
TEST_F(HttpServerTest, AnswerLargerThanTheSocketBufferArrivesWhole) {
  std::string body(8 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  uint16_t port = Start(
      [&](HttpRequest&&, Responder responder) { responder.Send(200, {}, body, /*close=*/true); });
  std::string got = RunClient(port, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  size_t head_end = got.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_NE(got.find("Content-Length: " + std::to_string(body.size())), std::string::npos);
  EXPECT_TRUE(got.substr(head_end + 4) == body)
      << "body of " << got.size() - head_end - 4 << " bytes differs";
}

}  // namespace
}  // namespace sluice::proxy
