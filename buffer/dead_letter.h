#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::buffer {

// A message a target will not get: why, after how many attempts, and the original
// record payload (so it can be listed and replayed). Stored in dead/<target>.log with
// the same record framing as segments, without a segment header.
struct DeadLetter {
  std::string target;
  uint64_t seq = 0;             // the message's sequence in the log
  uint64_t ingest_unix_ns = 0;  // when it was accepted
  uint64_t dead_unix_ns = 0;    // when it was dead-lettered
  std::string reason;           // "rejected", "max_attempts", "expired"
  uint32_t attempts = 0;
  int32_t last_status = 0;  // last HTTP status, 0 for network errors
  std::string payload;      // the original message payload
};

// u8 version=1 · u64 dead_unix_ns · u32 attempts · i32 last_status · u16+reason ·
// u32+payload. The seq and ingest time live in the record header.
std::string EncodeDeadLetterPayload(const DeadLetter& dl);
std::optional<DeadLetter> DecodeDeadLetterPayload(std::string_view payload, uint64_t seq,
                                                  uint64_t ingest_unix_ns);

}  // namespace sluice::buffer
