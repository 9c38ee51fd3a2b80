// LogReader's read-ahead: how many reads reach the disk, and that none reaches bytes the
// writer has not published yet.
#include "buffer/log_reader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "buffer/segment.h"
#include "tests/buffer/counting_fs.h"
#include "tests/buffer/log_fixture.h"

namespace sluice::buffer {
namespace {

using common::Status;
using test::PayloadFor;
using test::ReadRecord;

size_t LengthFor(uint64_t seq) { return 1 + (seq * 7919) % 300; }

class LogReaderTest : public test::LogFixture {
 protected:
  LogReaderTest() {
    options_.fs = &fs_;
    options_.fsync = FsyncPolicy::kNever;  // the subject is reading
  }
  ~LogReaderTest() override { Close(); }  // before fs_ goes

  void WriteRange(uint64_t from, uint64_t to_inclusive) {
    std::vector<std::string> payloads;
    for (uint64_t seq = from; seq <= to_inclusive; ++seq) {
      payloads.push_back(PayloadFor(seq, LengthFor(seq)));
    }
    auto seqs = WriteAll(payloads);
    ASSERT_EQ(seqs.front(), from);
    ASSERT_EQ(seqs.back(), to_inclusive);
  }

  // Reads what `reader` has, checking each record against what WriteRange wrote.
  void ExpectRead(LogReader* reader, uint64_t from, uint64_t to_inclusive) {
    RecordHeader h;
    std::string payload;
    Status error;
    for (uint64_t seq = from; seq <= to_inclusive; ++seq) {
      ASSERT_EQ(reader->Next(&h, &payload, &error), LogReader::Result::kRecord)
          << "seq " << seq << ": " << error.ToString();
      ASSERT_EQ(h.seq, seq);
      ASSERT_EQ(payload, PayloadFor(seq, LengthFor(seq))) << seq;
    }
    ASSERT_EQ(reader->Next(&h, &payload, &error), LogReader::Result::kCaughtUp);
    ASSERT_EQ(reader->skipped(), 0u);
  }

  test::CountingFileSystem fs_;
};

TEST_F(LogReaderTest, ReadingInOrderTakesOneReadPerWindow) {
  ASSERT_TRUE(Open());
  constexpr uint64_t kRecords = 20'000;
  uint64_t bytes = 0;
  for (uint64_t seq = 1; seq <= kRecords; ++seq) bytes += RecordSize(LengthFor(seq));
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, kRecords));
  fs_.ClearReads();
  LogReader reader(*log_, 1);
  ASSERT_NO_FATAL_FAILURE(ExpectRead(&reader, 1, kRecords));
  // Two reads per record without the window (40 000 here); with it, one per window,
  // less the record at its end that did not fit and is read again.
  const uint64_t per_window = ReadAhead::kDefaultCapacity - RecordSize(300);
  EXPECT_LE(fs_.Reads("/seg/").size(), bytes / per_window + 2) << bytes << " bytes";
}

TEST_F(LogReaderTest, PositioningMidSegmentReadsThroughTheWindowToo) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 5000));
  fs_.ClearReads();
  LogReader reader(*log_, 4000);
  ASSERT_NO_FATAL_FAILURE(ExpectRead(&reader, 4000, 5000));
  EXPECT_LE(fs_.Reads("/seg/").size(), 8u);
}

// The window must never hold bytes the writer has not published: the fallocated tail
// reads as zeros until then, and a window holding them would end the log early.
TEST_F(LogReaderTest, NeverReadsPastWhatIsReadable) {
  for (size_t window : {size_t{64}, size_t{1024}, ReadAhead::kDefaultCapacity}) {
    SCOPED_TRACE(window);
    options_.dir = scratch_.path() + "/w" + std::to_string(window);
    options_.segment_bytes = 4096;
    std::atomic<const Log*> live{nullptr};
    std::vector<std::string> problems;  // written by the reading thread: this one
    fs_.set_on_read([&](const test::CountingFileSystem::Read& r) {
      const Log* log = live.load();
      size_t slash = r.path.rfind('/');
      auto first = slash == std::string::npos ? std::nullopt
                                              : ParseSegmentFileName(r.path.substr(slash + 1));
      if (log == nullptr || !first) return;
      // Nothing appends while the test reads: what is readable now is what was readable
      // when the reader last asked.
      auto span = log->ReadableIn(*first);
      if (!span || r.offset + r.n > span->bytes) {
        problems.push_back(r.path + ": read [" + std::to_string(r.offset) + ", " +
                           std::to_string(r.offset + r.n) + ") past readable " +
                           std::to_string(span ? span->bytes : 0));
      }
    });
    ASSERT_TRUE(Open());
    live = log_.get();
    {
      LogReader reader(*log_, 1, window);
      for (uint64_t from = 1; from <= 600; from += 40) {
        ASSERT_NO_FATAL_FAILURE(WriteRange(from, from + 39));
        ASSERT_NO_FATAL_FAILURE(ExpectRead(&reader, from, from + 39));
      }
    }
    live = nullptr;
    Close();
    fs_.set_on_read(nullptr);
    EXPECT_GE(test::SegmentFiles(options_.dir).size(), 10u);
    EXPECT_TRUE(problems.empty()) << problems.size() << " reads, first: " << problems.front();
  }
}

// A reader caught up in the middle of a window, then fed record by record: each new
// record is read again from disk, never served from the window filled before it was
// written.
TEST_F(LogReaderTest, FollowsTheWriterRecordByRecord) {
  ASSERT_TRUE(Open());
  LogReader reader(*log_, 1);
  for (uint64_t seq = 1; seq <= 200; ++seq) {
    ASSERT_NO_FATAL_FAILURE(WriteRange(seq, seq));
    ASSERT_NO_FATAL_FAILURE(ExpectRead(&reader, seq, seq));
  }
}

}  // namespace
}  // namespace sluice::buffer
