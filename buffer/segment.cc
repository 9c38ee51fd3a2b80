#include "buffer/segment.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "buffer/endian.h"
#include "common/crc32c.h"

namespace sluice::buffer {

namespace crc32c = common::crc32c;
using common::Status;
constexpr char kSegmentMagic[8] = {'S', 'L', 'U', 'I', 'C', 'E', 'S', 'G'};

std::string SegmentFileName(uint64_t first_seq) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu.log", static_cast<unsigned long long>(first_seq));
  return name;
}

std::optional<uint64_t> ParseSegmentFileName(std::string_view name) {
  if (name.size() != 24 || name.substr(20) != ".log") return std::nullopt;
  uint64_t seq = 0;
  auto [ptr, ec] = std::from_chars(name.data(), name.data() + 20, seq);
  if (ec != std::errc() || ptr != name.data() + 20) return std::nullopt;
  return seq;
}

void EncodeSegmentHeader(uint64_t first_seq, char* out) {
  std::memset(out, 0, kSegmentHeaderSize);
  std::memcpy(out, kSegmentMagic, 8);
  PutU32(out + 8, kSegmentVersion);
  PutU64(out + 16, first_seq);
  PutU32(out + 28, crc32c::Mask(crc32c::Value(out, 28)));
}

std::optional<uint64_t> DecodeSegmentHeader(const char* in) {
  if (std::memcmp(in, kSegmentMagic, 8) != 0) return std::nullopt;
  if (crc32c::Unmask(GetU32(in + 28)) != crc32c::Value(in, 28)) return std::nullopt;
  if (GetU32(in + 8) != kSegmentVersion) return std::nullopt;
  return GetU64(in + 16);
}

Status ReadSegmentFooter(FileSystem& fs, int fd, uint64_t file_size,
                         std::optional<SegmentFooter>* footer) {
  // What is read first: the file's end, enough for most footers.
  constexpr size_t kTailRead = 4096;
  const size_t v1_size = RecordSize(16);
  footer->reset();
  if (file_size < kSegmentHeaderSize + v1_size) return Status::OK();
  const uint64_t room = file_size - kSegmentHeaderSize;  // the most a footer can take
  std::string tail(static_cast<size_t>(std::min<uint64_t>(room, kTailRead)), '\0');
  size_t got = 0;
  Status s = fs.PreadUpTo(fd, tail.data(), tail.size(), file_size - tail.size(), &got);
  if (!s.ok() || got < tail.size()) return s;

  uint64_t bytes = GetU64(tail.data() + tail.size() - 8);
  if (bytes % 8 == 0 && bytes > v1_size &&
      bytes <= std::min<uint64_t>(room, kMaxSegmentFooterBytes)) {
    std::string longer;
    std::string_view record;
    if (bytes <= tail.size()) {
      record = std::string_view(tail).substr(tail.size() - bytes);
    } else {
      longer.resize(bytes);
      s = fs.PreadUpTo(fd, longer.data(), longer.size(), file_size - bytes, &got);
      if (!s.ok()) return s;
      record = std::string_view(longer).substr(0, got);
    }
    *footer = DecodeSegmentFooterRecord(record);
    if (*footer) return Status::OK();
  }
  *footer = DecodeSegmentFooterRecord(std::string_view(tail).substr(tail.size() - v1_size));
  return Status::OK();
}

SegmentScanner::Result SegmentScanner::Next(RecordHeader* header, std::string* payload,
                                            Status* io_error, SegmentFooter* footer) {
  if (offset_ + kRecordHeaderSize > file_size_) return Result::kEnd;
  char buf[kRecordHeaderSize];
  std::string_view bytes;
  if (ahead_ != nullptr) {
    *io_error = ahead_->Read(fs_, fd_, offset_, sizeof(buf), file_size_, &bytes);
  } else {
    size_t got = 0;
    *io_error = fs_.PreadUpTo(fd_, buf, sizeof(buf), offset_, &got);
    bytes = std::string_view(buf, got);
  }
  if (!io_error->ok()) return Result::kCorrupt;
  if (bytes.size() < sizeof(buf)) return Result::kEnd;
  switch (DecodeRecordHeader(bytes.data(), header)) {
    case HeaderState::kZero:
      return Result::kEnd;
    case HeaderState::kCorrupt:
      return Result::kCorrupt;
    case HeaderState::kValid:
      break;
  }
  uint64_t payload_offset = offset_ + kRecordHeaderSize;
  if (payload_offset + header->payload_len > file_size_) return Result::kTruncated;
  if (ahead_ != nullptr && header->payload_len <= ahead_->capacity()) {
    *io_error = ahead_->Read(fs_, fd_, payload_offset, header->payload_len, file_size_, &bytes);
    if (!io_error->ok()) return Result::kCorrupt;
    if (bytes.size() < header->payload_len) return Result::kTruncated;
    payload->assign(bytes);
  } else {
    // Larger than the window (or no window): straight into the caller's string.
    payload->resize(header->payload_len);
    size_t got = 0;
    *io_error = fs_.PreadUpTo(fd_, payload->data(), payload->size(), payload_offset, &got);
    if (!io_error->ok()) return Result::kCorrupt;
    if (got < payload->size()) return Result::kTruncated;
  }
  if (!PayloadMatches(*header, *payload)) return Result::kCorrupt;
  if (header->flags & kFlagFooter) {
    auto decoded = DecodeSegmentFooter(*header, *payload);
    if (!decoded) return Result::kCorrupt;
    if (footer != nullptr) *footer = *decoded;
    offset_ += RecordSize(header->payload_len);
    return Result::kSealed;
  }
  offset_ += RecordSize(header->payload_len);
  return Result::kRecord;
}

}  // namespace sluice::buffer
