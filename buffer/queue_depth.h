#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "buffer/log.h"
#include "common/status.h"

namespace sluice::buffer {

// What counting took: segments counted from their footers, and what had to be read.
struct QueueCountStats {
  size_t segments_from_footers = 0;  // segments some target counted from its footer
  size_t segments_read = 0;          // segments some target counted by reading records
  uint64_t records_read = 0;
};

// For each target in `cursors` (name -> its cursor), counts the stored records addressed
// to it (a message's target list names it) with a sequence at or after its cursor and
// below log.readable_end() at the call. Sets (*queued)[target] for each.
//
// A sealed segment with per-target counts in its footer is counted from the footer for
// every target whose cursor is at or before its start. Only the segment holding a cursor,
// the active segment and segments sealed without counts (older releases) are read, each
// once for all the targets that need it. A record that cannot be read (a damaged sealed
// segment) is not counted; one counted from a footer is, as the footer says.
common::Status CountQueued(const Log& log, const std::map<std::string, uint64_t>& cursors,
                           std::map<std::string, uint64_t>* queued,
                           QueueCountStats* stats = nullptr);

}  // namespace sluice::buffer
