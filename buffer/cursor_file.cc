#include "buffer/cursor_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "buffer/endian.h"
#include "common/crc32c.h"

namespace sluice::buffer {
namespace {
namespace crc32c = common::crc32c;
constexpr size_t kSlotSize = 32;

void EncodeSlot(uint64_t generation, uint64_t next_seq, char* out) {
  std::memset(out, 0, kSlotSize);
  PutU64(out, generation);
  PutU64(out + 8, next_seq);
  PutU32(out + 20, crc32c::Mask(crc32c::Value(out, 20)));
}

bool DecodeSlot(const char* in, uint64_t* generation, uint64_t* next_seq) {
  if (crc32c::Unmask(GetU32(in + 20)) != crc32c::Value(in, 20)) return false;
  *generation = GetU64(in);
  *next_seq = GetU64(in + 8);
  return *generation != 0;
}
}  // namespace

CursorFile::~CursorFile() {
  if (fd_ >= 0) (void)fs_.Close(fd_);
}

common::Status CursorFile::Open(const std::string& path, uint64_t default_seq, uint64_t* next_seq) {
  path_ = path;
  common::Status s = fs_.Open(path, O_RDWR | O_CREAT, &fd_);
  if (!s.ok()) return s;
  char buf[2 * kSlotSize] = {};
  size_t got = 0;
  s = fs_.PreadUpTo(fd_, buf, sizeof(buf), 0, &got);
  if (!s.ok()) return s;
  *next_seq = default_seq;
  generation_ = 0;
  for (int slot = 0; slot < 2; ++slot) {
    uint64_t gen, seq;
    if (got >= (slot + 1) * kSlotSize && DecodeSlot(buf + slot * kSlotSize, &gen, &seq) &&
        gen > generation_) {
      generation_ = gen;
      *next_seq = seq;
    }
  }
  stored_ = *next_seq;
  return common::Status::OK();
}

common::Status CursorFile::Store(uint64_t next_seq) {
  char slot[kSlotSize];
  uint64_t generation = generation_ + 1;
  EncodeSlot(generation, next_seq, slot);
  std::vector<iovec> iov{{slot, kSlotSize}};
  common::Status s = fs_.PwriteAll(fd_, iov, (generation % 2) * kSlotSize);
  if (s.ok()) s = fs_.Fdatasync(fd_, path_);
  if (s.ok()) {
    generation_ = generation;
    stored_ = next_seq;
  }
  return s;
}

}  // namespace sluice::buffer
