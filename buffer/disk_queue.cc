#include "buffer/disk_queue.h"

namespace sluice::buffer {

using common::Status;

Status DiskQueue::Open(LogOptions options, const QueueEvents& events,
                       std::unique_ptr<DiskQueue>* out, RecoveryReport* report,
                       QueueCountStats* counted) {
  options.wake = events.wake;
  options.on_commit = events.on_commit;
  std::vector<std::string> targets = options.targets;
  std::unique_ptr<Log> log;
  Status s = Log::Open(std::move(options), &log, report);
  if (!s.ok()) return s;
  std::unique_ptr<DiskQueue> queue(new DiskQueue(std::move(log)));
  // From disk, never from a counter; footers spare reading all but a segment or so.
  std::map<std::string, uint64_t> cursors;
  for (const auto& t : targets) cursors[t] = queue->log_->LoadedCursor(t);
  s = CountQueued(*queue->log_, cursors, &queue->queued_at_open_, counted);
  if (!s.ok()) {
    queue->Close();
    return s;
  }
  *out = std::move(queue);
  return Status::OK();
}

DiskQueue::~DiskQueue() { log_->Close(); }

uint64_t DiskQueue::BacklogBeforeRoom(uint64_t slowest_progress) const {
  uint64_t reclaim_at = log_->NextReclaimSeq();
  return reclaim_at > slowest_progress ? reclaim_at - slowest_progress : 0;
}

Status DiskQueue::OpenTarget(const std::string& target, bool added,
                             std::unique_ptr<TargetQueue>* out) {
  uint64_t cursor = 0;
  uint64_t queued = 0;
  if (!added) {
    cursor = log_->LoadedCursor(target);
    auto it = queued_at_open_.find(target);
    if (it != queued_at_open_.end()) queued = it->second;
  } else {
    // A target seen before resumes from its cursor file, with what is still queued for
    // it; a new one starts at the end of the log.
    Status s = log_->AddTarget(target, &cursor);
    if (!s.ok()) return s;
    std::map<std::string, uint64_t> counts;
    s = CountQueued(*log_, {{target, cursor}}, &counts);
    if (!s.ok()) return s;
    queued = counts[target];
  }
  *out = std::make_unique<DiskTargetQueue>(*log_, target, cursor, queued);
  return Status::OK();
}

Status DiskQueue::Availability() const {
  Status fatal = log_->fatal_error();
  if (!fatal.ok()) return fatal;
  if (log_->bytes() >= log_->max_bytes()) {
    return Status::Busy("buffer at max_bytes: ingest answers 503");
  }
  return Status::OK();
}

DiskTargetQueue::DiskTargetQueue(Log& log, std::string target, uint64_t cursor, uint64_t queued)
    : log_(log),
      target_(std::move(target)),
      reader_(log, cursor),
      queued_at_open_(queued),
      cursor_(cursor) {}

// Reads until the next record for this target. `out` is reused for records that are not
// for it (a fan-out to other targets) or cannot be decoded.
TargetQueue::Result DiskTargetQueue::Next(QueuedMessage* out, Status* error) {
  bool advanced = false;
  Result result = Result::kCaughtUp;
  while (true) {
    RecordHeader header;
    auto read = reader_.Next(&header, &out->payload, error);
    if (read == LogReader::Result::kCaughtUp) break;
    if (read == LogReader::Result::kError) {
      result = Result::kError;
      break;
    }
    advanced = true;
    auto message = DecodeMessageView(out->payload);
    if (!message) {
      ++undecodable_;
      continue;
    }
    if (!message->IsFor(target_)) continue;
    out->tag = header.seq;
    out->ingest_unix_ns = header.ingest_unix_ns;
    out->message = std::move(*message);
    unfinished_.insert(header.seq);
    result = Result::kMessage;
    break;
  }
  if (advanced) UpdateCursor();
  return result;
}

void DiskTargetQueue::Finish(uint64_t seq) {
  unfinished_.erase(seq);
  UpdateCursor();
}

// The cursor is the lowest sequence not yet finished: everything below it is done.
void DiskTargetQueue::UpdateCursor() {
  uint64_t cursor = unfinished_.empty() ? reader_.next_seq() : *unfinished_.begin();
  if (cursor != cursor_) {
    cursor_ = cursor;
    log_.SetCursor(target_, cursor);
  }
}

}  // namespace sluice::buffer
