// The SQS client without SQS: endpoint parsing, the signed request as it goes on the
// wire (checked against aws::Sign directly), and how answers are classified.

#include "broker/sqs_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace sluice::broker {
namespace {

using std::chrono::seconds;

aws::Credentials TestCredentials() {
  return aws::Credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
}

// A request as read back from the wire.
struct WireRequest {
  std::string request_line;
  std::vector<aws::Header> headers;
  std::string body;

  const std::string* Header(std::string_view name) const {
    for (const auto& h : headers) {
      if (strcasecmp(h.name.c_str(), std::string(name).c_str()) == 0) return &h.value;
    }
    return nullptr;
  }
};

std::optional<WireRequest> ParseWire(std::string_view wire) {
  size_t head_end = wire.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return std::nullopt;
  WireRequest r;
  std::string_view head = wire.substr(0, head_end);
  size_t line_end = head.find("\r\n");
  r.request_line = std::string(head.substr(0, line_end));
  head.remove_prefix(line_end == std::string_view::npos ? head.size() : line_end + 2);
  while (!head.empty()) {
    size_t end = head.find("\r\n");
    std::string_view line = head.substr(0, end);
    size_t colon = line.find(": ");
    if (colon == std::string_view::npos) return std::nullopt;
    r.headers.push_back({std::string(line.substr(0, colon)), std::string(line.substr(colon + 2))});
    head.remove_prefix(end == std::string_view::npos ? head.size() : end + 2);
  }
  r.body = std::string(wire.substr(head_end + 4));
  return r;
}

// Signs again, with aws::Sign, what the request says it signed (every header but the
// ones Sign adds and Content-Length), at the date it carries: the Authorization header
// on the wire must be the one that comes out.
void ExpectSignatureVerifies(const WireRequest& r, const aws::Credentials& credentials,
                             std::string_view region) {
  ASSERT_EQ(r.request_line, "POST / HTTP/1.1");
  const std::string* date = r.Header("X-Amz-Date");
  const std::string* authorization = r.Header("Authorization");
  ASSERT_NE(date, nullptr);
  ASSERT_NE(authorization, nullptr);
  std::vector<aws::Header> signed_headers;
  for (const auto& h : r.headers) {
    if (h.name == "X-Amz-Date" || h.name == "Authorization" || h.name == "Content-Length" ||
        h.name == "X-Amz-Security-Token") {
      continue;
    }
    signed_headers.push_back(h);
  }
  aws::SigningRequest request{"POST", "/", "", signed_headers, r.body};
  aws::SigningResult expected;
  ASSERT_TRUE(
      aws::Sign(request, credentials, region, "sqs", *date, aws::SigningOptions{}, &expected).ok());
  EXPECT_EQ(*authorization, expected.headers.back().value);
  EXPECT_NE(
      authorization->find("Credential=" + credentials.access_key_id + "/" + date->substr(0, 8) +
                          "/" + std::string(region) + "/sqs/aws4_request"),
      std::string::npos);
  EXPECT_NE(authorization->find("SignedHeaders=content-type;host;x-amz-date;x-amz-target"),
            std::string::npos)
      << *authorization;
  const std::string* length = r.Header("Content-Length");
  ASSERT_NE(length, nullptr);
  EXPECT_EQ(*length, std::to_string(r.body.size()));
}

TEST(SqsEndpointTest, AcceptsPlainHttp) {
  SqsEndpoint e;
  ASSERT_TRUE(ParseSqsEndpoint("http://127.0.0.1:9324", "us-east-1", &e).ok());
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 9324);
  EXPECT_EQ(e.host_header, "127.0.0.1:9324");
  ASSERT_TRUE(ParseSqsEndpoint("http://sqs.local/", "us-east-1", &e).ok());
  EXPECT_EQ(e.host, "sqs.local");
  EXPECT_EQ(e.port, 80);
  EXPECT_EQ(e.host_header, "sqs.local");
  ASSERT_TRUE(ParseSqsEndpoint("http://[::1]:4566", "us-east-1", &e).ok());
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 4566);
  EXPECT_EQ(e.host_header, "[::1]:4566");
}

TEST(SqsEndpointTest, RefusesWhatThisBuildCannotReach) {
  SqsEndpoint e;
  common::Status s = ParseSqsEndpoint("", "eu-west-1", &e);
  EXPECT_EQ(s.code(), common::Status::Code::kInvalidArgument);
  EXPECT_NE(s.ToString().find("https://sqs.eu-west-1.amazonaws.com"), std::string::npos);
  EXPECT_NE(s.ToString().find("TLS"), std::string::npos);
  s = ParseSqsEndpoint("https://sqs.us-east-1.amazonaws.com", "us-east-1", &e);
  EXPECT_NE(s.ToString().find("TLS"), std::string::npos);
  for (const char* bad : {"ftp://x", "http://", "http://h:0", "http://h:70000", "http://h:",
                          "http://h:x", "http://h/path", "http://u@h", "http://[::1", "h:80"}) {
    EXPECT_EQ(ParseSqsEndpoint(bad, "us-east-1", &e).code(), common::Status::Code::kInvalidArgument)
        << bad;
  }
}

TEST(SqsRequestTest, CarriesTheJsonProtocolHeadersAndAVerifyingSignature) {
  SqsEndpoint e;
  ASSERT_TRUE(ParseSqsEndpoint("http://127.0.0.1:9324", "us-east-1", &e).ok());
  std::string body = R"({"QueueName":"sluice-orders"})";
  std::string wire;
  aws::SigningResult signing;
  ASSERT_TRUE(BuildSqsRequest(e, TestCredentials(), "us-east-1", "GetQueueUrl", body,
                              "20261127T120000Z", &wire, &signing)
                  .ok());
  auto r = ParseWire(wire);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r->Header("Host"), "127.0.0.1:9324");
  EXPECT_EQ(*r->Header("Content-Type"), "application/x-amz-json-1.0");
  EXPECT_EQ(*r->Header("X-Amz-Target"), "AmazonSQS.GetQueueUrl");
  EXPECT_EQ(*r->Header("X-Amz-Date"), "20261127T120000Z");
  EXPECT_EQ(r->Header("X-Amz-Security-Token"), nullptr);
  EXPECT_EQ(r->body, body);
  EXPECT_EQ(*r->Header("Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-east-1/sqs/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" +
                signing.signature);
  ExpectSignatureVerifies(*r, TestCredentials(), "us-east-1");
}

TEST(SqsRequestTest, SignsTheSessionTokenOfTemporaryCredentials) {
  SqsEndpoint e;
  ASSERT_TRUE(ParseSqsEndpoint("http://127.0.0.1:9324", "us-east-1", &e).ok());
  aws::Credentials credentials = TestCredentials();
  credentials.session_token = "FQoGZXIvYXdzEBYaDK";
  std::string wire;
  ASSERT_TRUE(BuildSqsRequest(e, credentials, "us-east-1", "SendMessage", "{}", "20261127T120000Z",
                              &wire, nullptr)
                  .ok());
  auto r = ParseWire(wire);
  ASSERT_TRUE(r);
  ASSERT_NE(r->Header("X-Amz-Security-Token"), nullptr);
  EXPECT_EQ(*r->Header("X-Amz-Security-Token"), "FQoGZXIvYXdzEBYaDK");
  EXPECT_NE(r->Header("Authorization")->find("x-amz-security-token"), std::string::npos);
}

TEST(SqsRequestTest, RefusesCredentialsSignCannotUse) {
  SqsEndpoint e;
  ASSERT_TRUE(ParseSqsEndpoint("http://127.0.0.1:9324", "us-east-1", &e).ok());
  std::string wire = "untouched";
  aws::Credentials no_secret{"AKIDEXAMPLE", "", ""};
  EXPECT_FALSE(BuildSqsRequest(e, no_secret, "us-east-1", "SendMessage", "{}", "20261127T120000Z",
                               &wire, nullptr)
                   .ok());
  EXPECT_EQ(wire, "untouched");
}

TEST(SqsReplyTest, ClassifiesAnswers) {
  using O = SqsReply::Outcome;
  EXPECT_EQ(ClassifySqsResponse(200, R"({"QueueUrl":"http://q"})").outcome, O::kOk);
  EXPECT_EQ(ClassifySqsResponse(200, "").outcome, O::kOk);  // DeleteMessage: empty body
  EXPECT_TRUE(ClassifySqsResponse(200, "").body.is_object());
  EXPECT_EQ(ClassifySqsResponse(200, "<xml/>").outcome, O::kUnavailable);
  EXPECT_EQ(ClassifySqsResponse(200, "[1]").outcome, O::kUnavailable);
  SqsReply missing = ClassifySqsResponse(
      400,
      R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."})");
  EXPECT_EQ(missing.outcome, O::kQueueMissing);
  EXPECT_EQ(missing.error_code, "QueueDoesNotExist");
  EXPECT_EQ(missing.error, "HTTP 400 QueueDoesNotExist: The specified queue does not exist.");
  EXPECT_EQ(
      ClassifySqsResponse(400, R"({"__type":"com.amazonaws.sqs#ThrottlingException"})").outcome,
      O::kUnavailable);
  EXPECT_EQ(ClassifySqsResponse(400, R"({"__type":"RequestThrottled"})").outcome, O::kUnavailable);
  EXPECT_EQ(ClassifySqsResponse(403, R"({"__type":"SignatureDoesNotMatch"})").outcome,
            O::kUnavailable);
  EXPECT_EQ(ClassifySqsResponse(500, "").outcome, O::kUnavailable);
  EXPECT_EQ(ClassifySqsResponse(503, "<html>").outcome, O::kUnavailable);
  SqsReply rejected = ClassifySqsResponse(
      400, R"({"__type":"com.amazonaws.sqs#ReceiptHandleIsInvalid","message":"bad"})");
  EXPECT_EQ(rejected.outcome, O::kRejected);
  EXPECT_EQ(rejected.ToStatus().code(), common::Status::Code::kUnavailable);
  EXPECT_EQ(ClassifySqsResponse(400, "not json").outcome, O::kRejected);
}

// A one-shot HTTP server on loopback that records the requests it gets and answers each
// with `answer`: what the client really sends.
class CaptureServer {
 public:
  explicit CaptureServer(std::string answer) : answer_(std::move(answer)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 8);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CaptureServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) continue;
      std::string got;
      char buf[4096];
      while (std::chrono::steady_clock::now() < deadline) {
        pollfd c{conn, POLLIN, 0};
        if (::poll(&c, 1, 20) <= 0) continue;
        ssize_t n = ::read(conn, buf, sizeof(buf));
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
        size_t head_end = got.find("\r\n\r\n");
        if (head_end == std::string::npos) continue;
        size_t cl = got.find("Content-Length: ");
        size_t length = cl == std::string::npos ? 0 : std::stoul(got.substr(cl + 16));
        if (got.size() >= head_end + 4 + length) break;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(got);
      }
      std::string response =
          "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
          "Connection: close\r\nContent-Length: " +
          std::to_string(answer_.size()) + "\r\n\r\n" + answer_;
      (void)!::write(conn, response.data(), response.size());
      ::close(conn);
    }
  }

  std::string answer_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

TEST(SqsClientTest, RequestsOnTheWireCarryAVerifyingSignature) {
  CaptureServer server(R"({"QueueUrl":"http://127.0.0.1/123456789012/sluice-a"})");
  uv_loop_t loop;
  uv_loop_init(&loop);
  common::SystemClock clock;
  SqsEndpoint e;
  ASSERT_TRUE(
      ParseSqsEndpoint("http://127.0.0.1:" + std::to_string(server.port()), "eu-west-1", &e).ok());
  std::optional<SqsReply> reply;
  {
    SqsClient client(&loop, e, TestCredentials(), "eu-west-1", clock);
    client.Call("GetQueueUrl", R"({"QueueName":"sluice-a"})", seconds(5),
                [&](SqsReply r) { reply = std::move(r); });
    while (!reply && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
    client.Shutdown();
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // the connection's close callbacks
  ASSERT_EQ(uv_loop_close(&loop), 0);
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->ok()) << reply->error;
  EXPECT_EQ(reply->body.FindString("QueueUrl"), "http://127.0.0.1/123456789012/sluice-a");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  auto r = ParseWire(requests[0]);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r->Header("X-Amz-Target"), "AmazonSQS.GetQueueUrl");
  EXPECT_EQ(r->body, R"({"QueueName":"sluice-a"})");
  ExpectSignatureVerifies(*r, TestCredentials(), "eu-west-1");
}

TEST(SqsClientTest, NoListenerIsUnavailable) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  common::SystemClock clock;
  // A port nothing listens on: bind one, close it.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  SqsEndpoint e;
  ASSERT_TRUE(
      ParseSqsEndpoint("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), "us-east-1", &e)
          .ok());
  std::optional<SqsReply> reply;
  {
    SqsClient client(&loop, e, TestCredentials(), "us-east-1", clock);
    client.Call("GetQueueUrl", "{}", seconds(5), [&](SqsReply r) { reply = std::move(r); });
    while (!reply && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->outcome, SqsReply::Outcome::kUnavailable);
  EXPECT_EQ(reply->ToStatus().code(), common::Status::Code::kUnavailable);
  EXPECT_NE(reply->error.find("cannot reach"), std::string::npos) << reply->error;
}

}  // namespace
}  // namespace sluice::broker
