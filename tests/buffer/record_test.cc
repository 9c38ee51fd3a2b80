#include "buffer/record.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>

#include "buffer/endian.h"
#include "common/crc32c.h"

namespace sluice::buffer {
namespace {

namespace crc32c = common::crc32c;
using Header = std::array<char, kRecordHeaderSize>;

class RecordTest : public testing::Test {
 protected:
  // Encodes a header for `payload` with fixed, distinctive field values.
  Header Encode(std::string_view payload) {
    Header h{};
    EncodeRecordHeader(kSeq, kIngestNs, kFlags, payload, h.data());
    return h;
  }

  HeaderState Decode(const Header& h) { return DecodeRecordHeader(h.data(), &decoded_); }

  // Recomputes the header CRC after a test edited a field on purpose, so that only the
  // field's own validation can reject it.
  static void Reseal(Header* h) {
    PutU32(h->data(), crc32c::Mask(crc32c::Value(h->data() + 4, kRecordHeaderSize - 4)));
  }

  static constexpr uint64_t kSeq = 0x0102030405060708ull;
  static constexpr uint64_t kIngestNs = 1'700'000'000'123'456'789ull;
  static constexpr uint16_t kFlags = 0xBEEF;
  RecordHeader decoded_;
};

TEST_F(RecordTest, RoundTrip) {
  const std::string payload = "POST /orders {\"id\":7}";
  Header h = Encode(payload);
  ASSERT_EQ(Decode(h), HeaderState::kValid);
  EXPECT_EQ(decoded_.payload_len, payload.size());
  EXPECT_EQ(decoded_.seq, kSeq);
  EXPECT_EQ(decoded_.ingest_unix_ns, kIngestNs);
  EXPECT_EQ(decoded_.flags, kFlags);
  EXPECT_EQ(decoded_.version, kRecordVersion);
  EXPECT_TRUE(PayloadMatches(decoded_, payload));
}

TEST_F(RecordTest, EmptyPayloadRoundTrip) {
  Header h = Encode("");
  ASSERT_EQ(Decode(h), HeaderState::kValid);
  EXPECT_EQ(decoded_.payload_len, 0u);
  EXPECT_TRUE(PayloadMatches(decoded_, ""));
  EXPECT_FALSE(PayloadMatches(decoded_, std::string(1, '\0')));
}

TEST_F(RecordTest, LayoutIsLittleEndianAtDocumentedOffsets) {
  const std::string payload = "abc";
  Header h = Encode(payload);
  EXPECT_EQ(GetU32(h.data() + 4), 3u);
  EXPECT_EQ(GetU64(h.data() + 8), kSeq);
  EXPECT_EQ(GetU64(h.data() + 16), kIngestNs);
  EXPECT_EQ(GetU16(h.data() + 24), kFlags);
  EXPECT_EQ(GetU16(h.data() + 26), kRecordVersion);
  EXPECT_EQ(crc32c::Unmask(GetU32(h.data() + 28)), crc32c::Value(payload.data(), 3));
  EXPECT_EQ(crc32c::Unmask(GetU32(h.data())), crc32c::Value(h.data() + 4, 28));
  EXPECT_EQ(static_cast<uint8_t>(h[8]), 0x08);  // least significant byte first
}

TEST_F(RecordTest, EveryBitFlipInHeaderIsCorrupt) {
  const Header good = Encode("payload");
  for (size_t byte = 0; byte < kRecordHeaderSize; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      SCOPED_TRACE(testing::Message() << "byte " << byte << " bit " << bit);
      Header h = good;
      h[byte] = static_cast<char>(h[byte] ^ (1 << bit));
      EXPECT_EQ(Decode(h), HeaderState::kCorrupt);
    }
  }
}

TEST_F(RecordTest, EveryByteInvertedInHeaderIsCorrupt) {
  const Header good = Encode("payload");
  for (size_t byte = 0; byte < kRecordHeaderSize; ++byte) {
    SCOPED_TRACE(byte);
    Header h = good;
    h[byte] = static_cast<char>(~h[byte]);
    EXPECT_EQ(Decode(h), HeaderState::kCorrupt);
  }
}

TEST_F(RecordTest, AllZeroHeaderIsZero) {
  Header h{};
  EXPECT_EQ(Decode(h), HeaderState::kZero);
}

TEST_F(RecordTest, OneNonZeroByteInZeroHeaderIsCorrupt) {
  for (size_t byte = 0; byte < kRecordHeaderSize; ++byte) {
    SCOPED_TRACE(byte);
    Header h{};
    h[byte] = 1;
    EXPECT_EQ(Decode(h), HeaderState::kCorrupt);
  }
}

TEST_F(RecordTest, PayloadCrcMismatch) {
  const std::string payload = "the quick brown fox";
  ASSERT_EQ(Decode(Encode(payload)), HeaderState::kValid);
  for (size_t i = 0; i < payload.size(); ++i) {
    SCOPED_TRACE(i);
    std::string damaged = payload;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x20);
    EXPECT_FALSE(PayloadMatches(decoded_, damaged));
  }
}

TEST_F(RecordTest, PayloadOfWrongLength) {
  const std::string payload = "abcdefgh";
  ASSERT_EQ(Decode(Encode(payload)), HeaderState::kValid);
  EXPECT_FALSE(PayloadMatches(decoded_, payload.substr(0, 7)));
  EXPECT_FALSE(PayloadMatches(decoded_, payload + '\0'));
  EXPECT_FALSE(PayloadMatches(decoded_, ""));
}

TEST_F(RecordTest, PayloadWithNulsRoundTrip) {
  const std::string payload("\0\0a\0\xff\0", 6);
  ASSERT_EQ(Decode(Encode(payload)), HeaderState::kValid);
  EXPECT_EQ(decoded_.payload_len, 6u);
  EXPECT_TRUE(PayloadMatches(decoded_, payload));
}

TEST_F(RecordTest, UnknownVersionIsCorrupt) {
  Header h = Encode("x");
  PutU16(h.data() + 26, kRecordVersion + 1);
  Reseal(&h);
  EXPECT_EQ(Decode(h), HeaderState::kCorrupt);
  PutU16(h.data() + 26, 0);
  Reseal(&h);
  EXPECT_EQ(Decode(h), HeaderState::kCorrupt);
}

TEST_F(RecordTest, PayloadLengthAtMaximumIsValid) {
  Header h = Encode("");
  PutU32(h.data() + 4, kMaxPayloadBytes);
  Reseal(&h);
  ASSERT_EQ(Decode(h), HeaderState::kValid);
  EXPECT_EQ(decoded_.payload_len, kMaxPayloadBytes);
}

TEST_F(RecordTest, PayloadLengthBeyondMaximumIsCorrupt) {
  Header h = Encode("");
  PutU32(h.data() + 4, kMaxPayloadBytes + 1);
  Reseal(&h);
  EXPECT_EQ(Decode(h), HeaderState::kCorrupt);
  PutU32(h.data() + 4, UINT32_MAX);
  Reseal(&h);
  EXPECT_EQ(Decode(h), HeaderState::kCorrupt);
}

TEST_F(RecordTest, PaddingSizes) {
  // Every record starts 8-byte aligned: header plus payload rounded up to 8.
  const size_t expected[18] = {32, 40, 40, 40, 40, 40, 40, 40, 40,
                               48, 48, 48, 48, 48, 48, 48, 48, 56};
  for (size_t n = 0; n < 18; ++n) {
    SCOPED_TRACE(n);
    EXPECT_EQ(RecordSize(n), expected[n]);
    EXPECT_EQ(RecordSize(n) % 8, 0u);
    EXPECT_EQ(PaddedSize(n) - n, (8 - n % 8) % 8);
  }
}

}  // namespace
}  // namespace sluice::buffer
