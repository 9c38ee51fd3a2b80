#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "buffer/file_system.h"
#include "buffer/read_ahead.h"
#include "buffer/record.h"
#include "buffer/segment_footer.h"
#include "common/status.h"

namespace sluice::buffer {

// A segment file seg/<first_seq, 20 digits>.log starts with a 32-byte header:
//   "SLUICESG" · u32 format version · u32 reserved · u64 first_seq · u32 reserved ·
//   u32 masked CRC32C of the preceding 28 bytes
// followed by records. The file is fallocated, so the unwritten tail reads as zeros.
// When the writer moves on, the segment is sealed: a footer record (segment_footer.h)
// is written and synced after the last record, and the file is cut to its end.
constexpr size_t kSegmentHeaderSize = 32;
constexpr uint32_t kSegmentVersion = 1;

std::string SegmentFileName(uint64_t first_seq);
std::optional<uint64_t> ParseSegmentFileName(std::string_view name);

void EncodeSegmentHeader(uint64_t first_seq, char* out);
// The first_seq recorded in a valid header; nullopt when the header is damaged.
std::optional<uint64_t> DecodeSegmentHeader(const char* in);

// The footer a segment file of `file_size` bytes ends with, after its header: version 2
// (its size is the file's last 8 bytes) or else version 1; nullopt when it ends with
// anything else. One read, two for a footer longer than 4 KiB.
common::Status ReadSegmentFooter(FileSystem& fs, int fd, uint64_t file_size,
                                 std::optional<SegmentFooter>* footer);

// Reads records one after another from an open segment file (or any file of records),
// never at or beyond `file_size`: for a segment being written, the caller passes the end
// of what is readable, not the size of the fallocated file.
class SegmentScanner {
 public:
  enum class Result {
    kRecord,     // *header and *payload filled, offset advanced
    kEnd,        // zero header or end of file: nothing more was written
    kTruncated,  // a valid header whose payload runs past the end of the file
    kCorrupt,    // header or payload CRC mismatch
    kSealed,     // the segment's footer: *footer filled (if asked), offset past it
  };
  // "fd" must remain open while the scanner is in use. With `ahead`, records are read
  // through that window (it may outlive the scanner: a reader keeps one across records;
  // REQUIRES: its capacity is at least kRecordHeaderSize); without it, each record costs
  // two reads.
  SegmentScanner(int fd, uint64_t file_size, uint64_t offset,
                 FileSystem& fs = FileSystem::Default(), ReadAhead* ahead = nullptr)
      : fs_(fs), fd_(fd), file_size_(file_size), offset_(offset), ahead_(ahead) {}

  Result Next(RecordHeader* header, std::string* payload, common::Status* io_error,
              SegmentFooter* footer = nullptr);
  uint64_t offset() const { return offset_; }

 private:
  FileSystem& fs_;
  int fd_;
  uint64_t file_size_;
  uint64_t offset_;
  ReadAhead* ahead_;
};

}  // namespace sluice::buffer
