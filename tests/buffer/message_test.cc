#include "buffer/message.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace sluice::buffer {
namespace {

class MessageTest : public testing::Test {
 protected:
  // A message with every field set, a body holding NULs and all 256 byte values.
  static Message Full() {
    Message m;
    for (size_t i = 0; i < m.id.bytes.size(); ++i) m.id.bytes[i] = static_cast<uint8_t>(0xA0 + i);
    m.method = "POST";
    m.target = "/orders?id=7&q=a%00b";
    m.client_addr = "203.0.113.9:55110";
    m.route = "orders";
    m.targets = {"billing", "audit"};
    m.headers = {{"Content-Type", "application/json"},
                 {"X-Empty", ""},
                 {"X-Dup", "1"},
                 {"X-Dup", "2"},
                 {"X-Binary", std::string("v\0w", 3)}};
    m.body = std::string("a\0b\0\0c", 6);
    for (int c = 0; c < 256; ++c) m.body.push_back(static_cast<char>(c));
    return m;
  }

  static void ExpectSame(const Message& a, const Message& b) {
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.method, b.method);
    EXPECT_EQ(a.target, b.target);
    EXPECT_EQ(a.client_addr, b.client_addr);
    EXPECT_EQ(a.route, b.route);
    EXPECT_EQ(a.targets, b.targets);
    EXPECT_EQ(a.headers, b.headers);
    EXPECT_EQ(a.body, b.body);
  }

  static void ExpectRoundTrip(const Message& m) {
    std::string payload = EncodeMessage(m);
    auto decoded = DecodeMessage(payload);
    ASSERT_TRUE(decoded.has_value());
    ExpectSame(*decoded, m);
    EXPECT_EQ(EncodeMessage(*decoded), payload);
  }
};

TEST_F(MessageTest, RoundTrip) { ExpectRoundTrip(Full()); }

TEST_F(MessageTest, ViewDecodesInPlace) {
  Message m = Full();
  std::string payload = EncodeMessage(m);
  auto view = DecodeMessageView(payload);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->id, m.id);
  EXPECT_EQ(view->method, m.method);
  EXPECT_EQ(view->target, m.target);
  EXPECT_EQ(view->client_addr, m.client_addr);
  EXPECT_EQ(view->route, m.route);
  ASSERT_EQ(view->targets.size(), m.targets.size());
  for (size_t i = 0; i < m.targets.size(); ++i) EXPECT_EQ(view->targets[i], m.targets[i]);
  ASSERT_EQ(view->headers.size(), m.headers.size());
  for (size_t i = 0; i < m.headers.size(); ++i) {
    EXPECT_EQ(view->headers[i].first, m.headers[i].first);
    EXPECT_EQ(view->headers[i].second, m.headers[i].second);
  }
  EXPECT_EQ(view->body, m.body);
  EXPECT_TRUE(view->IsFor("audit"));
  EXPECT_FALSE(view->IsFor("aud"));
  // Nothing copied: the body is the payload's own bytes.
  const char* begin = payload.data();
  EXPECT_GE(view->body.data(), begin);
  EXPECT_LE(view->body.data() + view->body.size(), begin + payload.size());
  // Malformed input is refused exactly as DecodeMessage refuses it.
  for (size_t n = 0; n < payload.size(); ++n) {
    EXPECT_FALSE(DecodeMessageView(std::string_view(payload).substr(0, n)).has_value()) << n;
  }
}

TEST_F(MessageTest, EmptyMessageRoundTrip) {
  Message m;
  ExpectRoundTrip(m);
  // version + id + the length prefixes and counts, nothing else.
  EXPECT_EQ(EncodeMessage(m).size(), 1u + 16 + 2 + 4 + 2 + 2 + 1 + 4 + 4);
}

TEST_F(MessageTest, EmptyHeaderNamesAndValues) {
  Message m = Full();
  m.headers = {{"", ""}, {"", "v"}, {"n", ""}};
  ExpectRoundTrip(m);
}

TEST_F(MessageTest, ManyHeaders) {
  Message m = Full();
  m.headers.clear();
  for (int i = 0; i < 2000; ++i) {
    m.headers.emplace_back("X-H" + std::to_string(i),
                           std::string(static_cast<size_t>(i % 17), 'v'));
  }
  ExpectRoundTrip(m);
}

TEST_F(MessageTest, MaxTargetCountAndNameLength) {
  // The widest the format allows: a u8 count of u8-length names.
  Message m = Full();
  m.targets.clear();
  for (int i = 0; i < 255; ++i) m.targets.push_back("t" + std::to_string(i));
  m.targets[7] = std::string(255, 'n');
  m.targets[8] = "";
  ExpectRoundTrip(m);
}

TEST_F(MessageTest, LargeBinaryBody) {
  Message m = Full();
  std::mt19937 rng(7);
  m.body.clear();
  for (int i = 0; i < 1 << 20; ++i) m.body.push_back(static_cast<char>(rng()));
  ExpectRoundTrip(m);
}

TEST_F(MessageTest, IsFor) {
  Message m = Full();
  EXPECT_TRUE(m.IsFor("billing"));
  EXPECT_TRUE(m.IsFor("audit"));
  EXPECT_FALSE(m.IsFor("bill"));
  EXPECT_FALSE(m.IsFor(""));
  EXPECT_FALSE(Message().IsFor("billing"));
}

TEST_F(MessageTest, EveryTruncationIsRejected) {
  const std::string payload = EncodeMessage(Full());
  for (size_t n = 0; n < payload.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_FALSE(DecodeMessage(std::string_view(payload).substr(0, n)).has_value());
  }
}

TEST_F(MessageTest, EveryTruncationOfEmptyMessageIsRejected) {
  const std::string payload = EncodeMessage(Message());
  for (size_t n = 0; n < payload.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_FALSE(DecodeMessage(std::string_view(payload).substr(0, n)).has_value());
  }
}

TEST_F(MessageTest, TrailingGarbageIsRejected) {
  const std::string payload = EncodeMessage(Full());
  for (size_t extra = 1; extra <= 16; ++extra) {
    SCOPED_TRACE(extra);
    EXPECT_FALSE(DecodeMessage(payload + std::string(extra, '\0')).has_value());
    EXPECT_FALSE(DecodeMessage(payload + std::string(extra, 'x')).has_value());
  }
}

TEST_F(MessageTest, UnknownVersionIsRejected) {
  std::string payload = EncodeMessage(Full());
  for (int v : {0, 2, 255}) {
    payload[0] = static_cast<char>(v);
    EXPECT_FALSE(DecodeMessage(payload).has_value()) << v;
  }
}

TEST_F(MessageTest, HeaderCountLargerThanPayloadIsRejected) {
  Message m;
  std::string payload = EncodeMessage(m);
  // The header count sits after version, id, method, target, client_addr, route and the
  // (empty) target list.
  const size_t count_at = 1 + 16 + 2 + 4 + 2 + 2 + 1;
  for (uint32_t count : {1u, 1000u, 0xFFFFFFFFu}) {
    SCOPED_TRACE(count);
    std::string bad = payload;
    std::memcpy(bad.data() + count_at, &count, 4);
    EXPECT_FALSE(DecodeMessage(bad).has_value());
  }
}

TEST_F(MessageTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(0x5EED);
  int decoded = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string bytes(rng() % 300, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    if (iter % 2 == 0 && !bytes.empty()) bytes[0] = 1;  // get past the version check
    auto m = DecodeMessage(bytes);
    if (m) {
      // The encoding is canonical: whatever decodes re-encodes to the same bytes.
      ++decoded;
      EXPECT_EQ(EncodeMessage(*m), bytes);
    }
  }
  // Mostly noise: the point is that none of it crashes or over-allocates.
  EXPECT_LT(decoded, 20000);
}

TEST_F(MessageTest, MutatedPayloadsNeverCrash) {
  const std::string good = EncodeMessage(Full());
  std::mt19937_64 rng(0xC0FFEE);
  int decoded = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string bytes = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !bytes.empty(); ++e) {
      size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
          break;
        case 2:
          bytes.erase(at, 1 + rng() % 8);
          break;
        case 3:
          bytes.insert(at, std::string(1 + rng() % 8, static_cast<char>(rng())));
          break;
      }
    }
    auto m = DecodeMessage(bytes);
    if (m) {
      ++decoded;
      EXPECT_EQ(EncodeMessage(*m), bytes);
    }
  }
  // Edits inside strings keep the framing: some mutants must still decode.
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace sluice::buffer

namespace sluice::buffer {
namespace {

TEST(DecodeMessageTargetsTest, ReadsJustTheTargetList) {
  Message m;
  m.method = "POST";
  m.target = "/orders";
  m.targets = {"orders", "audit"};
  m.headers = {{"A", std::string(1000, 'a')}};
  m.body = std::string(5000, 'b');
  std::string payload = EncodeMessage(m);
  std::vector<std::string_view> targets;
  ASSERT_TRUE(DecodeMessageTargets(payload, &targets));
  EXPECT_EQ(targets, (std::vector<std::string_view>{"orders", "audit"}));
  EXPECT_FALSE(DecodeMessageTargets(payload.substr(0, 20), &targets));
  EXPECT_FALSE(DecodeMessageTargets("", &targets));
}

// A message is delivered once per target, and queue counts must agree with that.
TEST(DecodeMessageTargetsTest, ANameListedTwiceIsReturnedOnce) {
  Message m;
  m.targets = {"orders", "audit", "orders", "audit", "billing"};
  const std::string payload = EncodeMessage(m);  // the names are views into it
  std::vector<std::string_view> targets;
  ASSERT_TRUE(DecodeMessageTargets(payload, &targets));
  EXPECT_EQ(targets, (std::vector<std::string_view>{"orders", "audit", "billing"}));
}

}  // namespace
}  // namespace sluice::buffer
