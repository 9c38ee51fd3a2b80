// The start-up sweep: what a crash can leave behind is removed before the log opens.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "buffer/cursor_file.h"
#include "buffer/segment.h"
#include "tests/buffer/log_fixture.h"

namespace sluice::buffer::test {
namespace {

namespace fs = std::filesystem;

class LogSweepTest : public LogFixture {
 protected:
  LogSweepTest() {
    options_.targets = {"app"};
    options_.segment_bytes = 4096;
  }
  size_t SegmentFiles() const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(options_.dir + "/seg")) {
      n += e.path().extension() == ".log";
    }
    return n;
  }
  void Touch(const std::string& path) {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
};

TEST_F(LogSweepTest, StrayFilesInSegDirAreRemoved) {
  ASSERT_TRUE(Open());
  ASSERT_NE(Write(PayloadFor(1, 100)), 0u);
  Close();
  Touch(options_.dir + "/seg/00000000000000000007.log.tmp");
  Touch(options_.dir + "/seg/junk");
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.removed_orphans, 2u);
  EXPECT_FALSE(fs::exists(options_.dir + "/seg/junk"));
  EXPECT_EQ(ReadAll(1).size(), 1u);
}

TEST_F(LogSweepTest, SegmentsBelowASyncedCursorAreRemovedAtStart) {
  ASSERT_TRUE(Open());
  std::vector<std::string> payloads;
  for (uint64_t i = 1; i <= 60; ++i) payloads.push_back(PayloadFor(i, 500));
  WriteAll(payloads);
  Close();
  size_t before = SegmentFiles();
  ASSERT_GE(before, 5u);
  // A crash after the cursor sync and before the unlinks it allowed.
  {
    CursorFile cursor;
    uint64_t loaded = 0;
    ASSERT_TRUE(cursor.Open(options_.dir + "/cursors/app.cur", 1, &loaded).ok());
    ASSERT_TRUE(cursor.Store(50).ok());
  }
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_LT(SegmentFiles(), before);
  EXPECT_GT(report.removed_segments, 0u);
  EXPECT_LE(log_->first_seq(), 50u);
  // Everything at or after the cursor is still there.
  auto records = ReadAll(50);
  ASSERT_EQ(records.size(), 11u);
  EXPECT_EQ(records.front().seq, 50u);
}

TEST_F(LogSweepTest, InterruptedDeadLetterRewriteIsDiscarded) {
  ASSERT_TRUE(Open());
  Close();
  Touch(options_.dir + "/dead/app.log.rewrite");
  ASSERT_TRUE(Open());
  EXPECT_FALSE(fs::exists(options_.dir + "/dead/app.log.rewrite"));
  EXPECT_TRUE(fs::exists(options_.dir + "/dead/app.log"));
}

// Every segment but the active one ends with a footer naming its range.
TEST_F(LogSweepTest, SealedSegmentsEndWithAMatchingFooter) {
  ASSERT_TRUE(Open());
  std::vector<std::string> payloads;
  for (uint64_t i = 1; i <= 30; ++i) payloads.push_back(PayloadFor(i, 500));
  WriteAll(payloads);
  Close();
  std::vector<uint64_t> firsts;
  for (const auto& e : fs::directory_iterator(options_.dir + "/seg")) {
    firsts.push_back(*ParseSegmentFileName(e.path().filename().string()));
  }
  std::sort(firsts.begin(), firsts.end());
  ASSERT_GE(firsts.size(), 3u);
  for (size_t i = 0; i < firsts.size(); ++i) {
    std::string path = SegmentPath(firsts[i]);
    uint64_t size = fs::file_size(path);
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::optional<SegmentFooter> footer;
    EXPECT_TRUE(ReadSegmentFooter(FileSystem::Default(), fd, size, &footer).ok());
    ::close(fd);
    ASSERT_TRUE(footer.has_value()) << path;
    uint64_t end = i + 1 < firsts.size() ? firsts[i + 1] : 31;
    EXPECT_EQ(footer->first_seq, firsts[i]);
    EXPECT_EQ(footer->end_seq, end);
    EXPECT_EQ(footer->records, end - firsts[i]);
    EXPECT_EQ(footer->targets, TargetCounts{}) << "counted: no record is a message";
  }
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.truncated_bytes, 0u) << "a clean shutdown leaves nothing to cut";
  EXPECT_EQ(report.unsealed_segments, 0u);
}

TEST_F(LogSweepTest, OlderSegmentWithoutFooterIsScannedAndSealed) {
  ASSERT_TRUE(Open());
  std::vector<std::string> payloads;
  for (uint64_t i = 1; i <= 30; ++i) payloads.push_back(PayloadFor(i, 500));
  WriteAll(payloads);
  Close();
  // Cut the footer off the first segment, as a crash in the middle of a roll would.
  std::string first = SegmentPath(1);
  uint64_t size = fs::file_size(first);
  fs::resize_file(first, size - test::EmptyFooterSize());
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.unsealed_segments, 1u);
  EXPECT_EQ(fs::file_size(first), size) << "sealed again";
  auto records = ReadAll(1);
  ASSERT_EQ(records.size(), 30u);
  EXPECT_EQ(records.back().payload, PayloadFor(30, 500));
}

// Records lost at the end of an older segment (fsync: never, then a crash) leave a gap
// before the next segment: sealed once, then left alone at every later start.
TEST_F(LogSweepTest, OlderSegmentEndingInAGapIsSealedOnce) {
  ASSERT_TRUE(Open());
  std::vector<std::string> payloads;
  for (uint64_t i = 1; i <= 30; ++i) payloads.push_back(PayloadFor(i, 500));
  WriteAll(payloads);
  Close();
  std::string first = SegmentPath(1);
  // Drop the footer and the last record of the first segment.
  uint64_t size = fs::file_size(first);
  fs::resize_file(first, size - test::EmptyFooterSize() - RecordSize(500));
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.unsealed_segments, 1u);
  uint64_t sealed_size = fs::file_size(first);
  uint64_t skipped = 0;
  EXPECT_EQ(ReadAll(1, &skipped).size(), 29u);
  EXPECT_EQ(skipped, 1u) << "the lost record is skipped and counted";
  Close();
  RecoveryReport again;
  ASSERT_TRUE(Open(&again));
  EXPECT_EQ(again.unsealed_segments, 0u);
  EXPECT_EQ(fs::file_size(first), sealed_size) << "not sealed a second time";
}

}  // namespace
}  // namespace sluice::buffer::test
