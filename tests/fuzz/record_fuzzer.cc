// Fuzzes the decoders of bytes read back from disk: record headers, segment headers,
// footers and file names, message payloads, dead-letter payloads and idempotency keys
// (buffer/record.h, segment.h, segment_footer.h, message.h, dead_letter.h, idempotency.h).
//
// The same input goes to every decoder. Properties:
//   - no decoder crashes, reads out of bounds or allocates without bound;
//   - a record header decodes as kZero exactly when it is all zeros, and a valid one
//     re-encodes (with a payload that matches it) to the very same 32 bytes;
//   - with its CRC made right, a header is valid exactly when its version is known and
//     its length is within kMaxPayloadBytes (the CRC is the only other gate);
//   - the payload formats have one encoding per value: whatever decodes re-encodes to
//     the input byte for byte, and decodes again to the same value.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "buffer/dead_letter.h"
#include "buffer/idempotency.h"
#include "buffer/message.h"
#include "buffer/record.h"
#include "buffer/segment.h"
#include "buffer/segment_footer.h"
#include "common/crc32c.h"

namespace {

namespace buffer = sluice::buffer;
namespace crc32c = sluice::common::crc32c;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "record_fuzzer: %s\n", what);
  std::abort();
}

void Check(bool ok, const char* what) {
  if (!ok) Fail(what);
}

uint32_t LoadU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

uint16_t LoadU16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

bool SameHeader(const buffer::RecordHeader& a, const buffer::RecordHeader& b) {
  return a.payload_len == b.payload_len && a.seq == b.seq && a.ingest_unix_ns == b.ingest_unix_ns &&
         a.flags == b.flags && a.version == b.version && a.payload_crc == b.payload_crc;
}

bool SameMessage(const buffer::Message& a, const buffer::Message& b) {
  return a.id == b.id && a.method == b.method && a.target == b.target &&
         a.client_addr == b.client_addr && a.route == b.route && a.targets == b.targets &&
         a.headers == b.headers && a.body == b.body;
}

bool SameLetter(const buffer::DeadLetter& a, const buffer::DeadLetter& b) {
  return a.target == b.target && a.seq == b.seq && a.ingest_unix_ns == b.ingest_unix_ns &&
         a.dead_unix_ns == b.dead_unix_ns && a.reason == b.reason && a.attempts == b.attempts &&
         a.last_status == b.last_status && a.payload == b.payload;
}

void CheckRecordHeader(std::string_view in) {
  if (in.size() < buffer::kRecordHeaderSize) return;
  static const char kZeros[buffer::kRecordHeaderSize] = {};
  bool zero = std::memcmp(in.data(), kZeros, buffer::kRecordHeaderSize) == 0;

  buffer::RecordHeader h;
  buffer::HeaderState state = buffer::DecodeRecordHeader(in.data(), &h);
  Check((state == buffer::HeaderState::kZero) == zero, "kZero iff the header is all zeros");
  if (state == buffer::HeaderState::kValid) {
    Check(h.version == buffer::kRecordVersion, "valid header with an unknown version");
    Check(h.payload_len <= buffer::kMaxPayloadBytes, "valid header with an oversized payload");
    std::string_view rest = in.substr(buffer::kRecordHeaderSize);
    if (h.payload_len <= rest.size()) {
      std::string_view payload = rest.substr(0, h.payload_len);
      bool crc_ok = crc32c::Unmask(h.payload_crc) == crc32c::Value(payload.data(), payload.size());
      Check(buffer::PayloadMatches(h, payload) == crc_ok, "PayloadMatches disagrees with the CRC");
      if (crc_ok) {
        char again[buffer::kRecordHeaderSize];
        buffer::EncodeRecordHeader(h.seq, h.ingest_unix_ns, h.flags, payload, again);
        Check(std::memcmp(again, in.data(), buffer::kRecordHeaderSize) == 0,
              "a valid header did not re-encode to the same bytes");
      }
      if (!payload.empty()) {
        Check(!buffer::PayloadMatches(h, payload.substr(1)), "a shorter payload matched");
      }
    }
  }

  // The same header with a correct header CRC: only version and length may reject it.
  char fixed[buffer::kRecordHeaderSize];
  std::memcpy(fixed, in.data(), sizeof(fixed));
  uint32_t crc = crc32c::Mask(crc32c::Value(fixed + 4, sizeof(fixed) - 4));
  std::memcpy(fixed, &crc, 4);
  buffer::RecordHeader fh;
  buffer::HeaderState fixed_state = buffer::DecodeRecordHeader(fixed, &fh);
  Check(fixed_state != buffer::HeaderState::kZero || crc == 0, "kZero for a non-zero header");
  if (fixed_state != buffer::HeaderState::kZero) {
    bool acceptable = LoadU16(fixed + 26) == buffer::kRecordVersion &&
                      LoadU32(fixed + 4) <= buffer::kMaxPayloadBytes;
    Check((fixed_state == buffer::HeaderState::kValid) == acceptable,
          "a header with a correct CRC was judged on something else than version and length");
  }
  if (state == buffer::HeaderState::kValid) {
    Check(fixed_state == buffer::HeaderState::kValid && SameHeader(h, fh),
          "re-computing a correct CRC changed the header");
  }
}

void CheckMessage(std::string_view in) {
  std::optional<buffer::Message> m = buffer::DecodeMessage(in);
  if (!m) return;
  std::string encoded = buffer::EncodeMessage(*m);
  Check(encoded == in, "a decoded message did not re-encode to the same bytes");
  std::optional<buffer::Message> again = buffer::DecodeMessage(encoded);
  Check(again.has_value(), "a re-encoded message did not decode");
  Check(SameMessage(*m, *again), "a message changed in a round trip");
  // What the proxy does with a decoded message.
  for (const auto& t : m->targets) Check(m->IsFor(t), "IsFor misses a listed target");
}

void CheckDeadLetter(std::string_view in, uint64_t seq, uint64_t ingest_unix_ns) {
  std::optional<buffer::DeadLetter> dl = buffer::DecodeDeadLetterPayload(in, seq, ingest_unix_ns);
  if (!dl) return;
  Check(dl->seq == seq && dl->ingest_unix_ns == ingest_unix_ns,
        "seq and ingest time must come from the record header");
  std::string encoded = buffer::EncodeDeadLetterPayload(*dl);
  Check(encoded == in, "a decoded dead letter did not re-encode to the same bytes");
  std::optional<buffer::DeadLetter> again =
      buffer::DecodeDeadLetterPayload(encoded, seq, ingest_unix_ns);
  Check(again.has_value(), "a re-encoded dead letter did not decode");
  Check(SameLetter(*dl, *again), "a dead letter changed in a round trip");
  // Listing and replaying dead letters decode the message inside.
  CheckMessage(dl->payload);
}

void CheckSegmentFraming(std::string_view in) {
  if (in.size() >= buffer::kSegmentHeaderSize) {
    if (std::optional<uint64_t> first = buffer::DecodeSegmentHeader(in.data())) {
      char again[buffer::kSegmentHeaderSize];
      buffer::EncodeSegmentHeader(*first, again);
      Check(buffer::DecodeSegmentHeader(again) == first, "a segment header round trip failed");
    }
  }
  if (in.size() >= 24) {
    std::string_view name = in.substr(0, 24);
    if (std::optional<uint64_t> seq = buffer::ParseSegmentFileName(name)) {
      Check(buffer::SegmentFileName(*seq) == name, "two file names for one segment");
    }
  }
  // A footer: the record header, then its payload.
  if (in.size() >= buffer::kRecordHeaderSize) {
    buffer::RecordHeader h;
    if (buffer::DecodeRecordHeader(in.data(), &h) == buffer::HeaderState::kValid &&
        h.payload_len <= in.size() - buffer::kRecordHeaderSize) {
      std::string_view payload = in.substr(buffer::kRecordHeaderSize, h.payload_len);
      if (auto footer = buffer::DecodeSegmentFooter(h, payload)) {
        Check((h.flags & buffer::kFlagFooter) != 0, "a footer without the footer flag");
        Check(footer->end_seq == h.seq && footer->end_seq - footer->first_seq == footer->records,
              "a footer that does not add up");
        Check(buffer::EncodeSegmentFooterPayload(*footer) == payload,
              "a decoded footer did not re-encode to the same bytes");
        Check(buffer::RecordSize(payload.size()) == buffer::SegmentFooterSize(*footer),
              "a footer of another size than SegmentFooterSize()");
        Check(payload.size() % 8 == 0, "a footer that needs padding cannot end a file");
        Check(footer->targets.has_value() == (payload.size() != 16),
              "version 1 footers are exactly the ones without counts");
        if (footer->targets) {
          uint64_t size;
          std::memcpy(&size, payload.data() + payload.size() - 8, 8);
          Check(size == buffer::kRecordHeaderSize + payload.size(),
                "a version 2 footer that does not end with its size");
          for (const auto& [name, records] : *footer->targets) {
            Check(records >= 1 && records <= footer->records, "a target count out of range");
          }
        }
        // As a whole record (the payload CRC checked too), as when read from a file's end.
        auto whole = buffer::DecodeSegmentFooterRecord(
            in.substr(0, buffer::kRecordHeaderSize + payload.size()));
        Check(whole.has_value() == buffer::PayloadMatches(h, payload),
              "a footer record decodes exactly when its payload matches its CRC");
        Check(!whole || (whole->end_seq == footer->end_seq && whole->targets == footer->targets),
              "the footer record decodes differently from its payload");
      }
    }
  }
}

void CheckIdempotencyEntry(std::string_view in) {
  std::optional<buffer::IdempotencyEntry> e = buffer::DecodeIdempotencyEntry(in);
  if (!e) return;
  Check(buffer::EncodeIdempotencyEntry(*e) == in,
        "a decoded idempotency entry did not re-encode to the same bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckRecordHeader(in);
  CheckMessage(in);
  CheckDeadLetter(in, size, ~uint64_t{0} - size);
  CheckSegmentFraming(in);
  CheckIdempotencyEntry(in);
  // A record as the log stores it: the payload after the header.
  if (size >= buffer::kRecordHeaderSize) {
    std::string_view payload = in.substr(buffer::kRecordHeaderSize);
    CheckMessage(payload);
    CheckDeadLetter(payload, 1, 2);
    CheckIdempotencyEntry(payload);
  }
  return 0;
}
