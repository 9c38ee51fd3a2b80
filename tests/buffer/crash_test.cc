#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/dead_letter.h"
#include "buffer/log.h"
#include "buffer/log_reader.h"
#include "tests/buffer/fault_injection_fs.h"
#include "tests/buffer/log_fixture.h"
#include "tests/buffer/scratch_dir.h"
#include "tests/buffer/watchdog.h"

// Power loss at every point of a workload: for crash point N the N+1st mutating file
// system call (and everything after it) fails, the disk is put back to what was synced,
// and the reopened log must still hold every record it acknowledged at or above its
// lowest cursor, in order and intact, every dead letter it acknowledged, and cursors
// that pass nothing the consumer did not finish. The workload (appends of varied sizes,
// a consumer per target that moves cursors so segments are reclaimed, dead letters and
// purges) is the same for every N of a seed; only the crash moves.
namespace sluice::buffer {
namespace {

using common::Status;
using test::FaultInjectionFileSystem;
using Loss = FaultInjectionFileSystem::Loss;

// Totals over the whole binary, printed once at the end.
std::atomic<uint64_t> total_crash_points{0};
std::atomic<uint64_t> total_acks_checked{0};

class CrashTotals : public testing::Environment {
 public:
  void TearDown() override {
    if (total_crash_points.load() == 0) return;
    std::printf("[ crashes  ] %llu simulated crash points, %llu acknowledged records checked\n",
                static_cast<unsigned long long>(total_crash_points.load()),
                static_cast<unsigned long long>(total_acks_checked.load()));
  }
};
[[maybe_unused]] testing::Environment* const kTotals =
    testing::AddGlobalTestEnvironment(new CrashTotals);

// The id-th append's payload: "#<id>;" and filler that depends on the id, `len` bytes
// (more when the prefix alone is longer). A record read back names the append it came from.
std::string PayloadOf(uint64_t id, size_t len) {
  std::string prefix = "#" + std::to_string(id) + ";";
  return prefix + test::PayloadFor(id, len > prefix.size() ? len - prefix.size() : 0);
}

std::optional<uint64_t> IdOf(std::string_view payload) {
  if (payload.empty() || payload[0] != '#') return std::nullopt;
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(payload.data() + 1, payload.data() + payload.size(), id);
  if (ec != std::errc() || end == payload.data() + payload.size() || *end != ';') {
    return std::nullopt;
  }
  return id;
}

struct Workload {
  std::vector<std::string> targets;
  size_t max_batch_bytes = 1u << 20;
  int rounds = 20;             // bursts of appends per life
  bool reopen_midway = false;  // a clean Close and Open halfway through each life
  Loss loss = Loss::kAllUnsynced;
  uint64_t seed = 1;
};

class CrashTest : public test::LogFixture {
 protected:
  // What the test knows about the log, across crashes: every append (by id), which were
  // acknowledged at which sequence, and how far the consumer let each cursor go.
  struct Model {
    std::vector<size_t> lengths;                 // by append id
    std::map<uint64_t, uint64_t> acked;          // seq -> id
    std::map<std::string, uint64_t> cursor_set;  // highest SetCursor per target
    // Per target, the dead letters acknowledged since the last purge was asked for.
    std::map<std::string, std::set<uint64_t>> dead_letters;
    size_t outstanding = 0;  // appends not completed yet
  };

  CrashTest() {
    options_.segment_bytes = 4096;      // a roll every few records
    options_.unlink_step_bytes = 1024;  // reclaimed ones cut in steps: crashes fall between
    options_.fsync = FsyncPolicy::kBatch;
    options_.cursor_sync_interval = std::chrono::milliseconds(1);
    runs_ = MakeRunsDir();
  }
  ~CrashTest() override {
    readers_.clear();
    Close();
    if (!runs_.empty()) test::RemoveTree(runs_);
  }

  // Where the runs live: on tmpfs when the machine has one. The fault-injecting file
  // system decides what is durable, not the disk, and each run creates, fallocates and
  // unlinks a dozen files: on a busy disk those metadata updates take 20 times longer
  // than everything else in the run.
  std::string MakeRunsDir() {
    struct stat st;
    std::string base = scratch_.path();
    if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0) {
      base = "/dev/shm";
    }
    std::string tmpl = base + "/sluice-crash-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return scratch_.path();
    return tmpl;
  }

  // Runs crash points 1, 2, ... for the last of `lives` (the earlier lives crash at the
  // given points) until the workload completes without reaching the crash point.
  void Sweep(const Workload& w, std::vector<uint64_t> earlier_lives = {}) {
    options_.targets = w.targets;
    options_.max_batch_bytes = w.max_batch_bytes;
    test::Watchdog watchdog(std::chrono::seconds(60));
    for (uint64_t n = 1;; ++n) {
      SCOPED_TRACE(testing::Message() << "crash point " << n);
      std::vector<uint64_t> lives = earlier_lives;
      lives.push_back(n);
      watchdog.Arm("seed " + std::to_string(w.seed) + ", crash point" + Lives(lives));
      bool crashed = false;
      RunCrashPoint(w, lives, &crashed);
      ++crash_points_;
      if (HasFailure()) {
        ADD_FAILURE() << "first failing crash point: " << n << " (lives:" << Lives(lives)
                      << ", seed " << w.seed << ")";
        break;
      }
      if (!crashed) break;  // the workload ran to the end: every point is covered
      if (n >= 20'000) {
        ADD_FAILURE() << "the workload never completes";
        break;
      }
    }
  }

  // Sweeps the workload once per seed: many short workloads cover more than one long
  // one, and cost less, since each crash point replays the workload up to it.
  void SweepSeeds(Workload w, std::initializer_list<uint64_t> seeds,
                  std::vector<uint64_t> earlier_lives = {}) {
    for (uint64_t seed : seeds) {
      w.seed = seed;
      Sweep(w, earlier_lives);
      if (HasFailure()) return;
    }
  }

  void TearDown() override {
    if (crash_points_ == 0) return;
    total_crash_points += crash_points_;
    total_acks_checked += acks_checked_;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start_)
                        .count();
    std::printf("[ crashes  ] %s: %llu crash points, %llu acknowledged records checked, %lld ms\n",
                testing::UnitTest::GetInstance()->current_test_info()->name(),
                static_cast<unsigned long long>(crash_points_),
                static_cast<unsigned long long>(acks_checked_), static_cast<long long>(ms));
  }

  static std::string Lives(const std::vector<uint64_t>& lives) {
    std::string out;
    for (uint64_t n : lives) out += " " + std::to_string(n);
    return out;
  }

  // One run in a fresh directory: each life opens the log on a fault-injecting file
  // system that crashes after lives[i] mutating calls, runs the workload until it ends or
  // the crash stops it, and reverts the disk; then the log is checked on the real one.
  void RunCrashPoint(const Workload& w, const std::vector<uint64_t>& lives, bool* last_crashed) {
    const std::string run = runs_ + "/run";
    test::RemoveTree(run);
    ASSERT_EQ(::mkdir(run.c_str(), 0755), 0);
    const std::string stash = run + "/stash";
    ASSERT_EQ(::mkdir(stash.c_str(), 0755), 0);
    options_.dir = run + "/log";
    model_ = Model{};
    std::mt19937_64 rng(w.seed);  // the same workload for every crash point

    for (size_t life = 0; life < lives.size(); ++life) {
      FaultInjectionFileSystem fs(options_.dir, stash);
      fs.set_track_directories(true);  // seg/ and the rest must be synced into place too
      fs.CrashAfter(lives[life]);
      fs_ = &fs;
      RunLife(w, rng);
      readers_.clear();
      Close();  // part of the workload: Close syncs cursors and seals the tail
      fs_ = nullptr;
      options_.fs = nullptr;
      *last_crashed = fs.crashed();
      if (HasFatalFailure()) return;
      // A run that completes still loses what Close left unsynced.
      fs.SimulateCrash();
      Status s = fs.RevertToDurableState(w.loss, lives[life] * 7919 + life);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    // Checked on the plain POSIX file system. Its fsyncs prove nothing here and cost more
    // than the rest of a run on a busy disk, so most runs check through a fault-free
    // FaultInjectionFileSystem (POSIX underneath, fsync skipped); every 100th and the
    // last use FileSystem::Default() itself.
    const bool real = !*last_crashed || lives.back() % 100 == 0;
    FaultInjectionFileSystem no_sync(options_.dir, stash);
    options_.fs = real ? nullptr : &no_sync;
    Verify();
    Close();
    options_.fs = nullptr;
    test::RemoveTree(run);
  }

  void RunLife(const Workload& w, std::mt19937_64& rng) {
    options_.fs = fs_;
    if (!OpenOnFaultyDisk()) return;
    StartReaders();
    for (int round = 0; round < w.rounds && !fs_->crashed(); ++round) {
      const int burst = 1 + static_cast<int>(rng() % 6);
      for (int k = 0; k < burst; ++k) {
        if (!AppendOne(NextLength(rng))) break;
      }
      ASSERT_TRUE(RunUntil([&] { return model_.outstanding == 0; }));
      Deliver(rng, burst);
      if (w.reopen_midway && round == w.rounds / 2 && !fs_->crashed()) {
        readers_.clear();
        Close();
        if (!OpenOnFaultyDisk()) return;
        StartReaders();
      }
    }
    readers_.clear();
  }

  bool OpenOnFaultyDisk() {
    open_status_ = Log::Open(options_, &log_);
    if (!open_status_.ok()) {
      log_.reset();
      EXPECT_TRUE(fs_->crashed()) << "Open failed without a crash: " << open_status_.ToString();
      return false;
    }
    CheckCursorsAgainstModel();
    return true;
  }

  void StartReaders() {
    readers_.clear();
    for (const auto& t : options_.targets) {
      readers_[t] = std::make_unique<LogReader>(*log_, log_->LoadedCursor(t));
    }
  }

  // Mostly small records, some tiny, and now and then one larger than a whole segment.
  static size_t NextLength(std::mt19937_64& rng) {
    const uint64_t r = rng() % 100;
    if (r < 5) return 3000 + rng() % 3000;
    if (r < 20) return rng() % 24;
    return 24 + rng() % 400;
  }

  bool AppendOne(size_t length) {
    const uint64_t id = model_.lengths.size();
    Status s = log_->Append(
        PayloadOf(id, length), id,
        [this, id](const Status& status, uint64_t seq) { OnAppendDone(id, status, seq); });
    if (!s.ok()) {
      EXPECT_TRUE(fs_->crashed()) << "Append refused without a crash: " << s.ToString();
      return false;
    }
    model_.lengths.push_back(length);
    ++model_.outstanding;
    return true;
  }

  void OnAppendDone(uint64_t id, const Status& status, uint64_t seq) {
    --model_.outstanding;
    if (!status.ok()) {
      // Only the crash may fail an append; nothing else is injected here.
      EXPECT_TRUE(fs_ == nullptr || fs_->crashed()) << "append " << id << ": " << status.ToString();
      return;
    }
    auto [it, fresh] = model_.acked.emplace(seq, id);
    EXPECT_TRUE(fresh) << "sequence " << seq << " acknowledged twice: for append " << it->second
                       << " and for append " << id;
  }

  // The consumer: each target takes some of what is readable, gives up on some of it
  // (a dead letter, durable before the cursor passes it), and moves its cursor over
  // exactly what it finished, as a dispatcher does.
  void Deliver(std::mt19937_64& rng, int burst) {
    for (auto& [target, reader] : readers_) {
      const uint64_t want = rng() % static_cast<uint64_t>(2 * burst + 1);
      uint64_t finished = reader->next_seq();  // every sequence below is delivered
      for (uint64_t got = 0; got < want; ++got) {
        RecordHeader header;
        std::string payload;
        Status error;
        auto result = reader->Next(&header, &payload, &error);
        if (result == LogReader::Result::kCaughtUp) break;
        if (result == LogReader::Result::kError) {
          EXPECT_TRUE(fs_->crashed()) << "read without a crash: " << error.ToString();
          break;
        }
        CheckRecord(header.seq, payload);
        if (rng() % 8 == 0 && !StoreDeadLetter(target, header, payload)) break;
        finished = header.seq + 1;
      }
      if (finished > model_.cursor_set[target]) {
        log_->SetCursor(target, finished);
        model_.cursor_set[target] = finished;
      }
    }
    if (!options_.targets.empty() && rng() % 12 == 0) {
      PurgeDeadLetters(options_.targets[rng() % options_.targets.size()]);
    }
  }

  // Dead-letters a record and waits until the letter is durable; false when it failed.
  bool StoreDeadLetter(const std::string& target, const RecordHeader& header,
                       const std::string& payload) {
    DeadLetter letter;
    letter.target = target;
    letter.seq = header.seq;
    letter.ingest_unix_ns = header.ingest_unix_ns;
    letter.dead_unix_ns = header.ingest_unix_ns + 1;
    letter.reason = "rejected";
    letter.attempts = 3;
    letter.last_status = 422;
    letter.payload = payload;
    auto result = std::make_shared<std::optional<Status>>();
    Status s = log_->AppendDeadLetter(
        std::move(letter), [result](const Status& status, uint64_t) { *result = status; });
    if (!s.ok()) {
      EXPECT_TRUE(fs_->crashed()) << "dead letter refused without a crash: " << s.ToString();
      return false;
    }
    if (!RunUntil([&] { return result->has_value(); })) return false;
    if (!(*result)->ok()) {
      EXPECT_TRUE(fs_->crashed()) << "dead letter failed: " << (*result)->ToString();
      return false;
    }
    model_.dead_letters[target].insert(header.seq);
    return true;
  }

  void PurgeDeadLetters(const std::string& target) {
    auto result = std::make_shared<std::optional<Status>>();
    Status s = log_->PurgeDeadLetters(
        target, std::nullopt, [result](const Status& status, uint64_t) { *result = status; });
    if (!s.ok()) {
      EXPECT_TRUE(fs_->crashed()) << "purge refused without a crash: " << s.ToString();
      return;
    }
    // Asked for is enough to lose them: a purge cut short by a crash may still land.
    model_.dead_letters[target].clear();
    if (!RunUntil([&] { return result->has_value(); })) return;
    EXPECT_TRUE((*result)->ok() || fs_->crashed()) << "purge: " << (*result)->ToString();
  }

  // A record read back is one that was appended, whole, and, when it was acknowledged,
  // at the sequence number its acknowledgement gave.
  void CheckRecord(uint64_t seq, const std::string& payload) {
    auto id = IdOf(payload);
    ASSERT_TRUE(id.has_value()) << "seq " << seq << ": not a payload this test wrote";
    ASSERT_LT(*id, model_.lengths.size()) << "seq " << seq;
    EXPECT_EQ(payload, PayloadOf(*id, model_.lengths[*id])) << "seq " << seq << " damaged";
    auto acked = model_.acked.find(seq);
    if (acked != model_.acked.end()) {
      EXPECT_EQ(acked->second, *id) << "seq " << seq << " holds another append's payload";
    }
  }

  // A cursor is only ever stored from SetCursor, and SetCursor only passes what the
  // consumer took: a cursor past that would skip acknowledged records never delivered.
  void CheckCursorsAgainstModel() {
    for (const auto& t : options_.targets) {
      const uint64_t set = std::max<uint64_t>(1, model_.cursor_set[t]);
      EXPECT_LE(log_->LoadedCursor(t), set)
          << "target " << t << ": the cursor passes records never delivered";
    }
  }

  // Reopens the log on options_.fs (no faults) and checks the model against the disk.
  void Verify() {
    RecoveryReport report;
    ASSERT_TRUE(Open(&report));
    CheckCursorsAgainstModel();
    uint64_t low = UINT64_MAX;
    for (const auto& t : options_.targets) low = std::min(low, log_->LoadedCursor(t));
    ASSERT_NE(low, UINT64_MAX);

    if (!model_.acked.empty()) {
      EXPECT_GT(report.next_seq, model_.acked.rbegin()->first)
          << "an acknowledged sequence number would be given out again";
    }
    const std::vector<test::ReadRecord> records = ReadAll(low);
    // Everything from the lowest cursor to the end is there, without a hole.
    const uint64_t first = std::min(low, report.next_seq);
    ASSERT_EQ(records.size(), report.next_seq - first)
        << "records from the lowest cursor " << low << " to next_seq " << report.next_seq;
    std::optional<uint64_t> last_id;
    for (size_t i = 0; i < records.size(); ++i) {
      ASSERT_EQ(records[i].seq, first + i);
      ASSERT_NO_FATAL_FAILURE(CheckRecord(records[i].seq, records[i].payload));
      auto id = IdOf(records[i].payload);
      if (last_id) {
        EXPECT_GT(*id, *last_id) << "seq " << records[i].seq << " out of order";
      }
      last_id = id;
    }
    // Every acknowledged dead letter not purged since is there, whole.
    for (const auto& t : options_.targets) {
      std::vector<DeadLetter> letters;
      Status s = log_->ListDeadLetters(t, &letters);
      ASSERT_TRUE(s.ok()) << s.ToString();
      std::set<uint64_t> listed;
      for (const auto& letter : letters) {
        listed.insert(letter.seq);
        ASSERT_NO_FATAL_FAILURE(CheckRecord(letter.seq, letter.payload));
      }
      for (uint64_t seq : model_.dead_letters[t]) {
        EXPECT_TRUE(listed.count(seq) > 0)
            << "target " << t << ": acknowledged dead letter for seq " << seq << " lost";
        ++acks_checked_;
      }
    }
    // Every acknowledged record at or above the lowest cursor came back.
    for (auto it = model_.acked.lower_bound(low); it != model_.acked.end(); ++it) {
      ASSERT_LT(it->first - first, records.size())
          << "acknowledged seq " << it->first << " (append " << it->second << ") was lost";
      ++acks_checked_;
    }
  }

  Model model_;
  FaultInjectionFileSystem* fs_ = nullptr;
  std::map<std::string, std::unique_ptr<LogReader>> readers_;
  std::string runs_;  // a directory of its own, removed with the fixture
  uint64_t crash_points_ = 0;
  uint64_t acks_checked_ = 0;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

TEST_F(CrashTest, OneTargetGroupCommit) {
  SweepSeeds(Workload{.targets = {"a"}}, {11, 12, 13, 14});
}

TEST_F(CrashTest, TwoTargetsSmallBatches) {
  SweepSeeds(Workload{.targets = {"a", "b"}, .max_batch_bytes = 300}, {21, 22, 23, 24});
}

TEST_F(CrashTest, CleanReopenMidway) {
  SweepSeeds(Workload{.targets = {"a", "b"}, .rounds = 24, .reopen_midway = true}, {31, 32, 33});
}

TEST_F(CrashTest, SomeUnsyncedWritesSurvive) {
  SweepSeeds(Workload{.targets = {"a"}, .max_batch_bytes = 600, .loss = Loss::kSomeUnsynced},
             {41, 42, 43, 44});
}

// The first life crashes early, late or mid-roll and leaves a torn tail (some unsynced
// sectors survive); the second crashes at every point of recovery and of what follows.
TEST_F(CrashTest, CrashDuringRecovery) {
  for (uint64_t first : {4, 11, 23, 58, 141}) {
    SCOPED_TRACE(testing::Message() << "first life crashes at " << first);
    SweepSeeds(Workload{.targets = {"a", "b"}, .rounds = 12, .loss = Loss::kSomeUnsynced},
               {50 + first}, {first});
    if (HasFailure()) break;
  }
}

// Log::Open makes buffer.dir (in an existing parent) and seg/, cursors/ and dead/ in it.
// A directory is an entry of its parent, durable only once the parent is synced, like a
// file's: the first acknowledged record sits in seg/, so both must be durable by then.
TEST_F(CrashTest, DirectoriesMadeByOpenAreDurableBeforeTheFirstAck) {
  const std::string stash = scratch_.path() + "/stash";
  ASSERT_EQ(::mkdir(stash.c_str(), 0755), 0);
  FaultInjectionFileSystem fs(options_.dir, stash);
  fs.set_track_directories(true);
  options_.fs = &fs;
  options_.targets = {"a"};
  ASSERT_TRUE(Open());
  const std::string payload = PayloadOf(0, 100);
  ASSERT_EQ(Write(payload), 1u);
  fs.SimulateCrash();
  Close();
  Status s = fs.RevertToDurableState();
  ASSERT_TRUE(s.ok()) << s.ToString();
  options_.fs = nullptr;
  ASSERT_TRUE(Open());
  EXPECT_EQ(ReadAll(1), (std::vector<test::ReadRecord>{{1, payload}}))
      << "acknowledged seq 1 lost: a directory Open made was not synced into its parent";
}

}  // namespace
}  // namespace sluice::buffer
