// CountQueued: counts from footers equal counts from reading every record, for fan-out
// target lists, cursors anywhere, the active segment and footers without counts.
#include "buffer/queue_depth.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "buffer/log_reader.h"
#include "buffer/message.h"
#include "buffer/segment.h"
#include "tests/buffer/log_fixture.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

using Counts = std::map<std::string, uint64_t>;

// Fan-out as routes do it: each message lists some of a, b, c; every seventh record is
// not a message, every eleventh lists a twice.
std::string PayloadOf(uint64_t n) {
  if (n % 7 == 0) return "not a message " + std::to_string(n);
  Message m;
  m.method = "POST";
  m.target = "/m/" + std::to_string(n);
  if (n % 11 == 0) {
    m.targets = {"a", "a"};
  } else if (n % 3 == 0) {
    m.targets = {"a", "b"};
  } else if (n % 3 == 1) {
    m.targets = {"a"};
  } else {
    m.targets = {"b", "c"};
  }
  m.body = std::string(40 + n % 50, 'x');
  return EncodeMessage(m);
}

class QueueDepthTest : public test::LogFixture {
 protected:
  QueueDepthTest() {
    options_.segment_bytes = 4096;
    options_.fsync = FsyncPolicy::kNever;  // the subject is counting, not syncing
  }

  void WriteMessages(uint64_t from, uint64_t to_inclusive) {
    std::vector<std::string> payloads;
    for (uint64_t n = from; n <= to_inclusive; ++n) payloads.push_back(PayloadOf(n));
    auto seqs = WriteAll(payloads);
    ASSERT_EQ(seqs.back(), to_inclusive);
  }

  // The reference: every record read, each target counted at or after its cursor.
  Counts ByReadingEverything(const Counts& cursors) {
    Counts out;
    for (const auto& [t, c] : cursors) out[t] = 0;
    LogReader reader(*log_, 0);
    RecordHeader h;
    std::string payload;
    common::Status error;
    std::vector<std::string_view> names;
    while (reader.Next(&h, &payload, &error) == LogReader::Result::kRecord) {
      if (!DecodeMessageTargets(payload, &names)) continue;
      for (auto name : names) {
        auto it = cursors.find(std::string(name));
        if (it != cursors.end() && h.seq >= it->second) ++out[it->first];
      }
    }
    EXPECT_TRUE(error.ok()) << error.ToString();
    return out;
  }

  Counts Count(const Counts& cursors, QueueCountStats* stats = nullptr) {
    Counts out;
    common::Status s = CountQueued(*log_, cursors, &out, stats);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  // Rewrites segment `index`'s footer as a release before per-target counts wrote it.
  void MakeVersionOneFooter(size_t index) {
    auto segs = test::SegmentFiles(options_.dir);
    ASSERT_LT(index, segs.size());
    int fd = ::open(segs[index].path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::optional<SegmentFooter> footer;
    ASSERT_TRUE(ReadSegmentFooter(FileSystem::Default(), fd, segs[index].size, &footer).ok());
    ::close(fd);
    ASSERT_TRUE(footer.has_value());
    const size_t old_size = SegmentFooterSize(*footer);
    footer->targets.reset();
    std::string payload = EncodeSegmentFooterPayload(*footer);
    std::string record(kRecordHeaderSize, '\0');
    EncodeRecordHeader(footer->end_seq, 0, kFlagFooter, payload, record.data());
    test::TruncateFile(segs[index].path, segs[index].size - old_size);
    test::OverwriteAt(segs[index].path, segs[index].size - old_size, record + payload);
  }

  // Records in segment `index` (from the file names).
  uint64_t RecordsIn(size_t index) {
    auto segs = test::SegmentFiles(options_.dir);
    uint64_t end = index + 1 < segs.size() ? segs[index + 1].first_seq : log_->readable_end();
    return end - segs[index].first_seq;
  }
};

TEST_F(QueueDepthTest, EmptyLogCountsZero) {
  ASSERT_TRUE(Open());
  EXPECT_EQ(Count({{"a", 1}, {"b", 7}}), (Counts{{"a", 0}, {"b", 0}}));
}

TEST_F(QueueDepthTest, SealedSegmentsAreCountedFromTheirFootersAlone) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 500));
  ASSERT_TRUE(Reopen());  // every segment sealed
  const Counts cursors = {{"a", 1}, {"b", 1}, {"c", 0}, {"nobody", 1}};
  QueueCountStats stats;
  Counts counted = Count(cursors, &stats);
  EXPECT_EQ(counted, ByReadingEverything(cursors));
  EXPECT_GT(counted["a"], 0u);
  EXPECT_EQ(counted["nobody"], 0u);
  EXPECT_EQ(stats.records_read, 0u);
  EXPECT_EQ(stats.segments_read, 0u);
  EXPECT_EQ(stats.segments_from_footers, log_->segment_count());
}

TEST_F(QueueDepthTest, OnlyTheSegmentHoldingACursorIsRead) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 500));
  ASSERT_TRUE(Reopen());
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_GE(segs.size(), 6u);
  // a: inside segment 2; b: exactly at segment 4's start; c: past the end.
  const uint64_t inside = segs[2].first_seq + RecordsIn(2) / 2;
  const Counts cursors = {{"a", inside}, {"b", segs[4].first_seq}, {"c", 501}};
  QueueCountStats stats;
  EXPECT_EQ(Count(cursors, &stats), ByReadingEverything(cursors));
  EXPECT_EQ(stats.segments_read, 1u);
  EXPECT_LE(stats.records_read, segs[3].first_seq - inside + 1);
}

// Every cursor position for one target, around and inside a few segments, with the other
// targets at fixed places.
TEST_F(QueueDepthTest, EqualsReadingEverythingForEveryCursor) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 150));
  ASSERT_TRUE(Reopen());
  for (uint64_t cursor = 0; cursor <= 152; ++cursor) {
    SCOPED_TRACE(cursor);
    const Counts cursors = {{"a", cursor}, {"b", 40}, {"c", 1}};
    ASSERT_EQ(Count(cursors), ByReadingEverything(cursors));
  }
}

TEST_F(QueueDepthTest, TheActiveSegmentIsRead) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 200));
  const Counts cursors = {{"a", 1}, {"b", 1}, {"c", 1}};
  QueueCountStats stats;
  EXPECT_EQ(Count(cursors, &stats), ByReadingEverything(cursors));
  EXPECT_EQ(stats.segments_read, 1u);
  EXPECT_EQ(stats.records_read, RecordsIn(log_->segment_count() - 1));
}

TEST_F(QueueDepthTest, SegmentsWithoutCountsAreReadOnceForAllTargets) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 500));
  Close();
  // Two adjacent segments and one further on, sealed by an older release.
  ASSERT_NO_FATAL_FAILURE(MakeVersionOneFooter(1));
  ASSERT_NO_FATAL_FAILURE(MakeVersionOneFooter(2));
  ASSERT_NO_FATAL_FAILURE(MakeVersionOneFooter(5));
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  ASSERT_EQ(report.unsealed_segments, 0u);
  const Counts cursors = {{"a", 1}, {"b", 1}, {"c", 1}};
  QueueCountStats stats;
  EXPECT_EQ(Count(cursors, &stats), ByReadingEverything(cursors));
  EXPECT_EQ(stats.segments_read, 3u);
  // Each record once, whatever the number of targets; at most one read ahead of a stretch.
  const uint64_t records = RecordsIn(1) + RecordsIn(2) + RecordsIn(5);
  EXPECT_GE(stats.records_read, records);
  EXPECT_LE(stats.records_read, records + 2);
  // Cursors inside them too.
  auto segs = test::SegmentFiles(options_.dir);
  const Counts inside = {{"a", segs[1].first_seq + 3}, {"b", segs[2].first_seq + 1}, {"c", 300}};
  EXPECT_EQ(Count(inside), ByReadingEverything(inside));
}

TEST_F(QueueDepthTest, CursorOlderThanEverythingStoredCountsAll) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 300));
  ASSERT_TRUE(Reopen());
  // Reclaim the first segments: every target's cursor moves past them.
  auto segs = test::SegmentFiles(options_.dir);
  options_.targets = {"a"};
  ASSERT_TRUE(Reopen());
  log_->SetCursor("a", segs[3].first_seq);
  ASSERT_TRUE(RunUntil([&] { return log_->first_seq() == segs[3].first_seq; }));
  const Counts cursors = {{"a", 1}, {"b", 0}};
  QueueCountStats stats;
  EXPECT_EQ(Count(cursors, &stats), ByReadingEverything(cursors));
  EXPECT_EQ(stats.records_read, 0u);
}

// The trust model: a sealed segment's footer is believed for the segments it spares
// reading; where records are read, one that cannot be read is not counted.
TEST_F(QueueDepthTest, DamagedRecordIsCountedFromTheFooterButNotWhenRead) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteMessages(1, 300));
  Close();
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_GE(segs.size(), 3u);
  // The last byte of segment 1's first record's payload.
  const uint64_t first_record = kSegmentHeaderSize;
  test::FlipBit(segs[1].path, first_record + kRecordHeaderSize + 10, 3);
  ASSERT_TRUE(Open());
  const Counts all = {{"a", 1}, {"b", 1}, {"c", 1}};
  Counts from_footers = Count(all);
  Counts read = ByReadingEverything(all);
  uint64_t a = from_footers["a"] + from_footers["b"] + from_footers["c"];
  uint64_t b = read["a"] + read["b"] + read["c"];
  EXPECT_GT(a, b) << "the footer counts the records a reader skips";
  const Counts inside = {{"a", segs[1].first_seq}, {"b", segs[1].first_seq + 1}, {"c", 1}};
  Counts with_b_reading = Count(inside);
  EXPECT_EQ(with_b_reading["b"], ByReadingEverything(inside)["b"]);
}

}  // namespace
}  // namespace sluice::buffer
