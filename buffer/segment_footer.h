#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/record.h"

namespace sluice::buffer {

// How many records of a segment each target has: a message counts once for each target
// its list names (message.h); records that are not messages count for none.
using TargetCounts = std::map<std::string, uint64_t, std::less<>>;

// A sealed segment ends with a footer record: flags kFlagFooter, seq = the first sequence
// after the segment, and one of two payloads (little-endian):
//
//   version 1 (16 bytes): u64 first_seq · u64 records
//   version 2 (a multiple of 8, at least 32 bytes):
//     u64 first_seq · u64 records · u32 target_count · u32 reserved (0) ·
//     target_count × (u64 records_for_target · u8 name_len · name), names in ascending
//     byte order, each listed once, every count in [1, records] ·
//     zero padding to 8 bytes before the end · u64 footer_bytes
//
// footer_bytes is the whole footer record (header included), and since the payload is a
// multiple of 8 it is also the file's last 8 bytes: a footer can be found from the end
// of the file. Version 2 lets start-up count each target's queue without reading the
// segment; sluice writes it, and reads version 1 (from older releases) as "not counted".
struct SegmentFooter {
  uint64_t first_seq = 0;
  uint64_t end_seq = 0;  // first sequence after the segment
  uint64_t records = 0;
  // Records for each target (absent: none); nullopt when the footer does not say.
  std::optional<TargetCounts> targets;
};

// A footer names at most this many targets: a segment holding messages for more gets a
// version 1 footer (start-up then reads it to count). Bounds a footer to ~67 KiB.
constexpr size_t kMaxFooterTargets = 256;

// True when the footer can list its targets: footer.targets holds at most
// kMaxFooterTargets names, none longer than 255 bytes.
bool FooterCountsTargets(const SegmentFooter& footer);
// Version 2 when FooterCountsTargets(footer), else version 1.
std::string EncodeSegmentFooterPayload(const SegmentFooter& footer);
// Either version; nullopt when the payload is neither or does not add up.
std::optional<SegmentFooter> DecodeSegmentFooter(const RecordHeader& header,
                                                 std::string_view payload);
// Bytes the footer record takes (header and payload).
size_t SegmentFooterSize(const SegmentFooter& footer);

// A whole footer record: header, payload and nothing after (footers need no padding).
std::optional<SegmentFooter> DecodeSegmentFooterRecord(std::string_view record);
// The largest footer record: kMaxFooterTargets names of 255 bytes.
constexpr size_t kMaxSegmentFooterBytes =
    kRecordHeaderSize + 24 + kMaxFooterTargets * (8 + 1 + 255) + 7 + 8;

// Tallies the records of a segment as they are written or scanned, for its footer.
class SegmentTally {
 public:
  // One record's payload.
  void Add(std::string_view payload);
  // The counts so far; nullopt once more than kMaxFooterTargets targets were seen.
  const std::optional<TargetCounts>& counts() const { return counts_; }
  void Reset() { counts_.emplace(); }

 private:
  std::optional<TargetCounts> counts_ = TargetCounts{};
  std::vector<std::string_view> names_;  // reused for each record
};

}  // namespace sluice::buffer
