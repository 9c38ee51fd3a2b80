#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::buffer {

// On-disk record framing (little-endian, every record starts 8-byte aligned):
//
//   u32 header_crc   masked CRC32C of header bytes [4, 32)
//   u32 payload_len
//   u64 seq          contiguous across the whole log
//   u64 ingest_unix_ns
//   u16 flags
//   u16 version
//   u32 payload_crc  masked CRC32C of the payload
//   payload, then zero padding to the next multiple of 8
//
// A header of all zeros marks the end of the written part of a fallocated segment.
constexpr size_t kRecordHeaderSize = 32;
constexpr uint16_t kRecordVersion = 1;
constexpr uint32_t kMaxPayloadBytes = 256u << 20;  // sanity bound when decoding
// flags: the record is a segment's footer (see segment.h), not a message.
constexpr uint16_t kFlagFooter = 1;

struct RecordHeader {
  uint32_t payload_len = 0;
  uint64_t seq = 0;
  uint64_t ingest_unix_ns = 0;
  uint16_t flags = 0;
  uint16_t version = kRecordVersion;
  uint32_t payload_crc = 0;  // masked
};

inline size_t PaddedSize(size_t n) { return (n + 7) & ~size_t{7}; }
// Bytes one record occupies on disk, header and padding included.
inline size_t RecordSize(size_t payload_len) { return kRecordHeaderSize + PaddedSize(payload_len); }

// Fills `out` (kRecordHeaderSize bytes). Computes payload_crc from `payload`.
void EncodeRecordHeader(uint64_t seq, uint64_t ingest_unix_ns, uint16_t flags,
                        std::string_view payload, char* out);

enum class HeaderState { kValid, kZero, kCorrupt };
// Decodes and checks a header (not the payload). kZero: all 32 bytes are zero (end of data).
HeaderState DecodeRecordHeader(const char* in, RecordHeader* out);

// Appends the gather-write pieces of one framed record: the encoded `header`
// (kRecordHeaderSize bytes, which must stay live), the payload and its zero padding.
// Returns RecordSize(payload.size()).
size_t AppendRecordIovecs(const char* header, std::string_view payload, std::vector<iovec>* iov);

// Checks the payload against the header's CRC.
bool PayloadMatches(const RecordHeader& header, std::string_view payload);

}  // namespace sluice::buffer
