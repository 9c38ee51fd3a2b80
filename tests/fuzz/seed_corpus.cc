// Writes the binary seed corpora of the fuzzers (records, segments, HTTP with its chunk
// prefix) with the real encoders, so that the seeds are valid to begin with and the
// fuzzer starts past the CRCs. Run once; the output is committed:
//   fuzz_seed_corpus tests/fuzz/corpus
// Deterministic: the same files every run.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/dead_letter.h"
#include "buffer/idempotency.h"
#include "buffer/message.h"
#include "buffer/record.h"
#include "buffer/segment.h"
#include "buffer/segment_footer.h"

namespace {

namespace buffer = sluice::buffer;
namespace fs = std::filesystem;

void Write(const fs::path& dir, const std::string& name, std::string_view bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
    std::exit(1);
  }
}

buffer::Message SampleMessage(uint64_t n) {
  buffer::Message m;
  for (size_t i = 0; i < m.id.bytes.size(); ++i) m.id.bytes[i] = static_cast<uint8_t>(n * 31 + i);
  m.method = n % 2 ? "PUT" : "POST";
  m.target = "/orders/" + std::to_string(n) + "?x=1";
  m.client_addr = "127.0.0.1";
  m.route = "writes";
  m.targets = {"orders"};
  if (n % 3 == 0) m.targets.push_back("audit");
  m.headers = {{"Host", "example"}, {"Content-Type", "application/json"}};
  m.body = "{\"n\":" + std::to_string(n) + "}";
  return m;
}

// One record as the log writes it: header, payload, zero padding.
std::string Record(uint64_t seq, std::string_view payload, uint16_t flags = 0) {
  std::string out(buffer::RecordSize(payload.size()), '\0');
  buffer::EncodeRecordHeader(seq, 1700000000000000000ull + seq, flags, payload, out.data());
  std::copy(payload.begin(), payload.end(), out.begin() + buffer::kRecordHeaderSize);
  return out;
}

// The footer that seals a segment holding [first_seq, end_seq): version 1 (as releases
// before per-target counts wrote it) without `targets`, version 2 with them.
std::string Footer(uint64_t first_seq, uint64_t end_seq,
                   std::optional<buffer::TargetCounts> targets = std::nullopt) {
  std::string payload = buffer::EncodeSegmentFooterPayload(
      {first_seq, end_seq, end_seq - first_seq, std::move(targets)});
  std::string out(buffer::kRecordHeaderSize, '\0');
  buffer::EncodeRecordHeader(end_seq, 0, buffer::kFlagFooter, payload, out.data());
  return out + payload;
}

// The counts of SampleMessage(first..end-1): every one for "orders", every third for "audit".
buffer::TargetCounts SampleCounts(uint64_t first, uint64_t end) {
  buffer::TargetCounts counts;
  for (uint64_t n = first; n < end; ++n) {
    ++counts["orders"];
    if (n % 3 == 0) ++counts["audit"];
  }
  return counts;
}

std::string IdempotencyKey(uint64_t n, uint64_t expires_unix_ns) {
  buffer::IdempotencyEntry e;
  e.scoped_key = "writes\nkey-" + std::to_string(n);
  for (size_t i = 0; i < e.id.bytes.size(); ++i) e.id.bytes[i] = static_cast<uint8_t>(n + i);
  e.fingerprint = 0x9e3779b97f4a7c15ull * n;
  e.expires_unix_ns = expires_unix_ns;
  return buffer::EncodeIdempotencyEntry(e);
}

std::string DeadLetterPayload(uint64_t n) {
  buffer::DeadLetter dl;
  dl.dead_unix_ns = 1700000001000000000ull + n;
  dl.attempts = static_cast<uint32_t>(n + 1);
  dl.last_status = n % 2 ? 503 : 0;
  dl.reason = n % 2 ? "max_attempts" : "rejected";
  dl.payload = buffer::EncodeMessage(SampleMessage(n));
  return buffer::EncodeDeadLetterPayload(dl);
}

void RecordSeeds(const fs::path& dir) {
  buffer::Message empty;
  Write(dir, "message-empty", buffer::EncodeMessage(empty));
  Write(dir, "message-1", buffer::EncodeMessage(SampleMessage(1)));
  Write(dir, "message-3-fanout", buffer::EncodeMessage(SampleMessage(3)));
  Write(dir, "dead-letter-1", DeadLetterPayload(1));
  Write(dir, "dead-letter-2", DeadLetterPayload(2));
  Write(dir, "record-message", Record(7, buffer::EncodeMessage(SampleMessage(7))));
  Write(dir, "record-dead-letter", Record(9, DeadLetterPayload(9)));
  Write(dir, "record-empty-payload", Record(1, ""));
  Write(dir, "record-zero-header", std::string(buffer::kRecordHeaderSize, '\0'));
  Write(dir, "footer", Footer(1, 4));
  Write(dir, "footer-counted", Footer(1, 4, SampleCounts(1, 4)));
  Write(dir, "footer-counted-none", Footer(1, 4, buffer::TargetCounts{}));
  Write(dir, "idempotency-key", IdempotencyKey(1, 4102444800000000000ull));
  Write(dir, "record-idempotency-key", Record(0, IdempotencyKey(2, 1)));
  std::string seg_header(buffer::kSegmentHeaderSize, '\0');
  buffer::EncodeSegmentHeader(42, seg_header.data());
  Write(dir, "segment-header", seg_header);
  Write(dir, "segment-name", buffer::SegmentFileName(42));
}

// Recovery seeds: option byte, K byte, then the segment body (after its header). The
// option bits are those of recovery_fuzzer.cc.
void RecoverySeeds(const fs::path& dir) {
  enum : uint8_t {
    kFixCrcs = 1,
    kAppend = 2,
    kOlder = 4,
    kDeadLetters = 8,
    kRawHeader = 16,
    kIdempotency = 32
  };
  auto body = [](uint64_t first, uint64_t count) {
    std::string out;
    for (uint64_t s = first; s < first + count; ++s) {
      out += Record(s, buffer::EncodeMessage(SampleMessage(s)));
    }
    return out;
  };
  auto seed = [](uint8_t options, uint8_t k, const std::string& b) {
    return std::string(1, static_cast<char>(options)) + std::string(1, static_cast<char>(k)) + b;
  };
  const std::string three = body(1, 3);
  Write(dir, "three-records", seed(0, 0, three));
  Write(dir, "three-records-fallocated-tail", seed(0, 0, three + std::string(256, '\0')));
  Write(dir, "three-records-sealed", seed(0, 0, three + Footer(1, 4)));
  Write(dir, "sealed-then-junk", seed(0, 0, three + Footer(1, 4) + std::string(16, 'x')));
  Write(dir, "footer-mismatch", seed(0, 0, three + Footer(1, 5)));
  Write(dir, "torn-last-record", seed(0, 0, three.substr(0, three.size() - 5)));
  Write(dir, "torn-header", seed(0, 0, three + Record(4, "x").substr(0, 20)));
  std::string flipped = three;
  flipped[flipped.size() - 9] ^= 0x40;  // last payload damaged
  Write(dir, "bad-payload-crc", seed(0, 0, flipped));
  Write(dir, "sequence-gap", seed(0, 0, body(1, 2) + body(4, 1)));
  Write(dir, "no-records", seed(0, 0, std::string(64, '\0')));
  Write(dir, "empty", seed(0, 0, ""));
  Write(dir, "unpadded-last", seed(0, 0, body(1, 1) + Record(2, "abc").substr(0, 35)));
  Write(dir, "fix-crcs", seed(kFixCrcs, 0, three));
  Write(dir, "append", seed(kAppend, 0, three));
  Write(dir, "append-empty", seed(kAppend, 0, ""));
  Write(dir, "three-records-sealed-counted", seed(0, 0, three + Footer(1, 4, SampleCounts(1, 4))));
  Write(dir, "sealed-counted-then-junk",
        seed(0, 0, three + Footer(1, 4, SampleCounts(1, 4)) + std::string(24, '\0')));
  Write(dir, "sealed-counts-wrong", seed(0, 0, three + Footer(1, 4, {{{"orders", 1}}})));
  // Older segment sealed at its place: records 1..K-1 and their footer (K = 2 + byte % 32).
  Write(dir, "older-sealed", seed(kOlder, 2, body(1, 3) + Footer(1, 4)));
  Write(dir, "older-sealed-counted",
        seed(kOlder, 2, body(1, 3) + Footer(1, 4, SampleCounts(1, 4))));
  Write(dir, "older-unsealed-fanout", seed(kOlder, 4, body(1, 5)));
  Write(dir, "older-sealed-append", seed(kOlder | kAppend, 0, body(1, 1) + Footer(1, 2)));
  Write(dir, "older-sealed-damaged-inside",
        seed(kOlder, 2, flipped.substr(0, flipped.size()) + Footer(1, 4)));
  // Its footer is not the file's end: a crash between the footer's sync and the cut after
  // it (the fallocated zeros stay), or junk. Cut right after that footer, not sealed again.
  Write(dir, "older-sealed-then-zeros",
        seed(kOlder, 2, body(1, 3) + Footer(1, 4, SampleCounts(1, 4)) + std::string(256, '\0')));
  Write(dir, "older-sealed-then-junk",
        seed(kOlder, 2, body(1, 3) + Footer(1, 4, SampleCounts(1, 4)) + std::string(24, 'x')));
  std::string letters = Record(5, DeadLetterPayload(5)) + Record(9, DeadLetterPayload(9)) +
                        Record(11, "not a letter");
  Write(dir, "dead-letters", seed(kDeadLetters, 0, letters));
  Write(dir, "dead-letters-torn",
        seed(kDeadLetters | kAppend, 0, letters.substr(0, letters.size() - 3)));
  Write(dir, "raw-header",
        seed(kRawHeader, 0, std::string(buffer::kSegmentHeaderSize, 'S') + three));
  std::string keys = Record(0, IdempotencyKey(1, 4102444800000000000ull)) +  // 2100
                     Record(0, IdempotencyKey(2, 1)) +                       // long expired
                     Record(0, "not a key");
  Write(dir, "idempotency-keys", seed(kIdempotency, 0, keys));
}

// Inputs that showed bugs the fuzzer found (fixed in 4844dae): in the corpus, so that its
// replay keeps them fixed.
void RecoveryRegressionSeeds(const fs::path& dir) {
  auto seed = [](uint8_t options, uint8_t k, const std::string& b) {
    return std::string(1, static_cast<char>(options)) + std::string(1, static_cast<char>(k)) + b;
  };
  std::string three;
  for (uint64_t s = 1; s <= 3; ++s) three += Record(s, buffer::EncodeMessage(SampleMessage(s)));
  // Older segment 1 holds 1..3, the tail starts at K = 5: sealed short of it at the
  // first start, it was found unsealed again (and re-sealed) at every start after.
  Write(dir, "older-segment-gap-resealed-every-start", seed(4, 3, three));
  // A dead-letter file holding a (well-formed) footer record after its first letter: Open
  // kept the footer, and letters appended after it were dropped at the next start.
  buffer::DeadLetter dl;
  dl.reason = "rejected";
  dl.payload = buffer::EncodeMessage(SampleMessage(5));
  Write(dir, "dead-letter-file-footer-kept",
        seed(8, 0, Record(5, buffer::EncodeDeadLetterPayload(dl)) + Footer(1, 4)));
}

// HTTP seeds: 4 chunk-size bytes (0 = the rest), then what a client sends.
void RequestSeeds(const fs::path& dir) {
  struct Seed {
    const char* name;
    const char* http;
  };
  static const Seed kSeeds[] = {
      {"get", "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"post-content-length",
       "POST /orders?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
       "Content-Length: 11\r\n\r\n{\"id\":1234}"},
      {"post-chunked",
       "POST /orders HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"},
      {"chunked-trailer",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
       "5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"},
      {"pipelined",
       "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
       "PUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
       "DELETE /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
      {"http10", "POST /x HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"},
      {"expect-continue",
       "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody"},
      {"idempotency-key",
       "POST /pay HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k-1\r\nX-Forwarded-For: 10.0.0.1\r\n"
       "Content-Length: 1\r\n\r\nx"},
      {"gzip-chunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
      {"te-and-cl",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n"},
      {"double-cl",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
      {"body-too-large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n"},
      {"bad-version", "GET / HTTP/9.9\r\n\r\n"},
      {"lf-only", "GET / HTTP/1.1\nHost: a\n\n"},
      {"space-before-colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
      {"obs-fold", "GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n"},
      {"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"},
      {"upgrade",
       "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
      {"absolute-form",
       "POST http://example.com/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"},
      {"options-star", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"bad-chunk-size",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
      {"empty-header-value", "GET / HTTP/1.1\r\nX-Empty:\r\nHost: a\r\n\r\n"},
  };
  // Whole, byte by byte, and two irregular patterns.
  static const uint8_t kPrefixes[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {7, 3, 13, 0}, {2, 5, 1, 9}};
  for (const Seed& s : kSeeds) {
    for (size_t p = 0; p < sizeof(kPrefixes) / sizeof(kPrefixes[0]); ++p) {
      // Every seed whole; the chunked variants for a few of them only, to keep it small.
      if (p > 0 && std::string_view(s.name) != "post-chunked" &&
          std::string_view(s.name) != "pipelined" &&
          std::string_view(s.name) != "chunked-trailer" &&
          std::string_view(s.name) != "post-content-length") {
        continue;
      }
      std::string bytes(reinterpret_cast<const char*>(kPrefixes[p]), 4);
      bytes += s.http;
      Write(dir, std::string(s.name) + (p == 0 ? "" : "-split" + std::to_string(p)), bytes);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  fs::path root = fs::path(argv[1]).lexically_normal();
  if (!root.has_filename()) root = root.parent_path();  // "corpus/"
  RecordSeeds(root / "record");
  RecoverySeeds(root / "recovery");
  RecoveryRegressionSeeds(root / "recovery");
  RequestSeeds(root / "request_parser");
  return 0;
}
