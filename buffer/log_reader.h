#pragma once

#include <cstdint>
#include <string>

#include "buffer/log.h"
#include "buffer/read_ahead.h"
#include "buffer/record.h"

namespace sluice::buffer {

// Reads a Log's records in sequence order from a starting sequence, never at or beyond
// Log::readable_end(). One reader per target; it costs one open file and a read-ahead
// window (ReadAhead::kDefaultCapacity, allocated on the first read), so that reading in
// order takes one system call per window of records, not two per record.
// "log" must remain live while this reader is in use.
class LogReader {
 public:
  enum class Result {
    kRecord,    // *header and *payload hold the record with sequence next_seq()-1
    kCaughtUp,  // nothing readable yet
    kError,     // I/O error reading a segment; *error says which
  };

  LogReader(const Log& log, uint64_t start_seq,
            size_t read_ahead_bytes = ReadAhead::kDefaultCapacity)
      : log_(log), next_seq_(start_seq), ahead_(read_ahead_bytes) {}
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  Result Next(RecordHeader* header, std::string* payload, common::Status* error);
  uint64_t next_seq() const { return next_seq_; }
  // Records lost to corruption so far (skipped over).
  uint64_t skipped() const { return skipped_; }

 private:
  common::Status OpenSegment(const Log::SegmentRef& ref);
  common::Status Position();  // opens the segment holding next_seq_ and seeks to it
  // Asks the log how far the open segment is readable now (Log::ReadableIn).
  common::Status Refresh();
  void CloseSegment();

  const Log& log_;
  uint64_t next_seq_;
  uint64_t skipped_ = 0;
  int fd_ = -1;
  uint64_t segment_first_seq_ = 0;
  uint64_t offset_ = 0;
  // From the last Refresh: the open segment's readable bytes, and the sequence from
  // which another segment may hold next_seq_. Checked per record without a lock.
  uint64_t limit_ = 0;
  uint64_t switch_seq_ = 0;
  ReadAhead ahead_;
};

}  // namespace sluice::buffer
