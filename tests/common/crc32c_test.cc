#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace sluice::common::crc32c {
namespace {

uint32_t ValueOf(std::string_view s) { return Value(s.data(), s.size()); }

// Bit-at-a-time CRC-32C straight from the definition: the yardstick for whichever
// implementation (SSE4.2 or table) Extend picked on this machine.
uint32_t Reference(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
  }
  return ~crc;
}

TEST(Crc32c, StandardVectors) {
  EXPECT_EQ(ValueOf("123456789"), 0xe3069283u);  // the "check" value of CRC-32C
  EXPECT_EQ(ValueOf(""), 0u);
  EXPECT_EQ(ValueOf("a"), 0xc1d04330u);
}

// RFC 3720 (iSCSI), appendix B.4, as used by LevelDB's crc32c_test.
TEST(Crc32c, Rfc3720Vectors) {
  uint8_t buf[32];

  std::memset(buf, 0, sizeof(buf));
  EXPECT_EQ(Value(buf, sizeof(buf)), 0x8a9136aau);

  std::memset(buf, 0xff, sizeof(buf));
  EXPECT_EQ(Value(buf, sizeof(buf)), 0x62a8ab43u);

  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(Value(buf, sizeof(buf)), 0x46dd794eu);

  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(Value(buf, sizeof(buf)), 0x113fdb5cu);

  const uint8_t iscsi_read[48] = {
      0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
      0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  };
  EXPECT_EQ(Value(iscsi_read, sizeof(iscsi_read)), 0xd9963a56u);
}

TEST(Crc32c, ValuesDiffer) {
  EXPECT_NE(ValueOf("a"), ValueOf("foo"));
  EXPECT_NE(ValueOf("foo"), ValueOf("fo0"));
}

TEST(Crc32c, ExtendComposes) {
  EXPECT_EQ(ValueOf("hello world"), Extend(ValueOf("hello "), "world", 5));
  // Every split point of a buffer longer than the 8-byte stride.
  std::string text = "The quick brown fox jumps over the lazy dog";
  uint32_t whole = ValueOf(text);
  for (size_t split = 0; split <= text.size(); ++split) {
    uint32_t head = Value(text.data(), split);
    EXPECT_EQ(Extend(head, text.data() + split, text.size() - split), whole) << split;
  }
  EXPECT_EQ(Extend(whole, "", 0), whole);
}

TEST(Crc32c, AgreesWithTheDefinitionAtEveryLengthAndAlignment) {
  std::mt19937 rng(42);
  std::vector<uint8_t> data(1100);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n + offset <= data.size(); n += (n < 64 ? 1 : 37)) {
      const uint8_t* p = data.data() + offset;
      ASSERT_EQ(Value(p, n), Reference(0, p, n)) << "offset " << offset << " length " << n;
      ASSERT_EQ(Extend(0x12345678u, p, n), Reference(0x12345678u, p, n));
    }
  }
}

TEST(Crc32c, MaskRoundTrips) {
  for (uint32_t crc : {0u, 1u, 0xe3069283u, 0xffffffffu, 0x80000000u, ValueOf("foo")}) {
    EXPECT_NE(Mask(crc), crc);
    EXPECT_NE(Mask(Mask(crc)), crc);
    EXPECT_EQ(Unmask(Mask(crc)), crc);
    EXPECT_EQ(Unmask(Unmask(Mask(Mask(crc)))), crc);
  }
}

}  // namespace
}  // namespace sluice::common::crc32c
