#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

// Thin Status-returning wrappers over the POSIX calls the log makes. Every disk effect
// of buffer/ goes through here, which is where a fault-injecting seam plugs in.
namespace sluice::buffer::posix_io {

using common::Status;

Status OpenFile(const std::string& path, int flags, int* fd);
Status CloseFile(int fd);
// Writes all of `iov` at `offset`, retrying short writes and EINTR.
Status PwriteAll(int fd, std::vector<iovec> iov, uint64_t offset);
// Reads exactly n bytes at offset; *got tells how many were read before EOF.
Status PreadUpTo(int fd, void* buf, size_t n, uint64_t offset, size_t* got);
Status Fdatasync(int fd, const std::string& path);
Status Fallocate(int fd, uint64_t size, const std::string& path);
Status FileSize(int fd, uint64_t* size);
Status SyncDir(const std::string& dir);
Status MakeDirs(const std::string& dir);
Status ListDir(const std::string& dir, std::vector<std::string>* names);
Status Unlink(const std::string& path);
Status Rename(const std::string& from, const std::string& to);
// Takes an exclusive flock on dir/LOCK; fails with kBusy when another process holds it.
// The fd is kept open for the life of the process (or until CloseFile).
Status LockDir(const std::string& dir, int* fd);

}  // namespace sluice::buffer::posix_io
