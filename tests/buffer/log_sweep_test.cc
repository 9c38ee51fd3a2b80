// The start-up sweep: what a crash can leave behind is removed before the log opens.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "buffer/cursor_file.h"
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

}  // namespace
}  // namespace sluice::buffer::test
