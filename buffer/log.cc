#include "buffer/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "buffer/message.h"
#include "buffer/record.h"
#include "buffer/segment.h"

namespace sluice::buffer {

using common::Status;

Log::Log(LogOptions options)
    : options_(std::move(options)),
      fs_(options_.fs != nullptr ? *options_.fs : FileSystem::Default()),
      max_bytes_(options_.max_bytes),
      fsync_(options_.fsync),
      fsync_interval_(options_.fsync_interval),
      segment_bytes_(options_.segment_bytes) {}

void Log::Reconfigure(uint64_t max_bytes, uint64_t segment_bytes, FsyncPolicy fsync,
                      common::Duration fsync_interval) {
  max_bytes_.store(max_bytes, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  tunables_ = Tunables{segment_bytes, fsync, fsync_interval};
  cv_.notify_one();
}

Log::~Log() { Close(); }

Status Log::Open(LogOptions options, std::unique_ptr<Log>* out, RecoveryReport* report) {
  std::unique_ptr<Log> log(new Log(std::move(options)));
  const std::string& dir = log->options_.dir;
  Status s = log->fs_.MakeDirs(dir);
  if (s.ok()) s = log->fs_.LockDir(dir, &log->lock_fd_);
  if (s.ok()) s = log->fs_.MakeDirs(log->SegDir());
  if (s.ok()) s = log->fs_.MakeDirs(dir + "/cursors");
  if (s.ok()) s = log->fs_.MakeDirs(dir + "/dead");
  // The directories just made must survive a crash before the first acknowledgement
  // depends on them: sync the entries in buffer.dir, and buffer.dir's own in its parent.
  if (s.ok()) s = log->fs_.SyncDir(dir);
  if (s.ok()) {
    size_t slash = dir.find_last_of('/');
    std::string parent =
        slash == std::string::npos ? "." : (slash == 0 ? "/" : dir.substr(0, slash));
    s = log->fs_.SyncDir(parent);
  }
  RecoveryReport local;
  if (s.ok()) s = log->Recover(report != nullptr ? report : &local);
  if (s.ok()) s = log->OpenCursors();
  if (s.ok()) {
    // A crash between a cursor sync and the unlinks it allowed leaves segments every
    // target has passed: remove them now.
    size_t before = log->segments_.size();
    log->SyncCursorsAndReclaim(Unlinks::kNow);
    s = log->fatal_;
    if (report != nullptr) report->removed_segments += before - log->segments_.size();
  }
  if (s.ok()) {
    // Keys files roll every 10 minutes, so expired ones go within 10 minutes of expiry.
    log->keys_ =
        std::make_unique<IdempotencyFiles>(log->fs_, dir + "/idempotency", 600ull * 1'000'000'000);
    s = log->keys_->Open(static_cast<uint64_t>(log->clock_.UnixNow().count()), &log->loaded_keys_);
  }
  if (s.ok()) {
    log->dead_ = std::make_unique<DeadLetterStore>(log->fs_, dir + "/dead");
    s = log->dead_->Open(log->options_.targets);
  }
  if (!s.ok()) return s;
  // Cursors may move next_seq past a tail lost under fsync: interval/never.
  if (report != nullptr) report->next_seq = log->next_seq_;
  log->writer_ = std::thread([raw = log.get()] { raw->WriterMain(); });
  *out = std::move(log);
  return Status::OK();
}

// Finds the segments, and in the newest one the last complete record: everything after
// it was never acknowledged (an ack needs the record and its fdatasync), so it is cut off
// and writing continues in a fresh segment. Older segments were sealed on roll.
Status Log::Recover(RecoveryReport* report) {
  std::vector<std::string> names;
  Status s = fs_.ListDir(SegDir(), &names);
  if (!s.ok()) return s;
  for (const auto& name : names) {
    if (auto seq = ParseSegmentFileName(name)) {
      segments_.push_back(Segment{*seq, SegDir() + "/" + name, 0});
    } else {
      // Not ours to keep: nothing but segments is ever written here.
      s = fs_.Unlink(SegDir() + "/" + name);
      if (!s.ok()) return s;
      ++report->removed_orphans;
    }
  }
  std::sort(segments_.begin(), segments_.end(),
            [](const Segment& a, const Segment& b) { return a.first_seq < b.first_seq; });

  next_seq_ = segments_.empty() ? 1 : segments_.back().first_seq;
  while (!segments_.empty()) {
    Segment& tail = segments_.back();
    SegmentEnd found;
    s = ScanSegment(tail, UINT64_MAX, &found);
    if (!s.ok()) return s;
    if (!found.header_ok && found.end_seq != tail.first_seq) report->damaged_headers++;
    if (found.end_seq == tail.first_seq) {
      // Created but no record in it completed: nothing in it was ever acknowledged.
      s = fs_.Unlink(tail.path);
      if (!s.ok()) return s;
      ++report->removed_segments;
      next_seq_ = tail.first_seq;
      segments_.pop_back();
      continue;
    }
    if (found.file_size > found.end) report->truncated_bytes += found.file_size - found.end;
    if (!found.sealed) {
      // Cut what follows the last complete record (never acknowledged) and seal it:
      // writing resumes in a fresh segment, and every segment but the active one has
      // a footer.
      s = SealSegment(tail, found);
      if (!s.ok()) return s;
    } else {
      s = CutAfterFooter(tail, found);
      if (!s.ok()) return s;
    }
    next_seq_ = found.end_seq;
    break;
  }
  // Older segments were sealed when the writer left them; check their footers, and
  // scan and seal any that is not (a crash mid-roll, or damage at the end).
  uint64_t total = 0;
  for (size_t i = 0; i + 1 < segments_.size(); ++i) {
    bool sealed = false;
    s = CheckFooter(&segments_[i], segments_[i + 1].first_seq, &sealed);
    if (!s.ok()) return s;
    if (sealed) continue;
    ++report->unsealed_segments;
    SegmentEnd found;
    // The next segment's name says where the writer rolled: anything past that in this
    // one is damage (the writer never makes it), cut when the segment is sealed again.
    s = ScanSegment(segments_[i], segments_[i + 1].first_seq, &found);
    if (s.ok() && !found.sealed) s = SealSegment(segments_[i], found);
    if (s.ok() && found.sealed) s = CutAfterFooter(segments_[i], found);
    if (!s.ok()) return s;
  }
  for (const auto& seg : segments_) total += seg.size;
  if (report->removed_segments > 0) {
    s = fs_.SyncDir(SegDir());
    if (!s.ok()) return s;
  }
  bytes_.store(total);
  report->segments = segments_.size();
  report->next_seq = next_seq_;
  report->first_seq = segments_.empty() ? next_seq_ : segments_.front().first_seq;
  return Status::OK();
}

// Reads a segment from its header to the last complete record in sequence below
// `end_limit` (or its footer).
Status Log::ScanSegment(const Segment& segment, uint64_t end_limit, SegmentEnd* out) {
  int fd = -1;
  Status s = fs_.Open(segment.path, O_RDONLY, &fd);
  if (!s.ok()) return s;
  s = fs_.FileSize(fd, &out->file_size);
  char header[kSegmentHeaderSize];
  size_t got = 0;
  if (s.ok()) s = fs_.PreadUpTo(fd, header, sizeof(header), 0, &got);
  // The header is synced before any record in the segment is acknowledged, so a bad
  // header normally means a crash while creating it. But it may also be bit rot over
  // acknowledged records: scan anyway, and trust records whose CRCs and sequence
  // numbers (which start at the name's first_seq) check out.
  out->header_ok = got == sizeof(header) && DecodeSegmentHeader(header) == segment.first_seq;
  out->end = kSegmentHeaderSize;
  out->end_seq = segment.first_seq;
  out->sealed = false;
  if (s.ok()) {
    ReadAhead ahead;
    SegmentScanner scanner(fd, out->file_size, kSegmentHeaderSize, fs_, &ahead);
    RecordHeader rh;
    std::string payload;
    SegmentFooter footer;
    SegmentTally tally;  // for the footer SealSegment writes
    for (;;) {
      auto result = scanner.Next(&rh, &payload, &s, &footer);
      if (result == SegmentScanner::Result::kSealed) {
        out->sealed = footer.first_seq == segment.first_seq && footer.end_seq == out->end_seq;
        if (out->sealed) out->end = scanner.offset();
        break;
      }
      if (result != SegmentScanner::Result::kRecord || rh.seq != out->end_seq) break;
      if (rh.seq >= end_limit) break;
      ++out->end_seq;
      out->end = scanner.offset();
      tally.Add(payload);
    }
    out->targets = tally.counts();
  }
  (void)fs_.Close(fd);
  return s;
}

// Zeros or junk after a footer (a crash between its sync and the cut): cut them, so
// that the footer is the file's end and the next start finds the segment sealed.
Status Log::CutAfterFooter(Segment& segment, const SegmentEnd& found) {
  segment.size = found.end;
  segment.targets = found.targets;  // counted while scanning, whatever its footer says
  if (found.file_size <= found.end) return Status::OK();
  int fd = -1;
  Status s = fs_.Open(segment.path, O_RDWR, &fd);
  if (s.ok()) s = fs_.Truncate(fd, found.end, segment.path);
  if (fd >= 0) (void)fs_.Close(fd);
  return s;
}

// Writes the footer after the last record found, syncs, and cuts the file there.
Status Log::SealSegment(Segment& segment, const SegmentEnd& found) {
  int fd = -1;
  Status s = fs_.Open(segment.path, O_RDWR, &fd);
  if (!s.ok()) return s;
  s = WriteFooter(fd, segment, found.end, found.end_seq, found.targets);
  (void)fs_.Close(fd);
  return s;
}

Status Log::WriteFooter(int fd, Segment& segment, uint64_t end, uint64_t end_seq,
                        const std::optional<TargetCounts>& targets) {
  SegmentFooter footer{segment.first_seq, end_seq, end_seq - segment.first_seq, targets};
  std::string payload = EncodeSegmentFooterPayload(footer);
  char header[kRecordHeaderSize];
  EncodeRecordHeader(end_seq, 0, kFlagFooter, payload, header);
  Status s = fs_.PwriteAll(fd, {{header, sizeof(header)}, {payload.data(), payload.size()}}, end);
  if (s.ok() && fsync_ != FsyncPolicy::kNever) s = fs_.Fdatasync(fd, segment.path);
  uint64_t sealed_end = end + RecordSize(payload.size());
  // A failed truncate only leaves zeros that scanners read as the end.
  if (s.ok()) (void)fs_.Truncate(fd, sealed_end, segment.path);
  if (s.ok()) {
    segment.size = sealed_end;
    // What a version 1 footer (too many targets) does not say is not known.
    segment.targets = FooterCountsTargets(footer) ? targets : std::nullopt;
  }
  return s;
}

// True in *sealed when the segment ends with a footer that matches its place in the log.
Status Log::CheckFooter(Segment* segment, uint64_t next_first_seq, bool* sealed) {
  *sealed = false;
  int fd = -1;
  Status s = fs_.Open(segment->path, O_RDONLY, &fd);
  if (!s.ok()) return s;
  uint64_t size = 0;
  s = fs_.FileSize(fd, &size);
  std::optional<SegmentFooter> footer;
  if (s.ok()) s = ReadSegmentFooter(fs_, fd, size, &footer);
  // A footer may end short of the next segment: records lost to a crash under
  // fsync: interval/never (readers skip the gap and count it). It is still sealed.
  if (s.ok() && footer && footer->first_seq == segment->first_seq &&
      footer->end_seq <= next_first_seq) {
    *sealed = true;
    segment->size = size;
    segment->targets = std::move(footer->targets);
  }
  (void)fs_.Close(fd);
  return s;
}

Status Log::OpenCursors() {
  uint64_t oldest = segments_.empty() ? next_seq_ : segments_.front().first_seq;
  uint64_t newest_cursor = 0;
  for (const auto& target : options_.targets) {
    TargetCursor cursor;
    cursor.file = std::make_unique<CursorFile>(fs_);
    uint64_t seq = 0;
    Status s = cursor.file->Open(options_.dir + "/cursors/" + target + ".cur", oldest, &seq);
    if (!s.ok()) return s;
    // A cursor older than the oldest segment only means segments were reclaimed after
    // every target had passed them, and this cursor was not synced since.
    cursor.requested = std::max(seq, oldest);
    newest_cursor = std::max(newest_cursor, cursor.requested);
    cursors_.emplace(target, std::move(cursor));
  }
  // With every segment reclaimed the file names no longer tell the next sequence; the
  // cursors do. Sequence numbers must never go backwards under a cursor.
  next_seq_ = std::max(next_seq_, newest_cursor);
  readable_end_.store(next_seq_);
  return fs_.SyncDir(options_.dir + "/cursors");
}

Status Log::AddTarget(const std::string& target, uint64_t* cursor) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !writer_.joinable()) return Status::Busy("log is closing");
  }
  std::promise<Status> added;
  RunOnWriter([&] {
    if (cursors_.count(target) > 0) {
      *cursor = cursors_[target].file->stored();
      added.set_value(Status::OK());
      return;
    }
    TargetCursor entry;
    entry.file = std::make_unique<CursorFile>(fs_);
    uint64_t seq = 0;
    Status s = entry.file->Open(options_.dir + "/cursors/" + target + ".cur", readable_end(), &seq);
    if (s.ok()) s = fs_.SyncDir(options_.dir + "/cursors");
    if (s.ok()) s = dead_->Open({target});
    if (s.ok()) {
      entry.requested = std::max(seq, first_seq());
      *cursor = entry.requested;
      cursors_.emplace(target, std::move(entry));
    }
    added.set_value(s);
  });
  return added.get_future().get();
}

void Log::RemoveTarget(const std::string& target) {
  RunOnWriter([this, target] {
    SyncCursorsAndReclaim(Unlinks::kInBackground);  // its last position first
    cursors_.erase(target);
  });
}

uint64_t Log::LoadedCursor(const std::string& target) const {
  auto it = cursors_.find(target);
  return it == cursors_.end() ? first_seq() : it->second.file->stored();
}

Status Log::Append(std::string payload, uint64_t ingest_unix_ns, AppendDone done) {
  if (failed_.load(std::memory_order_acquire)) {
    std::lock_guard lock(mu_);
    return fatal_;
  }
  if (stopping_) return Status::Busy("log is closing");
  uint64_t size = RecordSize(payload.size());
  if (bytes_.load(std::memory_order_relaxed) + pending_bytes_.load(std::memory_order_relaxed) +
          size >
      max_bytes_.load(std::memory_order_relaxed)) {
    return Status::Busy("buffer full");
  }
  pending_bytes_.fetch_add(size, std::memory_order_relaxed);
  staged_.push_back(Pending{std::move(payload), ingest_unix_ns, std::move(done)});
  if (!options_.explicit_submit) Submit();
  return Status::OK();
}

void Log::Submit() {
  if (staged_.empty()) return;
  bool was_idle;
  {
    std::lock_guard lock(mu_);
    was_idle = pending_.empty();
    for (auto& p : staged_) pending_.push_back(std::move(p));
  }
  staged_.clear();
  if (was_idle) cv_.notify_one();
}

void Log::RunCompletions() {
  // running_ and completed_ trade places, keeping their capacity: no allocation per
  // batch. A callback that runs completions again (re-entry) gets a vector of its own.
  std::vector<Completion> reentered;
  std::vector<Completion>& batch = running_completions_ ? reentered : running_;
  {
    std::lock_guard lock(mu_);
    batch.swap(completed_);
  }
  bool outer = !running_completions_;
  running_completions_ = true;
  for (auto& c : batch) c.done(c.status, c.seq);
  batch.clear();
  if (outer) running_completions_ = false;
}

void Log::SetFatalLocked(const Status& status) {
  fatal_ = status;
  failed_.store(true, std::memory_order_release);
}

void Log::SetCursor(const std::string& target, uint64_t next_seq) {
  std::lock_guard lock(mu_);
  cursor_requests_[target] = next_seq;
}

void Log::Close() {
  Submit();
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (writer_.joinable()) writer_.join();
  if (active_fd_ >= 0) SealActive();
  StopSyncers();
  // Callbacks may still move cursors (a dead letter just stored): sync once more, here,
  // now that the writer thread is gone.
  RunCompletions();
  SyncCursorsAndReclaim(Unlinks::kNow);
  StopUnlinker();
  if (lock_fd_ >= 0) {
    (void)fs_.Close(lock_fd_);
    lock_fd_ = -1;
  }
}

uint64_t Log::first_seq() const {
  std::lock_guard lock(mu_);
  return segments_.empty() ? readable_end() : segments_.front().first_seq;
}

uint64_t Log::NextReclaimSeq() const {
  std::lock_guard lock(mu_);
  return segments_.size() >= 2 ? segments_[1].first_seq : readable_end();
}

size_t Log::segment_count() const {
  std::lock_guard lock(mu_);
  return segments_.size();
}

Status Log::fatal_error() const {
  std::lock_guard lock(mu_);
  return fatal_;
}

std::optional<Log::SegmentRef> Log::SegmentFor(uint64_t seq) const {
  std::lock_guard lock(mu_);
  if (segments_.empty()) return std::nullopt;
  auto it = std::upper_bound(segments_.begin(), segments_.end(), seq,
                             [](uint64_t s, const Segment& seg) { return s < seg.first_seq; });
  if (it != segments_.begin()) --it;
  return SegmentRef{it->first_seq, it->path};
}

std::optional<Log::SegmentRef> Log::SegmentStartingAt(uint64_t seq) const {
  std::lock_guard lock(mu_);
  auto it = std::lower_bound(segments_.begin(), segments_.end(), seq,
                             [](const Segment& seg, uint64_t s) { return seg.first_seq < s; });
  if (it == segments_.end() || it->first_seq != seq) return std::nullopt;
  return SegmentRef{it->first_seq, it->path};
}

std::optional<Log::SegmentRef> Log::SegmentAfter(uint64_t seq) const {
  std::lock_guard lock(mu_);
  auto it = std::upper_bound(segments_.begin(), segments_.end(), seq,
                             [](uint64_t s, const Segment& seg) { return s < seg.first_seq; });
  if (it == segments_.end()) return std::nullopt;
  return SegmentRef{it->first_seq, it->path};
}

std::vector<Log::SegmentSummary> Log::SegmentSummaries() const {
  std::lock_guard lock(mu_);
  std::vector<SegmentSummary> out;
  out.reserve(segments_.size());
  for (const auto& seg : segments_) out.push_back(SegmentSummary{seg.first_seq, seg.targets});
  return out;
}

std::optional<Log::ReadableSpan> Log::ReadableIn(uint64_t first_seq) const {
  std::lock_guard lock(mu_);
  auto it = std::lower_bound(segments_.begin(), segments_.end(), first_seq,
                             [](const Segment& seg, uint64_t s) { return seg.first_seq < s; });
  if (it == segments_.end() || it->first_seq != first_seq) return std::nullopt;
  auto next = std::next(it);
  return ReadableSpan{it->size, next == segments_.end() ? readable_end() : next->first_seq};
}

void Log::WriterMain() {
  std::vector<Pending> batch;
  std::vector<PendingDeadLetter> letters;
  std::vector<std::function<void()>> jobs;
  std::vector<PendingKey> keys;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      auto now = clock_.Now();
      auto deadline = last_cursor_sync_ + options_.cursor_sync_interval;
      if (unsynced_writes_ && fsync_ == FsyncPolicy::kInterval) {
        deadline = std::min(deadline, last_data_sync_ + fsync_interval_);
      }
      auto has_work = [&] {
        return !pending_.empty() || !dead_pending_.empty() || !jobs_.empty() ||
               !keys_pending_.empty();
      };
      if (!has_work() && !stopping_ && deadline > now) {
        cv_.wait_for(lock, deadline - now, [&] { return has_work() || stopping_; });
      }
      if (!has_work() && stopping_) break;
      letters.swap(dead_pending_);
      jobs.swap(jobs_);
      keys.swap(keys_pending_);
      if (tunables_) {
        // Applied between batches: a batch is written under one policy.
        segment_bytes_ = tunables_->segment_bytes;
        fsync_ = tunables_->fsync;
        fsync_interval_ = tunables_->fsync_interval;
        tunables_.reset();
      }
      // Take what is queued, up to the batch cap (at least one record).
      size_t bytes = 0;
      while (!pending_.empty() && (batch.empty() || bytes + pending_.front().payload.size() <=
                                                        options_.max_batch_bytes)) {
        bytes += pending_.front().payload.size();
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    // Keys before records: a 202 waits for both; a key whose record then fails is
    // dropped by the ingest (it answers the failure and forgets the key).
    if (!keys.empty()) WriteIdempotencyKeys(&keys);
    keys.clear();
    if (!batch.empty()) WriteBatch(&batch);
    batch.clear();
    if (!letters.empty()) WriteDeadLetters(&letters);
    letters.clear();
    for (auto& job : jobs) job();
    jobs.clear();
    auto now = clock_.Now();
    if (unsynced_writes_ && fsync_ == FsyncPolicy::kInterval &&
        now - last_data_sync_ >= fsync_interval_) {
      Status s = fs_.Fdatasync(active_fd_, "active segment");
      last_data_sync_ = now;
      unsynced_writes_ = false;
      if (!s.ok()) {
        std::lock_guard lock(mu_);
        SetFatalLocked(s);
      }
    }
    if (now - last_cursor_sync_ >= options_.cursor_sync_interval) {
      SyncCursorsAndReclaim(Unlinks::kInBackground);
    }
  }
  // The last cursor sync is Close()'s, after the completions that may still move them.
  dead_->CloseAll();
  keys_->Close();
}

// Writes `batch` in order, in runs that fit the active segment, rolling as needed.
void Log::WriteBatch(std::vector<Pending>* batch) {
  Status fatal;
  {
    std::lock_guard lock(mu_);
    fatal = fatal_;
  }
  if (!fatal.ok()) return Fail(batch, 0, fatal);  // Fail takes mu_ itself
  std::vector<char> headers(batch->size() * kRecordHeaderSize);
  size_t i = 0;
  while (i < batch->size()) {
    size_t first_size = RecordSize((*batch)[i].payload.size());
    if (active_fd_ < 0 || active_offset_ + first_size > active_capacity_) {
      Status s = RollSegment(first_size);
      if (!s.ok()) return Fail(batch, i, s);
    }
    // One run: as many records as fit the active segment.
    std::vector<iovec> iov;
    uint64_t run_offset = active_offset_;
    uint64_t run_bytes = 0;
    size_t run_start = i;
    while (i < batch->size()) {
      Pending& p = (*batch)[i];
      size_t size = RecordSize(p.payload.size());
      if (active_offset_ + run_bytes + size > active_capacity_) break;
      char* h = headers.data() + i * kRecordHeaderSize;
      EncodeRecordHeader(next_seq_ + (i - run_start), p.ingest_unix_ns, 0, p.payload, h);
      run_bytes += AppendRecordIovecs(h, p.payload, &iov);
      ++i;
    }
    Status s = fs_.PwriteAll(active_fd_, std::move(iov), run_offset);
    if (!s.ok()) return Fail(batch, run_start, s);

    // Tallied for the footer before the payloads move into the completions.
    for (size_t k = run_start; k < i; ++k) tally_.Add((*batch)[k].payload);
    std::vector<Completion> done;
    done.reserve(i - run_start);
    for (size_t k = run_start; k < i; ++k) {
      done.push_back(Completion{std::move((*batch)[k].done), Status::OK(),
                                next_seq_ + (k - run_start), std::move((*batch)[k].payload)});
    }
    next_seq_ += i - run_start;
    active_offset_ += run_bytes;
    bytes_.fetch_add(run_bytes, std::memory_order_relaxed);
    // After bytes_ grew, so Append never sees room that is not there.
    pending_bytes_ -= run_bytes;
    if (fsync_ == FsyncPolicy::kBatch) {
      // Acknowledged, and readable, once an fdatasync that started after this write
      // returns (log_sync.cc), which also moves the segment's readable size.
      HandToSyncers(std::move(done));
    } else {
      unsynced_writes_ = true;
      if (options_.on_commit) options_.on_commit(common::Duration(0), done.size());
      {
        // Size and readable_end move together, under the lock ReadableIn takes: a reader
        // never pairs a new end with an old size.
        std::lock_guard lock(mu_);
        segments_.back().size = active_offset_;
        readable_end_.store(next_seq_, std::memory_order_release);
      }
      PublishCompletions(&done);
    }
  }
}

void Log::Fail(std::vector<Pending>* batch, size_t from, const Status& status) {
  std::vector<Completion> done;
  uint64_t bytes = 0;
  for (size_t k = from; k < batch->size(); ++k) {
    bytes += RecordSize((*batch)[k].payload.size());
    done.push_back(
        Completion{std::move((*batch)[k].done), status, 0, std::move((*batch)[k].payload)});
  }
  pending_bytes_ -= bytes;
  PublishCompletions(&done);
}

void Log::PublishCompletions(std::vector<Completion>* done) {
  if (done->empty()) return;
  QueueCompletions(done);
  if (options_.wake) options_.wake();
}

void Log::QueueCompletions(std::vector<Completion>* done) {
  std::lock_guard lock(mu_);
  for (auto& c : *done) completed_.push_back(std::move(c));
}

// Seals the active segment and starts seg/<next_seq>.log: fallocated, header written and
// synced, and the directory synced before any record in it can be acknowledged, so a
// crash can never leave an acknowledged record in a file the directory does not list.
Status Log::RollSegment(size_t first_record_bytes) {
  if (active_fd_ >= 0) {
    SealActive();
    // A failed footer sync is an fsync error like any other: this batch fails too.
    std::lock_guard lock(mu_);
    if (!fatal_.ok()) return fatal_;
  }
  uint64_t capacity = std::max<uint64_t>(segment_bytes_, kSegmentHeaderSize + first_record_bytes);
  std::string path = SegDir() + "/" + SegmentFileName(next_seq_);
  int fd = -1;
  Status s = fs_.Open(path, O_RDWR | O_CREAT | O_EXCL, &fd);
  if (!s.ok()) return s;
  char header[kSegmentHeaderSize];
  EncodeSegmentHeader(next_seq_, header);
  s = fs_.Fallocate(fd, capacity, path);
  if (s.ok()) s = fs_.PwriteAll(fd, {{header, sizeof(header)}}, 0);
  bool sync = fsync_ != FsyncPolicy::kNever;
  if (s.ok() && sync) s = fs_.Fdatasync(fd, path);
  if (s.ok() && sync) s = fs_.SyncDir(SegDir());
  if (!s.ok()) {
    (void)fs_.Close(fd);
    // Nothing in it was acknowledged; removing it lets the next attempt reuse the name.
    (void)fs_.Unlink(path);
    if (!s.IsNoSpace()) {
      std::lock_guard lock(mu_);
      SetFatalLocked(s);
    }
    return s;
  }
  active_fd_ = fd;
  active_offset_ = kSegmentHeaderSize;
  active_capacity_ = capacity;
  {
    std::lock_guard lock(mu_);
    segments_.push_back(Segment{next_seq_, path, kSegmentHeaderSize});
  }
  bytes_.fetch_add(kSegmentHeaderSize, std::memory_order_relaxed);
  return Status::OK();
}

// Cuts the fallocated but unused tail so that a sealed segment's size is its content.
void Log::SealActive() {
  // Syncs in flight use the active file; its records are acknowledged before it closes.
  DrainSyncs();
  Segment sealed;
  {
    std::lock_guard lock(mu_);
    sealed = segments_.back();
  }
  // The footer's fdatasync also covers records written since the last sync.
  Status s = WriteFooter(active_fd_, sealed, active_offset_, next_seq_, tally_.counts());
  if (!s.ok() && !s.IsNoSpace()) {
    std::lock_guard lock(mu_);
    SetFatalLocked(s);
  }
  if (s.ok()) {
    bytes_.fetch_add(sealed.size - active_offset_, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    segments_.back().size = sealed.size;
    segments_.back().targets = std::move(sealed.targets);
  }
  tally_.Reset();
  unsynced_writes_ = false;
  (void)fs_.Close(active_fd_);
  active_fd_ = -1;
}

// Syncs moved cursors, then deletes whole segments every target has passed (the
// low-water mark), then syncs the directory. Order matters: a segment is unlinked only
// after the cursors that make it unnecessary are durable.
void Log::SyncCursorsAndReclaim(Unlinks unlinks) {
  last_cursor_sync_ = clock_.Now();
  if (keys_ != nullptr) {
    (void)keys_->DropExpired(static_cast<uint64_t>(clock_.UnixNow().count()));
  }
  std::map<std::string, uint64_t> requests;
  {
    std::lock_guard lock(mu_);
    requests.swap(cursor_requests_);
  }
  for (auto& [target, seq] : requests) {
    auto it = cursors_.find(target);
    if (it == cursors_.end() || it->second.file->stored() == seq) continue;
    it->second.requested = seq;
    Status s = it->second.file->Store(seq);
    if (s.IsNoSpace()) {
      // Not stored: the old position stands (duplicates after a crash, never loss).
      // Try again at the next sync unless a newer position arrives first.
      std::lock_guard lock(mu_);
      cursor_requests_.try_emplace(target, seq);
      continue;
    }
    if (!s.ok()) {
      std::lock_guard lock(mu_);
      SetFatalLocked(s);
      return;
    }
  }
  if (cursors_.empty()) return;
  uint64_t low = UINT64_MAX;
  for (const auto& [target, cursor] : cursors_) low = std::min(low, cursor.file->stored());

  std::vector<std::string> doomed;
  uint64_t freed = 0;
  {
    std::lock_guard lock(mu_);
    // segments_[k] holds [first_seq_k, first_seq_{k+1}); the active one is never removed.
    size_t k = 0;
    while (k + 1 < segments_.size() && segments_[k + 1].first_seq <= low) {
      doomed.push_back(segments_[k].path);
      freed += segments_[k].size;
      ++k;
    }
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<long>(k));
  }
  if (doomed.empty()) return;
  bytes_.fetch_sub(freed, std::memory_order_relaxed);
  if (unlinks == Unlinks::kInBackground) return UnlinkLater(std::move(doomed));
  for (const auto& path : doomed) (void)fs_.Unlink(path);
  (void)fs_.SyncDir(SegDir());
}

// The segments are out of segments_ already, and the cursors past them durable: when
// their files go does not matter to correctness (a crash before leaves them for the
// start-up sweep), only to when the disk gets their space back.
void Log::UnlinkLater(std::vector<std::string> paths) {
  std::lock_guard lock(unlink_mu_);
  for (auto& p : paths) to_unlink_.push_back(std::move(p));
  if (!unlinker_.joinable()) unlinker_ = std::thread([this] { UnlinkerMain(); });
  unlink_cv_.notify_one();
}

void Log::UnlinkerMain() {
  std::unique_lock lock(unlink_mu_);
  for (;;) {
    unlink_cv_.wait(lock, [&] { return unlinker_stop_ || !to_unlink_.empty(); });
    if (to_unlink_.empty()) return;  // stopping, and nothing left
    std::vector<std::string> paths;
    paths.swap(to_unlink_);
    lock.unlock();
    for (const auto& path : paths) RemoveSegmentFile(path);
    (void)fs_.SyncDir(SegDir());
    lock.lock();
  }
}

// Cuts the file down a step at a time before unlinking it: ext4 frees a file's extents in
// one journal transaction at unlink, and the flushes acknowledgements wait for queue
// behind it (p99 of ingest while draining: 6-10 ms with a 64 MiB unlink, 2.0-2.1 ms in
// 1 MiB steps). A crash midway leaves a cut segment that every cursor has passed: the
// start-up scan seals what is left of it and reclaim removes it. A small segment is cut
// in quarters: every segment size takes the same path (and the syscall-order torture
// test, with 4 KiB segments, sees the cuts).
void Log::RemoveSegmentFile(const std::string& path) {
  int fd = -1;
  uint64_t size = 0;
  if (options_.unlink_step_bytes > 0 && fs_.Open(path, O_RDWR, &fd).ok() &&
      fs_.FileSize(fd, &size).ok()) {
    const uint64_t step = std::min(options_.unlink_step_bytes, size / 4);
    while (step > 0 && size > step) {
      size -= step;
      if (!fs_.Truncate(fd, size, path).ok()) break;
    }
  }
  if (fd >= 0) (void)fs_.Close(fd);
  (void)fs_.Unlink(path);
}

void Log::StopUnlinker() {
  {
    std::lock_guard lock(unlink_mu_);
    unlinker_stop_ = true;
  }
  unlink_cv_.notify_one();
  if (unlinker_.joinable()) unlinker_.join();
}

}  // namespace sluice::buffer

namespace sluice::buffer {

Status Log::AppendDeadLetter(DeadLetter dl, AppendDone done) {
  std::lock_guard lock(mu_);
  if (!fatal_.ok()) return fatal_;
  if (stopping_) return Status::Busy("log is closing");
  if (!dead_->Has(dl.target)) return Status::NotFound("no dead-letter file for " + dl.target);
  dead_pending_.push_back(PendingDeadLetter{std::move(dl), std::move(done)});
  cv_.notify_one();
  return Status::OK();
}

uint64_t Log::DeadLetterCount(const std::string& target) const { return dead_->Count(target); }

Status Log::ListDeadLetters(const std::string& target, std::vector<DeadLetter>* out) const {
  return dead_->List(target, out);
}

Status Log::AppendIdempotencyKey(IdempotencyEntry entry, AppendDone done) {
  std::lock_guard lock(mu_);
  if (!fatal_.ok()) return fatal_;
  if (stopping_) return Status::Busy("log is closing");
  keys_pending_.push_back(PendingKey{std::move(entry), std::move(done)});
  cv_.notify_one();
  return Status::OK();
}

void Log::WriteIdempotencyKeys(std::vector<PendingKey>* keys) {
  Status status;
  {
    std::lock_guard lock(mu_);
    status = fatal_;
  }
  uint64_t now = static_cast<uint64_t>(clock_.UnixNow().count());
  if (status.ok()) {
    std::vector<IdempotencyEntry> entries;
    entries.reserve(keys->size());
    for (const auto& k : *keys) entries.push_back(k.entry);
    status = keys_->Append(entries, now, fsync_ != FsyncPolicy::kNever);
    if (!status.ok() && !status.IsNoSpace()) {
      std::lock_guard lock(mu_);
      SetFatalLocked(status);
    }
  }
  std::vector<Completion> done;
  for (auto& k : *keys) done.push_back(Completion{std::move(k.done), status, 0, {}});
  PublishCompletions(&done);
}

void Log::RunOnWriter(std::function<void()> job) {
  std::lock_guard lock(mu_);
  jobs_.push_back(std::move(job));
  cv_.notify_one();
}

Status Log::PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                             AppendDone done) {
  if (!dead_->Has(target)) return Status::NotFound("no dead-letter file for " + target);
  {
    std::lock_guard lock(mu_);
    if (!fatal_.ok()) return fatal_;
    if (stopping_) return Status::Busy("log is closing");
  }
  RunOnWriter([this, target, id, done = std::move(done)]() mutable {
    std::vector<common::Uuid> ids;
    if (id) ids.push_back(*id);
    uint64_t removed = 0;
    Status s = dead_->Remove(target, id ? &ids : nullptr, &removed);
    std::vector<Completion> completions;
    completions.push_back(Completion{std::move(done), s, removed, {}});
    PublishCompletions(&completions);
  });
  return Status::OK();
}

Status Log::ReplayDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                              AppendDone done, size_t* queued) {
  std::vector<DeadLetter> letters;
  Status s = dead_->List(target, &letters);
  if (!s.ok()) return s;
  std::vector<std::pair<common::Uuid, std::string>> messages;  // id, re-addressed payload
  for (const auto& letter : letters) {
    auto message = DecodeMessage(letter.payload);
    if (!message || (id && message->id != *id)) continue;
    message->targets = {target};
    messages.emplace_back(message->id, EncodeMessage(*message));
  }
  if (messages.empty()) {
    return Status::NotFound(id ? "no dead letter with that id" : "no dead letters");
  }
  // Shared by the append callbacks: when the last one is durable, drop the letters.
  struct Replay {
    size_t outstanding;
    Status status;
    std::vector<common::Uuid> ids;
    AppendDone done;
  };
  auto replay =
      std::make_shared<Replay>(Replay{messages.size(), Status::OK(), {}, std::move(done)});
  uint64_t now_ns = static_cast<uint64_t>(clock_.UnixNow().count());
  for (auto& [message_id, payload] : messages) {
    replay->ids.push_back(message_id);
    auto on_appended = [this, replay, target](const Status& st, uint64_t) {
      if (!st.ok() && replay->status.ok()) replay->status = st;
      if (--replay->outstanding > 0) return;
      if (!replay->status.ok()) {
        // Some copies may be queued already; the letters stay: at least once.
        replay->done(replay->status, 0);
        return;
      }
      RunOnWriter([this, replay, target] {
        uint64_t removed = 0;
        Status rs = dead_->Remove(target, &replay->ids, &removed);
        std::vector<Completion> completions;
        completions.push_back(Completion{replay->done, rs, replay->ids.size(), {}});
        PublishCompletions(&completions);
      });
    };
    s = Append(std::move(payload), now_ns, on_appended);
    if (s.ok() && queued != nullptr) ++*queued;
    if (!s.ok()) {
      // Not queued: count it as finished with this error.
      on_appended(s, 0);
    }
  }
  return Status::OK();
}

void Log::WriteDeadLetters(std::vector<PendingDeadLetter>* letters) {
  Status status;
  {
    std::lock_guard lock(mu_);
    status = fatal_;
  }
  std::vector<std::string> touched;
  for (auto& pending : *letters) {
    if (!status.ok()) break;
    status = dead_->Append(pending.letter);
    if (status.ok() &&
        std::find(touched.begin(), touched.end(), pending.letter.target) == touched.end()) {
      touched.push_back(pending.letter.target);
    }
  }
  for (const auto& target : touched) {
    if (!status.ok() || fsync_ == FsyncPolicy::kNever) break;
    status = dead_->Sync(target);
    if (!status.ok()) {
      std::lock_guard lock(mu_);
      SetFatalLocked(status);
    }
  }
  std::vector<Completion> done;
  for (auto& pending : *letters) {
    done.push_back(Completion{std::move(pending.done), status, pending.letter.seq, {}});
  }
  PublishCompletions(&done);
}

}  // namespace sluice::buffer
