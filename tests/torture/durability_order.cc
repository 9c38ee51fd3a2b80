#include "tests/torture/durability_order.h"

#include <algorithm>
#include <optional>
#include <set>

#include "buffer/segment.h"

namespace sluice::torture {
namespace {

bool IsSocketWrite(const Syscall& c) {
  return c.name == "write" || c.name == "writev" || c.name == "sendto" || c.name == "sendmsg";
}
bool IsFileWrite(const Syscall& c) {
  return c.name == "pwritev" || c.name == "pwritev2" || c.name == "pwrite64";
}
bool IsSync(const Syscall& c) {
  return (c.name == "fdatasync" || c.name == "fsync") && c.Succeeded();
}
bool IsSegment(const std::string& path) { return path.find("/seg/") != std::string::npos; }
bool IsCursor(const std::string& path) { return path.find("/cursors/") != std::string::npos; }

std::optional<uint64_t> SegmentFirstSeq(const std::string& path) {
  return buffer::ParseSegmentFileName(path.substr(path.rfind('/') + 1));
}

// next_seq stored by a cursor slot write: {u64 generation, u64 next_seq, ...}, little-endian.
std::optional<uint64_t> CursorValue(const Syscall& write) {
  std::optional<std::string> slot = write.QuotedString();
  if (!slot || slot->size() < 16) return std::nullopt;
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>((*slot)[8 + i]);
  return v;
}

// The value of cursor file `path` that was durable at line `before`: the last slot written
// before the last successful sync of that file that returned before `before` (0: none).
uint64_t DurableCursor(const std::vector<Syscall>& calls, const std::string& path, size_t before) {
  const Syscall* sync = nullptr;
  for (const Syscall& c : calls) {
    if (IsSync(c) && c.FdPath() == path && c.finished < before) sync = &c;
  }
  if (sync == nullptr) return 0;
  std::optional<uint64_t> value;
  for (const Syscall& c : calls) {
    if (IsFileWrite(c) && c.FdPath() == path && c.finished < sync->started) value = CursorValue(c);
  }
  return value.value_or(0);
}

std::string Line(const Syscall& c) {
  return "line " + std::to_string(c.started + 1) + " " + c.name + "(" + c.args.substr(0, 120) +
         ") = " + c.result;
}

}  // namespace

OrderCheck CheckAcksFollowSegmentSync(const std::vector<Syscall>& calls,
                                      const std::vector<std::string>& tokens,
                                      const std::string& ingest_socket) {
  OrderCheck check;
  std::vector<const Syscall*> acks;
  for (const Syscall& c : calls) {
    if (IsSocketWrite(c) && c.QuotedString().value_or("").starts_with("HTTP/1.1 202")) {
      check.findings.Check(c.FdPath().find(ingest_socket) != std::string::npos,
                           "a 202 written to a socket other than the ingest one", Line(c));
      acks.push_back(&c);
    }
  }
  std::sort(acks.begin(), acks.end(),
            [](const Syscall* a, const Syscall* b) { return a->started < b->started; });
  check.findings.Check(acks.size() == tokens.size(), "202 writes in the trace != requests",
                       std::to_string(acks.size()) + " vs " + std::to_string(tokens.size()));
  for (size_t k = 0; k < tokens.size() && k < acks.size(); ++k) {
    const Syscall& ack = *acks[k];
    ++check.checked;
    auto record = std::find_if(calls.begin(), calls.end(), [&](const Syscall& c) {
      return IsFileWrite(c) && IsSegment(c.FdPath()) && c.args.find(tokens[k]) != std::string::npos;
    });
    if (record == calls.end()) {
      check.findings.Check(false, "no pwritev of the request's record to a segment", tokens[k]);
      continue;
    }
    check.findings.Check(record->finished < ack.started, "202 written before the record",
                         tokens[k] + ": " + Line(ack));
    bool synced = std::any_of(calls.begin(), calls.end(), [&](const Syscall& c) {
      return IsSync(c) && c.FdPath() == record->FdPath() && c.started > record->finished &&
             c.finished < ack.started;
    });
    check.findings.Check(synced, "202 written with no fdatasync of the segment since the record",
                         tokens[k] + ": record " + Line(*record) + "; 202 " + Line(ack));
    // The segment's directory entry must be durable too: seg/ fsync'ed after the segment
    // was first written (its header), before the 202.
    std::string seg_dir = record->FdPath().substr(0, record->FdPath().rfind('/'));
    auto created = std::find_if(calls.begin(), calls.end(), [&](const Syscall& c) {
      return IsFileWrite(c) && c.FdPath() == record->FdPath();
    });
    bool dir_synced = std::any_of(calls.begin(), calls.end(), [&](const Syscall& c) {
      return IsSync(c) && c.FdPath() == seg_dir && c.started > created->finished &&
             c.finished < ack.started;
    });
    check.findings.Check(dir_synced,
                         "202 written before seg/ was fsync'ed after the segment's creation",
                         tokens[k] + ": " + record->FdPath() + "; 202 " + Line(ack));
  }
  return check;
}

OrderCheck CheckUnlinksFollowCursorSync(const std::vector<Syscall>& calls) {
  OrderCheck check;
  std::set<std::string> cursor_files;
  std::set<uint64_t> segment_starts;
  for (const Syscall& c : calls) {
    if (IsFileWrite(c) && IsCursor(c.FdPath())) cursor_files.insert(c.FdPath());
    if (IsFileWrite(c) && IsSegment(c.FdPath())) {
      if (auto first = SegmentFirstSeq(c.FdPath())) segment_starts.insert(*first);
    }
  }
  for (const Syscall& c : calls) {
    if (c.name != "unlink" && c.name != "unlinkat") continue;
    std::string path = c.QuotedString().value_or("");
    if (!IsSegment(path) || !c.Succeeded()) continue;
    ++check.checked;
    // A segment holds the sequences below the next segment's first.
    std::optional<uint64_t> first = SegmentFirstSeq(path);
    auto next = first ? segment_starts.upper_bound(*first) : segment_starts.end();
    if (next == segment_starts.end()) {
      check.findings.Check(false, "unlinked a segment with no later segment", Line(c));
      continue;
    }
    check.findings.Check(!cursor_files.empty(), "segment unlinked, no cursor ever written",
                         Line(c));
    for (const std::string& cursor : cursor_files) {
      uint64_t durable = DurableCursor(calls, cursor, c.started);
      check.findings.Check(durable >= *next, "segment unlinked before a cursor was durably past it",
                           Line(c) + ": " + cursor + " durable at " + std::to_string(durable) +
                               ", segment ends before " + std::to_string(*next));
    }
  }
  return check;
}

}  // namespace sluice::torture
