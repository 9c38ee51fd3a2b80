#pragma once

#include <string>
#include <vector>

#include "buffer/file_system.h"
#include "common/status.h"

namespace sluice::buffer::test {

// Passes every call to `base`: a test derives from it and overrides the one call it
// wants to hold, fail or watch.
class ForwardingFileSystem : public FileSystem {
 public:
  // "base" must outlive this object.
  explicit ForwardingFileSystem(FileSystem& base = FileSystem::Default()) : base_(base) {}

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
  Status Fdatasync(int fd, const std::string& what) override { return base_.Fdatasync(fd, what); }
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
  Status Rename(const std::string& from, const std::string& to) override {
    return base_.Rename(from, to);
  }
  Status LockDir(const std::string& dir, int* fd) override { return base_.LockDir(dir, fd); }

 protected:
  FileSystem& base_;
};

}  // namespace sluice::buffer::test
