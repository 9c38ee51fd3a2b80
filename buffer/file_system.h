#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::buffer {

using common::Status;

// Every disk effect of buffer/ goes through this seam (LevelDB's Env idea), so tests
// can inject faults: drop writes not covered by a completed fdatasync, lose files not
// covered by a directory fsync, fail with ENOSPC or EIO. Files are plain descriptors;
// implementations may keep per-descriptor state. Thread-safe.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // The real one: POSIX calls, nothing else.
  static FileSystem& Default();

  virtual Status Open(const std::string& path, int flags, int* fd) = 0;
  virtual Status Close(int fd) = 0;
  // Writes all of `iov` at `offset`, retrying short writes and EINTR.
  virtual Status PwriteAll(int fd, std::vector<iovec> iov, uint64_t offset) = 0;
  // Reads up to n bytes at offset; *got tells how many before end of file.
  virtual Status PreadUpTo(int fd, void* buf, size_t n, uint64_t offset, size_t* got) = 0;
  // Never retried by callers: after a failed fsync the kernel may have dropped the dirty
  // pages, so a second "successful" fsync proves nothing (PostgreSQL's fsyncgate).
  virtual Status Fdatasync(int fd, const std::string& what) = 0;
  virtual Status Fallocate(int fd, uint64_t size, const std::string& path) = 0;
  virtual Status Truncate(int fd, uint64_t size, const std::string& path) = 0;
  virtual Status FileSize(int fd, uint64_t* size) = 0;
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual Status MakeDirs(const std::string& dir) = 0;
  virtual Status ListDir(const std::string& dir, std::vector<std::string>* names) = 0;
  virtual Status Unlink(const std::string& path) = 0;
  // Atomically replaces `to` (rename(2)). Not pure, so fault-injecting file systems
  // that do not model renames still work; the default renames for real.
  virtual Status Rename(const std::string& from, const std::string& to);
  // Takes an exclusive flock on dir/LOCK; kBusy when another process holds it.
  virtual Status LockDir(const std::string& dir, int* fd) = 0;
};

}  // namespace sluice::buffer
