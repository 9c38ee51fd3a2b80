#include "buffer/segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "buffer/endian.h"
#include "common/crc32c.h"
#include "tests/buffer/counting_fs.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

namespace crc32c = common::crc32c;
using SegHeader = std::array<char, kSegmentHeaderSize>;

TEST(SegmentFileNameTest, Format) {
  EXPECT_EQ(SegmentFileName(1), "00000000000000000001.log");
  EXPECT_EQ(SegmentFileName(1234567890), "00000000001234567890.log");
  EXPECT_EQ(SegmentFileName(UINT64_MAX), "18446744073709551615.log");
}

TEST(SegmentFileNameTest, ParseRoundTrip) {
  for (uint64_t seq : {uint64_t{0}, uint64_t{1}, uint64_t{42}, uint64_t{1} << 40, UINT64_MAX}) {
    SCOPED_TRACE(seq);
    auto parsed = ParseSegmentFileName(SegmentFileName(seq));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, seq);
  }
}

TEST(SegmentFileNameTest, NamesSortLikeSequences) {
  EXPECT_LT(SegmentFileName(9), SegmentFileName(10));
  EXPECT_LT(SegmentFileName(999), SegmentFileName(1000));
}

TEST(SegmentFileNameTest, WrongLength) {
  EXPECT_FALSE(ParseSegmentFileName("").has_value());
  EXPECT_FALSE(ParseSegmentFileName(".log").has_value());
  EXPECT_FALSE(ParseSegmentFileName("1.log").has_value());
  EXPECT_FALSE(ParseSegmentFileName("0000000000000000001.log").has_value());    // 19 digits
  EXPECT_FALSE(ParseSegmentFileName("000000000000000000001.log").has_value());  // 21 digits
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000001.log.tmp").has_value());
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000001.lo").has_value());
}

TEST(SegmentFileNameTest, WrongSuffix) {
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000001.LOG").has_value());
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000001.cur").has_value());
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000001_log").has_value());
}

TEST(SegmentFileNameTest, NonDigits) {
  for (const char* name :
       {"0000000000000000000a.log", "a0000000000000000001.log", "0000000000x000000001.log",
        "+0000000000000000001.log", "-0000000000000000001.log", " 0000000000000000001.log",
        "0000000000000000001 .log", "0x000000000000000001.log"}) {
    SCOPED_TRACE(name);
    EXPECT_FALSE(ParseSegmentFileName(name).has_value());
  }
  std::string with_nul = SegmentFileName(1);
  with_nul[5] = '\0';
  EXPECT_FALSE(ParseSegmentFileName(with_nul).has_value());
}

TEST(SegmentFileNameTest, Overflow) {
  // 20 digits but more than UINT64_MAX.
  EXPECT_FALSE(ParseSegmentFileName("18446744073709551616.log").has_value());
  EXPECT_FALSE(ParseSegmentFileName("99999999999999999999.log").has_value());
}

class SegmentHeaderTest : public testing::Test {
 protected:
  static SegHeader Encode(uint64_t first_seq) {
    SegHeader h;
    h.fill('\x55');  // Encode must overwrite every byte, reserved ones included.
    EncodeSegmentHeader(first_seq, h.data());
    return h;
  }
  static void Reseal(SegHeader* h) {
    PutU32(h->data() + 28, crc32c::Mask(crc32c::Value(h->data(), 28)));
  }
};

TEST_F(SegmentHeaderTest, RoundTrip) {
  for (uint64_t seq : {uint64_t{1}, uint64_t{77}, UINT64_MAX}) {
    SCOPED_TRACE(seq);
    SegHeader h = Encode(seq);
    EXPECT_EQ(std::string(h.data(), 8), "SLUICESG");
    EXPECT_EQ(GetU32(h.data() + 8), kSegmentVersion);
    EXPECT_EQ(GetU32(h.data() + 12), 0u);
    EXPECT_EQ(GetU32(h.data() + 24), 0u);
    auto decoded = DecodeSegmentHeader(h.data());
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(*decoded, seq);
  }
}

TEST_F(SegmentHeaderTest, EveryBitFlipIsDamage) {
  const SegHeader good = Encode(12345);
  for (size_t byte = 0; byte < kSegmentHeaderSize; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      SCOPED_TRACE(testing::Message() << "byte " << byte << " bit " << bit);
      SegHeader h = good;
      h[byte] = static_cast<char>(h[byte] ^ (1 << bit));
      EXPECT_FALSE(DecodeSegmentHeader(h.data()).has_value());
    }
  }
}

TEST_F(SegmentHeaderTest, AllZeroIsDamage) {
  SegHeader h{};
  EXPECT_FALSE(DecodeSegmentHeader(h.data()).has_value());
}

TEST_F(SegmentHeaderTest, UnknownVersionIsDamage) {
  SegHeader h = Encode(5);
  PutU32(h.data() + 8, kSegmentVersion + 1);
  Reseal(&h);
  EXPECT_FALSE(DecodeSegmentHeader(h.data()).has_value());
}

TEST_F(SegmentHeaderTest, WrongMagicWithValidCrcIsDamage) {
  SegHeader h = Encode(5);
  std::memcpy(h.data(), "SLUICESX", 8);
  Reseal(&h);
  EXPECT_FALSE(DecodeSegmentHeader(h.data()).has_value());
}

// Builds segment files byte by byte and scans them: without a read-ahead window (the
// parameter is 0), with one smaller than some records (those are read directly), and with
// the default one.
class SegmentScannerTest : public testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/" + SegmentFileName(kFirst);
    file_.resize(kSegmentHeaderSize);
    EncodeSegmentHeader(kFirst, file_.data());
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
  }

  // Appends one framed record; returns its offset.
  uint64_t AddRecord(uint64_t seq, const std::string& payload) {
    uint64_t at = file_.size();
    char h[kRecordHeaderSize];
    EncodeRecordHeader(seq, 1000 + seq, 0, payload, h);
    file_.append(h, sizeof(h));
    file_.append(payload);
    file_.append(PaddedSize(payload.size()) - payload.size(), '\0');
    return at;
  }

  // Writes file_ to disk (optionally only `size` bytes of it) and starts a scanner.
  void Flush(uint64_t size = UINT64_MAX) {
    test::WriteFile(path_, file_.substr(0, size));
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
    ahead_.reset();
    if (GetParam() > 0) ahead_ = std::make_unique<ReadAhead>(GetParam());
    scanner_.emplace(fd_, test::FileSize(path_), kSegmentHeaderSize, fs_, ahead_.get());
  }

  SegmentScanner::Result Next() {
    common::Status io;
    auto r = scanner_->Next(&header_, &payload_, &io);
    EXPECT_TRUE(io.ok()) << io.ToString();
    return r;
  }

  static constexpr uint64_t kFirst = 100;
  test::ScratchDir dir_;
  std::string path_;
  std::string file_;
  int fd_ = -1;
  test::CountingFileSystem fs_;
  std::unique_ptr<ReadAhead> ahead_;
  std::optional<SegmentScanner> scanner_;
  RecordHeader header_;
  std::string payload_;
};

TEST_P(SegmentScannerTest, ReadsRecordsThenEndAtEof) {
  const std::vector<std::string> payloads = {"", "a", "abcdefgh", "abcdefghi",
                                             std::string(1000, 'z')};
  for (size_t i = 0; i < payloads.size(); ++i) AddRecord(kFirst + i, payloads[i]);
  Flush();
  uint64_t offset = kSegmentHeaderSize;
  for (size_t i = 0; i < payloads.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
    EXPECT_EQ(header_.seq, kFirst + i);
    EXPECT_EQ(header_.ingest_unix_ns, 1000 + kFirst + i);
    EXPECT_EQ(payload_, payloads[i]);
    offset += RecordSize(payloads[i].size());
    EXPECT_EQ(scanner_->offset(), offset);
  }
  EXPECT_EQ(Next(), SegmentScanner::Result::kEnd);
  EXPECT_EQ(scanner_->offset(), offset);
}

TEST_P(SegmentScannerTest, ZeroTailIsEnd) {
  AddRecord(kFirst, "one");
  file_.append(4096, '\0');  // what fallocate leaves
  Flush();
  ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
  EXPECT_EQ(Next(), SegmentScanner::Result::kEnd);
}

TEST_P(SegmentScannerTest, EmptySegmentIsEnd) {
  Flush();
  EXPECT_EQ(Next(), SegmentScanner::Result::kEnd);
}

TEST_P(SegmentScannerTest, PartialHeaderAtEofIsEnd) {
  AddRecord(kFirst, "one");
  uint64_t second = AddRecord(kFirst + 1, "two");
  for (uint64_t cut = second; cut < second + kRecordHeaderSize; ++cut) {
    SCOPED_TRACE(cut);
    Flush(cut);
    ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
    EXPECT_EQ(Next(), SegmentScanner::Result::kEnd);
  }
}

TEST_P(SegmentScannerTest, PayloadPastEofIsTruncated) {
  AddRecord(kFirst, "one");
  uint64_t second = AddRecord(kFirst + 1, "twotwotwo");
  for (uint64_t cut = second + kRecordHeaderSize; cut < second + kRecordHeaderSize + 9; ++cut) {
    SCOPED_TRACE(cut);
    Flush(cut);
    ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
    EXPECT_EQ(Next(), SegmentScanner::Result::kTruncated);
  }
}

TEST_P(SegmentScannerTest, MissingPaddingAtEofStillReadsTheRecord) {
  uint64_t at = AddRecord(kFirst, "abc");  // 5 bytes of padding follow
  Flush(at + kRecordHeaderSize + 3);
  ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
  EXPECT_EQ(payload_, "abc");
  EXPECT_EQ(Next(), SegmentScanner::Result::kEnd);
}

TEST_P(SegmentScannerTest, PayloadBitFlipIsCorrupt) {
  AddRecord(kFirst, "one");
  uint64_t second = AddRecord(kFirst + 1, "payload");
  file_[second + kRecordHeaderSize + 2] ^= 0x04;
  Flush();
  ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
  EXPECT_EQ(Next(), SegmentScanner::Result::kCorrupt);
}

TEST_P(SegmentScannerTest, HeaderBitFlipIsCorrupt) {
  AddRecord(kFirst, "one");
  uint64_t second = AddRecord(kFirst + 1, "payload");
  file_[second + 9] ^= 0x01;  // inside seq
  Flush();
  ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
  EXPECT_EQ(Next(), SegmentScanner::Result::kCorrupt);
}

// The point of the window: records read in order cost one read per window, not two each.
TEST_P(SegmentScannerTest, ReadsInOrderWithOneReadPerWindow) {
  constexpr size_t kRecords = 1000;
  for (size_t i = 0; i < kRecords; ++i) AddRecord(kFirst + i, std::string(100, 'p'));
  Flush();
  for (size_t i = 0; i < kRecords; ++i) ASSERT_EQ(Next(), SegmentScanner::Result::kRecord) << i;
  EXPECT_EQ(Next(), SegmentScanner::Result::kEnd);
  const size_t reads = fs_.Reads().size();
  if (GetParam() == 0) {
    EXPECT_EQ(reads, 2 * kRecords);
  } else if (GetParam() >= RecordSize(100)) {
    // Each refill starts at a record that did not fit the last window: at most one
    // record's worth of bytes is read twice per window.
    const size_t per_window = GetParam() - RecordSize(100) + 1;
    EXPECT_LE(reads, (file_.size() - kSegmentHeaderSize) / per_window + 2);
  }
}

TEST_P(SegmentScannerTest, RecordLargerThanTheWindowIsReadWhole) {
  const std::string big(3000, 'B');
  AddRecord(kFirst, "small");
  AddRecord(kFirst + 1, big);
  AddRecord(kFirst + 2, "after");
  Flush();
  ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
  ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
  EXPECT_EQ(payload_, big);
  ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
  EXPECT_EQ(payload_, "after");
  EXPECT_EQ(Next(), SegmentScanner::Result::kEnd);
}

// Bytes at or beyond the scanner's end are never read: for an active segment it is the
// end of what is readable, and the fallocated zeros after it are not the end of the log.
TEST_P(SegmentScannerTest, NeverReadsPastItsEnd) {
  AddRecord(kFirst, "one");
  const uint64_t end = file_.size();
  AddRecord(kFirst + 1, "two");
  file_.append(4096, '\0');
  test::WriteFile(path_, file_);
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd_, 0);
  if (GetParam() > 0) ahead_ = std::make_unique<ReadAhead>(GetParam());
  scanner_.emplace(fd_, end, kSegmentHeaderSize, fs_, ahead_.get());
  ASSERT_EQ(Next(), SegmentScanner::Result::kRecord);
  EXPECT_EQ(Next(), SegmentScanner::Result::kEnd);
  for (const auto& r : fs_.Reads()) EXPECT_LE(r.offset + r.n, end);
}

INSTANTIATE_TEST_SUITE_P(Windows, SegmentScannerTest,
                         testing::Values(size_t{0}, size_t{40}, ReadAhead::kDefaultCapacity),
                         [](const testing::TestParamInfo<size_t>& info) {
                           return info.param == 0 ? std::string("NoWindow")
                                                  : "Window" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace sluice::buffer
