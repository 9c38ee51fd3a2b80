// Checks the e2e harness itself, without sluice: Downstream and HttpClient against each
// other, HttpClient against nginx, child processes and Prometheus text parsing. A test
// harness that is wrong makes every e2e result meaningless, so it gets its own spec.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/child_process.h"
#include "tests/e2e/downstream.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/prometheus_text.h"
#include "tests/e2e/temp_dir.h"

namespace sluice::e2e {
namespace {

constexpr Millis kWait(5'000);

Request Post(std::string target, std::string body) {
  Request r;
  r.target = std::move(target);
  r.body = std::move(body);
  return r;
}

class DownstreamTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(downstream_.Start()) << downstream_.error(); }

  Downstream downstream_;
};

TEST_F(DownstreamTest, KeepAliveServesManyRequestsOnOneConnection) {
  HttpClient client(downstream_.port());
  for (int i = 0; i < 3; ++i) {
    auto r = client.RoundTrip(Post("/k", "body" + std::to_string(i)));
    ASSERT_TRUE(r) << client.error();
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->keep_alive);
  }
  auto requests = downstream_.Requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& r : requests) EXPECT_EQ(r.connection, requests[0].connection);
  EXPECT_EQ(requests[2].body, "body2");
  EXPECT_EQ(requests[2].index, 2u);
}

TEST_F(DownstreamTest, PipelinedRequestsAreAnsweredInOrder) {
  downstream_.SetResponder([](const ReceivedRequest& r) {
    Reply reply;
    reply.body = r.method + " " + r.url + " " + r.body;
    return reply;
  });
  std::vector<Request> batch;
  for (int i = 0; i < 50; ++i)
    batch.push_back(Post("/p/" + std::to_string(i), "b" + std::to_string(i)));
  HttpClient client(downstream_.port());
  auto responses = client.Pipeline(batch);
  ASSERT_EQ(responses.size(), batch.size()) << client.error();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(responses[i].body, "POST /p/" + std::to_string(i) + " b" + std::to_string(i));
  }
}

TEST_F(DownstreamTest, ChunkedRequestBodyIsReassembled) {
  Request r = Post("/c?x=1", std::string(1000, 'z') + "end");
  r.chunked = true;
  r.chunk_size = 7;
  HttpClient client(downstream_.port());
  ASSERT_TRUE(client.RoundTrip(r)) << client.error();
  auto got = downstream_.Requests().at(0);
  EXPECT_EQ(got.url, "/c?x=1");
  EXPECT_EQ(got.body, r.body);
  EXPECT_EQ(got.Header("transfer-encoding"), "chunked");
}

TEST_F(DownstreamTest, HeadersAreRecordedInOrderWithEmptyValues) {
  Request r = Post("/h", "x");
  r.headers = {{"X-First", "1"}, {"X-Empty", ""}, {"x-repeat", "a"}, {"X-Repeat", "b"}};
  HttpClient client(downstream_.port());
  ASSERT_TRUE(client.RoundTrip(r)) << client.error();
  Headers got = downstream_.Requests().at(0).headers;
  Headers expected = {{"Host", "127.0.0.1:" + std::to_string(downstream_.port())},
                      {"X-First", "1"},
                      {"X-Empty", ""},
                      {"x-repeat", "a"},
                      {"X-Repeat", "b"},
                      {"Content-Length", "1"}};
  EXPECT_EQ(got, expected);
  EXPECT_EQ(FindHeaders(got, "X-REPEAT"), (std::vector<std::string>{"a", "b"}));
}

TEST_F(DownstreamTest, ResponderScriptsFailuresThenSuccess) {
  downstream_.SetResponder([](const ReceivedRequest& r) {
    Reply reply;
    if (r.index < 2) {
      reply.status = 503;
      reply.headers = {{"Retry-After", "1"}};
    }
    return reply;
  });
  HttpClient client(downstream_.port());
  std::vector<int> statuses;
  for (int i = 0; i < 3; ++i) {
    auto r = client.RoundTrip(Post("/", "x"));
    ASSERT_TRUE(r) << client.error();
    statuses.push_back(r->status);
    if (r->status == 503) {
      EXPECT_EQ(r->Header("Retry-After"), "1");
    }
  }
  EXPECT_EQ(statuses, (std::vector<int>{503, 503, 200}));
  auto requests = downstream_.Requests();
  EXPECT_EQ(requests[0].answered_status, 503);
  EXPECT_EQ(requests[2].answered_status, 200);
}

TEST_F(DownstreamTest, StopClosesConnectionsAndRefusesNewOnes) {
  uint16_t port = downstream_.port();
  HttpClient client(port);
  ASSERT_TRUE(client.RoundTrip(Post("/", "before"))) << client.error();
  downstream_.Stop();
  EXPECT_TRUE(client.WaitForClose()) << client.error();
  EXPECT_FALSE(PortAcceptsConnections(port));

  ASSERT_TRUE(downstream_.StartAgain()) << downstream_.error();
  EXPECT_EQ(downstream_.port(), port);
  ASSERT_TRUE(client.Connect()) << client.error();
  ASSERT_TRUE(client.RoundTrip(Post("/", "after"))) << client.error();
  EXPECT_EQ(downstream_.Count(), 2u);
}

TEST_F(DownstreamTest, StopCutsADelayedReplyShort) {
  downstream_.SetResponder([](const ReceivedRequest&) {
    Reply reply;
    reply.delay = Millis(60'000);
    return reply;
  });
  HttpClient client(downstream_.port());
  ASSERT_TRUE(client.Send(Post("/", "slow"))) << client.error();
  ASSERT_TRUE(downstream_.WaitForCount(1, kWait));
  auto begin = SteadyClock::now();
  downstream_.Stop();
  EXPECT_LT(SteadyClock::now() - begin, Millis(5'000));
  EXPECT_FALSE(client.ReadResponse());
}

TEST_F(DownstreamTest, WaitForCountGivesUpAtTheDeadline) {
  EXPECT_FALSE(downstream_.WaitForCount(1, Millis(50)));
  EXPECT_FALSE(downstream_.WaitFor([](const auto& r) { return r.size() == 1; }, Millis(50)));
}

TEST_F(DownstreamTest, ClientReadTimesOutInsteadOfHanging) {
  downstream_.SetResponder([](const ReceivedRequest&) {
    Reply reply;
    reply.delay = Millis(3'000);
    return reply;
  });
  HttpClient client(downstream_.port(), Millis(200));
  auto begin = SteadyClock::now();
  EXPECT_FALSE(client.RoundTrip(Post("/", "x")));
  EXPECT_NE(client.error().find("timed out"), std::string::npos) << client.error();
  EXPECT_LT(SteadyClock::now() - begin, Millis(2'000));
}

TEST_F(DownstreamTest, MalformedRequestGets400AndClose) {
  HttpClient client(downstream_.port());
  ASSERT_TRUE(client.SendRaw("NOT HTTP AT ALL\r\n\r\n"));
  auto r = client.ReadResponse();
  ASSERT_TRUE(r) << client.error();
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->Header("Connection"), "close");
  EXPECT_TRUE(client.WaitForClose());
}

// A server that writes one canned answer and closes: close-delimited bodies.
class OneShotServer {
 public:
  explicit OneShotServer(std::string answer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 1);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, answer] {
      int c = ::accept(fd_, nullptr, nullptr);
      char buf[4096];
      (void)!::recv(c, buf, sizeof buf, 0);
      (void)!::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~OneShotServer() {
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_ = 0;
  std::thread thread_;
};

TEST(HttpClientTest, ReadsCloseDelimitedBody) {
  OneShotServer server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
  auto r = Get(server.port(), "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "until the end");
  EXPECT_FALSE(r->keep_alive);
}

TEST(HttpClientTest, ReportsTruncatedResponse) {
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
  HttpClient client(server.port(), Millis(2'000));
  EXPECT_FALSE(client.RoundTrip(Request{}));
  EXPECT_NE(client.error().find("closed"), std::string::npos) << client.error();
}

TEST(HttpClientTest, ConnectFailureIsAnErrorNotAHang) {
  HttpClient client(PickFreePort());
  EXPECT_FALSE(client.RoundTrip(Request{}));
  EXPECT_NE(client.error().find("connect"), std::string::npos) << client.error();
}

// nginx as an independent HTTP implementation: proves the client is not only compatible
// with our own Downstream.
class NginxTest : public ::testing::Test {
 protected:
  static constexpr const char* kNginx = "/usr/sbin/nginx";

  void SetUp() override {
    if (::access(kNginx, X_OK) != 0) GTEST_SKIP() << "nginx not installed";
    port_ = PickFreePort();
    std::string p = dir_.path();
    std::string conf = "daemon off;\nmaster_process off;\npid " + p + "/nginx.pid;\n" +
                       "error_log " + p + "/error.log;\n" +
                       "events { worker_connections 64; }\n"
                       "http {\n  access_log off;\n  client_body_temp_path " +
                       p +
                       "/body;\n"
                       "  gzip on; gzip_min_length 0; gzip_types text/plain;\n"
                       "  server {\n    listen 127.0.0.1:" +
                       std::to_string(port_) +
                       ";\n"
                       "    location = /accept { return 202; }\n"
                       "    location = /text { default_type text/plain; return 200 '" +
                       std::string(2000, 'a') + "'; }\n  }\n}\n";
    std::string conf_path = dir_.WriteFile("nginx.conf", conf);
    ASSERT_TRUE(nginx_.Spawn({kNginx, "-p", p, "-c", conf_path, "-e", p + "/error.log"},
                             p + "/out.log", p + "/out.log"))
        << nginx_.error();
    Deadline deadline(kWait);
    while (!PortAcceptsConnections(port_)) {
      ASSERT_FALSE(deadline.Expired()) << ReadFile(p + "/error.log");
      ASSERT_FALSE(nginx_.Poll()) << ReadFile(p + "/error.log");
      std::this_thread::sleep_for(Millis(10));
    }
  }

  TempDir dir_{"sluice-nginx"};
  ChildProcess nginx_;
  uint16_t port_ = 0;
};

TEST_F(NginxTest, KeepAliveAndPipelining) {
  HttpClient client(port_);
  auto one = client.RoundTrip(Post("/accept", "x"));
  ASSERT_TRUE(one) << client.error();
  EXPECT_EQ(one->status, 202);
  std::vector<Request> batch(10, Post("/accept", std::string(1024, 'b')));
  auto responses = client.Pipeline(batch);
  ASSERT_EQ(responses.size(), 10u) << client.error();
  for (const auto& r : responses) EXPECT_EQ(r.status, 202);
}

TEST_F(NginxTest, ChunkedResponse) {
  Request r;
  r.method = "GET";
  r.target = "/text";
  r.headers = {{"Accept-Encoding", "gzip"}};
  HttpClient client(port_);
  auto got = client.RoundTrip(r);
  ASSERT_TRUE(got) << client.error();
  EXPECT_EQ(got->Header("Transfer-Encoding"), "chunked");
  ASSERT_GE(got->body.size(), 2u);
  EXPECT_EQ(got->body.substr(0, 2), "\x1f\x8b");  // the gzip stream, de-chunked
  r.headers.clear();
  auto plain = client.RoundTrip(r);
  ASSERT_TRUE(plain) << client.error();
  EXPECT_EQ(plain->body, std::string(2000, 'a'));
}

TEST_F(NginxTest, ConnectionCloseIsHonoured) {
  Request r = Post("/accept", "x");
  r.headers = {{"Connection", "close"}};
  HttpClient client(port_);
  auto got = client.RoundTrip(r);
  ASSERT_TRUE(got) << client.error();
  EXPECT_FALSE(got->keep_alive);
  EXPECT_TRUE(client.WaitForClose());
}

TEST(ChildProcessTest, CapturesOutputAndExitCode) {
  TempDir dir;
  auto r = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, dir.path());
  EXPECT_EQ(r.status.code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST(ChildProcessTest, KillsACommandThatOutlivesItsTimeout) {
  TempDir dir;
  auto r = RunCommand({"/bin/sleep", "30"}, dir.path(), Millis(100));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.status.signal, SIGKILL);
}

TEST(ChildProcessTest, ExecFailureIsReported) {
  TempDir dir;
  ChildProcess child;
  EXPECT_FALSE(child.Spawn({"/nonexistent/binary"}, dir.path() + "/o", dir.path() + "/o"));
  EXPECT_NE(child.error().find("No such file"), std::string::npos) << child.error();
  EXPECT_FALSE(child.running());
}

TEST(PrometheusTextTest, SumsSamplesMatchingLabels) {
  const char* text =
      "# HELP sluice_delivery_attempts_total Attempts.\n"
      "# TYPE sluice_delivery_attempts_total counter\n"
      "sluice_delivery_attempts_total{result=\"2xx\",target=\"app\"} 7\n"
      "sluice_delivery_attempts_total{result=\"connect_failure\",target=\"app\"} 3\n"
      "sluice_delivery_attempts_total{result=\"connect_failure\",target=\"other\"} 100\n"
      "sluice_target_rate_limit_per_second{target=\"app\"} +Inf\n"
      "sluice_buffer_bytes 4096\n";
  EXPECT_EQ(SumSamples(text, "sluice_delivery_attempts_total",
                       {{"target", "app"}, {"result", "connect_failure"}}),
            3.0);
  EXPECT_EQ(SumSamples(text, "sluice_delivery_attempts_total", {{"target", "app"}}), 10.0);
  EXPECT_EQ(SumSamples(text, "sluice_buffer_bytes"), 4096.0);
  EXPECT_TRUE(std::isinf(*SumSamples(text, "sluice_target_rate_limit_per_second")));
  EXPECT_FALSE(SumSamples(text, "sluice_missing"));
  EXPECT_FALSE(SumSamples(text, "sluice_buffer_bytes", {{"target", "app"}}));
}

}  // namespace
}  // namespace sluice::e2e
