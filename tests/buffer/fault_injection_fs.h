#pragma once

#include <condition_variable>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "buffer/file_system.h"
#include "common/status.h"

namespace sluice::buffer::test {

// A FileSystem for tests that knows which effects a power loss would undo (after LevelDB's
// db/fault_injection_test.cc). It passes every call to `base` and remembers:
//   - per file, what each PwriteAll/Fallocate/Truncate overwrote (old bytes and old size)
//     since the file's last successful Fdatasync;
//   - per directory, the entries created (Open with O_CREAT of a missing file), unlinked
//     and renamed since the directory's last SyncDir. Unlink (and a rename over an
//     existing file) moves the old file to `stash` instead of deleting it, so that the
//     change can be undone.
// SimulateCrash() makes every later call fail with EIO, as if the machine had stopped;
// RevertToDurableState() then rewrites the disk to what survived: each file as of its last
// Fdatasync and each directory as of its last SyncDir.
//
// Fdatasync and SyncDir only mark data durable; they never call the real fsync (a power
// loss is simulated, the kernel is not under test), which keeps thousands of runs fast.
// Directories made by MakeDirs are durable at once unless set_track_directories(true).
//
// Also injects ENOSPC (a disk capacity over the files below `root`) and EIO from the Nth
// Fdatasync. Thread-safe: one lock serialises every call.
class FaultInjectionFileSystem final : public FileSystem {
 public:
  static constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

  // What RevertToDurableState() keeps of the effects no sync covered.
  enum class Loss {
    kAllUnsynced,   // none: the strict LevelDB model
    kSomeUnsynced,  // each one independently, by a seeded coin; writes per 512-byte sector
  };

  // `root`: the directory whose files count against the capacity. `stash`: an existing
  // directory on the same file system, outside every directory the code under test lists.
  // "base" must outlive this object.
  FaultInjectionFileSystem(std::string root, std::string stash,
                           FileSystem& base = FileSystem::Default());
  ~FaultInjectionFileSystem() override;
  FaultInjectionFileSystem(const FaultInjectionFileSystem&) = delete;
  FaultInjectionFileSystem& operator=(const FaultInjectionFileSystem&) = delete;

  // FileSystem.
  Status Open(const std::string& path, int flags, int* fd) override;
  Status Close(int fd) override;
  Status PwriteAll(int fd, std::vector<iovec> iov, uint64_t offset) override;
  Status PreadUpTo(int fd, void* buf, size_t n, uint64_t offset, size_t* got) override;
  Status Fdatasync(int fd, const std::string& what) override;
  Status Fallocate(int fd, uint64_t size, const std::string& path) override;
  Status Truncate(int fd, uint64_t size, const std::string& path) override;
  Status FileSize(int fd, uint64_t* size) override;
  Status SyncDir(const std::string& dir) override;
  Status MakeDirs(const std::string& dir) override;
  Status ListDir(const std::string& dir, std::vector<std::string>* names) override;
  Status Unlink(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status LockDir(const std::string& dir, int* fd) override;

  // Crashes on the mutating call after the next `ops` ones (PwriteAll, Fdatasync,
  // Fallocate, Truncate, Open with O_CREAT or O_TRUNC, Unlink, Rename, SyncDir): those
  // succeed, it fails.
  void CrashAfter(uint64_t ops);
  // From now on every call fails with EIO, except Close, which still releases the
  // descriptor (and reports success) so nothing leaks.
  void SimulateCrash();
  bool crashed() const;
  // Mutating calls seen so far, the crashing one included.
  uint64_t mutating_ops() const;

  // Rewrites the disk to what a power loss at the crash leaves (SimulateCrash first if it
  // has not happened). REQUIRES: no descriptor from this object is still open (the Log
  // using it is destroyed). `seed` drives the coin of Loss::kSomeUnsynced.
  Status RevertToDurableState(Loss loss = Loss::kAllUnsynced, uint64_t seed = 0);

  // Files below `root` may hold at most `bytes` (their sizes summed). A PwriteAll that
  // would grow past it writes what fits and fails with ENOSPC; such a Fallocate fails
  // with ENOSPC and changes nothing. Writes inside a file's current size never fail.
  void SetCapacity(uint64_t bytes);
  // Sum of the sizes of the files below `root`.
  uint64_t UsedBytes() const;
  // The nth Fdatasync from now (1: the next) of a file whose path contains `path_part`
  // fails with EIO and syncs nothing.
  void FailFdatasync(uint64_t nth, std::string path_part = "");
  // How many Fdatasync calls failed by FailFdatasync so far.
  uint64_t injected_fdatasync_errors() const;
  // While paused, every mutating call waits at its start (before any effect or count), so
  // a test can hold the writer thread still while it queues work behind it.
  void PauseMutations();
  void ResumeMutations();
  // Calls waiting for ResumeMutations now.
  int paused_calls() const;

  // Counts MakeDirs' new directories as entries of their parent, undone at the crash
  // unless the parent was synced (SyncDir) after them.
  void set_track_directories(bool on);

 private:
  // One undoable effect: restore `old_bytes` at `offset`, then cut the file to `old_size`.
  struct Undo {
    uint64_t offset;
    std::string old_bytes;
    uint64_t old_size;
  };
  // A file (an inode, not a name): it keeps its undo list across an unlink.
  struct File {
    std::string path;  // where it is now: its stash path once unlinked; empty once gone
    std::vector<Undo> undo;
  };
  // A change of directory entries no SyncDir covered yet.
  struct EntryChange {
    enum class Kind { kCreated, kUnlinked, kRenamed, kMadeDir } kind;
    std::vector<std::string> dirs;   // directories still to be synced for it to be durable
    std::string name;                // the entry's full path (kRenamed: the new name)
    std::shared_ptr<File> file;      // kCreated, kUnlinked, kRenamed
    std::string from;                // kRenamed: the old name
    std::shared_ptr<File> replaced;  // kRenamed: the file `name` held before, stashed
  };

  // Waits while mutations are paused. Called before taking mu_.
  void PassGate();
  // Counts a mutating call; false (and crashed from now on) when it is the crashing one.
  bool CountMutation();
  Status CrashedError(const std::string& what) const;
  std::shared_ptr<File> FileAt(const std::string& path);
  std::shared_ptr<File> FileOf(int fd);
  // Moves the file at `name` (a normal path) to the stash.
  Status Stash(const std::string& name, std::shared_ptr<File>* file);
  // Adds to `file`'s undo list what a change of [offset, offset+len) and a size change
  // would lose, split per sector for Loss::kSomeUnsynced.
  Status SnapshotRange(File& file, int fd, uint64_t offset, uint64_t len, uint64_t new_size);
  uint64_t UsedBytesLocked() const;

  const std::string root_;
  const std::string stash_;
  FileSystem& base_;

  mutable std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  bool paused_ = false;
  int paused_calls_ = 0;

  mutable std::mutex mu_;
  bool crashed_ = false;
  uint64_t ops_ = 0;
  uint64_t crash_at_op_ = 0;  // 0: never
  uint64_t capacity_ = kUnlimited;
  uint64_t fdatasyncs_ = 0;          // of files matching fail_fdatasync_path_
  uint64_t fail_fdatasync_at_ = 0;   // 0: never
  std::string fail_fdatasync_path_;  // a part of the path of the files counted
  uint64_t fdatasync_errors_ = 0;
  bool track_directories_ = false;
  uint64_t stashed_ = 0;
  std::map<int, std::shared_ptr<File>> by_fd_;
  std::map<std::string, std::shared_ptr<File>> by_path_;  // files at their current names
  std::vector<std::shared_ptr<File>> files_;              // every file ever seen
  std::vector<EntryChange> unsynced_entries_;             // oldest first
};

}  // namespace sluice::buffer::test
