#include "buffer/segment_footer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "buffer/endian.h"
#include "buffer/message.h"
#include "buffer/segment.h"
#include "tests/buffer/counting_fs.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

// The record header a footer payload goes with: footer flag, seq = end_seq.
RecordHeader FooterHeader(uint64_t end_seq, std::string_view payload) {
  char h[kRecordHeaderSize];
  EncodeRecordHeader(end_seq, 0, kFlagFooter, payload, h);
  RecordHeader header;
  EXPECT_EQ(DecodeRecordHeader(h, &header), HeaderState::kValid);
  return header;
}

// The whole footer record, as sealing writes it.
std::string FooterRecord(const SegmentFooter& footer) {
  std::string payload = EncodeSegmentFooterPayload(footer);
  std::string out(kRecordHeaderSize, '\0');
  EncodeRecordHeader(footer.end_seq, 0, kFlagFooter, payload, out.data());
  return out + payload + std::string(PaddedSize(payload.size()) - payload.size(), '\0');
}

SegmentFooter Counted(uint64_t first, uint64_t end, TargetCounts targets) {
  return SegmentFooter{first, end, end - first, std::move(targets)};
}

std::optional<SegmentFooter> RoundTrip(const SegmentFooter& footer) {
  std::string payload = EncodeSegmentFooterPayload(footer);
  return DecodeSegmentFooter(FooterHeader(footer.end_seq, payload), payload);
}

void ExpectSame(const std::optional<SegmentFooter>& got, const SegmentFooter& want) {
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->first_seq, want.first_seq);
  EXPECT_EQ(got->end_seq, want.end_seq);
  EXPECT_EQ(got->records, want.records);
  EXPECT_EQ(got->targets, want.targets);
}

TEST(SegmentFooterTest, Version1HasNoCounts) {
  SegmentFooter footer{10, 15, 5, std::nullopt};
  std::string payload = EncodeSegmentFooterPayload(footer);
  EXPECT_EQ(payload.size(), 16u);
  EXPECT_EQ(GetU64(payload.data()), 10u);
  EXPECT_EQ(GetU64(payload.data() + 8), 5u);
  ExpectSame(RoundTrip(footer), footer);
  EXPECT_EQ(SegmentFooterSize(footer), 48u);
}

TEST(SegmentFooterTest, Version2ListsEachTargetsRecords) {
  SegmentFooter footer = Counted(100, 110, {{"orders", 10}, {"audit", 3}, {"b", 1}});
  std::string payload = EncodeSegmentFooterPayload(footer);
  ASSERT_EQ(payload.size() % 8, 0u);
  EXPECT_EQ(GetU64(payload.data() + payload.size() - 8), kRecordHeaderSize + payload.size())
      << "the last 8 bytes give the footer's size";
  EXPECT_EQ(GetU32(payload.data() + 16), 3u);
  EXPECT_EQ(GetU32(payload.data() + 20), 0u);
  // Names ascending: "audit", "b", "orders".
  EXPECT_EQ(GetU64(payload.data() + 24), 3u);
  EXPECT_EQ(payload.substr(32, 6), std::string("\x05"
                                               "audit"));
  ExpectSame(RoundTrip(footer), footer);
  EXPECT_EQ(SegmentFooterSize(footer), kRecordHeaderSize + payload.size());
}

TEST(SegmentFooterTest, Version2WithNoTargetSaysNone) {
  SegmentFooter footer = Counted(1, 4, {});
  EXPECT_EQ(EncodeSegmentFooterPayload(footer).size(), 32u);
  ExpectSame(RoundTrip(footer), footer);  // counted: zero for everyone, not unknown
}

TEST(SegmentFooterTest, ZeroCountsAreLeftOut) {
  SegmentFooter footer = Counted(1, 4, {{"a", 0}, {"b", 2}});
  auto decoded = RoundTrip(footer);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->targets, (TargetCounts{{"b", 2}}));
}

TEST(SegmentFooterTest, TooManyTargetsIsVersion1) {
  TargetCounts many;
  for (size_t i = 0; i <= kMaxFooterTargets; ++i) many["t" + std::to_string(i)] = 1;
  SegmentFooter footer = Counted(1, 2, many);
  EXPECT_FALSE(FooterCountsTargets(footer));
  EXPECT_EQ(EncodeSegmentFooterPayload(footer).size(), 16u);
  many.erase(many.begin());
  EXPECT_TRUE(FooterCountsTargets(Counted(1, 2, many)));
  ExpectSame(RoundTrip(Counted(1, 2, many)), Counted(1, 2, many));
  EXPECT_FALSE(FooterCountsTargets(Counted(1, 2, {{std::string(256, 'n'), 1}})));
}

// Payloads that must not decode, each one edit away from a valid one.
class BadFooterTest : public testing::Test {
 protected:
  void SetUp() override {
    good_ = EncodeSegmentFooterPayload(Counted(100, 110, {{"audit", 3}, {"orders", 10}}));
    ASSERT_TRUE(Decodes(good_));
  }
  // Fixes the trailing size after an edit that changes the length.
  static void FixSize(std::string* p) {
    PutU64(p->data() + p->size() - 8, kRecordHeaderSize + p->size());
  }
  static bool Decodes(const std::string& payload) {
    return DecodeSegmentFooter(FooterHeader(110, payload), payload).has_value();
  }
  std::string good_;
  // Offsets in good_: 24 count "audit", 32 len, 33 name, 38 count "orders", 46 len, 47 name,
  // 53 padding (3 bytes), 56 size.
};

TEST_F(BadFooterTest, NotAFooterRecord) {
  RecordHeader h = FooterHeader(110, good_);
  h.flags = 0;
  EXPECT_FALSE(DecodeSegmentFooter(h, good_).has_value());
}

TEST_F(BadFooterTest, RecordsDoNotAddUp) {
  EXPECT_FALSE(DecodeSegmentFooter(FooterHeader(111, good_), good_).has_value());
}

TEST_F(BadFooterTest, WrongTrailingSize) {
  std::string p = good_;
  PutU64(p.data() + p.size() - 8, kRecordHeaderSize + p.size() + 8);
  EXPECT_FALSE(Decodes(p));
}

TEST_F(BadFooterTest, NotAMultipleOfEight) {
  for (size_t size : {size_t{0}, size_t{8}, size_t{17}, size_t{24}, size_t{33}}) {
    SCOPED_TRACE(size);
    EXPECT_FALSE(Decodes(std::string(size, '\0')));
  }
}

TEST_F(BadFooterTest, ReservedNotZero) {
  std::string p = good_;
  p[20] = 1;
  EXPECT_FALSE(Decodes(p));
}

TEST_F(BadFooterTest, MoreTargetsThanListed) {
  std::string p = good_;
  PutU32(p.data() + 16, 3);
  EXPECT_FALSE(Decodes(p));
}

TEST_F(BadFooterTest, FewerTargetsThanListedLeavesMoreThanPadding) {
  std::string p = good_;
  PutU32(p.data() + 16, 1);
  EXPECT_FALSE(Decodes(p));
}

TEST_F(BadFooterTest, TooManyTargetsDeclared) {
  std::string p = good_;
  PutU32(p.data() + 16, kMaxFooterTargets + 1);
  EXPECT_FALSE(Decodes(p));
}

TEST_F(BadFooterTest, ZeroCount) {
  std::string p = good_;
  PutU64(p.data() + 24, 0);
  EXPECT_FALSE(Decodes(p));
}

TEST_F(BadFooterTest, CountAboveRecords) {
  std::string p = good_;
  PutU64(p.data() + 38, 11);
  EXPECT_FALSE(Decodes(p));
}

TEST_F(BadFooterTest, NamesOutOfOrderOrTwice) {
  std::string swapped = EncodeSegmentFooterPayload(Counted(100, 110, {{"aaaaa", 3}, {"b", 1}}));
  ASSERT_TRUE(Decodes(swapped));
  swapped.replace(33, 5, "ccccc");  // "ccccc" before "b"
  EXPECT_FALSE(Decodes(swapped));
  std::string twice = EncodeSegmentFooterPayload(Counted(100, 110, {{"aaaaa", 3}, {"aaaab", 1}}));
  ASSERT_TRUE(Decodes(twice));
  twice[51] = 'a';  // the second name becomes the first
  EXPECT_FALSE(Decodes(twice));
}

TEST_F(BadFooterTest, PaddingNotZero) {
  std::string p = good_;
  p[54] = 'x';
  EXPECT_FALSE(Decodes(p));
}

TEST_F(BadFooterTest, EightBytesOfPadding) {
  std::string p = good_;
  p.insert(p.size() - 8, 8, '\0');
  FixSize(&p);
  EXPECT_FALSE(Decodes(p));
}

// --- Reading a footer from the end of a file ----------------------------------------

class ReadSegmentFooterTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/" + SegmentFileName(1);
    file_.resize(kSegmentHeaderSize);
    EncodeSegmentHeader(1, file_.data());
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      std::string payload = "record " + std::to_string(seq);
      std::string r(RecordSize(payload.size()), '\0');
      EncodeRecordHeader(seq, 0, 0, payload, r.data());
      r.replace(kRecordHeaderSize, payload.size(), payload);
      file_ += r;
    }
  }

  std::optional<SegmentFooter> Read(const std::string& content) {
    test::WriteFile(path_, content);
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    std::optional<SegmentFooter> footer;
    common::Status s = ReadSegmentFooter(fs_, fd, test::FileSize(path_), &footer);
    EXPECT_TRUE(s.ok()) << s.ToString();
    ::close(fd);
    return footer;
  }

  test::ScratchDir dir_;
  test::CountingFileSystem fs_;
  std::string path_;
  std::string file_;  // header and three records
};

TEST_F(ReadSegmentFooterTest, Version2InOneRead) {
  SegmentFooter footer = Counted(1, 4, {{"orders", 3}});
  ExpectSame(Read(file_ + FooterRecord(footer)), footer);
  EXPECT_EQ(fs_.Reads().size(), 1u);
}

TEST_F(ReadSegmentFooterTest, Version1) {
  SegmentFooter footer{1, 4, 3, std::nullopt};
  ExpectSame(Read(file_ + FooterRecord(footer)), footer);
}

// A version 1 footer ends with its record count: one that looks like a version 2 size
// must still be read as what it is.
TEST_F(ReadSegmentFooterTest, Version1WhoseCountLooksLikeASize) {
  for (uint64_t records : {uint64_t{64}, uint64_t{72}, uint64_t{48}}) {
    SCOPED_TRACE(records);
    SegmentFooter footer{1, 1 + records, records, std::nullopt};
    ExpectSame(Read(file_ + FooterRecord(footer)), footer);
  }
}

TEST_F(ReadSegmentFooterTest, FooterLongerThanTheFirstRead) {
  TargetCounts targets;
  for (int i = 0; i < 40; ++i)
    targets[std::string(200, static_cast<char>('a' + i % 26)) + std::to_string(i)] = 1;
  SegmentFooter footer = Counted(1, 4, targets);
  ASSERT_GT(SegmentFooterSize(footer), 4096u);
  ExpectSame(Read(file_ + FooterRecord(footer)), footer);
  EXPECT_EQ(fs_.Reads().size(), 2u);
}

TEST_F(ReadSegmentFooterTest, NoFooter) {
  EXPECT_FALSE(Read(file_).has_value());
  EXPECT_FALSE(Read(file_ + std::string(4096, '\0')).has_value());
  EXPECT_FALSE(Read(file_.substr(0, 40)).has_value());
  EXPECT_FALSE(Read("").has_value());
}

TEST_F(ReadSegmentFooterTest, JunkAfterTheFooter) {
  std::string sealed = file_ + FooterRecord(Counted(1, 4, {{"orders", 3}}));
  EXPECT_FALSE(Read(sealed + std::string(8, 'x')).has_value());
  EXPECT_FALSE(Read(sealed + std::string(8, '\0')).has_value());
}

TEST_F(ReadSegmentFooterTest, DamagedFooter) {
  std::string sealed = file_ + FooterRecord(Counted(1, 4, {{"orders", 3}}));
  for (size_t back : {size_t{1}, size_t{9}, size_t{30}, size_t{50}}) {
    SCOPED_TRACE(back);
    std::string damaged = sealed;
    damaged[damaged.size() - back] ^= 0x20;
    EXPECT_FALSE(Read(damaged).has_value());
  }
}

// --- Tallying a segment's records ---------------------------------------------------------

std::string MessageFor(std::vector<std::string> targets) {
  Message m;
  m.method = "POST";
  m.targets = std::move(targets);
  return EncodeMessage(m);
}

TEST(SegmentTallyTest, CountsEachListedTargetOncePerRecord) {
  SegmentTally tally;
  tally.Add(MessageFor({"orders"}));
  tally.Add(MessageFor({"orders", "audit"}));
  tally.Add(MessageFor({"audit", "audit"}));
  tally.Add(MessageFor({}));
  tally.Add("not a message");
  EXPECT_EQ(tally.counts(), (TargetCounts{{"audit", 2}, {"orders", 2}}));
  tally.Reset();
  EXPECT_EQ(tally.counts(), TargetCounts{});
}

TEST(SegmentTallyTest, GivesUpPastTheFooterLimit) {
  SegmentTally tally;
  for (size_t i = 0; i < kMaxFooterTargets; ++i) tally.Add(MessageFor({"t" + std::to_string(i)}));
  ASSERT_TRUE(tally.counts().has_value());
  EXPECT_EQ(tally.counts()->size(), kMaxFooterTargets);
  tally.Add(MessageFor({"t0"}));  // known already
  ASSERT_TRUE(tally.counts().has_value());
  tally.Add(MessageFor({"one too many"}));
  EXPECT_FALSE(tally.counts().has_value());
  tally.Add(MessageFor({"t0"}));
  EXPECT_FALSE(tally.counts().has_value());
  tally.Reset();
  EXPECT_EQ(tally.counts(), TargetCounts{});
}

}  // namespace
}  // namespace sluice::buffer
