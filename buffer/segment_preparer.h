#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "buffer/file_system.h"

namespace sluice::buffer {

// Zero-fills the log's next segment file on its own thread while the active one fills,
// so that a roll renames a file whose blocks are already allocated and written.
//
// Why: a record written into a fallocated (unwritten) extent makes the fdatasync that
// acknowledges it also commit the extent's conversion to "written" in the file system's
// journal: on ext4 on the reference VM, 0.22 ms per flush instead of 0.15 ms, and a
// third more CPU. Every acknowledgement under `fsync: batch` waits for such a flush.
// Zeroing costs a second write of each segment's bytes, off that path (O_DIRECT where
// the file system allows, so it does not fill the page cache).
//
// Pacing: the spare is zeroed no further ahead than the active segment's fill (as a
// fraction) plus an eighth, so zeroing runs at the pace of writing instead of in bursts
// that would slow the flushes acknowledgements wait for, and is done before the roll.
//
// Nothing here is ever acknowledged data: a spare that fails (ENOSPC, EIO) is removed and
// the roll falls back to fallocate. The file has no segment name, so recovery removes
// one left by a crash like any other foreign file in seg/.
//
// Threads: Start, Pace, Take and Stop are called from one thread (the log's writer).
class SegmentPreparer {
 public:
  // "fs" must outlive this object. `path`: the spare's name, in the segment directory so
  // that a roll is a rename within it.
  SegmentPreparer(FileSystem& fs, std::string path);
  ~SegmentPreparer();  // Stop()
  SegmentPreparer(const SegmentPreparer&) = delete;
  SegmentPreparer& operator=(const SegmentPreparer&) = delete;

  // Begins a spare of `bytes` unless one exists (prepared or under way). The thread
  // starts with the first call.
  void Start(uint64_t bytes);
  // The active segment holds `written` of its `capacity` bytes.
  void Pace(uint64_t written, uint64_t capacity);
  // Hands the spare over: zeroing stops, its descriptor is closed, and the caller owns the
  // file at path() (rename it). False when there is no spare. *zeroed: the bytes zeroed
  // from its start (the rest, if any, is not allocated yet).
  bool Take(uint64_t* zeroed);
  // Stops the thread and removes a spare not taken.
  void Stop();

  const std::string& path() const { return path_; }
  // Spares handed over by Take, and bytes zeroed in all (tests, metrics).
  uint64_t taken() const;
  uint64_t zeroed_total() const;

 private:
  enum class State { kNone, kZeroing, kReady };
  void Main();
  uint64_t AllowedLocked() const;  // REQUIRES: mu_ held
  void DropLocked(std::unique_lock<std::mutex>& lock);

  FileSystem& fs_;
  const std::string path_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kNone;
  int fd_ = -1;
  uint64_t size_ = 0;     // the spare's planned size
  uint64_t zeroed_ = 0;   // zeroed from its start
  uint64_t written_ = 0;  // the active segment's fill, for pacing
  uint64_t capacity_ = 1;
  bool busy_ = false;  // the thread is writing or syncing the spare, without mu_
  bool stop_ = false;
  uint64_t taken_ = 0;
  uint64_t zeroed_total_ = 0;
  std::thread thread_;
};

}  // namespace sluice::buffer
