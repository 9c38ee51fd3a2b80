#include "buffer/segment_preparer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "buffer/file_system.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

constexpr uint64_t kMiB = 1u << 20;

// Polls `done` until it holds or 30 s pass (the preparer signals nothing a test can
// wait on).
bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// The real file system, with the zero writes watched: each must start below the pace the
// test last allowed, one can be held mid-write, and they can be made to fail.
class WatchedZeros final : public FileSystem {
 public:
  Status Open(const std::string& p, int flags, int* fd) override {
    return base_.Open(p, flags, fd);
  }
  Status Close(int fd) override { return base_.Close(fd); }
  Status PwriteAll(int fd, std::vector<iovec> iov, uint64_t offset) override {
    return base_.PwriteAll(fd, std::move(iov), offset);
  }
  Status PreadUpTo(int fd, void* buf, size_t n, uint64_t offset, size_t* got) override {
    return base_.PreadUpTo(fd, buf, n, offset, got);
  }
  Status Fdatasync(int fd, const std::string& what) override {
    {
      std::lock_guard lock(mu_);
      ++syncs_;
    }
    return base_.Fdatasync(fd, what);
  }
  Status Fallocate(int fd, uint64_t size, const std::string& p) override {
    return base_.Fallocate(fd, size, p);
  }
  Status Truncate(int fd, uint64_t size, const std::string& p) override {
    return base_.Truncate(fd, size, p);
  }
  Status FileSize(int fd, uint64_t* size) override { return base_.FileSize(fd, size); }
  Status SyncDir(const std::string& dir) override { return base_.SyncDir(dir); }
  Status MakeDirs(const std::string& dir) override { return base_.MakeDirs(dir); }
  Status ListDir(const std::string& dir, std::vector<std::string>* names) override {
    return base_.ListDir(dir, names);
  }
  Status Unlink(const std::string& p) override { return base_.Unlink(p); }
  Status LockDir(const std::string& dir, int* fd) override { return base_.LockDir(dir, fd); }

  Status WriteZeros(int fd, uint64_t offset, uint64_t len) override {
    std::unique_lock lock(mu_);
    ++writes_;
    EXPECT_LT(offset, allowed_) << "zeroed ahead of the pace";
    if (fail_) return Status::NoSpace("injected", ENOSPC);
    held_ = hold_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !hold_; });
    held_ = false;
    lock.unlock();
    return base_.WriteZeros(fd, offset, len);
  }

  void Allow(uint64_t bytes) {
    std::lock_guard lock(mu_);
    allowed_ = bytes;
  }
  void Fail(bool on) {
    std::lock_guard lock(mu_);
    fail_ = on;
  }
  void Hold() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  void WaitHeld() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return held_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    hold_ = false;
    cv_.notify_all();
  }
  int writes() const {
    std::lock_guard lock(mu_);
    return writes_;
  }
  int syncs() const {
    std::lock_guard lock(mu_);
    return syncs_;
  }

 private:
  FileSystem& base_ = FileSystem::Default();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t allowed_ = 0;
  bool fail_ = false;
  bool hold_ = false;
  bool held_ = false;
  int writes_ = 0;
  int syncs_ = 0;
};

class SegmentPreparerTest : public testing::Test {
 protected:
  // Allows the preparer the pace of an active segment `written` of `capacity` full.
  void PaceTo(uint64_t written, uint64_t capacity, uint64_t spare) {
    fs_.Allow(spare * written / capacity + spare / 8);
    preparer_.Pace(written, capacity);
  }
  bool WaitZeroed(uint64_t bytes) {
    return WaitFor([&] { return preparer_.zeroed_total() >= bytes; });
  }

  test::ScratchDir scratch_;
  WatchedZeros fs_;
  const std::string path_ = scratch_.path() + "/next.spare";
  SegmentPreparer preparer_{fs_, path_};
};

TEST_F(SegmentPreparerTest, ZeroesTheSpareAtThePaceOfTheActiveSegment) {
  PaceTo(0, 64 * kMiB, 16 * kMiB);
  preparer_.Start(16 * kMiB);
  ASSERT_TRUE(WaitZeroed(2 * kMiB));  // an eighth ahead of an empty segment
  EXPECT_EQ(preparer_.zeroed_total(), 2 * kMiB);
  PaceTo(32 * kMiB, 64 * kMiB, 16 * kMiB);  // half full: half the spare and an eighth
  ASSERT_TRUE(WaitZeroed(10 * kMiB));
  EXPECT_EQ(fs_.syncs(), 0) << "synced before it was complete";
  PaceTo(60 * kMiB, 64 * kMiB, 16 * kMiB);
  ASSERT_TRUE(WaitZeroed(16 * kMiB));
  ASSERT_TRUE(WaitFor([&] { return fs_.syncs() == 1; })) << "complete: synced once";

  uint64_t zeroed = 0;
  ASSERT_TRUE(preparer_.Take(&zeroed));
  EXPECT_EQ(zeroed, 16 * kMiB);
  EXPECT_EQ(preparer_.taken(), 1u);
  const std::string content = test::ReadFile(path_);
  EXPECT_EQ(content.size(), 16 * kMiB);
  EXPECT_EQ(content.find_first_not_of('\0'), std::string::npos);
  EXPECT_EQ(fs_.writes(), 16);
}

TEST_F(SegmentPreparerTest, TakeHandsOverAPartlyZeroedSpareAndStopsZeroingIt) {
  PaceTo(0, 64 * kMiB, 16 * kMiB);
  preparer_.Start(16 * kMiB);
  ASSERT_TRUE(WaitZeroed(2 * kMiB));
  uint64_t zeroed = 0;
  ASSERT_TRUE(preparer_.Take(&zeroed));
  EXPECT_EQ(zeroed, 2 * kMiB);
  EXPECT_EQ(test::FileSize(path_), 2 * kMiB);
  const int writes = fs_.writes();
  PaceTo(64 * kMiB, 64 * kMiB, 16 * kMiB);  // would allow all of it, but it is taken
  EXPECT_FALSE(preparer_.Take(&zeroed)) << "no second spare without a Start";
  EXPECT_EQ(fs_.writes(), writes);
}

// A Take while a chunk is being written waits for it: the descriptor the thread holds
// is closed only then, and the chunk counts. (An 8 MiB spare: the pace allows one chunk,
// so the result is the same whether the Take comes before the release or after.)
TEST_F(SegmentPreparerTest, TakeWaitsForTheChunkBeingWritten) {
  fs_.Hold();
  PaceTo(0, 64 * kMiB, 8 * kMiB);
  preparer_.Start(8 * kMiB);
  fs_.WaitHeld();
  auto take = std::async(std::launch::async, [&] {
    uint64_t zeroed = 0;
    return preparer_.Take(&zeroed) ? zeroed : UINT64_MAX;
  });
  fs_.Release();
  EXPECT_EQ(take.get(), kMiB);
  EXPECT_EQ(test::FileSize(path_), kMiB);
}

TEST_F(SegmentPreparerTest, AFailedWriteGivesTheSpareUp) {
  fs_.Fail(true);
  PaceTo(0, 64 * kMiB, 16 * kMiB);
  preparer_.Start(16 * kMiB);
  ASSERT_TRUE(WaitFor([&] { return fs_.writes() == 1 && !test::FileExists(path_); }));
  uint64_t zeroed = 0;
  EXPECT_FALSE(preparer_.Take(&zeroed));

  fs_.Fail(false);  // the next roll's Start tries again
  preparer_.Start(16 * kMiB);
  ASSERT_TRUE(WaitZeroed(2 * kMiB));
  EXPECT_TRUE(preparer_.Take(&zeroed));
}

TEST_F(SegmentPreparerTest, StopRemovesASpareNotTaken) {
  PaceTo(0, 64 * kMiB, 16 * kMiB);
  preparer_.Start(16 * kMiB);
  ASSERT_TRUE(WaitZeroed(2 * kMiB));
  preparer_.Stop();
  EXPECT_FALSE(test::FileExists(path_));
}

}  // namespace
}  // namespace sluice::buffer
