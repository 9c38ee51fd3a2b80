// Per-target counts in segment footers: whoever seals a segment (the writer rolling,
// Close, recovery sealing a crashed tail or an older segment) writes counts that equal
// what reading the segment finds, and footers without counts stay readable.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "buffer/message.h"
#include "buffer/segment.h"
#include "buffer/segment_footer.h"
#include "tests/buffer/log_fixture.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

// Fan-out as routes do it: each message lists some of the targets a, b, c; every seventh
// record is not a message at all.
std::string PayloadOf(uint64_t n) {
  if (n % 7 == 0) return "not a message " + std::to_string(n);
  Message m;
  m.method = "POST";
  m.target = "/m/" + std::to_string(n);
  switch (n % 3) {
    case 0:
      m.targets = {"a", "b"};
      break;
    case 1:
      m.targets = {"a"};
      break;
    default:
      m.targets = {"b", "c"};
      break;
  }
  m.body = std::string(40 + n % 50, 'x');
  return EncodeMessage(m);
}

// What reading a segment file finds: its records' targets, counted, and its footer.
struct FileView {
  TargetCounts counted;
  std::optional<SegmentFooter> footer;
};

FileView ReadSegmentFile(const std::string& path) {
  FileView view;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  uint64_t size = test::FileSize(path);
  SegmentScanner scanner(fd, size, kSegmentHeaderSize);
  RecordHeader h;
  std::string payload;
  common::Status io;
  std::vector<std::string_view> names;
  while (scanner.Next(&h, &payload, &io) == SegmentScanner::Result::kRecord) {
    if (!DecodeMessageTargets(payload, &names)) continue;
    for (auto name : names) ++view.counted[std::string(name)];
  }
  EXPECT_TRUE(ReadSegmentFooter(FileSystem::Default(), fd, size, &view.footer).ok());
  ::close(fd);
  return view;
}

class LogFooterTest : public test::LogFixture {
 protected:
  LogFooterTest() {
    options_.segment_bytes = 4096;
    options_.fsync = FsyncPolicy::kNever;  // the subject is what is written, not syncs
  }

  void WriteMessages(uint64_t from, uint64_t to_inclusive) {
    std::vector<std::string> payloads;
    for (uint64_t n = from; n <= to_inclusive; ++n) payloads.push_back(PayloadOf(n));
    auto seqs = WriteAll(payloads);
    ASSERT_EQ(seqs.back(), to_inclusive);
  }

  // Every segment in `dir` is sealed with counts equal to what its records say.
  void ExpectCountedFooters(const std::string& dir) {
    auto segs = test::SegmentFiles(dir);
    ASSERT_FALSE(segs.empty());
    for (const auto& seg : segs) {
      SCOPED_TRACE(seg.path);
      FileView view = ReadSegmentFile(seg.path);
      ASSERT_TRUE(view.footer.has_value());
      ASSERT_TRUE(view.footer->targets.has_value());
      EXPECT_EQ(*view.footer->targets, view.counted);
    }
  }

  // What the open log says about its segments equals what their files say.
  void ExpectSummariesMatchFiles() {
    auto segs = test::SegmentFiles(options_.dir);
    auto summaries = log_->SegmentSummaries();
    ASSERT_EQ(summaries.size(), segs.size());
    for (size_t i = 0; i < segs.size(); ++i) {
      SCOPED_TRACE(segs[i].path);
      EXPECT_EQ(summaries[i].first_seq, segs[i].first_seq);
      FileView view = ReadSegmentFile(segs[i].path);
      ASSERT_TRUE(view.footer.has_value());
      EXPECT_EQ(summaries[i].targets, view.footer->targets);
    }
  }
};

TEST_F(LogFooterTest, RollingAndClosingSealWithEachTargetsCount) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 300));
  ASSERT_GE(log_->segment_count(), 5u);
  Close();
  ASSERT_NO_FATAL_FAILURE(ExpectCountedFooters(options_.dir));
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(ExpectSummariesMatchFiles());
}

TEST_F(LogFooterTest, TheActiveSegmentIsNotCountedUntilSealed) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 100));
  auto summaries = log_->SegmentSummaries();
  ASSERT_GE(summaries.size(), 2u);
  EXPECT_FALSE(summaries.back().targets.has_value());
  for (size_t i = 0; i + 1 < summaries.size(); ++i) {
    EXPECT_TRUE(summaries[i].targets.has_value()) << summaries[i].first_seq;
  }
}

TEST_F(LogFooterTest, RecoverySealsACrashedTailWithCounts) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 100));
  // A copy taken while the log is open: its tail was never sealed, as after a crash.
  const std::string crashed = scratch_.path() + "/crashed";
  test::CopyTree(options_.dir, crashed);
  Close();
  options_.dir = crashed;
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_GT(report.truncated_bytes, 0u) << "the fallocated tail was cut";
  ASSERT_NO_FATAL_FAILURE(ExpectSummariesMatchFiles());
  Close();
  ASSERT_NO_FATAL_FAILURE(ExpectCountedFooters(crashed));
}

TEST_F(LogFooterTest, RecoverySealsAnOlderUnsealedSegmentWithCounts) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 100));
  Close();
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_GE(segs.size(), 3u);
  // A crash in the middle of a roll: the footer never made it.
  FileView before = ReadSegmentFile(segs[0].path);
  ASSERT_TRUE(before.footer.has_value());
  test::TruncateFile(segs[0].path, segs[0].size - SegmentFooterSize(*before.footer));
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.unsealed_segments, 1u);
  ASSERT_NO_FATAL_FAILURE(ExpectSummariesMatchFiles());
  Close();
  ASSERT_NO_FATAL_FAILURE(ExpectCountedFooters(options_.dir));
}

// An older segment whose footer matches its records but is not the file's end: a crash
// between a roll's footer fdatasync and the cut after it (the cut is not synced) leaves
// the fallocated zeros behind the footer, and damage may leave anything there. The
// writer never puts a record after a footer (the next one starts the next segment), so
// nothing there was acknowledged. Recovery cuts the file right after that footer, as
// written, and does not seal the segment a second time. The recovery fuzzer's reproducer
// unsealed-older-cut-short is this layout: three messages, their footer, stale bytes.
TEST_F(LogFooterTest, RecoveryCutsAnOlderSegmentRightAfterItsFooter) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 3));
  Close();  // seals segment 1 with a footer for [1, 4)
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(4, 4));  // the first record of segment 4
  // A copy taken while the log is open: segment 4 unsealed, as after a crash.
  const std::string pristine = scratch_.path() + "/crashed";
  test::CopyTree(options_.dir, pristine);
  Close();
  const std::string sealed = test::ReadFile(pristine + "/seg/" + SegmentFileName(1));
  ASSERT_TRUE(ReadSegmentFile(pristine + "/seg/" + SegmentFileName(1)).footer.has_value());
  ASSERT_LT(sealed.size(), options_.segment_bytes);

  // Whole and valid, but out of sequence: the segment's own first record.
  const size_t first_record = RecordSize(PayloadOf(1).size());
  const std::vector<std::pair<const char*, std::string>> after_footer = {
      {"fallocated zeros", std::string(options_.segment_bytes - sealed.size(), '\0')},
      {"stale bytes of its records, unaligned", sealed.substr(kSegmentHeaderSize + 13, 155)},
      {"a copy of its first record", sealed.substr(kSegmentHeaderSize, first_record)},
  };
  std::vector<test::ReadRecord> expected;
  for (uint64_t n = 1; n <= 4; ++n) expected.push_back({n, PayloadOf(n)});
  for (const auto& [name, bytes] : after_footer) {
    SCOPED_TRACE(name);
    options_.dir = scratch_.path() + "/work";
    test::RemoveTree(options_.dir);
    test::CopyTree(pristine, options_.dir);
    const std::string seg1 = SegmentPath(1);
    test::OverwriteAt(seg1, sealed.size(), bytes);

    RecoveryReport report;
    ASSERT_TRUE(Open(&report));
    EXPECT_EQ(report.unsealed_segments, 1u) << "its footer is not at the file's end";
    EXPECT_EQ(report.next_seq, 5u);
    EXPECT_EQ(test::FileSize(seg1), sealed.size())
        << "not cut right after its footer (" << sealed.size() << " bytes)";
    EXPECT_TRUE(test::ReadFile(seg1) == sealed) << "its records or footer were rewritten";
    uint64_t skipped = 0;
    EXPECT_EQ(ReadAll(1, &skipped), expected);
    EXPECT_EQ(skipped, 0u);
    ASSERT_NO_FATAL_FAILURE(ExpectSummariesMatchFiles());

    // Sealed at its place now: the next start leaves it alone.
    RecoveryReport again;
    ASSERT_TRUE(Reopen(&again));
    EXPECT_EQ(again.unsealed_segments, 0u);
    EXPECT_EQ(again.truncated_bytes, 0u);
    EXPECT_EQ(test::FileSize(seg1), sealed.size());
    EXPECT_EQ(ReadAll(1), expected);
    Close();
    ASSERT_NO_FATAL_FAILURE(ExpectCountedFooters(options_.dir));
  }
}

// Damage the writer never makes: an older segment whose records run past the next
// segment's first sequence. The next segment's name says where the writer rolled, so
// the older one ends there: recovery cuts it before the first record at or past that
// sequence and seals it, once; the next start finds it sealed.
TEST_F(LogFooterTest, RecoveryEndsAnOlderSegmentWhereTheNextOneStarts) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 6));
  const std::string overlong = scratch_.path() + "/overlong";
  test::CopyTree(options_.dir, overlong);  // segment 1 holds 1..6, unsealed
  Close();
  options_.dir = scratch_.path() + "/work";
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 3));
  Close();  // segment 1 sealed for [1, 4)
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(4, 5));  // segment 4
  Close();
  const std::string seg1 = SegmentPath(1);
  const std::string sealed = test::ReadFile(seg1);
  test::RemoveTree(seg1);
  test::CopyTree(overlong + "/seg/" + SegmentFileName(1), seg1);

  std::vector<test::ReadRecord> expected;
  for (uint64_t n = 1; n <= 5; ++n) expected.push_back({n, PayloadOf(n)});
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.unsealed_segments, 1u);
  EXPECT_EQ(report.next_seq, 6u);
  uint64_t skipped = 0;
  EXPECT_EQ(ReadAll(1, &skipped), expected);
  EXPECT_EQ(skipped, 0u);
  ASSERT_NO_FATAL_FAILURE(ExpectSummariesMatchFiles());
  const uint64_t cut = test::FileSize(seg1);
  EXPECT_EQ(cut, sealed.size()) << "not ended after its third record, with a footer";

  RecoveryReport again;
  ASSERT_TRUE(Reopen(&again));
  EXPECT_EQ(again.unsealed_segments, 0u) << "found unsealed again";
  EXPECT_EQ(test::FileSize(seg1), cut);
  EXPECT_EQ(ReadAll(1), expected);
  Close();
  ASSERT_NO_FATAL_FAILURE(ExpectCountedFooters(options_.dir));
}

// Segments sealed by a release before per-target counts: still sealed, not rewritten,
// and the log says their counts are unknown.
TEST_F(LogFooterTest, VersionOneFootersStaySealedWithoutCounts) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 100));
  Close();
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_GE(segs.size(), 3u);
  FileView view = ReadSegmentFile(segs[1].path);
  ASSERT_TRUE(view.footer.has_value());
  SegmentFooter old = *view.footer;
  old.targets.reset();
  std::string payload = EncodeSegmentFooterPayload(old);
  ASSERT_EQ(payload.size(), 16u);
  std::string record(kRecordHeaderSize, '\0');
  EncodeRecordHeader(old.end_seq, 0, kFlagFooter, payload, record.data());
  test::TruncateFile(segs[1].path, segs[1].size - SegmentFooterSize(*view.footer));
  test::OverwriteAt(segs[1].path, test::FileSize(segs[1].path), record + payload);
  const uint64_t old_size = test::FileSize(segs[1].path);

  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.unsealed_segments, 0u);
  EXPECT_EQ(test::FileSize(segs[1].path), old_size);
  auto summaries = log_->SegmentSummaries();
  EXPECT_TRUE(summaries[0].targets.has_value());
  EXPECT_FALSE(summaries[1].targets.has_value());
  EXPECT_TRUE(summaries[2].targets.has_value());
  EXPECT_EQ(ReadAll(1).size(), 100u);
}

TEST_F(LogFooterTest, MoreTargetsThanAFooterListsSealsWithoutCounts) {
  options_.segment_bytes = 1 << 20;
  ASSERT_TRUE(Open());
  std::vector<std::string> payloads;
  for (int r = 0; r < 2; ++r) {
    Message m;
    for (size_t i = 0; i < kMaxFooterTargets / 2 + 1; ++i) {
      m.targets.push_back("r" + std::to_string(r) + "t" + std::to_string(i));
    }
    payloads.push_back(EncodeMessage(m));
  }
  WriteAll(payloads);
  Close();
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_EQ(segs.size(), 1u);
  FileView view = ReadSegmentFile(segs[0].path);
  ASSERT_TRUE(view.footer.has_value());
  EXPECT_EQ(view.footer->records, 2u);
  EXPECT_FALSE(view.footer->targets.has_value());
  ASSERT_TRUE(Open());
  EXPECT_FALSE(log_->SegmentSummaries()[0].targets.has_value());
}

}  // namespace
}  // namespace sluice::buffer
