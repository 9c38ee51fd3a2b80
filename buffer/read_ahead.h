#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "buffer/file_system.h"
#include "common/status.h"

namespace sluice::buffer {

// A window onto one file, refilled with one large read when a read falls outside it, so
// that reading records in order costs one system call per window instead of two per
// record. Memory is the capacity, allocated on the first fill and never grown.
//
// The window never holds bytes at or beyond the `limit` of the read that filled it. A
// reader that later learns that more of the file is readable (the writer appended) gets
// those bytes from a new read, never from bytes read before they were written: the
// fallocated tail of an active segment reads as zeros until the writer gets there.
class ReadAhead {
 public:
  static constexpr size_t kDefaultCapacity = 256 << 10;

  // REQUIRES: capacity >= kRecordHeaderSize, so that every record header fits.
  explicit ReadAhead(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // Points *out at bytes [offset, offset + n) of `fd`, read through the window. When the
  // window does not hold them all it is refilled from `offset` with up to capacity()
  // bytes, none at or beyond `limit`. *out is shorter than n when the file ends first.
  // REQUIRES: n <= capacity(), offset + n <= limit. *out is valid until the next call.
  common::Status Read(FileSystem& fs, int fd, uint64_t offset, size_t n, uint64_t limit,
                      std::string_view* out);
  // Forgets what the window holds. Call when the caller opens another file: a descriptor
  // number may be reused by a different file.
  void Clear() { fd_ = -1; }
  size_t capacity() const { return capacity_; }

 private:
  const size_t capacity_;
  std::unique_ptr<char[]> buf_;
  int fd_ = -1;  // -1: the window holds nothing
  uint64_t start_ = 0;
  size_t len_ = 0;
};

}  // namespace sluice::buffer
