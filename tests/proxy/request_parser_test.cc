#include "proxy/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::proxy {
namespace {

// Feeds raw bytes to a parser with small limits and records what came out.
class RequestParserTest : public ::testing::Test {
 protected:
  RequestParserTest()
      : parser_(
            RequestParser::Limits{.max_header_bytes = 512, .max_body_bytes = 64, .max_headers = 8},
            RequestParser::Callbacks{
                [this](const HttpRequest&, bool expect) { expect_continue_ = expect; },
                [this](HttpRequest&& r) { requests_.push_back(std::move(r)); }, nullptr}) {}

  bool Feed(const std::string& bytes) { return parser_.Feed(bytes.data(), bytes.size()); }
  bool FeedByteByByte(const std::string& bytes) {
    for (char c : bytes) {
      if (!parser_.Feed(&c, 1)) return false;
    }
    return true;
  }
  int Status() const { return parser_.error_status(); }

  RequestParser parser_;
  std::vector<HttpRequest> requests_;
  bool expect_continue_ = false;
};

TEST_F(RequestParserTest, ContentLengthBody) {
  ASSERT_TRUE(Feed("POST /orders?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].method, "POST");
  EXPECT_EQ(requests_[0].target, "/orders?x=1");
  EXPECT_EQ(requests_[0].Path(), "/orders");
  EXPECT_EQ(requests_[0].body, "hello");
  EXPECT_TRUE(requests_[0].keep_alive);
  ASSERT_EQ(requests_[0].headers.size(), 2u);
  EXPECT_EQ(requests_[0].headers[0], (std::pair<std::string, std::string>{"Host", "a"}));
}

TEST_F(RequestParserTest, ChunkedBodyIsReassembled) {
  ASSERT_TRUE(
      Feed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].body, "abcdefg");
}

TEST_F(RequestParserTest, TrailersAreNotMergedIntoHeaders) {
  ASSERT_TRUE(
      Feed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "3\r\nabc\r\n0\r\nIdempotency-Key: sneaky\r\n\r\n"));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].body, "abc");
  EXPECT_EQ(FindHeader(requests_[0].headers, "Idempotency-Key"), nullptr);
  EXPECT_EQ(requests_[0].headers.size(), 2u);
}

TEST_F(RequestParserTest, OneByteAtATimeGivesTheSameRequest) {
  ASSERT_TRUE(FeedByteByByte(
      "PUT /a HTTP/1.1\r\nHost: h\r\nX-Long: value\r\nContent-Length: 3\r\n\r\nxyz"));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].headers[1].second, "value");
  EXPECT_EQ(requests_[0].body, "xyz");
}

TEST_F(RequestParserTest, PipelinedRequestsInOneRead) {
  ASSERT_TRUE(
      Feed("POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nA"
           "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nB"
           "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_EQ(requests_.size(), 3u);
  EXPECT_EQ(requests_[0].body, "A");
  EXPECT_EQ(requests_[1].body, "B");
  EXPECT_EQ(requests_[2].target, "/3");
}

TEST_F(RequestParserTest, KeepAliveFollowsVersionAndConnectionHeader) {
  ASSERT_TRUE(Feed("GET / HTTP/1.0\r\n\r\n"));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_FALSE(requests_[0].keep_alive);
}

TEST_F(RequestParserTest, ConnectionCloseEndsKeepAlive) {
  ASSERT_TRUE(Feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_FALSE(requests_[0].keep_alive);
}

TEST_F(RequestParserTest, ExpectContinueIsReported) {
  ASSERT_TRUE(
      Feed("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"));
  EXPECT_TRUE(expect_continue_);
  EXPECT_TRUE(requests_.empty());
  ASSERT_TRUE(Feed("ok"));
  ASSERT_EQ(requests_.size(), 1u);
}

struct BadRequest {
  const char* name;
  std::string bytes;
  int status;
};

class BadRequestTest : public RequestParserTest,
                       public ::testing::WithParamInterface<BadRequest> {};

TEST_P(BadRequestTest, IsRefusedWithTheRightStatus) {
  EXPECT_FALSE(Feed(GetParam().bytes));
  EXPECT_EQ(Status(), GetParam().status);
  EXPECT_TRUE(requests_.empty());
  // Once failed, the parser stays failed: the connection is to be closed.
  EXPECT_FALSE(Feed("GET / HTTP/1.1\r\n\r\n"));
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, BadRequestTest,
    ::testing::Values(
        BadRequest{"GarbageRequestLine", "HELLO\r\n\r\n", 400},
        BadRequest{"ContentLengthWithTransferEncoding",
                   "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                   400},
        BadRequest{"TwoDifferentContentLengths",
                   "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
        BadRequest{"NegativeContentLength", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        BadRequest{"OverflowingContentLength",
                   "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
        BadRequest{"BadChunkSize",
                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", 400},
        BadRequest{"NulInHeaderValue", std::string("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 27), 400},
        BadRequest{"Http2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
        BadRequest{"UnknownTransferCoding",
                   "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        BadRequest{"BodyOverLimitByContentLength", "POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n",
                   413},
        BadRequest{"ChunkedBodyOverLimit",
                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n" +
                       std::string(65, 'x') + "\r\n0\r\n\r\n",
                   413},
        BadRequest{"HeadersOverLimit",
                   "GET / HTTP/1.1\r\nX-Big: " + std::string(600, 'v') + "\r\n\r\n", 431},
        BadRequest{"RequestLineOverLimit", "GET /" + std::string(600, 'p') + " HTTP/1.1\r\n\r\n",
                   431},
        BadRequest{"TooManyHeaders",
                   "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: "
                   "1\r\nI: 1\r\n\r\n",
                   431}),
    [](const ::testing::TestParamInfo<BadRequest>& info) { return info.param.name; });

TEST_F(RequestParserTest, BodyAtExactlyTheLimitIsAccepted) {
  ASSERT_TRUE(Feed("POST / HTTP/1.1\r\nContent-Length: 64\r\n\r\n" + std::string(64, 'b')));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].body.size(), 64u);
}

TEST_F(RequestParserTest, ValidRequestBeforeGarbageIsStillDelivered) {
  EXPECT_FALSE(Feed("GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\r\n\r\n"));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].target, "/ok");
  EXPECT_EQ(Status(), 400);
}

}  // namespace
}  // namespace sluice::proxy
