#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "buffer/log.h"
#include "buffer/log_reader.h"
#include "buffer/queue.h"
#include "buffer/queue_depth.h"

namespace sluice::buffer {

// The embedded default backend: the segmented log on local disk (Log), one LogReader and
// one cursor per target.
class DiskQueue final : public Queue {
 public:
  // Opens (recovers) the log in options.dir and counts each of options.targets' queue
  // from disk. options.wake and options.on_commit come from `events`.
  static common::Status Open(LogOptions options, const QueueEvents& events,
                             std::unique_ptr<DiskQueue>* out, RecoveryReport* report = nullptr,
                             QueueCountStats* counted = nullptr);
  ~DiskQueue() override;

  common::Status Append(std::string payload, uint64_t ingest_unix_ns, Done done) override {
    return log_->Append(std::move(payload), ingest_unix_ns, std::move(done));
  }
  void Submit() override { log_->Submit(); }
  void RunCompletions() override { log_->RunCompletions(); }
  common::Status AppendIdempotencyKey(IdempotencyEntry entry, Done done) override {
    return log_->AppendIdempotencyKey(std::move(entry), std::move(done));
  }
  std::vector<IdempotencyEntry> TakeLoadedIdempotencyKeys() override {
    return log_->TakeLoadedIdempotencyKeys();
  }
  // Space is freed a whole segment at a time: the slowest cursor must reach the start
  // of the second segment.
  uint64_t BacklogBeforeRoom(uint64_t slowest_progress) const override;

  common::Status OpenTarget(const std::string& target, bool added,
                            std::unique_ptr<TargetQueue>* out) override;
  void RemoveTarget(const std::string& target) override { log_->RemoveTarget(target); }

  common::Status AppendDeadLetter(DeadLetter dl, Done done) override {
    return log_->AppendDeadLetter(std::move(dl), std::move(done));
  }
  uint64_t DeadLetterCount(const std::string& target) const override {
    return log_->DeadLetterCount(target);
  }
  common::Status ListDeadLetters(const std::string& target,
                                 std::vector<DeadLetter>* out) const override {
    return log_->ListDeadLetters(target, out);
  }
  common::Status PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                  Done done) override {
    return log_->PurgeDeadLetters(target, id, std::move(done));
  }
  common::Status ReplayDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                   Done done, size_t* queued) override {
    return log_->ReplayDeadLetters(target, id, std::move(done), queued);
  }

  const char* kind() const override { return "disk"; }
  common::Status fatal_error() const override { return log_->fatal_error(); }
  common::Status Availability() const override;
  void Reconfigure(const QueueTunables& t) override {
    log_->Reconfigure(t.max_bytes, t.segment_bytes, t.fsync, t.fsync_interval);
  }
  uint64_t bytes() const override { return log_->bytes(); }
  uint64_t max_bytes() const override { return log_->max_bytes(); }
  size_t segment_count() const override { return log_->segment_count(); }
  void Close() override { log_->Close(); }

  Log& log() { return *log_; }

 private:
  explicit DiskQueue(std::unique_ptr<Log> log) : log_(std::move(log)) {}

  std::unique_ptr<Log> log_;
  std::map<std::string, uint64_t> queued_at_open_;  // counted at Open, per target
};

// One target's reader over the log. Records addressed to other targets of a fan-out are
// passed over; the cursor is the lowest sequence read and not yet finished.
class DiskTargetQueue final : public TargetQueue {
 public:
  // "log" must outlive this object.
  DiskTargetQueue(Log& log, std::string target, uint64_t cursor, uint64_t queued);

  Result Next(QueuedMessage* out, common::Status* error) override;
  void Finish(uint64_t seq) override;
  uint64_t queued_at_open() const override { return queued_at_open_; }
  uint64_t progress() const override { return cursor_; }
  uint64_t skipped() const override { return reader_.skipped() + undecodable_; }

 private:
  void UpdateCursor();

  Log& log_;
  const std::string target_;
  LogReader reader_;
  const uint64_t queued_at_open_;
  std::set<uint64_t> unfinished_;  // read, not yet delivered or dead-lettered
  uint64_t cursor_;
  uint64_t undecodable_ = 0;
};

}  // namespace sluice::buffer
