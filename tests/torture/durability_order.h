#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "tests/e2e/sluice_fixture.h"
#include "tests/torture/strace_log.h"

namespace sluice::torture {

// The durability rules of DESIGN.md, checked on a parsed strace log of sluice.
struct OrderCheck {
  size_t checked = 0;      // acks, unlinks or cuts looked at
  e2e::Findings findings;  // violations, grouped by kind
};

// Every 202 comes after an fdatasync of the segment that the request's record was
// pwritev'd to, and that sync began after the record was written; and after an fsync of
// the seg/ directory that began after the segment was first written. Request k's record is
// the first pwritev to a seg/ file containing tokens[k]; its answer is the k-th
// "HTTP/1.1 202" written to a socket whose description contains `ingest_socket` (one
// connection, one request at a time, so answers come in request order).
OrderCheck CheckAcksFollowSegmentSync(const std::vector<Syscall>& calls,
                                      const std::vector<std::string>& tokens,
                                      const std::string& ingest_socket);

// Every unlink of a segment comes after each cursor file is durably past it: the cursor
// value (u64 next_seq at bytes 8..16 of the slot written) made durable by the last
// fdatasync of that file before the unlink reaches the next segment's first sequence.
OrderCheck CheckUnlinksFollowCursorSync(const std::vector<Syscall>& calls);

// The same for every ftruncate of a segment below what was written to it (reclaimed
// segments are cut down in steps before their unlink; see Log::RemoveSegmentFile). Cuts
// to the end of the data or beyond (sealing drops preallocated space) destroy nothing.
OrderCheck CheckCutsFollowCursorSync(const std::vector<Syscall>& calls);

}  // namespace sluice::torture
