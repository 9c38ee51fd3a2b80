#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "buffer/log.h"
#include "buffer/segment.h"
#include "tests/buffer/fault_injection_fs.h"
#include "tests/buffer/log_fixture.h"
#include "tests/buffer/scratch_dir.h"
#include "tests/buffer/watchdog.h"

// Disk faults the log must survive or report: ENOSPC (answer "no space", keep what is
// stored readable, resume by itself) and an fdatasync error (fatal: fail, never retry).
namespace sluice::buffer {
namespace {

using common::Status;
using test::FaultInjectionFileSystem;
using test::PayloadFor;
using test::ReadRecord;

class DiskFaultTest : public test::LogFixture {
 protected:
  DiskFaultTest() {
    const std::string stash = scratch_.path() + "/stash";
    ::mkdir(stash.c_str(), 0755);
    fs_ = std::make_unique<FaultInjectionFileSystem>(options_.dir, stash);
    options_.fs = fs_.get();
    options_.segment_bytes = 4096;
    options_.targets = {"a"};
    options_.cursor_sync_interval = std::chrono::milliseconds(1);
  }
  ~DiskFaultTest() override { Close(); }  // the log goes before the file system it uses

  // Appends `n` records of `len` bytes numbered from `first`, then waits for all of them.
  // Returns the index in completions_ of the first one.
  size_t AppendAndWait(uint64_t first, size_t n, size_t len) {
    size_t from = completions_.size();
    for (size_t i = 0; i < n; ++i) {
      Status s = Append(PayloadFor(first + i, len));
      EXPECT_TRUE(s.ok()) << "append refused: " << s.ToString();
    }
    EXPECT_TRUE(WaitForCompletions());
    return from;
  }

  // Every file in seg/ is a segment the log lists, with a header that names it. The
  // writer drops a reclaimed segment from its list before the unlinker removes the
  // file, and lists a new one just after creating it: this waits for a moment when they
  // agree. A mismatch that lasts is the bug this looks for.
  void ExpectOnlyListedSegments() {
    auto all_listed = [&] {
      for (const auto& entry : std::filesystem::directory_iterator(options_.dir + "/seg")) {
        auto seq = ParseSegmentFileName(entry.path().filename().string());
        if (!seq || !log_->SegmentStartingAt(*seq).has_value()) return false;
      }
      return test::SegmentFiles(options_.dir).size() == log_->segment_count();
    };
    EXPECT_TRUE(RunUntil(all_listed)) << test::SegmentFiles(options_.dir).size() << " files, "
                                      << log_->segment_count() << " listed";
    for (const auto& entry : std::filesystem::directory_iterator(options_.dir + "/seg")) {
      const std::string name = entry.path().filename().string();
      auto seq = ParseSegmentFileName(name);
      ASSERT_TRUE(seq.has_value()) << "orphan file in seg/: " << name;
      const std::string content = test::ReadFile(entry.path().string());
      ASSERT_GE(content.size(), kSegmentHeaderSize) << name;
      EXPECT_EQ(DecodeSegmentHeader(content.data()), seq) << name << ": bad header";
      EXPECT_TRUE(log_->SegmentStartingAt(*seq).has_value()) << name << " is not listed";
    }
  }

  test::Watchdog watchdog_{std::chrono::seconds(60)};
  std::unique_ptr<FaultInjectionFileSystem> fs_;
};

// Records 1..n as PayloadFor(seq, len).
std::vector<ReadRecord> Records(uint64_t first, uint64_t last, size_t len) {
  std::vector<ReadRecord> out;
  for (uint64_t seq = first; seq <= last; ++seq) out.push_back({seq, PayloadFor(seq, len)});
  return out;
}

TEST_F(DiskFaultTest, AppendsBeyondCapacityFailWithNoSpaceAndResumeWhenRaised) {
  constexpr size_t kLen = 200;  // 232 bytes on disk: 17 records per 4 KiB segment
  ASSERT_TRUE(Open());
  AppendAndWait(1, 10, kLen);
  // Less than a segment left: the records that fit the active segment are stored, the
  // next roll's fallocate fails.
  fs_->SetCapacity(fs_->UsedBytes() + 1000);
  size_t from = AppendAndWait(11, 60, kLen);
  uint64_t last_ok = 10;
  size_t no_space = 0;
  for (size_t i = from; i < completions_.size(); ++i) {
    const auto& c = completions_[i];
    if (c.status.ok()) {
      EXPECT_EQ(no_space, 0u) << "an append succeeded after one found the disk full";
      EXPECT_EQ(c.seq, last_ok + 1) << "sequence numbers skip over failed appends";
      last_ok = c.seq;
    } else {
      EXPECT_TRUE(c.status.IsNoSpace()) << c.status.ToString();
      ++no_space;
    }
  }
  EXPECT_GT(no_space, 0u);
  EXPECT_GT(last_ok, 10u) << "the active segment had room";
  EXPECT_TRUE(log_->fatal_error().ok()) << "a full disk is not fatal";
  EXPECT_EQ(log_->readable_end(), last_ok + 1);

  // Still full: appends are taken, and answered with kNoSpace, never OK.
  from = AppendAndWait(last_ok + 1, 5, kLen);
  for (size_t i = from; i < completions_.size(); ++i) {
    EXPECT_TRUE(completions_[i].status.IsNoSpace()) << completions_[i].status.ToString();
  }
  // What was stored reads back; the failed rolls left nothing behind.
  EXPECT_EQ(ReadAll(1), Records(1, last_ok, kLen));
  ASSERT_NO_FATAL_FAILURE(ExpectOnlyListedSegments());

  fs_->SetCapacity(FaultInjectionFileSystem::kUnlimited);
  from = AppendAndWait(last_ok + 1, 40, kLen);
  for (size_t i = from; i < completions_.size(); ++i) {
    ASSERT_TRUE(completions_[i].status.ok()) << completions_[i].status.ToString();
    EXPECT_EQ(completions_[i].seq, last_ok + 1 + (i - from));
  }
  last_ok += 40;
  EXPECT_EQ(ReadAll(1), Records(1, last_ok, kLen));
  ASSERT_NO_FATAL_FAILURE(ExpectOnlyListedSegments());

  // And on the real file system after a restart.
  Close();
  options_.fs = nullptr;
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, last_ok + 1);
  EXPECT_EQ(ReadAll(1), Records(1, last_ok, kLen));
  ASSERT_NO_FATAL_FAILURE(ExpectOnlyListedSegments());
}

TEST_F(DiskFaultTest, RecordLargerThanASegmentOnAFullDisk) {
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write(PayloadFor(1, 100)), 1u);
  ASSERT_TRUE(Reopen());  // sealed: the next append starts a segment
  fs_->SetCapacity(fs_->UsedBytes() + 6000);
  // Needs its own segment of 8 KiB: no room.
  size_t from = AppendAndWait(2, 1, 8000);
  ASSERT_EQ(completions_.size(), from + 1);
  EXPECT_TRUE(completions_[from].status.IsNoSpace()) << completions_[from].status.ToString();
  // A small one still fits a regular segment (the big record's attempt left nothing).
  from = AppendAndWait(2, 1, 100);
  ASSERT_TRUE(completions_[from].status.ok()) << completions_[from].status.ToString();
  EXPECT_EQ(completions_[from].seq, 2u);
  EXPECT_EQ(ReadAll(1), Records(1, 2, 100));
  ASSERT_NO_FATAL_FAILURE(ExpectOnlyListedSegments());
}

// The load-levelling case: the target is down, the backlog fills the disk, the target
// comes back. Delivering the backlog frees whole segments, and appends resume without
// anyone making room.
TEST_F(DiskFaultTest, DrainingABacklogThatFilledTheDiskFreesItsSpace) {
  constexpr size_t kLen = 200;
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write(PayloadFor(1, kLen)), 1u);
  ASSERT_EQ(Write(PayloadFor(2, kLen)), 2u);
  log_->SetCursor("a", 2);  // the cursor file gets its slots before the disk fills
  Close();
  ASSERT_TRUE(Open());
  ASSERT_EQ(log_->LoadedCursor("a"), 2u);

  fs_->SetCapacity(fs_->UsedBytes() + 5 * 4096 + 1000);
  uint64_t last_ok = 2;
  for (int round = 0; round < 20 && completions_.back().status.ok(); ++round) {
    size_t from = AppendAndWait(last_ok + 1, 10, kLen);
    for (size_t i = from; i < completions_.size() && completions_[i].status.ok(); ++i) {
      last_ok = completions_[i].seq;
    }
  }
  ASSERT_TRUE(completions_.back().status.IsNoSpace()) << "the disk never filled";
  ASSERT_GE(log_->segment_count(), 5u);

  // The target delivers everything.
  EXPECT_EQ(ReadAll(2), Records(2, last_ok, kLen));
  log_->SetCursor("a", last_ok + 1);
  // The list shrinks at once; the files go on the unlinker thread, and only then is the
  // space free.
  ASSERT_TRUE(RunUntil([&] {
    return log_->segment_count() == 1 && test::SegmentFiles(options_.dir).size() == 1;
  })) << "reclaim never freed the delivered segments; fatal error: "
      << log_->fatal_error().ToString();
  size_t from = AppendAndWait(last_ok + 1, 30, kLen);
  for (size_t i = from; i < completions_.size(); ++i) {
    ASSERT_TRUE(completions_[i].status.ok()) << completions_[i].status.ToString();
    EXPECT_EQ(completions_[i].seq, last_ok + 1 + (i - from));
  }
  EXPECT_TRUE(log_->fatal_error().ok());
  ASSERT_NO_FATAL_FAILURE(ExpectOnlyListedSegments());
}

// A cursor file is created empty and grows to its two slots on its first store, so that
// store needs space. Disk full there is still disk full (DESIGN: ENOSPC "recover by
// itself"), not a fatal error that refuses every later append.
TEST_F(DiskFaultTest, FirstCursorStoreOnAFullDiskIsNotFatal) {
  ASSERT_TRUE(Open());
  for (uint64_t seq = 1; seq <= 5; ++seq) ASSERT_EQ(Write(PayloadFor(seq, 100)), seq);
  fs_->SetCapacity(fs_->UsedBytes());  // another tenant took the rest of the disk
  const uint64_t ops = fs_->mutating_ops();
  log_->SetCursor("a", 6);
  // The writer tries to store it within cursor_sync_interval.
  ASSERT_TRUE(RunUntil([&] { return fs_->mutating_ops() > ops; }));
  fs_->SetCapacity(FaultInjectionFileSystem::kUnlimited);  // space comes back
  log_->SetCursor("a", 6);
  Status s = Append(PayloadFor(6, 100));
  EXPECT_TRUE(s.ok()) << "the log refuses appends for good after ENOSPC on a cursor store: "
                      << s.ToString();
  if (s.ok()) {
    ASSERT_TRUE(WaitForCompletions());
    EXPECT_TRUE(completions_.back().status.ok()) << completions_.back().status.ToString();
  }
  EXPECT_TRUE(log_->fatal_error().ok()) << log_->fatal_error().ToString();
  Close();
  ASSERT_TRUE(Open());
  EXPECT_EQ(log_->LoadedCursor("a"), 6u);
}

TEST_F(DiskFaultTest, FdatasyncErrorFailsTheBatchAndIsFatal) {
  options_.segment_bytes = 1 << 20;  // no roll in the way: the next sync is the batch's
  ASSERT_TRUE(Open());
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_EQ(Write(PayloadFor(seq, 50)), seq);
  fs_->FailFdatasync(1, SegmentFileName(1));  // the next batch's sync
  size_t from = AppendAndWait(4, 1, 50);
  ASSERT_EQ(completions_.size(), from + 1);
  ASSERT_EQ(fs_->injected_fdatasync_errors(), 1u);
  const Status& failed = completions_[from].status;
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(failed.IsNoSpace()) << failed.ToString();
  EXPECT_FALSE(log_->fatal_error().ok());
  EXPECT_EQ(log_->readable_end(), 4u) << "the failed batch must never become readable";
  // Fatal: later appends fail at once, without being queued.
  bool ran = false;
  Status s = log_->Append(PayloadFor(5, 50), 0, [&](const Status&, uint64_t) { ran = true; });
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), log_->fatal_error().code());
  log_->RunCompletions();
  EXPECT_FALSE(ran);
  EXPECT_EQ(ReadAll(1), Records(1, 3, 50));
}

// Batches queued while the writer syncs the one that fails: each must fail, none may be
// written, and nothing may hang (failing them once took the log's mutex twice).
TEST_F(DiskFaultTest, AppendsQueuedBehindAFailedFdatasyncAllFail) {
  options_.segment_bytes = 1 << 20;
  options_.max_batch_bytes = 200;  // four records a batch: many batches queue up
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write(PayloadFor(1, 50)), 1u);
  fs_->FailFdatasync(1, SegmentFileName(1));
  fs_->PauseMutations();
  size_t from = completions_.size();
  ASSERT_TRUE(Append(PayloadFor(2, 50)).ok());
  // The writer has taken record 2 and waits to write it; the rest queue behind it.
  ASSERT_TRUE(RunUntil([&] { return fs_->paused_calls() == 1; }));
  for (uint64_t seq = 3; seq <= 40; ++seq) ASSERT_TRUE(Append(PayloadFor(seq, 50)).ok());
  fs_->ResumeMutations();
  ASSERT_TRUE(WaitForCompletions());
  ASSERT_EQ(fs_->injected_fdatasync_errors(), 1u);
  ASSERT_EQ(completions_.size(), from + 39);
  for (size_t i = from; i < completions_.size(); ++i) {
    EXPECT_FALSE(completions_[i].status.ok())
        << "append " << i << " acknowledged seq " << completions_[i].seq << " after a failed sync";
  }
  EXPECT_FALSE(log_->fatal_error().ok());
  EXPECT_EQ(log_->readable_end(), 2u);
  Close();
  options_.fs = nullptr;
  ASSERT_TRUE(Open());
  // The writer does not wait for syncs, so records after 2 may have reached the file
  // (none was acknowledged). Whatever a restart finds is what was appended, in order.
  uint64_t end = log_->readable_end();
  EXPECT_LE(end, 41u);
  EXPECT_EQ(ReadAll(1), Records(1, end - 1, 50));
}

TEST_F(DiskFaultTest, SegmentHeaderFdatasyncErrorLeavesNoHalfMadeSegment) {
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write(PayloadFor(1, 3000)), 1u);
  // The next record needs a new segment: its header's sync fails.
  fs_->FailFdatasync(1, SegmentFileName(2));
  size_t from = AppendAndWait(2, 1, 3000);
  ASSERT_EQ(completions_.size(), from + 1);
  ASSERT_EQ(fs_->injected_fdatasync_errors(), 1u);
  EXPECT_FALSE(completions_[from].status.ok());
  EXPECT_FALSE(log_->fatal_error().ok());
  ASSERT_NO_FATAL_FAILURE(ExpectOnlyListedSegments());
  EXPECT_EQ(test::SegmentFiles(options_.dir).size(), 1u);
  Close();
  options_.fs = nullptr;
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, 2u);
  EXPECT_EQ(Write(PayloadFor(2, 3000)), 2u);
}

TEST_F(DiskFaultTest, CursorFdatasyncErrorIsFatal) {
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write(PayloadFor(1, 50)), 1u);
  fs_->FailFdatasync(1, "cursors/a.cur");
  log_->SetCursor("a", 2);
  ASSERT_TRUE(RunUntil([&] { return !log_->fatal_error().ok(); }));
  EXPECT_EQ(fs_->injected_fdatasync_errors(), 1u);
  Status s = log_->Append(PayloadFor(2, 50), 0, [](const Status&, uint64_t) {});
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace sluice::buffer
