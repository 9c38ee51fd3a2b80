#include "buffer/dead_letter.h"

#include "buffer/endian.h"

namespace sluice::buffer {

std::string EncodeDeadLetterPayload(const DeadLetter& dl) {
  std::string out;
  out.reserve(32 + dl.reason.size() + dl.payload.size());
  AppendU8(&out, 1);
  AppendU32(&out, static_cast<uint32_t>(dl.dead_unix_ns));
  AppendU32(&out, static_cast<uint32_t>(dl.dead_unix_ns >> 32));
  AppendU32(&out, dl.attempts);
  AppendU32(&out, static_cast<uint32_t>(dl.last_status));
  AppendU16(&out, static_cast<uint16_t>(dl.reason.size()));
  out.append(dl.reason);
  AppendU32(&out, static_cast<uint32_t>(dl.payload.size()));
  out.append(dl.payload);
  return out;
}

std::optional<DeadLetter> DecodeDeadLetterPayload(std::string_view payload, uint64_t seq,
                                                  uint64_t ingest_unix_ns) {
  ByteReader r(payload);
  if (r.U8() != 1) return std::nullopt;
  DeadLetter dl;
  dl.seq = seq;
  dl.ingest_unix_ns = ingest_unix_ns;
  uint64_t low = r.U32();
  uint64_t high = r.U32();
  dl.dead_unix_ns = low | (high << 32);
  dl.attempts = r.U32();
  dl.last_status = static_cast<int32_t>(r.U32());
  dl.reason = r.Take(r.U16());
  dl.payload = r.Take(r.U32());
  if (r.failed() || !r.at_end()) return std::nullopt;
  return dl;
}

}  // namespace sluice::buffer
