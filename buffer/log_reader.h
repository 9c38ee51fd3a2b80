#pragma once

#include <cstdint>
#include <string>

#include "buffer/log.h"
#include "buffer/record.h"

namespace sluice::buffer {

// Reads a Log's records in sequence order from a starting sequence, never at or beyond
// Log::readable_end(). One reader per target; it costs one open file and one record.
// "log" must remain live while this reader is in use.
class LogReader {
 public:
  enum class Result {
    kRecord,    // *header and *payload hold the record with sequence next_seq()-1
    kCaughtUp,  // nothing readable yet
    kError,     // I/O error reading a segment; *error says which
  };

  LogReader(const Log& log, uint64_t start_seq) : log_(log), next_seq_(start_seq) {}
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
  void CloseSegment();

  const Log& log_;
  uint64_t next_seq_;
  uint64_t skipped_ = 0;
  int fd_ = -1;
  uint64_t segment_first_seq_ = 0;
  uint64_t file_size_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace sluice::buffer
