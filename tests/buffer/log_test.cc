#include "buffer/log.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "buffer/log_reader.h"
#include "buffer/record.h"
#include "buffer/segment.h"
#include "tests/buffer/close_audit.h"
#include "tests/buffer/counting_fs.h"
#include "tests/buffer/forwarding_fs.h"
#include "tests/buffer/log_fixture.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

using common::Status;
using std::chrono::milliseconds;
using test::PayloadFor;
using test::ReadRecord;

// Payload lengths that vary from 1 to 300 bytes, so padding and fill levels vary too.
size_t LengthFor(uint64_t seq) { return 1 + (seq * 7919) % 300; }

std::vector<ReadRecord> Expected(uint64_t from, uint64_t to_inclusive,
                                 size_t (*length)(uint64_t) = LengthFor) {
  std::vector<ReadRecord> out;
  for (uint64_t seq = from; seq <= to_inclusive; ++seq) {
    out.push_back(ReadRecord{seq, PayloadFor(seq, length(seq))});
  }
  return out;
}

// Runs `f` when the scope ends. Tests whose log callbacks capture locals declare one after
// those locals, closing the log first, so a failed ASSERT cannot leave the writer calling
// into a destroyed frame.
class ScopeExit {
 public:
  explicit ScopeExit(std::function<void()> f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  std::function<void()> f_;
};

struct GatedCommits;

class LogTest : public test::LogFixture {
 protected:
  // Wires `commits` into the options: on_commit records, and `wake` passes its gate.
  void GateCommits(GatedCommits* commits);

  // Writes records from..to (payloads PayloadFor(seq, LengthFor(seq))), all queued at once.
  void WriteRange(uint64_t from, uint64_t to_inclusive) {
    std::vector<std::string> payloads;
    for (uint64_t seq = from; seq <= to_inclusive; ++seq) {
      payloads.push_back(PayloadFor(seq, LengthFor(seq)));
    }
    std::vector<uint64_t> seqs = WriteAll(payloads);
    for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], from + i);
  }

  // Writes fixed-size records until the log has at least `segments` segments; returns the
  // last sequence written.
  uint64_t WriteSegments(size_t segments, size_t payload_len) {
    uint64_t seq = log_->readable_end();
    for (int guard = 0; log_->segment_count() < segments; ++guard) {
      if (guard == 100'000) {
        ADD_FAILURE() << "the log does not roll";
        return 0;
      }
      uint64_t got = Write(PayloadFor(seq, payload_len));
      EXPECT_EQ(got, seq);
      if (got != seq) return 0;
      ++seq;
    }
    return seq - 1;
  }

  // Waits until the log lists `count` segments and the files of segs[0, gone) are
  // unlinked (the list shrinks before the files go).
  [[nodiscard]] bool WaitForReclaim(size_t count, const std::vector<test::SegmentFile>& segs,
                                    size_t gone) {
    return RunUntil([&] {
      if (log_->segment_count() != count) return false;
      for (size_t i = 0; i < gone; ++i) {
        if (test::FileExists(segs[i].path)) return false;
      }
      return true;
    });
  }

  static uint64_t SizeOf(const std::vector<test::SegmentFile>& segs, size_t from, size_t to) {
    uint64_t total = 0;
    for (size_t i = from; i < to; ++i) total += segs[i].size;
    return total;
  }
};

// --- Appending and reading back ---------------------------------------------------------

TEST_F(LogTest, EmptyLog) {
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, 1u);
  EXPECT_EQ(report.first_seq, 1u);
  EXPECT_EQ(report.segments, 0u);
  EXPECT_EQ(log_->readable_end(), 1u);
  EXPECT_EQ(log_->first_seq(), 1u);
  EXPECT_EQ(log_->segment_count(), 0u);
  EXPECT_EQ(log_->bytes(), 0u);
  EXPECT_TRUE(ReadAll(1).empty());
  EXPECT_TRUE(test::FileExists(options_.dir + "/LOCK"));
}

TEST_F(LogTest, AppendCloseReopenRead) {
  const uint64_t kRecords = 500;
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, kRecords));
  for (size_t i = 0; i < completions_.size(); ++i) {
    EXPECT_TRUE(completions_[i].status.ok()) << completions_[i].status.ToString();
    EXPECT_EQ(completions_[i].seq, i + 1);  // contiguous from 1, in append order
  }
  EXPECT_EQ(log_->readable_end(), kRecords + 1);
  EXPECT_EQ(ReadAll(1), Expected(1, kRecords));

  RecoveryReport report;
  ASSERT_TRUE(Reopen(&report));
  EXPECT_EQ(report.next_seq, kRecords + 1);
  EXPECT_EQ(report.first_seq, 1u);
  EXPECT_EQ(report.truncated_bytes, 0u);
  EXPECT_EQ(report.removed_segments, 0u);
  EXPECT_EQ(log_->readable_end(), kRecords + 1);
  EXPECT_EQ(ReadAll(1), Expected(1, kRecords));
}

TEST_F(LogTest, EmptyAndBinaryPayloads) {
  ASSERT_TRUE(Open());
  const std::vector<std::string> payloads = {
      "", std::string(1, '\0'),  std::string("a\0b\0", 4), std::string(8, '\0'),
      "", std::string(9, '\xff')};
  std::vector<uint64_t> seqs = WriteAll(payloads);
  ASSERT_TRUE(Reopen());
  std::vector<ReadRecord> read = ReadAll(1);
  ASSERT_EQ(read.size(), payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(read[i].seq, i + 1);
    EXPECT_EQ(read[i].payload, payloads[i]) << i;
  }
}

TEST_F(LogTest, SequencesContinueAcrossReopens) {
  uint64_t next = 1;
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    RecoveryReport report;
    ASSERT_TRUE(Open(&report));
    EXPECT_EQ(report.next_seq, next);
    ASSERT_NO_FATAL_FAILURE(WriteRange(next, next + 9));
    next += 10;
    Close();
  }
  ASSERT_TRUE(Open());
  EXPECT_EQ(ReadAll(1), Expected(1, next - 1));
}

TEST_F(LogTest, ReopenWithoutAppendsChangesNothing) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 20));
  Close();
  auto before = test::SegmentFiles(options_.dir);
  for (int i = 0; i < 3; ++i) {
    RecoveryReport report;
    ASSERT_TRUE(Open(&report));
    EXPECT_EQ(report.next_seq, 21u);
    Close();
  }
  auto after = test::SegmentFiles(options_.dir);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].first_seq, before[i].first_seq);
    EXPECT_EQ(after[i].size, before[i].size);
  }
}

TEST_F(LogTest, BytesRecomputedAtOpenMatchLiveCount) {
  options_.segment_bytes = 4096;
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 100));
  const uint64_t live = log_->bytes();
  Close();  // seals the active segment: its footer
  auto segs = test::SegmentFiles(options_.dir);
  EXPECT_EQ(live + test::EmptyFooterSize(), SizeOf(segs, 0, segs.size()));
  ASSERT_TRUE(Open());
  EXPECT_EQ(log_->bytes(), SizeOf(segs, 0, segs.size()));
}

TEST_F(LogTest, CompletionsRunOnlyFromRunCompletions) {
  ASSERT_TRUE(Open());
  ASSERT_TRUE(Append("x").ok());
  // The writer may already be done, but the callback must wait for the owner thread.
  EXPECT_TRUE(completions_.empty());
  ASSERT_TRUE(WaitForCompletions());
  ASSERT_EQ(completions_.size(), 1u);
}

TEST_F(LogTest, AppendAfterCloseIsBusy) {
  ASSERT_TRUE(Open());
  log_->Close();
  Status s = log_->Append("late", 0, [](const Status&, uint64_t) { ADD_FAILURE(); });
  EXPECT_EQ(s.code(), Status::Code::kBusy) << s.ToString();
  log_->Close();  // idempotent
}

TEST_F(LogTest, CloseCompletesQueuedAppends) {
  ASSERT_TRUE(Open());
  for (uint64_t seq = 1; seq <= 200; ++seq) {
    ASSERT_TRUE(Append(PayloadFor(seq, LengthFor(seq))).ok());
  }
  log_->Close();  // runs the remaining callbacks on this thread
  ASSERT_EQ(completions_.size(), 200u);
  for (size_t i = 0; i < completions_.size(); ++i) {
    EXPECT_TRUE(completions_[i].status.ok());
    EXPECT_EQ(completions_[i].seq, i + 1);
  }
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(ReadAll(1), Expected(1, 200));
}

TEST_F(LogTest, RecordLargerThanBatchCap) {
  options_.max_batch_bytes = 1024;
  ASSERT_TRUE(Open());
  std::vector<std::string> payloads = {PayloadFor(1, 5000), PayloadFor(2, 10), PayloadFor(3, 3000)};
  std::vector<uint64_t> seqs = WriteAll(payloads);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3}));
  std::vector<ReadRecord> read = ReadAll(1);
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(read[0].payload, payloads[0]);
  EXPECT_EQ(read[2].payload, payloads[2]);
}

TEST_F(LogTest, OnCommitCountsEveryRecord) {
  std::atomic<size_t> committed{0};
  options_.on_commit = [&](common::Duration, size_t records) { committed += records; };
  ScopeExit close([&] { Close(); });  // before `fs` goes
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 300));
  EXPECT_EQ(committed.load(), 300u);
}

// Holds the writer thread inside its `wake` call, so that appends pile up behind it.
class WriterGate {
 public:
  // Blocks the first caller until Open(); later callers pass.
  void Pass() {
    std::unique_lock lock(mu_);
    if (used_) return;
    used_ = true;
    held_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  bool WaitUntilHeld(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return held_; });
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool used_ = false;
  bool held_ = false;
  bool open_ = false;
};

// The record count of every commit, with the first `wake` caller (the writer, or a
// syncer with fsync: batch) held at `gate` until the test opens it.
struct GatedCommits {
  WriterGate gate;
  std::mutex mu;
  std::vector<size_t> groups;

  std::vector<size_t> Groups() {
    std::lock_guard lock(mu);
    return groups;
  }
};

void LogTest::GateCommits(GatedCommits* commits) {
  options_.wake = [this, commits] {
    commits->gate.Pass();
    Wake();
  };
  options_.on_commit = [commits](common::Duration, size_t records) {
    std::lock_guard lock(commits->mu);
    commits->groups.push_back(records);
  };
}

TEST_F(LogTest, GroupCommitTakesEverythingQueuedWhileWriterWasBusy) {
  // The writer completes its own batches without fsync, so the gate in `wake` holds
  // the writer itself (with fsync: batch, a syncer calls `wake`).
  options_.fsync = FsyncPolicy::kNever;
  GatedCommits commits;
  GateCommits(&commits);
  ScopeExit close([&] {
    commits.gate.Open();
    Close();
  });
  ASSERT_TRUE(Open());
  ASSERT_TRUE(Append(PayloadFor(1, 5)).ok());
  ASSERT_TRUE(commits.gate.WaitUntilHeld(kDeadline));  // the writer is stuck after record 1
  // 2000 records of 1..20 bytes: about 6000 iovecs, more than IOV_MAX, in one pwritev run.
  for (uint64_t seq = 2; seq <= 2001; ++seq) {
    ASSERT_TRUE(Append(PayloadFor(seq, 1 + seq % 20)).ok());
  }
  commits.gate.Open();
  ASSERT_TRUE(WaitForCompletions());
  EXPECT_EQ(commits.Groups(), (std::vector<size_t>{1, 2000}));
  for (size_t i = 0; i < completions_.size(); ++i) {
    ASSERT_TRUE(completions_[i].status.ok());
    ASSERT_EQ(completions_[i].seq, i + 1);
  }
  ASSERT_TRUE(Reopen());
  std::vector<ReadRecord> read = ReadAll(1);
  ASSERT_EQ(read.size(), 2001u);
  for (uint64_t seq = 2; seq <= 2001; ++seq) {
    ASSERT_EQ(read[seq - 1], (ReadRecord{seq, PayloadFor(seq, 1 + seq % 20)}));
  }
}

TEST_F(LogTest, BatchCapLimitsGroupSize) {
  options_.max_batch_bytes = 1000;
  // Without fsync the writer itself completes each batch it writes (and calls `wake`),
  // so on_commit sees the write batches. (With fsync: batch, it sees syncs, which may
  // cover several: SyncsCoverEverythingWrittenBeforeThem.)
  options_.fsync = FsyncPolicy::kNever;
  GatedCommits commits;
  GateCommits(&commits);
  ScopeExit close([&] {
    commits.gate.Open();
    Close();
  });
  ASSERT_TRUE(Open());
  ASSERT_TRUE(Append(PayloadFor(1, 100)).ok());
  ASSERT_TRUE(commits.gate.WaitUntilHeld(kDeadline));
  for (uint64_t seq = 2; seq <= 101; ++seq) ASSERT_TRUE(Append(PayloadFor(seq, 100)).ok());
  commits.gate.Open();
  ASSERT_TRUE(WaitForCompletions());
  // 100 payload bytes each: at most 10 fit 1000 bytes, and the queue was full enough
  // that every group after the first is exactly that.
  EXPECT_EQ(commits.Groups(), (std::vector<size_t>{1, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10}));
}

// The writer does not wait for fdatasync: while the only syncer is held (inside its
// `wake`, after the first record's sync), the writer writes batch after batch, and the
// next sync covers all of them.
TEST_F(LogTest, SyncsCoverEverythingWrittenBeforeThem) {
  options_.max_batch_bytes = 1000;
  options_.syncers = 1;
  options_.overlap_min_records = 0;  // every sync on the syncer thread
  GatedCommits commits;
  GateCommits(&commits);
  ScopeExit close([&] {
    commits.gate.Open();
    Close();
  });
  ASSERT_TRUE(Open());
  ASSERT_TRUE(Append(PayloadFor(1, 100)).ok());
  ASSERT_TRUE(commits.gate.WaitUntilHeld(kDeadline));  // record 1 synced; the syncer is held
  for (uint64_t seq = 2; seq <= 101; ++seq) ASSERT_TRUE(Append(PayloadFor(seq, 100)).ok());
  // Ten write batches of ten (the batch cap), none of them synced yet.
  ASSERT_TRUE(
      RunUntil([&] { return log_->bytes() >= kSegmentHeaderSize + 101 * RecordSize(100); }));
  EXPECT_EQ(log_->readable_end(), 2u) << "written is not durable: not readable yet";
  commits.gate.Open();
  ASSERT_TRUE(WaitForCompletions());
  for (size_t i = 0; i < completions_.size(); ++i) {
    ASSERT_TRUE(completions_[i].status.ok());
    ASSERT_EQ(completions_[i].seq, i + 1);
  }
  EXPECT_EQ(commits.Groups(), (std::vector<size_t>{1, 100}));
}

// Which thread runs a record's fdatasync: the writer itself when little else waits
// (plain group commit, no hand-off), a syncer thread when more waits to be written.
// (Before Close(), which seals the segment on the calling thread.)
std::set<std::thread::id> SyncThreadsBesidesWriter(const test::CountingFileSystem& fs) {
  std::set<std::thread::id> writers, syncers;
  for (const auto& c : fs.Calls("/seg/")) {
    (c.op == test::CountingFileSystem::Call::Op::kWrite ? writers : syncers).insert(c.thread);
  }
  EXPECT_EQ(writers.size(), 1u) << "one writer thread";
  for (auto id : writers) syncers.erase(id);
  return syncers;
}

TEST_F(LogTest, WriterSyncsItselfWhenLittleWaits) {
  test::CountingFileSystem fs;
  ScopeExit close([&] { Close(); });  // before `fs` goes
  options_.fs = &fs;
  ASSERT_TRUE(Open());
  for (uint64_t seq = 1; seq <= 20; ++seq) ASSERT_EQ(Write(PayloadFor(seq, 40)), seq);
  EXPECT_TRUE(SyncThreadsBesidesWriter(fs).empty());
}

TEST_F(LogTest, SyncersSyncWhenMoreWaits) {
  test::CountingFileSystem fs;
  ScopeExit close([&] { Close(); });  // before `fs` goes
  options_.fs = &fs;
  options_.overlap_min_records = 0;  // "more waits" whatever waits
  ASSERT_TRUE(Open());
  for (uint64_t seq = 1; seq <= 20; ++seq) ASSERT_EQ(Write(PayloadFor(seq, 40)), seq);
  EXPECT_FALSE(SyncThreadsBesidesWriter(fs).empty());
}

// Holds the threads that Pass() until Release(): a slow call, released by the test.
class Gate {
 public:
  void Pass() {
    std::unique_lock lock(mu_);
    ++waiting_;
    cv_.wait(lock, [&] { return released_; });
    --waiting_;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int waiting() const {
    std::lock_guard lock(mu_);
    return waiting_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  int waiting_ = 0;
};

// The real file system, except that, once armed, the next fdatasync of a segment waits
// until Release() and then fails with EIO; the ones after it succeed at once.
class FirstSyncFailsLate final : public test::ForwardingFileSystem {
 public:
  Status Fdatasync(int fd, const std::string& what) override {
    {
      std::lock_guard lock(mu_);
      if (!armed_ || what.find(".log") == std::string::npos) {
        ++later_syncs_;
        return base_.Fdatasync(fd, what);
      }
      armed_ = false;
    }
    gate_.Pass();
    return Status::FromErrno("fdatasync " + what, EIO);
  }

  void Arm() {
    std::lock_guard lock(mu_);
    armed_ = true;
    later_syncs_ = 0;
  }
  void Release() { gate_.Release(); }
  bool holding() const { return gate_.waiting() > 0; }
  int later_syncs() const {
    std::lock_guard lock(mu_);
    return later_syncs_;
  }

 private:
  Gate gate_;
  mutable std::mutex mu_;
  bool armed_ = false;
  int later_syncs_ = 0;
};

// Syncs overlap: a later one may return first. Its success proves nothing while an
// earlier one may still fail (after a failed writeback the kernel may have dropped the
// pages, and the later fdatasync does not see them), so nothing is acknowledged until
// the earlier returns; when it fails, every record it or the later one covered fails.
TEST_F(LogTest, ALaterSyncReturningFirstAcknowledgesNothingBeforeTheEarlierFails) {
  FirstSyncFailsLate fs;
  ScopeExit close([&] {
    fs.Release();
    Close();
  });
  options_.fs = &fs;
  options_.syncers = 2;
  options_.overlap_min_records = 0;  // a second sync starts while the first runs
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write(PayloadFor(1, 50)), 1u);
  fs.Arm();
  ASSERT_TRUE(Append(PayloadFor(2, 50)).ok());
  log_->Submit();
  ASSERT_TRUE(RunUntil([&] { return fs.holding(); }));  // the first sync hangs
  ASSERT_TRUE(Append(PayloadFor(3, 50)).ok());
  log_->Submit();
  ASSERT_TRUE(RunUntil([&] { return fs.later_syncs() > 0; }));  // a later one succeeded
  log_->RunCompletions();
  EXPECT_EQ(completions_.size(), 1u) << "acknowledged on the later sync alone";
  EXPECT_EQ(log_->readable_end(), 2u);
  fs.Release();
  ASSERT_TRUE(WaitForCompletions());
  ASSERT_EQ(completions_.size(), 3u);
  EXPECT_FALSE(completions_[1].status.ok());
  EXPECT_FALSE(completions_[2].status.ok()) << "record 3 acknowledged after a failed sync";
  EXPECT_FALSE(log_->fatal_error().ok());
}

// --- Fsync policies --------------------------------------------------------------------

TEST_F(LogTest, EveryFsyncPolicyProducesReadableRecords) {
  for (FsyncPolicy policy : {FsyncPolicy::kBatch, FsyncPolicy::kInterval, FsyncPolicy::kNever}) {
    SCOPED_TRACE(static_cast<int>(policy));
    options_.dir = scratch_.path() + "/policy" + std::to_string(static_cast<int>(policy));
    options_.fsync = policy;
    options_.fsync_interval = milliseconds(1);
    options_.segment_bytes = 4096;  // rolls too
    ASSERT_TRUE(Open());
    ASSERT_NO_FATAL_FAILURE(WriteRange(1, 150));
    EXPECT_EQ(ReadAll(1), Expected(1, 150));
    RecoveryReport report;
    ASSERT_TRUE(Reopen(&report));
    EXPECT_EQ(report.next_seq, 151u);
    EXPECT_GT(report.segments, 3u);
    EXPECT_EQ(ReadAll(1), Expected(1, 150));
    ASSERT_NO_FATAL_FAILURE(WriteRange(151, 160));
    EXPECT_EQ(ReadAll(1), Expected(1, 160));
    Close();
  }
}

// --- Segment boundaries ----------------------------------------------------------------

TEST_F(LogTest, RecordExactlyFillsSegment) {
  options_.segment_bytes = 4096;
  ASSERT_TRUE(Open());
  const size_t fill = 4096 - kSegmentHeaderSize - kRecordHeaderSize;  // 4032, no padding
  ASSERT_EQ(Write(PayloadFor(1, fill)), 1u);
  EXPECT_EQ(log_->segment_count(), 1u);
  EXPECT_EQ(log_->bytes(), 4096u);
  ASSERT_EQ(Write(PayloadFor(2, 1)), 2u);  // no room left: a new segment
  EXPECT_EQ(log_->segment_count(), 2u);
  Close();
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].first_seq, 1u);
  EXPECT_EQ(segs[0].size, 4096u + test::EmptyFooterSize()) << "sealed: records, then the footer";
  EXPECT_EQ(segs[1].first_seq, 2u);
  EXPECT_EQ(segs[1].size, kSegmentHeaderSize + RecordSize(1) + test::EmptyFooterSize());
  ASSERT_TRUE(Open());
  std::vector<ReadRecord> read = ReadAll(1);
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].payload, PayloadFor(1, fill));
  EXPECT_EQ(read[1].payload, PayloadFor(2, 1));
}

TEST_F(LogTest, TwoRecordsExactlyFillSegment) {
  options_.segment_bytes = 4096;
  ASSERT_TRUE(Open());
  // 32 + (32 + 2000) + (32 + 2000) = 4096.
  std::vector<uint64_t> seqs =
      WriteAll({PayloadFor(1, 2000), PayloadFor(2, 2000), PayloadFor(3, 7)});
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3}));
  Close();
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].size, 4096u + test::EmptyFooterSize());
  EXPECT_EQ(segs[1].first_seq, 3u);
}

TEST_F(LogTest, RecordOneByteTooBigForSegmentGetsItsOwn) {
  options_.segment_bytes = 4096;
  ASSERT_TRUE(Open());
  const size_t over = 4096 - kSegmentHeaderSize - kRecordHeaderSize + 1;
  ASSERT_EQ(Write(PayloadFor(1, 3)), 1u);
  ASSERT_EQ(Write(PayloadFor(2, over)), 2u);
  ASSERT_EQ(Write(PayloadFor(3, 3)), 3u);
  Close();
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_EQ(segs[1].first_seq, 2u);
  EXPECT_EQ(segs[1].size, kSegmentHeaderSize + RecordSize(over) + test::EmptyFooterSize());
  EXPECT_EQ(segs[2].first_seq, 3u);
  ASSERT_TRUE(Open());
  std::vector<ReadRecord> read = ReadAll(1);
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(read[1].payload, PayloadFor(2, over));
}

TEST_F(LogTest, ReaderCaughtUpAtSegmentEndFollowsRoll) {
  options_.segment_bytes = 4096;
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write(PayloadFor(1, 4096 - 64)), 1u);
  LogReader reader(*log_, 1);
  RecordHeader h;
  std::string payload;
  Status error;
  ASSERT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kRecord);
  // Caught up exactly at the end of a full segment, holding it open.
  ASSERT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kCaughtUp);
  ASSERT_EQ(Write(PayloadFor(2, 100)), 2u);
  ASSERT_EQ(log_->segment_count(), 2u);
  ASSERT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kRecord) << error.ToString();
  EXPECT_EQ(h.seq, 2u);
  EXPECT_EQ(payload, PayloadFor(2, 100));
  EXPECT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kCaughtUp);
  EXPECT_EQ(reader.skipped(), 0u);
}

TEST_F(LogTest, FourKibSegmentsRollThousandsOfTimesUnderAFollowingReader) {
  options_.segment_bytes = 4096;
  // No fsync: the subject is rolling and reading, and 2000+ segment syncs would be slow.
  options_.fsync = FsyncPolicy::kNever;
  ASSERT_TRUE(Open());
  const uint64_t kRecords = 50'000;
  // On the heap: it must be gone before Reopen() frees the Log it reads.
  auto owned_reader = std::make_unique<LogReader>(*log_, 1);
  LogReader& reader = *owned_reader;
  uint64_t next_read = 1;
  RecordHeader h;
  std::string payload;
  Status error;
  // Reads whatever is readable now; the writer keeps going meanwhile.
  auto follow = [&]() -> bool {
    for (int guard = 0; guard < 1'000'000; ++guard) {
      auto r = reader.Next(&h, &payload, &error);
      if (r == LogReader::Result::kCaughtUp) return true;
      if (r == LogReader::Result::kError) {
        ADD_FAILURE() << error.ToString();
        return false;
      }
      const uint64_t end = log_->readable_end();
      if (h.seq != next_read || h.seq >= end || payload != PayloadFor(h.seq, LengthFor(h.seq))) {
        ADD_FAILURE() << "read seq " << h.seq << " expecting " << next_read << ", end " << end;
        return false;
      }
      ++next_read;
    }
    return false;
  };
  uint64_t next_append = 1;
  while (next_append <= kRecords) {
    for (int i = 0; i < 64 && next_append <= kRecords; ++i, ++next_append) {
      ASSERT_TRUE(Append(PayloadFor(next_append, LengthFor(next_append))).ok());
    }
    ASSERT_TRUE(follow());
    ASSERT_TRUE(WaitForCompletions());
    ASSERT_TRUE(follow());
    ASSERT_EQ(next_read, next_append);
  }
  EXPECT_EQ(reader.skipped(), 0u);
  for (size_t i = 0; i < completions_.size(); ++i) {
    ASSERT_TRUE(completions_[i].status.ok());
    ASSERT_EQ(completions_[i].seq, i + 1);
  }
  const size_t segments = log_->segment_count();
  EXPECT_GE(segments, 2000u);
  EXPECT_EQ(test::SegmentFiles(options_.dir).size(), segments);
  owned_reader.reset();

  RecoveryReport report;
  ASSERT_TRUE(Reopen(&report));
  EXPECT_EQ(report.next_seq, kRecords + 1);
  EXPECT_EQ(report.segments, segments);
  EXPECT_EQ(ReadAll(1), Expected(1, kRecords));
  // A reader starting in the middle of the log positions itself.
  EXPECT_EQ(ReadAll(kRecords - 777), Expected(kRecords - 777, kRecords));
}

TEST_F(LogTest, SmallSegmentsWithGroupCommit) {
  options_.segment_bytes = 4096;
  ASSERT_TRUE(Open());
  for (uint64_t from = 1; from <= 2000; from += 200) {
    ASSERT_NO_FATAL_FAILURE(WriteRange(from, from + 199));
  }
  EXPECT_GE(log_->segment_count(), 90u);
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(ReadAll(1), Expected(1, 2000));
}

// --- Readers ---------------------------------------------------------------------------

TEST_F(LogTest, ReaderNeverSeesUnpublishedRecords) {
  // on_commit runs on the writer thread after a batch is written (and, with kBatch,
  // synced) but before readable_end moves: the records are in the file, and a reader
  // must still not return them.
  for (FsyncPolicy policy : {FsyncPolicy::kBatch, FsyncPolicy::kInterval, FsyncPolicy::kNever}) {
    SCOPED_TRACE(static_cast<int>(policy));
    options_.dir = scratch_.path() + "/p" + std::to_string(static_cast<int>(policy));
    options_.fsync = policy;
    options_.segment_bytes = 4096;
    std::atomic<Log*> live{nullptr};
    std::mutex mu;
    std::vector<std::string> problems;
    size_t checks = 0;
    options_.on_commit = [&](common::Duration, size_t) {
      Log* log = live.load();
      if (log == nullptr) return;
      const uint64_t end = log->readable_end();
      LogReader reader(*log, 1);
      RecordHeader h;
      std::string payload;
      Status error;
      uint64_t count = 0;
      while (reader.Next(&h, &payload, &error) == LogReader::Result::kRecord) {
        if (h.seq >= end) {
          std::lock_guard lock(mu);
          problems.push_back("read seq " + std::to_string(h.seq) + " at end " +
                             std::to_string(end));
        }
        ++count;
      }
      std::lock_guard lock(mu);
      if (count != end - 1) {
        problems.push_back("read " + std::to_string(count) + " records, end " +
                           std::to_string(end));
      }
      ++checks;
    };
    ScopeExit close([&] { Close(); });  // before `fs` goes
    ASSERT_TRUE(Open());
    live = log_.get();
    for (uint64_t from = 1; from <= 300; from += 30) {
      ASSERT_NO_FATAL_FAILURE(WriteRange(from, from + 29));
    }
    Close();
    std::lock_guard lock(mu);
    EXPECT_GT(checks, 0u);
    EXPECT_TRUE(problems.empty()) << problems.front();
    options_.on_commit = nullptr;
  }
}

TEST_F(LogTest, ReaderReturnsHeaderFields) {
  ASSERT_TRUE(Open());
  ASSERT_TRUE(log_->Append("abc", 1'234'567'890'123ull, [](const Status&, uint64_t) {}).ok());
  LogReader reader(*log_, 1);
  RecordHeader h;
  std::string payload;
  Status error;
  ASSERT_TRUE(RunUntil([&] { return log_->readable_end() == 2; }));
  ASSERT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kRecord);
  EXPECT_EQ(h.seq, 1u);
  EXPECT_EQ(h.ingest_unix_ns, 1'234'567'890'123ull);
  EXPECT_EQ(h.payload_len, 3u);
  EXPECT_EQ(h.version, kRecordVersion);
  EXPECT_EQ(h.flags, 0u);
  EXPECT_EQ(payload, "abc");
  EXPECT_EQ(reader.next_seq(), 2u);
}

TEST_F(LogTest, ReaderStartingBeyondEndWaitsForIt) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 5));
  LogReader reader(*log_, 9);
  RecordHeader h;
  std::string payload;
  Status error;
  EXPECT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kCaughtUp);
  ASSERT_NO_FATAL_FAILURE(WriteRange(6, 12));
  for (uint64_t seq = 9; seq <= 12; ++seq) {
    ASSERT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kRecord) << seq;
    EXPECT_EQ(h.seq, seq);
    EXPECT_EQ(payload, PayloadFor(seq, LengthFor(seq)));
  }
  EXPECT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kCaughtUp);
}

TEST_F(LogTest, ReaderStartingAtZeroStartsAtOldest) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 5));
  EXPECT_EQ(ReadAll(0), Expected(1, 5));
}

TEST_F(LogTest, ReaderStartingMidSegment) {
  options_.segment_bytes = 4096;
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 100));
  for (uint64_t from : {2u, 17u, 50u, 99u, 100u, 101u}) {
    SCOPED_TRACE(from);
    EXPECT_EQ(ReadAll(from), Expected(from, 100));
  }
  // At and just before every segment boundary.
  for (const auto& seg : test::SegmentFiles(options_.dir)) {
    for (uint64_t from : {seg.first_seq - 1, seg.first_seq, seg.first_seq + 1}) {
      SCOPED_TRACE(from);
      EXPECT_EQ(ReadAll(from), Expected(std::max<uint64_t>(from, 1), 100));
    }
  }
}

TEST_F(LogTest, MissingSegmentFileIsAReaderError) {
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 5));
  ASSERT_TRUE(Reopen());
  ASSERT_NO_FATAL_FAILURE(WriteRange(6, 10));
  ASSERT_EQ(::unlink(SegmentPath(1).c_str()), 0);  // taken away behind the log's back
  LogReader reader(*log_, 1);
  RecordHeader h;
  std::string payload;
  Status error;
  EXPECT_EQ(reader.Next(&h, &payload, &error), LogReader::Result::kError);
  EXPECT_FALSE(error.ok());
}

// --- Lock ------------------------------------------------------------------------------

TEST_F(LogTest, SecondOpenOfSameDirIsBusy) {
  ASSERT_TRUE(Open());
  std::unique_ptr<Log> second;
  Status s = Log::Open(options_, &second);
  EXPECT_EQ(s.code(), Status::Code::kBusy) << s.ToString();
  EXPECT_NE(s.ToString().find("LOCK"), std::string::npos) << s.ToString();
  EXPECT_EQ(second, nullptr);
  // The failed open disturbed nothing.
  ASSERT_EQ(Write("still mine"), 1u);
  Close();
  s = Log::Open(options_, &second);
  ASSERT_TRUE(s.ok()) << s.ToString();
  second->Close();
}

TEST_F(LogTest, FailedLockClosesNoDescriptorTwice) {
  ASSERT_TRUE(Open());
  std::unique_ptr<Log> second;
  test::CloseAudit audit;
  Status s = Log::Open(options_, &second);
  ASSERT_EQ(s.code(), Status::Code::kBusy) << s.ToString();
  // A second close(2) of the LOCK descriptor can close whatever another thread was
  // given that number in between, e.g. the first log's active segment.
  EXPECT_EQ(audit.bad_closes(), 0);
}

// --- Cursors, reclaim, max_bytes --------------------------------------------------------

TEST_F(LogTest, CursorIsStoredOnClose) {
  options_.targets = {"a"};
  options_.cursor_sync_interval = std::chrono::hours(1);
  ASSERT_TRUE(Open());
  EXPECT_EQ(log_->LoadedCursor("a"), 1u);
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 10));
  log_->SetCursor("a", 7);
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(log_->LoadedCursor("a"), 7u);
}

TEST_F(LogTest, NewTargetStartsAtOldestRecord) {
  options_.targets = {"a"};
  ASSERT_TRUE(Open());
  ASSERT_NO_FATAL_FAILURE(WriteRange(1, 10));
  options_.targets = {"a", "b"};
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(log_->LoadedCursor("b"), 1u);
  EXPECT_EQ(log_->LoadedCursor("unknown"), log_->first_seq());
}

TEST_F(LogTest, ReclaimUnlinksSegmentsBelowCursor) {
  options_.segment_bytes = 4096;
  options_.targets = {"a"};
  options_.cursor_sync_interval = milliseconds(1);
  ASSERT_TRUE(Open());
  const uint64_t last = WriteSegments(7, 500);
  ASSERT_GT(last, 0u);
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_EQ(segs.size(), 7u);
  const uint64_t before = log_->bytes();

  // Cursor at the first record of segment 4: segments 0..3 hold only finished records.
  const uint64_t cursor = segs[4].first_seq;
  log_->SetCursor("a", cursor);
  ASSERT_TRUE(WaitForReclaim(3, segs, 4));
  for (size_t i = 0; i < segs.size(); ++i) {
    EXPECT_EQ(test::FileExists(segs[i].path), i >= 4) << segs[i].path;
  }
  EXPECT_EQ(log_->bytes(), before - SizeOf(segs, 0, 4));
  EXPECT_EQ(log_->first_seq(), cursor);
  EXPECT_EQ(ReadAll(1), Expected(cursor, last, [](uint64_t) -> size_t { return 500; }));

  RecoveryReport report;
  ASSERT_TRUE(Reopen(&report));
  EXPECT_EQ(report.first_seq, cursor);
  EXPECT_EQ(report.segments, 3u);
  EXPECT_EQ(report.next_seq, last + 1);
  EXPECT_EQ(log_->LoadedCursor("a"), cursor);
  // Closing sealed the segment that was active: its footer is the difference.
  EXPECT_EQ(log_->bytes(), before - SizeOf(segs, 0, 4) + test::EmptyFooterSize());
}

TEST_F(LogTest, CursorOneShortOfSegmentStartKeepsThatSegment) {
  options_.segment_bytes = 4096;
  options_.targets = {"a"};
  options_.cursor_sync_interval = milliseconds(1);
  ASSERT_TRUE(Open());
  ASSERT_GT(WriteSegments(7, 500), 0u);
  auto segs = test::SegmentFiles(options_.dir);
  // The last record of segment 3 is not finished: segment 3 must stay.
  log_->SetCursor("a", segs[4].first_seq - 1);
  ASSERT_TRUE(RunUntil([&] { return log_->segment_count() == 4; }));
  Close();  // a final sync and reclaim; nothing more may go
  for (size_t i = 0; i < segs.size(); ++i) {
    EXPECT_EQ(test::FileExists(segs[i].path), i >= 3) << segs[i].path;
  }
}

TEST_F(LogTest, ReclaimWaitsForSlowestTarget) {
  options_.segment_bytes = 4096;
  options_.targets = {"fast", "slow"};
  options_.cursor_sync_interval = milliseconds(1);
  ASSERT_TRUE(Open());
  const uint64_t last = WriteSegments(8, 500);
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_EQ(segs.size(), 8u);

  log_->SetCursor("fast", last + 1);
  log_->SetCursor("slow", segs[2].first_seq);
  ASSERT_TRUE(WaitForReclaim(6, segs, 2));
  EXPECT_FALSE(test::FileExists(segs[1].path));
  EXPECT_TRUE(test::FileExists(segs[2].path));

  log_->SetCursor("slow", segs[5].first_seq);
  ASSERT_TRUE(WaitForReclaim(3, segs, 5));
  EXPECT_TRUE(test::FileExists(segs[5].path));

  ASSERT_TRUE(Reopen());
  EXPECT_EQ(log_->LoadedCursor("fast"), last + 1);
  EXPECT_EQ(log_->LoadedCursor("slow"), segs[5].first_seq);
  EXPECT_EQ(log_->first_seq(), segs[5].first_seq);
}

// The real file system, except that Unlink waits until Release(): a slow unlink, as
// when ext4 frees a 64 MiB segment's extents.
class HeldUnlinks final : public test::ForwardingFileSystem {
 public:
  Status Unlink(const std::string& p) override {
    gate_.Pass();
    return base_.Unlink(p);
  }

  void Release() { gate_.Release(); }
  int held() const { return gate_.waiting(); }

 private:
  Gate gate_;
};

// Unlinking a reclaimed segment takes ext4 several ms (it frees the file's extents in the
// journal): the writer does not wait for it, so appends are still acknowledged while an
// unlink hangs, and the files go once it returns.
TEST_F(LogTest, AppendsAreAcknowledgedWhileAReclaimedSegmentIsUnlinked) {
  HeldUnlinks fs;
  ScopeExit close([&] {
    fs.Release();
    Close();
  });
  options_.fs = &fs;
  options_.segment_bytes = 4096;
  options_.targets = {"a"};
  options_.cursor_sync_interval = milliseconds(1);
  ASSERT_TRUE(Open());
  const uint64_t last = WriteSegments(4, 500);
  ASSERT_GT(last, 0u);
  const auto segs = test::SegmentFiles(options_.dir);
  ASSERT_EQ(segs.size(), 4u);
  log_->SetCursor("a", last + 1);  // every segment but the active one may go
  ASSERT_TRUE(RunUntil([&] { return fs.held() > 0; })) << "no unlink started";
  for (uint64_t seq = last + 1; seq <= last + 20; ++seq) {
    ASSERT_EQ(Write(PayloadFor(seq, 500)), seq) << "an append waited for the unlink";
  }
  EXPECT_GT(fs.held(), 0);
  fs.Release();
  // Checked with stat, not by listing the directory while the unlinker works in it: a
  // directory descriptor of this thread reusing the number of one the unlinker just
  // closed is a race to TSan, which does not see opendir create it.
  EXPECT_TRUE(RunUntil([&] {
    for (size_t i = 0; i + 1 < segs.size(); ++i) {
      if (test::FileExists(segs[i].path)) return false;
    }
    return true;
  })) << "the reclaimed files were not removed";
}

TEST_F(LogTest, ActiveSegmentIsNeverReclaimed) {
  options_.segment_bytes = 4096;
  options_.targets = {"a"};
  options_.cursor_sync_interval = milliseconds(1);
  ASSERT_TRUE(Open());
  const uint64_t last = WriteSegments(3, 500);
  auto segs = test::SegmentFiles(options_.dir);
  ASSERT_EQ(segs.size(), 3u);
  log_->SetCursor("a", last + 1);  // everything delivered
  ASSERT_TRUE(WaitForReclaim(1, segs, 2));
  Close();
  EXPECT_EQ(test::SegmentFiles(options_.dir).size(), 1u);
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, last + 1);
  EXPECT_EQ(Write("after"), last + 1);
}

TEST_F(LogTest, MaxBytesRefusesThenAcceptsAfterReclaim) {
  options_.segment_bytes = 4096;
  options_.max_bytes = 4 * 4096;
  options_.targets = {"a"};
  options_.cursor_sync_interval = milliseconds(1);
  ASSERT_TRUE(Open());
  const size_t kLen = 500;
  Status s;
  uint64_t seq = 1;
  for (; seq < 1000; ++seq) {
    s = Append(PayloadFor(seq, kLen));
    if (!s.ok()) break;
    ASSERT_TRUE(WaitForCompletions());
    ASSERT_TRUE(completions_.back().status.ok());
  }
  ASSERT_EQ(s.code(), Status::Code::kBusy) << s.ToString();
  EXPECT_GT(log_->bytes() + RecordSize(kLen), log_->max_bytes());
  EXPECT_GE(log_->segment_count(), 4u);
  // Still full on a second try: the refusal stored nothing.
  EXPECT_EQ(Append(PayloadFor(seq, kLen)).code(), Status::Code::kBusy);

  auto segs = test::SegmentFiles(options_.dir);
  log_->SetCursor("a", seq);  // every stored record delivered
  ASSERT_TRUE(WaitForReclaim(1, segs, segs.size() - 1));
  EXPECT_LE(log_->bytes(), 4096u);
  ASSERT_EQ(Write(PayloadFor(seq, kLen)), seq);
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(ReadAll(seq), Expected(seq, seq, [](uint64_t) -> size_t { return 500; }));
}

TEST_F(LogTest, MaxBytesCountsQueuedAppends) {
  options_.max_bytes = 10 * RecordSize(100) + kSegmentHeaderSize;
  ASSERT_TRUE(Open());
  // Nothing waited for: the limit must hold for what is queued, not only what is written.
  size_t accepted = 0;
  for (int i = 0; i < 50; ++i) {
    if (Append(PayloadFor(static_cast<uint64_t>(i + 1), 100)).ok()) ++accepted;
  }
  EXPECT_EQ(accepted, 10u);
  ASSERT_TRUE(WaitForCompletions());
  EXPECT_LE(log_->bytes(), options_.max_bytes);
}

// --- Explicit submit (the proxy's mode) -------------------------------------------------

TEST_F(LogTest, ExplicitSubmitHandsAppendsOverTogether) {
  std::mutex mu;
  std::vector<size_t> groups;
  options_.explicit_submit = true;
  options_.on_commit = [&](common::Duration, size_t records) {
    std::lock_guard lock(mu);
    groups.push_back(records);
  };
  ASSERT_TRUE(Open());
  for (uint64_t seq = 1; seq <= 100; ++seq) ASSERT_TRUE(Append(PayloadFor(seq, 50)).ok());
  // Staged on this thread: the writer has not seen any of them.
  EXPECT_EQ(log_->readable_end(), 1u);
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(groups.empty());
  }
  log_->Submit();
  ASSERT_TRUE(WaitForCompletions());
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(groups, (std::vector<size_t>{100}));  // one lock, one batch
  }
  for (size_t i = 0; i < completions_.size(); ++i) {
    ASSERT_TRUE(completions_[i].status.ok());
    ASSERT_EQ(completions_[i].seq, i + 1);
  }
}

TEST_F(LogTest, ExplicitSubmitCountsStagedBytesAgainstMaxBytes) {
  options_.explicit_submit = true;
  options_.max_bytes = 10 * RecordSize(100) + kSegmentHeaderSize;
  ASSERT_TRUE(Open());
  size_t accepted = 0;
  for (int i = 0; i < 50; ++i) {
    if (Append(PayloadFor(static_cast<uint64_t>(i + 1), 100)).ok()) ++accepted;
  }
  EXPECT_EQ(accepted, 10u);
  log_->Submit();
  ASSERT_TRUE(WaitForCompletions());
  EXPECT_LE(log_->bytes(), options_.max_bytes);
}

TEST_F(LogTest, CloseSubmitsStagedAppends) {
  options_.explicit_submit = true;
  ASSERT_TRUE(Open());
  for (uint64_t seq = 1; seq <= 50; ++seq) ASSERT_TRUE(Append(PayloadFor(seq, 30)).ok());
  log_->Close();
  ASSERT_EQ(completions_.size(), 50u);
  for (const auto& c : completions_) EXPECT_TRUE(c.status.ok()) << c.status.ToString();
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(ReadAll(1), Expected(1, 50, [](uint64_t) -> size_t { return 30; }));
}

// --- Fatal errors ----------------------------------------------------------------------

// Lowers RLIMIT_FSIZE for the scope (and ignores SIGXFSZ), so that growing a file past
// the limit fails with EFBIG: a deterministic I/O error from a real system call.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old_);
    rlimit lower = old_;
    lower.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lower);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int);
};

TEST_F(LogTest, SegmentCreationErrorIsFatal) {
  options_.segment_bytes = 1 << 20;
  ASSERT_TRUE(Open());
  {
    FileSizeLimit limit(64 << 10);  // fallocate of a 1 MiB segment fails
    ASSERT_TRUE(Append("doomed").ok());
    ASSERT_TRUE(WaitForCompletions());
  }
  ASSERT_EQ(completions_.size(), 1u);
  EXPECT_FALSE(completions_[0].status.ok());
  EXPECT_FALSE(completions_[0].status.IsNoSpace()) << completions_[0].status.ToString();
  EXPECT_FALSE(log_->fatal_error().ok());
  // Fatal means fatal: no more appends, even with the cause gone.
  Status s = log_->Append("after", 0, [](const Status&, uint64_t) {});
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), log_->fatal_error().code());
  EXPECT_EQ(log_->readable_end(), 1u);
  Close();
  // The half-made segment was removed, and a restart starts clean.
  EXPECT_TRUE(test::SegmentFiles(options_.dir).empty());
  RecoveryReport report;
  ASSERT_TRUE(Open(&report));
  EXPECT_EQ(report.next_seq, 1u);
  EXPECT_EQ(Write("again"), 1u);
}

}  // namespace
}  // namespace sluice::buffer
