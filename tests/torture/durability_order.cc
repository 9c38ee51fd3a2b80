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

namespace {

// The numeric last argument ("..., 1, 4096)": a pwritev's offset, an ftruncate's length.
std::optional<uint64_t> LastNumber(const Syscall& c) {
  size_t comma = c.args.rfind(", ");
  if (comma == std::string::npos) return std::nullopt;
  std::string last = c.args.substr(comma + 2);
  if (last.empty() || last.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoull(last);
}

// How far writes to `path` reached before line `before`: the end of the furthest pwritev.
uint64_t WrittenEnd(const std::vector<Syscall>& calls, const std::string& path, size_t before) {
  uint64_t end = 0;
  for (const Syscall& c : calls) {
    if (!IsFileWrite(c) || !c.Succeeded() || c.FdPath() != path || c.finished >= before) continue;
    if (std::optional<uint64_t> offset = LastNumber(c)) {
      end = std::max<uint64_t>(end, *offset + std::stoull(c.result));
    }
  }
  return end;
}

// Segments and cursor files of a trace, and the check that `removal` (an unlink or a cut
// of segment `path`) comes after every cursor was durably past the segment.
class SegmentRemovals {
 public:
  explicit SegmentRemovals(const std::vector<Syscall>& calls) : calls_(calls) {
    for (const Syscall& c : calls) {
      if (IsFileWrite(c) && IsCursor(c.FdPath())) cursor_files_.insert(c.FdPath());
      if (IsFileWrite(c) && IsSegment(c.FdPath())) {
        if (auto first = SegmentFirstSeq(c.FdPath())) segment_starts_.insert(*first);
      }
    }
  }

  void Check(const std::string& path, const Syscall& removal, const std::string& what,
             OrderCheck* check) const {
    ++check->checked;
    // A segment holds the sequences below the next segment's first.
    std::optional<uint64_t> first = SegmentFirstSeq(path);
    auto next = first ? segment_starts_.upper_bound(*first) : segment_starts_.end();
    if (next == segment_starts_.end()) {
      check->findings.Check(false, what + " a segment with no later segment", Line(removal));
      return;
    }
    check->findings.Check(!cursor_files_.empty(), what + " a segment, no cursor ever written",
                          Line(removal));
    for (const std::string& cursor : cursor_files_) {
      uint64_t durable = DurableCursor(calls_, cursor, removal.started);
      check->findings.Check(
          durable >= *next, what + " a segment before a cursor was durably past it",
          Line(removal) + ": " + cursor + " durable at " + std::to_string(durable) +
              ", segment ends before " + std::to_string(*next));
    }
  }

 private:
  const std::vector<Syscall>& calls_;
  std::set<std::string> cursor_files_;
  std::set<uint64_t> segment_starts_;
};

}  // namespace

OrderCheck CheckUnlinksFollowCursorSync(const std::vector<Syscall>& calls) {
  OrderCheck check;
  SegmentRemovals removals(calls);
  for (const Syscall& c : calls) {
    if (c.name != "unlink" && c.name != "unlinkat") continue;
    std::string path = c.QuotedString().value_or("");
    if (!IsSegment(path) || !c.Succeeded()) continue;
    removals.Check(path, c, "unlinked", &check);
  }
  return check;
}

OrderCheck CheckCutsFollowCursorSync(const std::vector<Syscall>& calls) {
  OrderCheck check;
  SegmentRemovals removals(calls);
  for (const Syscall& c : calls) {
    if (c.name != "ftruncate" || !IsSegment(c.FdPath())) continue;
    std::optional<uint64_t> length = LastNumber(c);
    // Cutting preallocated space after the last byte written (sealing) destroys nothing.
    if (!length || *length >= WrittenEnd(calls, c.FdPath(), c.started)) continue;
    removals.Check(c.FdPath(), c, "cut", &check);
  }
  return check;
}

}  // namespace sluice::torture
