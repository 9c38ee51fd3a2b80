#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "buffer/log.h"
#include "buffer/log_reader.h"
#include "buffer/record.h"
#include "buffer/segment.h"
#include "tests/buffer/log_fixture.h"
#include "tests/buffer/scratch_dir.h"

// Recovery: what survives a crash, a torn tail or a damaged disk, and what the log does
// after it. The damage is made byte by byte on copies of a log closed cleanly.
namespace sluice::buffer {
namespace {

using common::Status;
using test::PayloadFor;
using test::ReadRecord;

enum class Damage { kTruncate, kZeroFill, kGarbageFill };

// Records 1..5 live in a sealed segment, 6..10 in the tail; later appends are 50 bytes.
// The tail's last three records need 7, 0 and 5 bytes of padding.
constexpr size_t kLengths[10] = {13, 40, 11, 24, 21, 21, 16, 9, 32, 3};
size_t LengthOf(uint64_t seq) { return seq <= 10 ? kLengths[seq - 1] : 50; }
ReadRecord RecordOf(uint64_t seq) { return ReadRecord{seq, PayloadFor(seq, LengthOf(seq))}; }

std::vector<ReadRecord> Records(uint64_t from, uint64_t to_inclusive) {
  std::vector<ReadRecord> out;
  for (uint64_t seq = from; seq <= to_inclusive; ++seq) out.push_back(RecordOf(seq));
  return out;
}

class LogRecoveryTest : public test::LogFixture {
 protected:
  // Writes records from..to and closes: each Open/Close round leaves one sealed segment.
  void WriteSegment(uint64_t from, uint64_t to_inclusive) {
    ASSERT_TRUE(Open());
    for (uint64_t seq = from; seq <= to_inclusive; ++seq) {
      ASSERT_EQ(Write(RecordOf(seq).payload), seq);
    }
    Close();
  }

  // Byte offsets of records first..last within the segment starting at `first`, plus the
  // end offset as a last element.
  static std::vector<uint64_t> Offsets(uint64_t first, uint64_t last) {
    std::vector<uint64_t> out;
    uint64_t at = kSegmentHeaderSize;
    for (uint64_t seq = first; seq <= last; ++seq) {
      out.push_back(at);
      at += RecordSize(LengthOf(seq));
    }
    out.push_back(at);
    return out;
  }

  // A fresh copy of `pristine` at scratch/work; returns its path.
  std::string WorkCopy(const std::string& pristine) {
    std::string work = scratch_.path() + "/work";
    test::RemoveTree(work);
    test::CopyTree(pristine, work);
    return work;
  }

  static void Apply(Damage kind, const std::string& path, uint64_t at) {
    const std::string content = test::ReadFile(path);
    switch (kind) {
      case Damage::kTruncate:
        test::TruncateFile(path, at);
        break;
      case Damage::kZeroFill:
        test::OverwriteAt(path, at, std::string(content.size() - at, '\0'));
        break;
      case Damage::kGarbageFill: {
        // Every byte changed, so the damage starts exactly at `at`.
        std::mt19937 rng(static_cast<unsigned>(at));
        std::string garbage = content.substr(at);
        for (auto& c : garbage) c = static_cast<char>(c ^ (1 + rng() % 255));
        test::OverwriteAt(path, at, garbage);
        break;
      }
    }
  }

  // For each byte offset within the tail's last three records: damage a copy of the log
  // from there to the end, reopen it, and check that exactly the complete records before
  // the damage survive and that the log goes on from them.
  void SweepTail(Damage kind) {
    ASSERT_NO_FATAL_FAILURE(WriteSegment(1, 5));
    ASSERT_NO_FATAL_FAILURE(WriteSegment(6, 10));
    const std::string pristine = options_.dir;
    auto segs = test::SegmentFiles(pristine);
    ASSERT_EQ(segs.size(), 2u);
    ASSERT_EQ(segs[1].first_seq, 6u);
    const std::vector<uint64_t> offset = Offsets(6, 10);  // offset[k]: record 6+k
    const uint64_t tail_size = offset.back();
    ASSERT_EQ(segs[1].size, tail_size + test::EmptyFooterSize())
        << "a sealed segment is exactly its records and its footer";
    // Recovery does not depend on the policy; skipping syncs keeps 400 reopens quick.
    options_.fsync = FsyncPolicy::kNever;

    for (uint64_t at = offset[2]; at < tail_size; ++at) {
      SCOPED_TRACE(testing::Message() << "damage from byte " << at);
      options_.dir = WorkCopy(pristine);
      Apply(kind, options_.dir + "/seg/" + SegmentFileName(6), at);

      // A record survives when its header and payload lie before the damage (its
      // padding is not checked).
      uint64_t kept = 0;
      while (kept < 5 && offset[kept] + kRecordHeaderSize + LengthOf(6 + kept) <= at) ++kept;
      const uint64_t end = offset[kept];
      // Fill damage runs to the end of the file, through the footer.
      const uint64_t damaged_size =
          kind == Damage::kTruncate ? at : tail_size + test::EmptyFooterSize();
      const uint64_t next = 6 + kept;

      RecoveryReport report;
      ASSERT_TRUE(Open(&report));
      EXPECT_EQ(report.next_seq, next);
      EXPECT_EQ(report.first_seq, 1u);
      EXPECT_EQ(report.segments, 2u);
      EXPECT_EQ(report.removed_segments, 0u);
      EXPECT_EQ(report.truncated_bytes, damaged_size > end ? damaged_size - end : 0);
      EXPECT_EQ(log_->readable_end(), next);

      // Appending goes on right after the survivors, in a fresh segment.
      ASSERT_EQ(Write(PayloadFor(next, 50)), next);
      ASSERT_EQ(Write(PayloadFor(next + 1, 50)), next + 1);
      EXPECT_TRUE(test::FileExists(SegmentPath(next)));
      std::vector<ReadRecord> expected = Records(1, next - 1);
      expected.push_back(ReadRecord{next, PayloadFor(next, 50)});
      expected.push_back(ReadRecord{next + 1, PayloadFor(next + 1, 50)});
      uint64_t skipped = 0;
      EXPECT_EQ(ReadAll(1, &skipped), expected);
      EXPECT_EQ(skipped, 0u);

      // And the repaired log reopens as it is.
      RecoveryReport again;
      ASSERT_TRUE(Reopen(&again));
      EXPECT_EQ(again.next_seq, next + 2);
      EXPECT_EQ(again.truncated_bytes, 0u);
      EXPECT_EQ(ReadAll(1), expected);
      Close();
    }
    options_.dir = pristine;
  }
};

TEST_F(LogRecoveryTest, TruncatedTail) { SweepTail(Damage::kTruncate); }
TEST_F(LogRecoveryTest, ZeroFilledTail) { SweepTail(Damage::kZeroFill); }
TEST_F(LogRecoveryTest, GarbageTail) { SweepTail(Damage::kGarbageFill); }

TEST_F(LogRecoveryTest, ZeroExtendedTail) {
  // A crash before the tail was sealed leaves its fallocated zeros after the records.
  ASSERT_NO_FATAL_FAILURE(WriteSegment(1, 5));
  const std::string tail = SegmentPath(1);
  const uint64_t size = test::FileSize(tail);
  test::OverwriteAt(tail, size, std::string(8192, '\0'));
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, 6u);
  EXPECT_EQ(report.truncated_bytes, 8192u);
  EXPECT_EQ(test::FileSize(tail), size);
  EXPECT_EQ(log_->bytes(), size);
  EXPECT_EQ(ReadAll(1), Records(1, 5));
}

TEST_F(LogRecoveryTest, TailWithOnlyHeaderIsRemoved) {
  // A crash right after the writer created a segment, at each point of its creation.
  ASSERT_NO_FATAL_FAILURE(WriteSegment(1, 5));
  const std::string pristine = options_.dir;
  char header[kSegmentHeaderSize];
  EncodeSegmentHeader(6, header);
  const std::string whole(header, sizeof(header));
  const std::vector<std::pair<const char*, std::string>> states = {
      {"empty", ""},
      {"fallocated, no header", std::string(4096, '\0')},
      {"torn header", whole.substr(0, 13)},
      {"header only", whole},
      {"header and fallocated zeros", whole + std::string(4096 - whole.size(), '\0')},
  };
  for (const auto& [name, content] : states) {
    SCOPED_TRACE(name);
    options_.dir = WorkCopy(pristine);
    const std::string crashed = SegmentPath(6);
    test::WriteFile(crashed, content);
    RecoveryReport report;
    ASSERT_TRUE(Open(&report));
    EXPECT_EQ(report.removed_segments, 1u);
    EXPECT_EQ(report.segments, 1u);
    EXPECT_EQ(report.next_seq, 6u);
    EXPECT_FALSE(test::FileExists(crashed));
    EXPECT_EQ(log_->segment_count(), 1u);
    EXPECT_EQ(log_->bytes(), test::FileSize(SegmentPath(1)));
    // The name is free again for the segment that really starts at 6.
    ASSERT_EQ(Write(RecordOf(6).payload), 6u);
    EXPECT_EQ(ReadAll(1), Records(1, 6));
    Close();
  }
  options_.dir = pristine;
}

TEST_F(LogRecoveryTest, OnlySegmentWithOnlyHeaderIsRemoved) {
  ASSERT_TRUE(Open());
  Close();
  ASSERT_EQ(::mkdir((options_.dir + "/seg").c_str(), 0755) == 0 || errno == EEXIST, true);
  char header[kSegmentHeaderSize];
  EncodeSegmentHeader(1, header);
  test::WriteFile(SegmentPath(1), std::string(header, sizeof(header)));
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.removed_segments, 1u);
  EXPECT_EQ(report.segments, 0u);
  EXPECT_EQ(report.next_seq, 1u);
  EXPECT_EQ(log_->bytes(), 0u);
  EXPECT_EQ(Write("first"), 1u);
}

TEST_F(LogRecoveryTest, UnrelatedFilesInSegmentDirAreIgnored) {
  ASSERT_NO_FATAL_FAILURE(WriteSegment(1, 5));
  test::WriteFile(options_.dir + "/seg/notes.txt", "hello");
  test::WriteFile(options_.dir + "/seg/00000000000000000009.log.tmp", "partial");
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.segments, 1u);
  EXPECT_EQ(report.next_seq, 6u);
  EXPECT_EQ(ReadAll(1), Records(1, 5));
}

TEST_F(LogRecoveryTest, DamagedTailSegmentHeaderKeepsAckedRecords) {
  // Records 6..10 were acknowledged: their segment's header was synced before any of
  // them was written. A bit flip in that header later is damage to durable data, not a
  // crash during creation; the acknowledged records must not be deleted with it.
  ASSERT_NO_FATAL_FAILURE(WriteSegment(1, 5));
  ASSERT_NO_FATAL_FAILURE(WriteSegment(6, 10));
  const std::string tail = SegmentPath(6);
  test::FlipBit(tail, 20, 3);  // inside first_seq
  std::unique_ptr<Log> log;
  RecoveryReport report;
  Status s = Log::Open(options_, &log, &report);
  if (!s.ok()) return;  // refusing to start is an acceptable answer; losing data is not
  log->Close();
  log.reset();
  EXPECT_TRUE(test::FileExists(tail)) << "acknowledged records 6..10 were unlinked";
  EXPECT_EQ(report.removed_segments, 0u);
  EXPECT_EQ(report.damaged_headers, 1u);
  EXPECT_EQ(report.next_seq, 11u) << "sequence numbers 6..10 would be handed out again";
  ASSERT_TRUE(Open());
  EXPECT_EQ(ReadAll(1), Records(1, 10));
}

TEST_F(LogRecoveryTest, CursorAheadOfLostTailMovesNextSeq) {
  // Under FsyncPolicy::kNever a power loss can drop records the OS had not written yet,
  // while a cursor file (always fdatasynced) already says they were delivered. Sequence
  // numbers below that cursor must never be handed out again, and the report must tell
  // the sequence the next append really gets. Target "b" has not moved: nothing is
  // reclaimed.
  options_.targets = {"a", "b"};
  ASSERT_NO_FATAL_FAILURE(WriteSegment(1, 5));
  ASSERT_TRUE(Open());
  for (uint64_t seq = 6; seq <= 10; ++seq) ASSERT_EQ(Write(RecordOf(seq).payload), seq);
  log_->SetCursor("a", 11);
  Close();
  test::TruncateFile(SegmentPath(6), Offsets(6, 10)[2]);  // records 8..10 lost
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(log_->LoadedCursor("a"), 11u);
  EXPECT_EQ(log_->readable_end(), 11u);
  const uint64_t seq = Write(PayloadFor(11, 50));
  EXPECT_EQ(seq, 11u) << "a sequence below a durable cursor was reused";
  EXPECT_EQ(report.next_seq, seq) << "RecoveryReport::next_seq is not what the next append got";
  // A target still behind reads what survived, then skips the lost records.
  uint64_t skipped = 0;
  std::vector<ReadRecord> expected = Records(1, 7);
  expected.push_back(ReadRecord{11, PayloadFor(11, 50)});
  EXPECT_EQ(ReadAll(1, &skipped), expected);
  EXPECT_EQ(skipped, 3u);
}

TEST_F(LogRecoveryTest, LeftoverSegmentsBelowCursorsAreSweptAtStart) {
  // A crash between syncing the cursors and unlinking the segments they free leaves
  // those segments behind; the next start removes them.
  options_.targets = {"a"};
  options_.cursor_sync_interval = std::chrono::hours(1);
  ASSERT_NO_FATAL_FAILURE(WriteSegment(1, 5));
  ASSERT_NO_FATAL_FAILURE(WriteSegment(6, 10));
  ASSERT_NO_FATAL_FAILURE(WriteSegment(11, 15));
  const std::string leftover = test::ReadFile(SegmentPath(1));
  ASSERT_TRUE(Open());
  log_->SetCursor("a", 11);
  Close();  // stores the cursor and reclaims segments 1 and 6
  ASSERT_FALSE(test::FileExists(SegmentPath(1)));
  test::WriteFile(SegmentPath(1), leftover);  // as if the unlink never happened
  options_.cursor_sync_interval = std::chrono::milliseconds(1);
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  ASSERT_TRUE(
      RunUntil([&] { return log_->segment_count() == 1 && !test::FileExists(SegmentPath(1)); }));
  EXPECT_EQ(log_->first_seq(), 11u);
  EXPECT_EQ(ReadAll(1), Records(11, 15));
}

TEST_F(LogRecoveryTest, OpenOnAPathThatIsAFileFails) {
  test::WriteFile(options_.dir, "not a directory");
  std::unique_ptr<Log> log;
  Status s = Log::Open(options_, &log);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(log, nullptr);
}

// --- Damage inside sealed segments ------------------------------------------------------

class SealedSegmentDamageTest : public LogRecoveryTest {
 protected:
  void SetUp() override {
    // Three segments: 1..5 and 6..10 sealed, 11..15 the tail (later appends: 50 bytes,
    // so LengthOf covers 11..15 too).
    ASSERT_NO_FATAL_FAILURE(WriteSegment(1, 5));
    ASSERT_NO_FATAL_FAILURE(WriteSegment(6, 10));
    ASSERT_NO_FATAL_FAILURE(WriteSegment(11, 15));
    pristine_ = options_.dir;
    options_.fsync = FsyncPolicy::kNever;  // quick reopens; recovery is the subject
  }

  std::vector<ReadRecord> AllBut(uint64_t lost_from, uint64_t lost_to) {
    std::vector<ReadRecord> out = Records(1, lost_from - 1);
    for (const auto& r : Records(lost_to + 1, 15)) out.push_back(r);
    return out;
  }

  std::string pristine_;
};

TEST_F(SealedSegmentDamageTest, EveryBitFlipInARecordIsSkippedAndCounted) {
  const std::vector<uint64_t> offset = Offsets(1, 5);
  const uint64_t start = offset[2];  // record 3
  const uint64_t stop = start + kRecordHeaderSize + LengthOf(3);
  for (uint64_t at = start; at < stop; ++at) {
    SCOPED_TRACE(testing::Message() << "flip in byte " << at);
    options_.dir = WorkCopy(pristine_);
    test::FlipBit(SegmentPath(1), at, static_cast<int>(at % 8));
    RecoveryReport report;
    ASSERT_TRUE(Open(&report));  // startup does not scan sealed segments, and succeeds
    EXPECT_EQ(report.next_seq, 16u);
    uint64_t skipped = 0;
    // The rest of the damaged segment cannot be framed; later segments read fine.
    EXPECT_EQ(ReadAll(1, &skipped), AllBut(3, 5));
    EXPECT_EQ(skipped, 3u);
    ASSERT_EQ(Write(PayloadFor(16, 50)), 16u);
    Close();
  }
}

TEST_F(SealedSegmentDamageTest, DamagedSealedSegmentHeaderIsHarmless) {
  options_.dir = WorkCopy(pristine_);
  test::FlipBit(SegmentPath(6), 3, 1);  // in the magic
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, 16u);
  uint64_t skipped = 0;
  EXPECT_EQ(ReadAll(1, &skipped), Records(1, 15));
  EXPECT_EQ(skipped, 0u);
}

TEST_F(SealedSegmentDamageTest, ReaderStartingPastTheDamageInSameSegment) {
  options_.dir = WorkCopy(pristine_);
  test::FlipBit(SegmentPath(6), Offsets(6, 10)[1] + 40, 0);  // record 7's payload
  ASSERT_TRUE(Open());
  uint64_t skipped = 0;
  std::vector<ReadRecord> read = ReadAll(9, &skipped);
  EXPECT_EQ(read, Records(11, 15));
  EXPECT_EQ(skipped, 2u);
  read = ReadAll(1, &skipped);
  EXPECT_EQ(read, AllBut(7, 10));
  EXPECT_EQ(skipped, 4u);
}

TEST_F(SealedSegmentDamageTest, ZeroedRestOfSealedSegment) {
  options_.dir = WorkCopy(pristine_);
  const std::string seg = SegmentPath(6);
  const uint64_t at = Offsets(6, 10)[2];  // from record 8 on
  test::OverwriteAt(seg, at, std::string(test::FileSize(seg) - at, '\0'));
  ASSERT_TRUE(Open());
  uint64_t skipped = 0;
  EXPECT_EQ(ReadAll(1, &skipped), AllBut(8, 10));
  EXPECT_EQ(skipped, 3u);
}

TEST_F(SealedSegmentDamageTest, TruncatedSealedSegment) {
  options_.dir = WorkCopy(pristine_);
  test::TruncateFile(SegmentPath(1), Offsets(1, 5)[4] + 10);  // mid record 5
  ASSERT_TRUE(Open());
  uint64_t skipped = 0;
  EXPECT_EQ(ReadAll(1, &skipped), AllBut(5, 5));
  EXPECT_EQ(skipped, 1u);
}

// --- Process death ---------------------------------------------------------------------

class ProcessDeathTest : public LogRecoveryTest {
 protected:
  // Runs `child` in a forked process that then dies without closing anything, the way a
  // crash or SIGKILL would leave the log (the page cache survives a process death).
  void Die(const std::function<bool()>& child) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ::_exit(child() ? 0 : 1);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << "the child's own checks failed";
  }

  std::vector<ReadRecord> Expected(uint64_t from, uint64_t to_inclusive) {
    std::vector<ReadRecord> out;
    for (uint64_t seq = from; seq <= to_inclusive; ++seq) {
      out.push_back(ReadRecord{seq, PayloadFor(seq, 1 + seq % 200)});
    }
    return out;
  }
  std::vector<std::string> Payloads(uint64_t from, uint64_t to_inclusive) {
    std::vector<std::string> out;
    for (const auto& r : Expected(from, to_inclusive)) out.push_back(r.payload);
    return out;
  }
};

TEST_F(ProcessDeathTest, AckedRecordsSurvive) {
  options_.segment_bytes = 4096;
  ASSERT_NO_FATAL_FAILURE(Die([&] {
    if (!Open()) return false;
    std::vector<uint64_t> seqs = WriteAll(Payloads(1, 100));
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (seqs[i] != i + 1) return false;
    }
    return true;  // dies with the tail unsealed
  }));
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, 101u);
  EXPECT_GT(report.truncated_bytes, 0u) << "the unsealed tail keeps its fallocated zeros";
  EXPECT_EQ(ReadAll(1), Expected(1, 100));
  ASSERT_EQ(Write(PayloadFor(101, 1 + 101 % 200)), 101u);
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(ReadAll(1), Expected(1, 101));
}

TEST_F(ProcessDeathTest, DeathMidBatchLeavesAPrefix) {
  options_.segment_bytes = 4096;
  ASSERT_NO_FATAL_FAILURE(Die([&] {
    if (!Open()) return false;
    std::vector<uint64_t> seqs = WriteAll(Payloads(1, 100));
    if (seqs.back() != 100) return false;
    for (const auto& p : Payloads(101, 400)) {
      if (!Append(p).ok()) return false;
    }
    return true;  // dies while the writer is busy with 101..400
  }));
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  // Whatever made it is a contiguous, intact prefix that includes every acked record.
  EXPECT_GE(report.next_seq, 101u);
  EXPECT_LE(report.next_seq, 401u);
  EXPECT_EQ(ReadAll(1), Expected(1, report.next_seq - 1));
  const uint64_t next = report.next_seq;
  ASSERT_EQ(Write(PayloadFor(next, 1 + next % 200)), next);
}

}  // namespace
}  // namespace sluice::buffer
