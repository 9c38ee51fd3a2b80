#include "buffer/log_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include "buffer/segment.h"

namespace sluice::buffer {

using common::Status;

LogReader::~LogReader() { CloseSegment(); }

void LogReader::CloseSegment() {
  if (fd_ >= 0) (void)log_.fs().Close(fd_);
  fd_ = -1;
  ahead_.Clear();
}

Status LogReader::OpenSegment(const Log::SegmentRef& ref) {
  CloseSegment();
  Status s = log_.fs().Open(ref.path, O_RDONLY, &fd_);
  if (!s.ok()) return s;
  segment_first_seq_ = ref.first_seq;
  offset_ = kSegmentHeaderSize;
  return Refresh();
}

Status LogReader::Refresh() {
  if (auto span = log_.ReadableIn(segment_first_seq_)) {
    limit_ = span->bytes;
    switch_seq_ = span->switch_seq;
    return Status::OK();
  }
  // Reclaimed since it was opened, so sealed long ago: the file size is safe to read to.
  // Look for another segment at every record from here on.
  switch_seq_ = 0;
  return log_.fs().FileSize(fd_, &limit_);
}

Status LogReader::Position() {
  auto ref = log_.SegmentFor(next_seq_);
  if (!ref) return Status::NotFound("no segment");
  Status s = OpenSegment(*ref);
  if (!s.ok()) return s;
  if (next_seq_ < ref->first_seq) {
    // Older records were reclaimed (every cursor had passed them).
    next_seq_ = ref->first_seq;
    return Status::OK();
  }
  // Scan forward to next_seq_.
  SegmentScanner scanner(fd_, limit_, offset_, log_.fs(), &ahead_);
  RecordHeader h;
  std::string payload;
  for (uint64_t seq = ref->first_seq; seq < next_seq_; ++seq) {
    if (scanner.Next(&h, &payload, &s) != SegmentScanner::Result::kRecord) break;
    offset_ = scanner.offset();
  }
  return s;
}

LogReader::Result LogReader::Next(RecordHeader* header, std::string* payload, Status* error) {
  for (;;) {
    if (next_seq_ >= log_.readable_end()) return Result::kCaughtUp;
    // Below switch_seq_ no other segment can start at next_seq_: no lookup per record.
    if (fd_ < 0 || next_seq_ >= switch_seq_) {
      if (auto starting = log_.SegmentStartingAt(next_seq_);
          starting && (fd_ < 0 || starting->first_seq != segment_first_seq_)) {
        *error = OpenSegment(*starting);
      } else if (fd_ < 0) {
        *error = Position();
        if (error->ok()) continue;  // it may have moved next_seq_
      } else {
        *error = Refresh();
      }
      if (!error->ok()) return Result::kError;
    }
    // The active segment grows: what was readable at the last refresh may end before the
    // record, which readable_end() says is there.
    if (offset_ + kRecordHeaderSize > limit_) {
      *error = Refresh();
      if (!error->ok()) return Result::kError;
    }
    SegmentScanner scanner(fd_, limit_, offset_, log_.fs(), &ahead_);
    auto result = scanner.Next(header, payload, error);
    if (!error->ok()) return Result::kError;
    if (result == SegmentScanner::Result::kRecord && header->seq == next_seq_) {
      offset_ = scanner.offset();
      ++next_seq_;
      return Result::kRecord;
    }
    // A durable record that cannot be read whole: a damaged sealed segment. Skip to the
    // next segment; the records in between are lost and counted.
    auto next = log_.SegmentAfter(next_seq_);
    if (!next) return Result::kCaughtUp;  // the writer has not published it yet
    skipped_ += next->first_seq - next_seq_;
    next_seq_ = next->first_seq;
  }
}

}  // namespace sluice::buffer
