// The log's zero-filled spare segment (SegmentPreparer): a roll under fsync: batch
// renames it instead of fallocating a file, so the flushes that acknowledge records in
// the new segment carry no block allocation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

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

using test::PayloadFor;

// Whether any extent of the file is allocated but unwritten (what fallocate leaves:
// writing into it makes the next flush commit its conversion). nullopt when the file
// system does not map extents (tmpfs).
std::optional<bool> HasUnwrittenExtents(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  constexpr unsigned kExtents = 256;
  std::vector<char> buf(sizeof(fiemap) + kExtents * sizeof(fiemap_extent));
  auto* map = reinterpret_cast<fiemap*>(buf.data());
  map->fm_start = 0;
  map->fm_length = FIEMAP_MAX_OFFSET;
  map->fm_extent_count = kExtents;
  const int rc = ::ioctl(fd, FS_IOC_FIEMAP, map);
  ::close(fd);
  if (rc != 0) return std::nullopt;
  for (unsigned i = 0; i < map->fm_mapped_extents; ++i) {
    if (map->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN) return true;
  }
  return false;
}

class LogSpareSegmentTest : public test::LogFixture {
 protected:
  LogSpareSegmentTest() { options_.fsync = FsyncPolicy::kBatch; }

  std::string SparePath() const { return options_.dir + "/seg/" + kSpareSegmentName; }

  // Writes 1000-byte records from `seq` until `enough()`; returns the next sequence.
  uint64_t WriteUntil(uint64_t seq, const std::function<bool()>& enough) {
    for (int guard = 0; guard < 100'000 && !enough(); ++guard, ++seq) {
      EXPECT_EQ(Write(PayloadFor(seq, 1000)), seq);
      if (HasFailure()) break;
    }
    EXPECT_TRUE(enough()) << "never got there";
    return seq;
  }
  uint64_t WriteSegments(uint64_t seq, size_t segments) {
    return WriteUntil(seq, [&] { return log_->segment_count() >= segments; });
  }

  void ExpectAllRecords(uint64_t end) {
    std::vector<test::ReadRecord> want;
    for (uint64_t seq = 1; seq < end; ++seq) want.push_back({seq, PayloadFor(seq, 1000)});
    EXPECT_EQ(ReadAll(1), want);
  }
};

TEST_F(LogSpareSegmentTest, RollsIntoTheZeroFilledSpare) {
  options_.segment_bytes = 256 << 10;
  ASSERT_TRUE(Open());
  // Seven eighths into the first segment the spare may be complete: wait for it.
  uint64_t seq = WriteUntil(1, [&] { return log_->bytes() >= options_.segment_bytes * 9 / 10; });
  ASSERT_TRUE(RunUntil([&] { return test::FileSize(SparePath()) == options_.segment_bytes; }));
  seq = WriteSegments(seq, 2);
  EXPECT_EQ(log_->prepared_segments_used(), 1u);
  const std::string second = SegmentPath(log_->SegmentSummaries().back().first_seq);
  const auto unwritten = HasUnwrittenExtents(second);
  if (unwritten.has_value()) {
    EXPECT_FALSE(*unwritten) << "the new segment was fallocated";
  }
  ASSERT_TRUE(Reopen());
  ExpectAllRecords(seq);
}

// What the test above rules out: without the spare, the new segment is fallocated and a
// flush after writing into it converts extents.
TEST_F(LogSpareSegmentTest, WithoutTheSpareTheNewSegmentIsFallocated) {
  options_.segment_bytes = 256 << 10;
  options_.prepare_segments = false;
  ASSERT_TRUE(Open());
  uint64_t seq = WriteSegments(1, 2);
  EXPECT_EQ(log_->prepared_segments_used(), 0u);
  EXPECT_FALSE(test::FileExists(SparePath()));
  const auto unwritten =
      HasUnwrittenExtents(SegmentPath(log_->SegmentSummaries().back().first_seq));
  if (!unwritten.has_value()) GTEST_SKIP() << "no FIEMAP on this file system";
  EXPECT_TRUE(*unwritten);
  ASSERT_TRUE(Reopen());
  ExpectAllRecords(seq);
}

// A roll that comes before the spare is zeroed (a record as large as a segment) takes
// it as it is; fallocate allocates the rest.
TEST_F(LogSpareSegmentTest, APartlyZeroedSpareIsAllocatedToTheSegmentSize) {
  options_.segment_bytes = 8 << 20;
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write(PayloadFor(1, 1000)), 1u);
  // An empty segment lets the spare run an eighth ahead: 1 MiB.
  ASSERT_TRUE(RunUntil([&] { return test::FileSize(SparePath()) == (1u << 20); }));
  const std::string big = PayloadFor(2, (8 << 20) - 100);
  ASSERT_EQ(Write(big), 2u);
  EXPECT_EQ(log_->prepared_segments_used(), 1u);
  EXPECT_GE(test::FileSize(SegmentPath(2)), 8u << 20);
  ASSERT_TRUE(Reopen());
  std::vector<test::ReadRecord> want{{1, PayloadFor(1, 1000)}, {2, big}};
  EXPECT_EQ(ReadAll(1), want);
}

TEST_F(LogSpareSegmentTest, ASpareLeftByACrashIsRemovedAtOpen) {
  options_.segment_bytes = 64 << 10;
  ASSERT_TRUE(Open());
  uint64_t seq = WriteSegments(1, 2);
  Close();
  // Zeros, then whatever a crash mid-write left: never read, only removed.
  test::WriteFile(SparePath(), std::string(4096, '\0') + "junk");
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.removed_orphans, 0u) << "the spare is not a stranger";
  EXPECT_EQ(report.next_seq, seq);
  ExpectAllRecords(seq);
  EXPECT_FALSE(test::FileExists(SparePath()));
}

TEST_F(LogSpareSegmentTest, NoSpareUnderFsyncNever) {
  options_.segment_bytes = 64 << 10;
  options_.fsync = FsyncPolicy::kNever;
  ASSERT_TRUE(Open());
  WriteSegments(1, 4);
  EXPECT_EQ(log_->prepared_segments_used(), 0u);
  EXPECT_FALSE(test::FileExists(SparePath()));
}

// The spare takes a segment's worth of disk: only while max_bytes leaves room for it
// beside the active segment.
TEST_F(LogSpareSegmentTest, NoSpareWithoutRoomForTwoMoreSegments) {
  options_.segment_bytes = 64 << 10;
  options_.max_bytes = 2 * options_.segment_bytes;
  ASSERT_TRUE(Open());
  WriteSegments(1, 2);
  EXPECT_EQ(log_->prepared_segments_used(), 0u);
  EXPECT_FALSE(test::FileExists(SparePath()));
}

}  // namespace
}  // namespace sluice::buffer
