// Recycling (LogOptions::recycle_segments): reclaim keeps the newest segment it lets go as
// seg/next.spare, and the next roll renames it instead of fallocating a new file, so
// flushes of records written into it carry no block allocation. Its old records stay
// behind the new ones and must never be read.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "buffer/log.h"
#include "buffer/segment.h"
#include "tests/buffer/log_fixture.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

using std::chrono::milliseconds;
using test::PayloadFor;

constexpr size_t kLen = 500;  // every record the same size: new ones overlay old ones exactly

ino_t InodeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Whether any extent in the file's first `bytes` is allocated but unwritten (what
// fallocate leaves: a flush after writing into it commits the conversion). nullopt when
// the file system does not map extents (tmpfs).
std::optional<bool> HasUnwrittenExtents(const std::string& path, uint64_t bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  constexpr unsigned kExtents = 256;
  std::vector<char> buf(sizeof(fiemap) + kExtents * sizeof(fiemap_extent));
  auto* map = reinterpret_cast<fiemap*>(buf.data());
  map->fm_start = 0;
  map->fm_length = bytes;
  map->fm_extent_count = kExtents;
  const int rc = ::ioctl(fd, FS_IOC_FIEMAP, map);
  ::close(fd);
  if (rc != 0) return std::nullopt;
  for (unsigned i = 0; i < map->fm_mapped_extents; ++i) {
    if (map->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN) return true;
  }
  return false;
}

class LogRecycleTest : public test::LogFixture {
 protected:
  LogRecycleTest() {
    options_.segment_bytes = 64 << 10;
    options_.targets = {"a"};
    options_.cursor_sync_interval = milliseconds(1);
  }

  std::string SparePath() const { return options_.dir + "/seg/" + kSpareSegmentName; }

  // Writes records (PayloadFor(seq, kLen)) from `seq` until `enough()`; returns the next.
  uint64_t WriteUntil(uint64_t seq, const std::function<bool()>& enough) {
    for (int guard = 0; guard < 100'000 && !enough(); ++guard, ++seq) {
      EXPECT_EQ(Write(PayloadFor(seq, kLen)), seq);
      if (HasFailure()) break;
    }
    EXPECT_TRUE(enough()) << "never got there";
    return seq;
  }

  std::vector<test::ReadRecord> Records(uint64_t from, uint64_t end) {
    std::vector<test::ReadRecord> out;
    for (uint64_t seq = from; seq < end; ++seq) out.push_back({seq, PayloadFor(seq, kLen)});
    return out;
  }

  // Four segments; the cursor passes the first two, so reclaim removes the first and
  // keeps the second as the spare. Returns the next sequence; *kept is the second's file.
  uint64_t FillAndReclaimTwo(test::SegmentFile* kept, ino_t* kept_inode) {
    uint64_t seq = WriteUntil(1, [&] { return log_->segment_count() >= 4; });
    auto segs = test::SegmentFiles(options_.dir);
    EXPECT_EQ(segs.size(), 4u);
    if (segs.size() < 4) return seq;
    *kept = segs[1];
    *kept_inode = InodeOf(segs[1].path);
    log_->SetCursor("a", segs[2].first_seq);
    EXPECT_TRUE(
        RunUntil([&] { return log_->segment_count() == 2 && test::FileExists(SparePath()); }));
    EXPECT_FALSE(test::FileExists(segs[0].path));
    EXPECT_FALSE(test::FileExists(segs[1].path));
    return seq;
  }
};

TEST_F(LogRecycleTest, TheNextRollRenamesTheNewestSegmentReclaimed) {
  ASSERT_TRUE(Open());
  test::SegmentFile kept;
  ino_t inode = 0;
  uint64_t seq = FillAndReclaimTwo(&kept, &inode);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(InodeOf(SparePath()), inode);
  EXPECT_EQ(log_->recycled_segments(), 0u);

  const size_t before = log_->segment_count();
  seq = WriteUntil(seq, [&] { return log_->segment_count() > before; });
  EXPECT_EQ(log_->recycled_segments(), 1u);
  EXPECT_FALSE(test::FileExists(SparePath()));
  const std::string active = SegmentPath(log_->SegmentSummaries().back().first_seq);
  EXPECT_EQ(InodeOf(active), inode) << "a new file, not the recycled one";
  // The blocks the old segment wrote are written: no conversion left to flush there.
  const auto unwritten = HasUnwrittenExtents(active, kept.size & ~uint64_t{4095});
  if (unwritten.has_value()) {
    EXPECT_FALSE(*unwritten);
  }
  // Readers see the new records only, then and after a restart.
  const uint64_t cursor = test::SegmentFiles(options_.dir).front().first_seq;
  EXPECT_EQ(ReadAll(cursor), Records(cursor, seq));
  RecoveryReport report;
  ASSERT_TRUE(Reopen(&report));
  EXPECT_EQ(report.next_seq, seq);
  EXPECT_EQ(ReadAll(cursor), Records(cursor, seq));
}

// The case recovery must get right: a crash with a few records in a recycled segment.
// New records of the same size sit exactly where old ones did, so the next old record
// after them is intact (its CRCs check out) and only its sequence number betrays it.
TEST_F(LogRecycleTest, OldRecordsBehindTheNewOnesAreNotRecoveredAfterACrash) {
  ASSERT_TRUE(Open());
  test::SegmentFile kept;
  ino_t inode = 0;
  uint64_t seq = FillAndReclaimTwo(&kept, &inode);
  ASSERT_FALSE(HasFailure());
  const size_t before = log_->segment_count();
  seq = WriteUntil(seq, [&] { return log_->segment_count() > before; });
  ASSERT_EQ(log_->recycled_segments(), 1u);
  for (int k = 0; k < 3; ++k, ++seq) ASSERT_EQ(Write(PayloadFor(seq, kLen)), seq);  // a few more
  const uint64_t cursor = test::SegmentFiles(options_.dir).front().first_seq;

  // A copy taken while the log is open: its tail was never sealed, as after a crash.
  const std::string crashed = scratch_.path() + "/crashed";
  test::CopyTree(options_.dir, crashed);
  Close();
  options_.dir = crashed;
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, seq) << "old records taken for new ones";
  EXPECT_GT(report.truncated_bytes, 0u) << "the old records were cut";
  EXPECT_EQ(ReadAll(cursor), Records(cursor, seq));
  // And what is written next follows on.
  ASSERT_EQ(Write(PayloadFor(seq, kLen)), seq);
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(ReadAll(cursor), Records(cursor, seq + 1));
}

// Not reused across a restart: nothing would prove its records older than the log's.
TEST_F(LogRecycleTest, ASpareFoundAtOpenIsRemoved) {
  ASSERT_TRUE(Open());
  test::SegmentFile kept;
  ino_t inode = 0;
  uint64_t seq = FillAndReclaimTwo(&kept, &inode);
  ASSERT_FALSE(HasFailure());
  const uint64_t cursor = test::SegmentFiles(options_.dir).front().first_seq;
  RecoveryReport report;
  ASSERT_TRUE(Reopen(&report));
  EXPECT_FALSE(test::FileExists(SparePath()));
  EXPECT_EQ(report.removed_orphans, 0u) << "the spare is no stranger";
  const size_t before = log_->segment_count();
  seq = WriteUntil(seq, [&] { return log_->segment_count() > before; });
  EXPECT_EQ(log_->recycled_segments(), 0u);
  EXPECT_EQ(ReadAll(cursor), Records(cursor, seq));
}

TEST_F(LogRecycleTest, SwitchedOffReclaimUnlinksEverySegment) {
  options_.recycle_segments = false;
  ASSERT_TRUE(Open());
  uint64_t seq = WriteUntil(1, [&] { return log_->segment_count() >= 4; });
  auto segs = test::SegmentFiles(options_.dir);
  log_->SetCursor("a", segs[2].first_seq);
  ASSERT_TRUE(
      RunUntil([&] { return log_->segment_count() == 2 && !test::FileExists(segs[1].path); }));
  EXPECT_FALSE(test::FileExists(SparePath()));
  const size_t before = log_->segment_count();
  seq = WriteUntil(seq, [&] { return log_->segment_count() > before; });
  EXPECT_EQ(log_->recycled_segments(), 0u);
  const auto unwritten =
      HasUnwrittenExtents(SegmentPath(log_->SegmentSummaries().back().first_seq), 1u << 30);
  if (!unwritten.has_value()) GTEST_SKIP() << "no FIEMAP on this file system";
  EXPECT_TRUE(*unwritten) << "a fresh segment is fallocated";
}

}  // namespace
}  // namespace sluice::buffer
