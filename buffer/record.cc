#include "buffer/record.h"

#include <cstring>

#include "buffer/endian.h"
#include "common/crc32c.h"

namespace sluice::buffer {

namespace crc32c = common::crc32c;

void EncodeRecordHeader(uint64_t seq, uint64_t ingest_unix_ns, uint16_t flags,
                        std::string_view payload, char* out) {
  PutU32(out + 4, static_cast<uint32_t>(payload.size()));
  PutU64(out + 8, seq);
  PutU64(out + 16, ingest_unix_ns);
  PutU16(out + 24, flags);
  PutU16(out + 26, kRecordVersion);
  PutU32(out + 28, crc32c::Mask(crc32c::Value(payload.data(), payload.size())));
  PutU32(out, crc32c::Mask(crc32c::Value(out + 4, kRecordHeaderSize - 4)));
}

HeaderState DecodeRecordHeader(const char* in, RecordHeader* out) {
  static const char kZeros[kRecordHeaderSize] = {};
  if (std::memcmp(in, kZeros, kRecordHeaderSize) == 0) return HeaderState::kZero;
  uint32_t expected = crc32c::Unmask(GetU32(in));
  if (crc32c::Value(in + 4, kRecordHeaderSize - 4) != expected) return HeaderState::kCorrupt;
  out->payload_len = GetU32(in + 4);
  out->seq = GetU64(in + 8);
  out->ingest_unix_ns = GetU64(in + 16);
  out->flags = GetU16(in + 24);
  out->version = GetU16(in + 26);
  out->payload_crc = GetU32(in + 28);
  if (out->version != kRecordVersion || out->payload_len > kMaxPayloadBytes) {
    return HeaderState::kCorrupt;
  }
  return HeaderState::kValid;
}

size_t AppendRecordIovecs(const char* header, std::string_view payload, std::vector<iovec>* iov) {
  static const char kPadding[8] = {};
  iov->push_back({const_cast<char*>(header), kRecordHeaderSize});
  iov->push_back({const_cast<char*>(payload.data()), payload.size()});
  size_t pad = PaddedSize(payload.size()) - payload.size();
  if (pad > 0) iov->push_back({const_cast<char*>(kPadding), pad});
  return RecordSize(payload.size());
}

bool PayloadMatches(const RecordHeader& header, std::string_view payload) {
  return payload.size() == header.payload_len &&
         crc32c::Unmask(header.payload_crc) == crc32c::Value(payload.data(), payload.size());
}

}  // namespace sluice::buffer
