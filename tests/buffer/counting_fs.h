#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "buffer/file_system.h"
#include "common/status.h"
#include "tests/buffer/forwarding_fs.h"

namespace sluice::buffer::test {

// A FileSystem that passes every call to `base` and records each PreadUpTo (which file,
// where, how much), so that tests can count the reads behind an operation and check
// where they land. Thread-safe.
class CountingFileSystem final : public ForwardingFileSystem {
 public:
  struct Read {
    std::string path;
    uint64_t offset;
    size_t n;
  };

  // "base" must outlive this object.
  explicit CountingFileSystem(FileSystem& base = FileSystem::Default())
      : ForwardingFileSystem(base) {}

  Status Open(const std::string& path, int flags, int* fd) override;
  Status Close(int fd) override;
  Status PwriteAll(int fd, std::vector<iovec> iov, uint64_t offset) override;
  Status PreadUpTo(int fd, void* buf, size_t n, uint64_t offset, size_t* got) override;
  Status Fdatasync(int fd, const std::string& what) override;

  // A write or sync, and the thread that made it.
  struct Call {
    enum class Op { kWrite, kSync } op;
    std::string path;  // for a sync, what the caller named
    std::thread::id thread;
  };
  // Writes and syncs of files whose path contains `path_part`, in order.
  std::vector<Call> Calls(std::string_view path_part = "") const;

  // Reads of files whose path contains `path_part`, since the last ClearReads.
  std::vector<Read> Reads(std::string_view path_part = "") const;
  void ClearReads();
  // Runs on the reading thread before each read is passed on (tests check invariants
  // that must hold at that moment). Set it before the code under test runs.
  void set_on_read(std::function<void(const Read&)> on_read) { on_read_ = std::move(on_read); }

 private:
  std::string PathOfLocked(int fd) const;  // REQUIRES: mu_ held; "" when not known

  std::function<void(const Read&)> on_read_;
  mutable std::mutex mu_;
  std::map<int, std::string> paths_;
  std::vector<Read> reads_;
  std::vector<Call> calls_;
};

}  // namespace sluice::buffer::test
