#include "buffer/queue_depth.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <vector>

#include "buffer/log_reader.h"
#include "buffer/message.h"

namespace sluice::buffer {
namespace {

using common::Status;

// The sequences [lo, hi) of one segment and, for the targets that must read its records
// to count them, where each one's count starts and where it goes.
struct Stretch {
  uint64_t lo;
  uint64_t hi;
  struct Reader {
    uint64_t cursor;
    uint64_t* count;
  };
  std::map<std::string_view, Reader, std::less<>> readers;
};

}  // namespace

Status CountQueued(const Log& log, const std::map<std::string, uint64_t>& cursors,
                   std::map<std::string, uint64_t>* queued, QueueCountStats* stats) {
  QueueCountStats unused;
  if (stats == nullptr) stats = &unused;
  for (const auto& [target, cursor] : cursors) (*queued)[target] = 0;
  // Taken before the segments: a segment created after the call starts at or after it.
  const uint64_t end = log.readable_end();
  const std::vector<Log::SegmentSummary> segments = log.SegmentSummaries();

  std::vector<Stretch> to_read;
  for (size_t i = 0; i < segments.size(); ++i) {
    const Log::SegmentSummary& seg = segments[i];
    Stretch stretch{seg.first_seq,
                    std::min(end, i + 1 < segments.size() ? segments[i + 1].first_seq : end),
                    {}};
    if (stretch.lo >= stretch.hi) continue;
    bool from_footer = false;
    for (const auto& [target, cursor] : cursors) {
      if (cursor >= stretch.hi) continue;  // delivered past this segment
      if (cursor <= stretch.lo && seg.targets) {
        auto it = seg.targets->find(target);
        if (it != seg.targets->end()) (*queued)[target] += it->second;
        from_footer = true;
      } else {
        stretch.readers.emplace(target, Stretch::Reader{cursor, &(*queued)[target]});
      }
    }
    if (from_footer) ++stats->segments_from_footers;
    if (!stretch.readers.empty()) to_read.push_back(std::move(stretch));
  }

  // One reader goes on through adjacent stretches; a gap (segments counted from their
  // footers) starts a new one where the next stretch's first reader needs it.
  std::optional<LogReader> reader;
  RecordHeader header;
  std::string payload;
  bool pending = false;  // header/payload hold a record read but not counted yet
  std::vector<std::string_view> names;
  for (const Stretch& stretch : to_read) {
    ++stats->segments_read;
    uint64_t from = stretch.hi;
    for (const auto& [name, r] : stretch.readers) from = std::min(from, r.cursor);
    from = std::max(from, stretch.lo);
    const uint64_t next_unread = !reader ? 0 : pending ? header.seq : reader->next_seq();
    if (!reader || next_unread != from) {
      reader.emplace(log, from);
      pending = false;
    }
    for (;;) {
      if (!pending) {
        Status error;
        auto result = reader->Next(&header, &payload, &error);
        if (result == LogReader::Result::kError) return error;
        if (result == LogReader::Result::kCaughtUp) return Status::OK();  // nothing more
        ++stats->records_read;
        pending = true;
      }
      if (header.seq >= stretch.hi) break;  // the next stretch's, maybe
      pending = false;
      if (!DecodeMessageTargets(payload, &names)) continue;
      for (std::string_view name : names) {
        auto it = stretch.readers.find(name);
        if (it != stretch.readers.end() && header.seq >= it->second.cursor) ++*it->second.count;
      }
    }
  }
  return Status::OK();
}

}  // namespace sluice::buffer
