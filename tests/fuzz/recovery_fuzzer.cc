// Fuzzes crash recovery: buffer::Log::Open over a segment file of arbitrary content,
// then buffer::LogReader over everything it kept, Close, and a second Open.
//
// Input: byte 0 selects options (below), byte 1 a sequence number, the rest is the
// segment's body: it is written after a valid segment header (EncodeSegmentHeader) as
// <dir>/seg/00000000000000000001.log.
//   kFixCrcs       walk the body as records and make their header and payload CRCs
//                  right, so that lengths, versions, flags, sequence numbers, footers and
//                  padding get explored (a mutated CRC is otherwise just "corrupt").
//   kAppend        after reading, append one record and read it back: recovery left the
//                  log writable at the right sequence.
//   kOlder         the fuzzed segment is not the tail: a valid segment starting at
//                  K = 2 + byte1 % 32, one record and no footer (a crash), follows it.
//                  The fuzzed one is then an older segment: kept if it ends with a footer
//                  that matches its place; else cut after a footer matching its records
//                  when one follows them, otherwise after its last record in sequence and
//                  sealed.
//   kDeadLetters   the body is also written as dead/t.log, the dead-letter file.
//   kRawHeader     the body's first 32 bytes replace the segment header.
//   kIdempotency   the body is also written as an idempotency/ keys file.
//
// Properties: Open succeeds and never crashes, hangs or leaks memory or descriptors; the
// records read are exactly those an independent scan of the file (written from the
// format in record.h, segment.h, segment_footer.h and message.h) finds whole, valid and
// in sequence, in order, and nothing else; the tail is cut right after the last of them
// and sealed with a footer whose per-target counts are those of the records it keeps
// (and so is an older segment recovery seals); the log's segment summaries say the same;
// dead letters and idempotency keys load as their files hold them; a second recovery of
// what the first one left changes nothing. An older segment ends where the next one
// starts: records at or past the next segment's first sequence (damage; the writer never
// makes them) are cut when it is sealed.

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/dead_letter.h"
#include "buffer/idempotency.h"
#include "buffer/log.h"
#include "buffer/log_reader.h"
#include "buffer/record.h"
#include "buffer/segment.h"
#include "buffer/segment_footer.h"
#include "common/crc32c.h"

namespace {

namespace buffer = sluice::buffer;
namespace crc32c = sluice::common::crc32c;
using sluice::common::Status;

enum Option : uint8_t {
  kFixCrcs = 1 << 0,
  kAppend = 1 << 1,
  kOlder = 1 << 2,
  kDeadLetters = 1 << 3,
  kRawHeader = 1 << 4,
  kIdempotency = 1 << 5,
};
constexpr const char* kTarget = "t";
constexpr size_t kFooterV1Size = buffer::kRecordHeaderSize + 16;  // first_seq, records
constexpr size_t kMaxFooterTargets = 256;                         // more: a version 1 footer

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "recovery_fuzzer: %s\n", what.c_str());
  std::abort();
}

void Check(bool ok, const std::string& what) {
  if (!ok) Fail(what);
}

void CheckOk(const Status& s, const char* what) {
  if (!s.ok()) Fail(std::string(what) + ": " + s.ToString());
}

uint16_t LoadU16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

uint32_t LoadU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

uint64_t LoadU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

void StoreU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }

// One scratch directory per process, emptied before every input.
const std::filesystem::path& Root() {
  static const std::filesystem::path root = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/sluice-recovery-fuzzer.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) Fail("mkdtemp " + pattern + ": " + strerror(errno));
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(Root(), ec);
    });
    return std::filesystem::path(pattern);
  }();
  return root;
}

void WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Fail("open " + path.string() + ": " + strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Fail("write " + path.string() + ": " + strerror(errno));
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

// Size of a file, or nullopt when it does not exist.
std::optional<uint64_t> FileSize(const std::filesystem::path& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

size_t OpenDescriptors() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  while (readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

// Makes the CRCs of the records laid out in `body` (from offset 0) right, as far as
// their lengths lead; stops at a zero header or a record that runs past the end.
void FixCrcs(std::string* body) {
  static const char kZeros[buffer::kRecordHeaderSize] = {};
  size_t off = 0;
  while (off + buffer::kRecordHeaderSize <= body->size()) {
    char* h = body->data() + off;
    if (std::memcmp(h, kZeros, sizeof(kZeros)) == 0) break;
    uint32_t len = LoadU32(h + 4);
    if (len > body->size() - off - buffer::kRecordHeaderSize) break;
    StoreU32(h + 28, crc32c::Mask(crc32c::Value(h + buffer::kRecordHeaderSize, len)));
    StoreU32(h, crc32c::Mask(crc32c::Value(h + 4, buffer::kRecordHeaderSize - 4)));
    off += buffer::RecordSize(len);
  }
}

// ---- The reference reading of the format, from record.h and segment.h, not from the
// code under test.

struct RawRecord {
  uint64_t seq;
  uint64_t ingest_unix_ns;
  uint16_t flags;
  std::string payload;
  size_t next;  // offset of what follows, padding included
};

// The record at `offset` if it is whole, both CRCs match and its version is known.
std::optional<RawRecord> ParseRecord(std::string_view file, size_t offset) {
  if (offset + buffer::kRecordHeaderSize > file.size()) return std::nullopt;
  const char* h = file.data() + offset;
  uint32_t len = LoadU32(h + 4);
  if (crc32c::Unmask(LoadU32(h)) != crc32c::Value(h + 4, buffer::kRecordHeaderSize - 4)) {
    return std::nullopt;
  }
  if (LoadU16(h + 26) != 1 || len > file.size() - offset - buffer::kRecordHeaderSize) {
    return std::nullopt;
  }
  std::string_view payload = file.substr(offset + buffer::kRecordHeaderSize, len);
  if (crc32c::Unmask(LoadU32(h + 28)) != crc32c::Value(payload.data(), payload.size())) {
    return std::nullopt;
  }
  return RawRecord{LoadU64(h + 8), LoadU64(h + 16), LoadU16(h + 24), std::string(payload),
                   offset + buffer::kRecordHeaderSize + ((len + 7) & ~size_t{7})};
}

bool IsFooter(const RawRecord& r) { return (r.flags & 1) != 0; }

using Counts = std::map<std::string, uint64_t>;

// The distinct target names of a message payload (message.h: u8 version 1, 16-byte id,
// u16+method, u32+target, u16+client_addr, u16+route, u8 count + (u8+name)*), or nullopt
// when the payload is not a message up to its list.
std::optional<std::vector<std::string>> MessageTargets(std::string_view p) {
  size_t at = 0;
  auto take = [&](size_t n) -> std::optional<std::string_view> {
    if (n > p.size() - at) return std::nullopt;
    std::string_view out = p.substr(at, n);
    at += n;
    return out;
  };
  auto length = [&](size_t width) -> std::optional<size_t> {
    auto b = take(width);
    if (!b) return std::nullopt;
    uint64_t v = 0;
    std::memcpy(&v, b->data(), width);
    return static_cast<size_t>(v);
  };
  auto version = take(1);
  if (!version || (*version)[0] != 1 || !take(16)) return std::nullopt;
  for (size_t width : {2, 4, 2, 2}) {  // method, request-target, client address, route
    auto n = length(width);
    if (!n || !take(*n)) return std::nullopt;
  }
  auto count = length(1);
  if (!count) return std::nullopt;
  std::vector<std::string> names;
  for (size_t i = 0; i < *count; ++i) {
    auto n = length(1);
    std::optional<std::string_view> name = n ? take(*n) : std::nullopt;
    if (!name) return std::nullopt;
    if (std::find(names.begin(), names.end(), *name) == names.end()) names.emplace_back(*name);
  }
  return names;
}

// A footer as segment_footer.h describes it: span and, for version 2, per-target counts.
struct FooterInfo {
  uint64_t first;
  uint64_t end;
  std::optional<Counts> targets;
};

std::optional<FooterInfo> ParseFooter(const RawRecord& r) {
  const std::string& p = r.payload;
  if (!IsFooter(r) || p.size() < 16) return std::nullopt;
  FooterInfo f{LoadU64(p.data()), r.seq, std::nullopt};
  uint64_t records = LoadU64(p.data() + 8);
  if (r.seq - f.first != records) return std::nullopt;
  if (p.size() == 16) return f;
  if (p.size() < 32 || p.size() % 8 != 0) return std::nullopt;
  if (LoadU64(p.data() + p.size() - 8) != buffer::kRecordHeaderSize + p.size()) return std::nullopt;
  uint32_t count = LoadU32(p.data() + 16);
  if (LoadU32(p.data() + 20) != 0 || count > kMaxFooterTargets) return std::nullopt;
  const size_t end = p.size() - 8;
  size_t at = 24;
  Counts targets;
  std::string previous;
  for (uint32_t i = 0; i < count; ++i) {
    if (end - at < 9) return std::nullopt;
    uint64_t n = LoadU64(p.data() + at);
    size_t len = static_cast<uint8_t>(p[at + 8]);
    at += 9;
    if (end - at < len) return std::nullopt;
    std::string name = p.substr(at, len);
    at += len;
    if (n == 0 || n > records || (i > 0 && !(previous < name))) return std::nullopt;
    targets[name] = n;
    previous = name;
  }
  if (end - at >= 8) return std::nullopt;
  for (; at < end; ++at) {
    if (p[at] != '\0') return std::nullopt;
  }
  f.targets = std::move(targets);
  return f;
}

// A footer's (first_seq, end_seq) when it is well formed.
std::optional<std::pair<uint64_t, uint64_t>> FooterSpan(const RawRecord& r) {
  auto f = ParseFooter(r);
  if (!f) return std::nullopt;
  return std::make_pair(f->first, f->end);
}

// What a footer over records whose payloads are `payloads` counts for each target.
template <typename Records>
std::optional<Counts> CountTargets(const Records& records) {
  Counts counts;
  for (const auto& r : records) {
    if (auto names = MessageTargets(r.payload)) {
      for (const auto& name : *names) ++counts[name];
    }
  }
  if (counts.size() > kMaxFooterTargets) return std::nullopt;
  return counts;
}

// Bytes of the footer recovery writes for those counts (version 1 when nullopt).
size_t FooterSize(const std::optional<Counts>& counts) {
  if (!counts) return kFooterV1Size;
  size_t payload = 24;
  for (const auto& [name, n] : *counts) payload += 9 + name.size();
  return buffer::kRecordHeaderSize + ((payload + 7) & ~size_t{7}) + 8;
}

struct ExpectedRecord {
  uint64_t seq;
  uint64_t ingest_unix_ns;
  std::string payload;
};

// A segment read from its header: records in sequence from first_seq, up to anything
// else; a footer that matches what came before seals it.
struct SegmentView {
  std::vector<ExpectedRecord> records;
  uint64_t end = buffer::kSegmentHeaderSize;  // after the last record (or the footer)
  uint64_t end_seq = 0;
  bool sealed = false;
};

// `end_limit`: the next segment's first sequence (an older segment ends there).
SegmentView ReferenceSegment(std::string_view file, uint64_t first_seq,
                             uint64_t end_limit = UINT64_MAX) {
  SegmentView v;
  v.end_seq = first_seq;
  size_t offset = buffer::kSegmentHeaderSize;
  while (auto r = ParseRecord(file, offset)) {
    if (IsFooter(*r)) {
      auto span = FooterSpan(*r);
      v.sealed = span && span->first == first_seq && span->second == v.end_seq;
      if (v.sealed) v.end = r->next;
      break;
    }
    if (r->seq != v.end_seq || r->seq >= end_limit) break;
    v.records.push_back({r->seq, r->ingest_unix_ns, r->payload});
    ++v.end_seq;
    offset = v.end = r->next;
  }
  return v;
}

// The footer the file ends with: version 2 (its size is the last 8 bytes) or version 1,
// whole, after the segment header.
std::optional<FooterInfo> FooterAtEnd(std::string_view file) {
  if (file.size() < buffer::kSegmentHeaderSize + kFooterV1Size) return std::nullopt;
  uint64_t size = LoadU64(file.data() + file.size() - 8);
  for (uint64_t candidate : {size, uint64_t{kFooterV1Size}}) {
    if (candidate < kFooterV1Size || candidate > file.size() - buffer::kSegmentHeaderSize) {
      continue;
    }
    auto r = ParseRecord(file, file.size() - candidate);
    if (!r || r->next != file.size()) continue;
    if (auto f = ParseFooter(*r)) return f;
  }
  return std::nullopt;
}

// True when the file ends with a footer for [first_seq, end_seq).
// A footer may end short of `end_seq` (the next segment's start): records lost to a crash
// under fsync: interval/never leave a gap that readers skip. Such a segment is sealed.
bool EndsWithFooter(std::string_view file, uint64_t first_seq, uint64_t end_seq) {
  auto f = FooterAtEnd(file);
  return f && f->first == first_seq && f->end <= end_seq;
}

std::string ReadWhole(const std::filesystem::path& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// The segment recovery sealed ends with a footer counting `want` for each target.
void CheckSealedWithCounts(const std::filesystem::path& path, const std::optional<Counts>& want,
                           const char* which) {
  auto f = FooterAtEnd(ReadWhole(path));
  Check(f.has_value(), std::string(which) + " does not end with a footer");
  Check(f->targets == want, std::string(which) + "'s footer does not count its records' targets");
}

// What the log says a segment's footer counts equals `want`.
void CheckSummary(const buffer::Log& log, size_t index, const std::optional<Counts>& want,
                  const char* which) {
  auto summaries = log.SegmentSummaries();
  Check(index < summaries.size(), std::string(which) + ": no such segment in the summaries");
  const auto& got = summaries[index].targets;
  bool same = got.has_value() == want.has_value();
  if (same && got) same = Counts(got->begin(), got->end()) == *want;
  Check(same, std::string(which) + ": the log's summary disagrees with the records' targets");
}

// Records of a headerless file (dead letters, idempotency keys) from offset 0, up to the
// first that is not a whole valid message record. *end is the offset after the last.
std::vector<RawRecord> ReferenceRecords(std::string_view file, uint64_t* end) {
  std::vector<RawRecord> out;
  *end = 0;
  size_t offset = 0;
  while (auto r = ParseRecord(file, offset)) {
    if (IsFooter(*r)) break;
    offset = *end = r->next;
    out.push_back(std::move(*r));
  }
  return out;
}

// ---- Checks against the Log.

// Wakes the fuzzer thread when the log's writer has completions for it.
struct Wake {
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
};

void ReadAll(buffer::LogReader* reader, const std::vector<ExpectedRecord>& expected,
             const char* where) {
  for (const ExpectedRecord& e : expected) {
    buffer::RecordHeader h;
    std::string payload;
    Status error;
    auto result = reader->Next(&h, &payload, &error);
    CheckOk(error, "LogReader::Next");
    Check(result == buffer::LogReader::Result::kRecord,
          std::string(where) + ": a record recovery should have kept was not read, seq " +
              std::to_string(e.seq));
    Check(h.seq == e.seq && h.ingest_unix_ns == e.ingest_unix_ns && payload == e.payload,
          std::string(where) + ": read a different record than the one on disk, seq " +
              std::to_string(e.seq) + " (read seq " + std::to_string(h.seq) + ")");
    Check(buffer::PayloadMatches(h, payload), "LogReader returned a payload failing its CRC");
  }
  buffer::RecordHeader h;
  std::string payload;
  Status error;
  auto result = reader->Next(&h, &payload, &error);
  CheckOk(error, "LogReader::Next");
  Check(result == buffer::LogReader::Result::kCaughtUp,
        std::string(where) + ": read a record beyond those recovery should keep, seq " +
            std::to_string(h.seq));
}

// The dead-letter file as the store must see it: every whole record counted, the ones
// holding a dead letter listed, a torn end cut off.
void CheckDeadLetters(const buffer::Log& log, const std::vector<RawRecord>& records,
                      const std::filesystem::path& file, std::string_view body, uint64_t end) {
  Check(log.DeadLetterCount(kTarget) == records.size(),
        "dead letters counted " + std::to_string(log.DeadLetterCount(kTarget)) +
            ", the file holds " + std::to_string(records.size()));
  std::vector<buffer::DeadLetter> letters;
  CheckOk(log.ListDeadLetters(kTarget, &letters), "ListDeadLetters");
  size_t i = 0;
  for (const RawRecord& r : records) {
    auto dl = buffer::DecodeDeadLetterPayload(r.payload, r.seq, r.ingest_unix_ns);
    if (!dl) continue;
    Check(i < letters.size(), "a dead letter is missing from the list");
    Check(letters[i].seq == dl->seq && letters[i].payload == dl->payload &&
              letters[i].reason == dl->reason && letters[i].target == kTarget,
          "a listed dead letter differs from the file");
    ++i;
  }
  Check(i == letters.size(), "the list holds dead letters the file does not");
  Check(FileSize(file) == std::min<uint64_t>(end, body.size()),
        "the dead-letter file was not cut right after its last letter");
}

// Keys loaded at Open: the entries of the file that expire after `now` (the clock is
// real: entries expiring while Open ran may go either way).
void CheckIdempotencyKeys(buffer::Log* log, const std::vector<RawRecord>& records,
                          uint64_t before_ns, uint64_t after_ns) {
  std::vector<buffer::IdempotencyEntry> loaded = log->TakeLoadedIdempotencyKeys();
  size_t sure = 0;
  size_t maybe = 0;
  for (const RawRecord& r : records) {
    auto e = buffer::DecodeIdempotencyEntry(r.payload);
    if (!e) continue;
    if (e->expires_unix_ns > after_ns) ++sure;
    if (e->expires_unix_ns > before_ns) ++maybe;
  }
  Check(loaded.size() >= sure && loaded.size() <= maybe,
        "idempotency keys loaded: " + std::to_string(loaded.size()) + ", the file holds " +
            std::to_string(sure) + " live ones");
  for (const auto& e : loaded) {
    Check(e.expires_unix_ns > before_ns, "an expired idempotency key was loaded");
  }
}

uint64_t UnixNowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void RunOne(uint8_t options, uint8_t k_byte, std::string body) {
  const std::filesystem::path dir = Root() / "log";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "seg");
  std::filesystem::create_directories(dir / "dead");
  std::filesystem::create_directories(dir / "idempotency");

  if (options & kFixCrcs) FixCrcs(&body);
  std::string seg(buffer::kSegmentHeaderSize, '\0');
  buffer::EncodeSegmentHeader(1, seg.data());
  if ((options & kRawHeader) && body.size() >= buffer::kSegmentHeaderSize) seg.clear();
  seg += body;
  const std::filesystem::path seg1 = dir / "seg" / buffer::SegmentFileName(1);
  WriteFile(seg1, seg);

  const bool older = (options & kOlder) != 0;
  const uint64_t k = 2 + k_byte % 32;
  const std::string tail_payload = "tail record " + std::to_string(k);
  const std::filesystem::path seg_k = dir / "seg" / buffer::SegmentFileName(k);
  if (older) {
    std::string tail(buffer::kSegmentHeaderSize + buffer::RecordSize(tail_payload.size()), '\0');
    buffer::EncodeSegmentHeader(k, tail.data());
    buffer::EncodeRecordHeader(k, 7, 0, tail_payload, tail.data() + buffer::kSegmentHeaderSize);
    std::memcpy(tail.data() + buffer::kSegmentHeaderSize + buffer::kRecordHeaderSize,
                tail_payload.data(), tail_payload.size());
    WriteFile(seg_k, tail);
  }
  const std::filesystem::path dead_file = dir / "dead" / (std::string(kTarget) + ".log");
  if (options & kDeadLetters) WriteFile(dead_file, body);
  if (options & kIdempotency) {
    WriteFile(dir / "idempotency" / "00000000000000000001.log", body);
  }

  // What recovery must find and keep.
  const SegmentView view = ReferenceSegment(seg, 1, older ? k : UINT64_MAX);
  const bool header_ok = seg.size() >= buffer::kSegmentHeaderSize &&
                         buffer::DecodeSegmentHeader(seg.data()) == uint64_t{1};
  std::vector<ExpectedRecord> expected;  // what a reader from 1 gets, in order
  for (const auto& r : view.records) {
    if (!older || r.seq < k) expected.push_back(r);
  }
  const uint64_t seg1_readable = expected.size();
  if (older) expected.push_back({k, 7, tail_payload});
  // What the footers recovery writes must count: every record in sequence it keeps.
  const std::optional<Counts> seg1_counts = CountTargets(view.records);
  const std::optional<Counts> tail_counts =
      CountTargets(std::vector<ExpectedRecord>{{k, 7, tail_payload}});
  uint64_t dead_end = 0;
  const std::vector<RawRecord> dead_records = ReferenceRecords(body, &dead_end);
  uint64_t unused = 0;
  const std::vector<RawRecord> in_file = ReferenceRecords(
      std::string_view(seg).substr(std::min(seg.size(), buffer::kSegmentHeaderSize)), &unused);

  const size_t fds_before = OpenDescriptors();
  auto wake = std::make_shared<Wake>();
  buffer::LogOptions lo;
  lo.dir = dir.string();
  lo.segment_bytes = 4096;
  lo.max_bytes = 1 << 20;
  lo.fsync = buffer::FsyncPolicy::kNever;
  lo.targets = {kTarget};
  lo.wake = [wake] {
    std::lock_guard lock(wake->mu);
    wake->woken = true;
    wake->cv.notify_all();
  };
  uint64_t next_seq = 0;
  uint64_t skipped = 0;
  std::optional<uint64_t> seg1_size;
  {
    std::unique_ptr<buffer::Log> log;
    buffer::RecoveryReport report;
    const uint64_t before_ns = UnixNowNs();
    CheckOk(buffer::Log::Open(lo, &log, &report), "Log::Open");
    const uint64_t after_ns = UnixNowNs();
    next_seq = report.next_seq;
    seg1_size = FileSize(seg1);

    if (older) {
      Check(report.next_seq == k + 1, "the valid tail segment was not recovered whole");
      Check(report.segments == 2 && seg1_size.has_value(), "an older segment went missing");
      Check(report.truncated_bytes == 0, "bytes cut from a whole tail");
      Check(FileSize(seg_k) == buffer::kSegmentHeaderSize +
                                   buffer::RecordSize(tail_payload.size()) +
                                   FooterSize(tail_counts),
            "the tail segment was not sealed right after its record");
      CheckSealedWithCounts(seg_k, tail_counts, "the tail segment");
      CheckSummary(*log, 1, tail_counts, "the tail segment");
      if (EndsWithFooter(seg, 1, k)) {
        Check(report.unsealed_segments == 0 && seg1_size == seg.size(),
              "recovery changed an older segment sealed at its place");
        // Its footer is trusted as it stands (records are not read to check it).
        CheckSummary(*log, 0, FooterAtEnd(seg)->targets, "an older sealed segment");
      } else {
        Check(report.unsealed_segments == 1, "an unsealed older segment was not counted");
        // A footer that matches its records but is not the file's end (what follows it: a
        // crash between the footer's sync and the cut, or damage) seals the segment where
        // it stands: view.end is already past it, and the file is cut there. Otherwise
        // the file is cut after its last record in sequence and a footer written there.
        const uint64_t want = view.sealed ? view.end : view.end + FooterSize(seg1_counts);
        Check(seg1_size == want,
              "an unsealed older segment was not cut after its last record in sequence (or "
              "the footer that follows it) and sealed (size " +
                  std::to_string(seg1_size.value_or(0)) + ", expected " + std::to_string(want) +
                  ")");
        if (view.sealed) {
          auto f = FooterAtEnd(ReadWhole(seg1));
          Check(f && f->first == 1 && f->end == view.end_seq,
                "an older segment cut after its footer does not end with that footer");
        } else {
          CheckSealedWithCounts(seg1, seg1_counts, "an older segment recovery sealed");
        }
        // Scanned at recovery: counted from its records, whatever its footer says.
        CheckSummary(*log, 0, seg1_counts, "an older segment recovery sealed");
      }
    } else if (view.records.empty()) {
      Check(report.next_seq == 1 && report.segments == 0 && report.removed_segments == 1,
            "a tail segment without a whole record must be removed, the log starting at 1");
      Check(!seg1_size.has_value(), "an empty tail segment is still on disk");
    } else {
      Check(report.next_seq == view.end_seq,
            "recovery kept " + std::to_string(report.next_seq - 1) + " records, the file holds " +
                std::to_string(view.end_seq - 1) + " whole valid ones in sequence");
      Check(report.truncated_bytes == (seg.size() > view.end ? seg.size() - view.end : 0),
            "truncated_bytes is not the cut tail");
      // Sealed already: cut after the footer. Otherwise: cut after the last record (its
      // padding included) and sealed with a footer there.
      uint64_t want = view.sealed ? view.end : view.end + FooterSize(seg1_counts);
      Check(seg1_size == want,
            "the tail segment was not cut and sealed right after its last "
            "record (size " +
                std::to_string(seg1_size.value_or(0)) + ", expected " + std::to_string(want) + ")");
      if (!view.sealed) CheckSealedWithCounts(seg1, seg1_counts, "the tail segment");
      // Read whole at recovery: counted from its records, whatever its footer says.
      CheckSummary(*log, 0, seg1_counts, "the tail segment");
      Check(report.damaged_headers == (header_ok ? 0u : 1u), "damaged_headers miscounted");
    }

    buffer::LogReader reader(*log, 1);
    ReadAll(&reader, expected, "after recovery");
    skipped = older ? (k - 1) - seg1_readable : 0;
    Check(reader.skipped() == skipped, "LogReader::skipped() is not the number of lost records");

    // A reader starting in the middle positions itself (LogReader::Position).
    const uint64_t start = 1 + body.size() % next_seq;
    {
      buffer::LogReader middle(*log, start);
      if (!older || start <= seg1_readable || start >= k) {
        std::vector<ExpectedRecord> suffix;
        for (const auto& e : expected) {
          if (e.seq >= start) suffix.push_back(e);
        }
        ReadAll(&middle, suffix, "from the middle");
      } else {
        // Past the readable part of an older segment: whatever comes before the tail
        // must be a record of that file with the sequence number asked for.
        uint64_t want = start;
        for (;;) {
          buffer::RecordHeader h;
          std::string payload;
          Status error;
          auto result = middle.Next(&h, &payload, &error);
          CheckOk(error, "LogReader::Next");
          Check(result == buffer::LogReader::Result::kRecord, "the tail record was not reached");
          if (h.seq == k) {
            Check(payload == tail_payload, "the tail record read wrong");
            break;
          }
          Check(h.seq == want, "a reader skipped within a segment or went backwards");
          bool found = false;
          for (const auto& r : in_file) found = found || (r.seq == h.seq && r.payload == payload);
          Check(found, "a reader returned a record that is not in the file");
          ++want;
        }
        Check(want - start + middle.skipped() == k - start, "records read and skipped miscount");
        ReadAll(&middle, {}, "from the damaged middle");
      }
    }

    if (options & kAppend) {
      std::optional<Status> appended;
      uint64_t got_seq = 0;
      std::string payload = "appended after recovery";
      CheckOk(log->Append(payload, 42,
                          [&](const Status& s, uint64_t seq) {
                            appended = s;
                            got_seq = seq;
                          }),
              "Log::Append");
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!appended) {
        {
          std::unique_lock lock(wake->mu);
          if (!wake->cv.wait_until(lock, deadline, [&] { return wake->woken; })) {
            Fail("an append after recovery never completed");
          }
          wake->woken = false;
        }
        log->RunCompletions();
      }
      CheckOk(*appended, "append after recovery");
      Check(got_seq == next_seq, "an append after recovery got seq " + std::to_string(got_seq) +
                                     ", expected " + std::to_string(next_seq));
      expected.push_back({next_seq, 42, payload});
      ++next_seq;
      ReadAll(&reader, {expected.back()}, "after an append");
    }

    if (options & kDeadLetters) CheckDeadLetters(*log, dead_records, dead_file, body, dead_end);
    if (options & kIdempotency) {
      uint64_t keys_end = 0;
      CheckIdempotencyKeys(log.get(), ReferenceRecords(body, &keys_end), before_ns, after_ns);
    }
    log->Close();
  }
  Check(OpenDescriptors() == fds_before, "file descriptors leaked across Open/Close");

  // Recovering what a recovery left (a crash right after start-up) finds the same log and
  // changes nothing.
  {
    seg1_size = FileSize(seg1);
    std::unique_ptr<buffer::Log> log;
    buffer::RecoveryReport report;
    CheckOk(buffer::Log::Open(lo, &log, &report), "Log::Open again");
    Check(report.next_seq == next_seq, "a second recovery found a different end");
    Check(report.truncated_bytes == 0 && report.removed_segments == 0,
          "a second recovery cut more");
    Check(report.unsealed_segments == 0,
          "a segment sealed by the first recovery was found unsealed by the second");
    Check(FileSize(seg1) == seg1_size, "a second recovery changed the first segment (size " +
                                           std::to_string(seg1_size.value_or(0)) + " -> " +
                                           std::to_string(FileSize(seg1).value_or(0)) + ")");
    buffer::LogReader reader(*log, 1);
    ReadAll(&reader, expected, "after a second recovery");
    Check(reader.skipped() == skipped, "a second recovery lost different records");
    if (options & kDeadLetters) CheckDeadLetters(*log, dead_records, dead_file, body, dead_end);
    log->Close();
  }
  Check(OpenDescriptors() == fds_before, "file descriptors leaked across a second Open/Close");
  std::filesystem::remove_all(dir);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return -1;
  RunOne(data[0], data[1], std::string(reinterpret_cast<const char*>(data) + 2, size - 2));
  return 0;
}
