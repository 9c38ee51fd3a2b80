#include "buffer/read_ahead.h"

#include <algorithm>
#include <cassert>

namespace sluice::buffer {

common::Status ReadAhead::Read(FileSystem& fs, int fd, uint64_t offset, size_t n, uint64_t limit,
                               std::string_view* out) {
  assert(n <= capacity_ && offset + n <= limit);
  if (fd != fd_ || offset < start_ || offset + n > start_ + len_) {
    if (buf_ == nullptr) buf_ = std::make_unique<char[]>(capacity_);
    fd_ = -1;
    size_t want = static_cast<size_t>(std::min<uint64_t>(capacity_, limit - offset));
    size_t got = 0;
    common::Status s = fs.PreadUpTo(fd, buf_.get(), want, offset, &got);
    if (!s.ok()) return s;
    fd_ = fd;
    start_ = offset;
    len_ = got;
  }
  size_t at = static_cast<size_t>(offset - start_);
  *out = std::string_view(buf_.get() + at, std::min(n, len_ - at));
  return common::Status::OK();
}

}  // namespace sluice::buffer
