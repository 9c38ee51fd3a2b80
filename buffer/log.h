#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "buffer/cursor_file.h"
#include "buffer/dead_letter.h"
#include "buffer/dead_letter_store.h"
#include "buffer/file_system.h"
#include "buffer/fsync_policy.h"
#include "buffer/idempotency.h"
#include "buffer/segment_footer.h"
#include "common/clock.h"
#include "common/status.h"

namespace sluice::buffer {

struct LogOptions {
  std::string dir;
  FileSystem* fs = nullptr;  // nullptr: FileSystem::Default(); must outlive the Log
  uint64_t segment_bytes = 64ull << 20;
  uint64_t max_bytes = 1ull << 30;
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  common::Duration fsync_interval = std::chrono::milliseconds(10);
  common::Duration cursor_sync_interval = std::chrono::milliseconds(100);
  size_t max_batch_bytes = 1u << 20;
  // FsyncPolicy::kBatch: fdatasyncs in flight at once. The writer does not wait for a
  // sync: it writes the next batch while up to this many syncs run, each covering
  // everything written before it started. Disks serve concurrent flushes faster than
  // back-to-back ones (3x the commits/s with 4 in flight on the reference VM).
  int syncers = 4;
  // A sync starts while others are in flight only once this many records wait for one.
  // Below it, they wait for the sync in flight to end and the next covers them all: at
  // a moderate rate, overlapping syncs would sync each record on its own, for nothing.
  uint64_t overlap_min_records = 8;
  // Reclaimed segments are cut down this much at a time before their unlink, on a
  // thread of their own (0: unlinked at once). See Log::RemoveSegmentFile.
  uint64_t unlink_step_bytes = 1u << 20;
  // Appends wait on the owner thread until Submit(), which hands them all to the writer
  // under one lock with one wake-up. The proxy submits once per loop iteration (before
  // the loop polls), instead of taking the lock and maybe waking the writer per request.
  bool explicit_submit = false;
  std::vector<std::string> targets;  // one cursor file each
  // Called on the writer thread whenever completions are ready; the owner then calls
  // RunCompletions() on its own thread (the proxy wires this to uv_async_send).
  std::function<void()> wake;
  // Observers called on the writer thread (metrics); may be empty.
  std::function<void(common::Duration fsync, size_t records)> on_commit;
};

// What is on disk, recomputed at Open.
struct RecoveryReport {
  size_t segments = 0;
  uint64_t first_seq = 0;        // oldest record still stored
  uint64_t next_seq = 0;         // the sequence the next append gets
  uint64_t truncated_bytes = 0;  // unacknowledged bytes dropped from the tail
  size_t removed_segments = 0;   // tail segments without a complete record, removed
  size_t damaged_headers = 0;    // segment headers that failed their CRC (records kept)
  size_t removed_orphans = 0;    // files in seg/ that are not segments
  size_t unsealed_segments = 0;  // older segments without a valid footer (scanned, sealed)
};

// The durable, append-only, segmented log. One writer thread owns the active segment and
// commits appends in groups: one pwritev and (with FsyncPolicy::kBatch) one fdatasync per
// batch; while it syncs, the next batch collects. Readers (LogReader) read records by
// position below readable_end().
//
// Threads: Append, SetCursor, RunCompletions and Close are called from one owner thread
// (the event loop); the accessors are safe from any thread.
class Log {
 public:
  using AppendDone = std::function<void(const common::Status& status, uint64_t seq)>;

  // Locks dir/LOCK, recovers the tail segment, loads cursors and starts the writer.
  static common::Status Open(LogOptions options, std::unique_ptr<Log>* log,
                             RecoveryReport* report = nullptr);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Queues one record. Returns kBusy without queuing when the log is at max_bytes, or the
  // fatal error once one happened. Otherwise `done` runs later from RunCompletions(): with
  // OK and the record's sequence number once it is durable per the fsync policy, or with
  // kNoSpace (disk full: nothing stored, try again later) or an I/O error (fatal).
  // With explicit_submit, the record reaches the writer at the next Submit().
  common::Status Append(std::string payload, uint64_t ingest_unix_ns, AppendDone done);
  // Hands the appends made since the last Submit() to the writer (explicit_submit; a
  // no-op otherwise). Close() submits what is left.
  void Submit();
  // Runs the callbacks of finished appends on the calling thread.
  void RunCompletions();

  // Queues a dead letter for dead/<target>.log. `done` runs from RunCompletions once it
  // is durable; only then may the target's cursor pass dl.seq.
  common::Status AppendDeadLetter(DeadLetter dl, AppendDone done);
  // Dead letters stored for `target`, counted from disk at Open and kept up to date.
  uint64_t DeadLetterCount(const std::string& target) const;
  // Every dead letter of `target`, oldest first (reads the file; any thread).
  common::Status ListDeadLetters(const std::string& target, std::vector<DeadLetter>* out) const;
  // Done callbacks of purge and replay get the number of letters affected as `seq`.
  // Deletes the letter of message `id`, or every letter when id is empty.
  common::Status PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                  AppendDone done);
  // Appends the messages of the letters (one, or all) back into the log addressed to
  // `target` alone, as new records with the same message ids, and removes the letters
  // once those appends are durable. A crash in between leaves both: at least once.
  // *queued (optional) is how many copies were handed to Append.
  common::Status ReplayDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                   AppendDone done, size_t* queued = nullptr);

  // Records that `target` has finished every sequence below next_seq. Written to the
  // cursor file lazily (within cursor_sync_interval) and on Close.
  void SetCursor(const std::string& target, uint64_t next_seq);
  // The cursor as loaded at Open (the oldest stored record for a new target).
  uint64_t LoadedCursor(const std::string& target) const;

  // Queues an Idempotency-Key entry for idempotency/; `done` runs from RunCompletions
  // once it is durable (group-committed like records).
  common::Status AppendIdempotencyKey(IdempotencyEntry entry, AppendDone done);
  // The unexpired keys found at Open, oldest first (moved out: call once).
  std::vector<IdempotencyEntry> TakeLoadedIdempotencyKeys() { return std::move(loaded_keys_); }

  // A target added by a reload: opens (or creates) its cursor file and dead-letter file
  // on the writer thread and waits for that. A target seen before resumes from its
  // cursor file; a new one starts at the end of the log. *cursor is where it starts.
  common::Status AddTarget(const std::string& target, uint64_t* cursor);
  // A target removed by a reload: syncs its cursor and stops counting it for reclaim
  // (its files stay, so re-adding it resumes where it was).
  void RemoveTarget(const std::string& target);

  // Stops taking appends, finishes queued ones, syncs cursors and joins the writer.
  void Close();

  uint64_t readable_end() const { return readable_end_.load(std::memory_order_acquire); }
  uint64_t first_seq() const;
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t max_bytes() const { return max_bytes_.load(std::memory_order_relaxed); }
  // Applies new limits and policy (a config reload): max_bytes at once, the rest from
  // the writer's next batch (segment_bytes from the next roll).
  void Reconfigure(uint64_t max_bytes, uint64_t segment_bytes, FsyncPolicy fsync,
                   common::Duration fsync_interval);
  size_t segment_count() const;
  // Space is freed a whole segment at a time: once every cursor reaches this sequence
  // (the start of the second segment), the oldest segment goes.
  uint64_t NextReclaimSeq() const;
  common::Status fatal_error() const;
  const std::string& dir() const { return options_.dir; }
  FileSystem& fs() const { return fs_; }

  // Segment lookup for readers: the segment holding `seq` (the one with the largest
  // first_seq <= seq), or the first segment when seq is older than everything stored.
  struct SegmentRef {
    uint64_t first_seq;
    std::string path;
  };
  std::optional<SegmentRef> SegmentFor(uint64_t seq) const;
  // The segment whose first record is exactly `seq`, if any.
  std::optional<SegmentRef> SegmentStartingAt(uint64_t seq) const;
  // The first segment that starts after `seq`.
  std::optional<SegmentRef> SegmentAfter(uint64_t seq) const;
  // What a reader of the segment starting at `first_seq` may read, taken together with
  // readable_end() under one lock: `bytes`, the end of its records below readable_end()
  // (the file size once sealed); and `switch_seq`, the sequence at which the reader must
  // look for another segment: the next segment's first_seq or, for the last segment,
  // readable_end() (a segment created later starts at or after it). nullopt when no
  // segment starts at first_seq (reclaimed).
  struct ReadableSpan {
    uint64_t bytes;
    uint64_t switch_seq;
  };
  std::optional<ReadableSpan> ReadableIn(uint64_t first_seq) const;
  // The stored segments, oldest first, with what their footers count (start-up counts
  // each target's queue from them).
  struct SegmentSummary {
    uint64_t first_seq;
    // Sealed with per-target counts: the records in it for each target. nullopt for the
    // active segment and for footers without counts: those must be read to count.
    std::optional<TargetCounts> targets;
  };
  std::vector<SegmentSummary> SegmentSummaries() const;

 private:
  struct Pending {
    std::string payload;
    uint64_t ingest_unix_ns;
    AppendDone done;
  };
  struct Completion {
    AppendDone done;
    common::Status status;
    uint64_t seq;
    // The record's payload, freed here on the owner thread: glibc frees a chunk under
    // its arena's lock, and the writer freeing what the loop allocated contended with
    // the loop's own allocations.
    std::string payload;
  };
  struct Segment {
    uint64_t first_seq;
    std::string path;
    uint64_t size;                                       // bytes written (sealed: the file size)
    std::optional<TargetCounts> targets = std::nullopt;  // sealed: what its footer counts
  };
  struct TargetCursor {
    std::unique_ptr<CursorFile> file;
    uint64_t requested = 0;
  };
  struct PendingKey {
    IdempotencyEntry entry;
    AppendDone done;
  };
  void WriteIdempotencyKeys(std::vector<PendingKey>* keys);
  struct PendingDeadLetter {
    DeadLetter letter;
    AppendDone done;
  };

  explicit Log(LogOptions options);
  common::Status Recover(RecoveryReport* report);
  struct SegmentEnd {
    uint64_t file_size = 0;
    uint64_t end = 0;      // offset after the last complete record (or the footer)
    uint64_t end_seq = 0;  // first sequence not in the segment
    bool header_ok = false;
    bool sealed = false;                  // ends with a matching footer
    std::optional<TargetCounts> targets;  // of the records found
  };
  // Stops before a record at or past `end_limit` (the next segment's first sequence).
  common::Status ScanSegment(const Segment& segment, uint64_t end_limit, SegmentEnd* out);
  common::Status SealSegment(Segment& segment, const SegmentEnd& found);
  common::Status CutAfterFooter(Segment& segment, const SegmentEnd& found);
  common::Status WriteFooter(int fd, Segment& segment, uint64_t end, uint64_t end_seq,
                             const std::optional<TargetCounts>& targets);
  common::Status CheckFooter(Segment* segment, uint64_t next_first_seq, bool* sealed);
  common::Status OpenCursors();
  void WriteDeadLetters(std::vector<PendingDeadLetter>* letters);
  // Runs `job` on the writer thread after the current batch.
  void RunOnWriter(std::function<void()> job);
  void WriterMain();
  void WriteBatch(std::vector<Pending>* batch);
  common::Status RollSegment(size_t first_record_bytes);
  void SealActive();
  // On the writer thread, the unlinks of reclaimed segments go to a thread of their own:
  // unlinking a 64 MiB file frees its extents in the journal for several ms, and the
  // writer would hold every acknowledgement meanwhile. Open and Close unlink before they
  // return.
  enum class Unlinks { kNow, kInBackground };
  void SyncCursorsAndReclaim(Unlinks unlinks);
  // The unlinker: removes `paths` in the background, then syncs seg/.
  void UnlinkLater(std::vector<std::string> paths);
  void UnlinkerMain();
  void StopUnlinker();  // after the writer thread is gone: drains what is queued
  void RemoveSegmentFile(const std::string& path);  // unlinker thread
  void Fail(std::vector<Pending>* batch, size_t from, const common::Status& status);
  void PublishCompletions(std::vector<Completion>* done);
  // PublishCompletions without the wake-up.
  void QueueCompletions(std::vector<Completion>* done);

  // log_sync.cc: fdatasyncs for FsyncPolicy::kBatch, off the writer thread.
  void StartSyncers();  // writer thread, at the first hand-off
  // Writer thread: records just written to the active segment, whose completions wait
  // for a sync that starts after now.
  void HandToSyncers(std::vector<Completion> done);
  // Writer thread: waits until every record handed over is synced (or failed).
  void DrainSyncs();
  void StopSyncers();  // after the writer thread is gone
  void SyncerMain();
  // REQUIRES: sync_mu_ held (by `lock`) and SyncDue(). Syncs everything written so far
  // and completes what that covers; returns with the lock held.
  void RunOneSync(std::unique_lock<std::mutex>& lock);
  // REQUIRES: sync_mu_ held. Whether a syncer should start a sync now.
  bool SyncDue() const;
  // REQUIRES: mu_ held.
  void SetFatalLocked(const common::Status& status);
  std::string SegDir() const { return options_.dir + "/seg"; }

  const LogOptions options_;
  FileSystem& fs_;
  std::atomic<uint64_t> max_bytes_;
  struct Tunables {
    uint64_t segment_bytes;
    FsyncPolicy fsync;
    common::Duration fsync_interval;
  };
  std::optional<Tunables> tunables_;  // guarded by mu_: picked up by the writer
  common::SystemClock clock_;
  int lock_fd_ = -1;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  std::atomic<uint64_t> pending_bytes_{0};  // queued or staged, not yet written
  std::vector<Completion> completed_;
  std::map<std::string, uint64_t> cursor_requests_;
  std::vector<PendingDeadLetter> dead_pending_;
  std::vector<std::function<void()>> jobs_;
  std::vector<PendingKey> keys_pending_;
  std::unique_ptr<IdempotencyFiles> keys_;  // writer thread (and Open/Close)
  std::vector<IdempotencyEntry> loaded_keys_;
  std::unique_ptr<DeadLetterStore> dead_;
  bool stopping_ = false;  // written by the owner thread only
  common::Status fatal_;
  std::atomic<bool> failed_{false};  // fatal_ is set: Append checks it without mu_
  std::vector<Segment> segments_;    // sorted by first_seq; the last may be the active one

  // Writer-thread state (and Open/Close, before/after the thread runs).
  FsyncPolicy fsync_;
  common::Duration fsync_interval_;
  uint64_t segment_bytes_;
  int active_fd_ = -1;
  uint64_t active_offset_ = 0;
  uint64_t active_capacity_ = 0;
  uint64_t next_seq_ = 1;
  SegmentTally tally_;  // the active segment's records, for its footer
  bool unsynced_writes_ = false;
  common::Duration last_data_sync_{0};
  common::Duration last_cursor_sync_{0};
  std::map<std::string, TargetCursor> cursors_;

  // Syncer state, guarded by sync_mu_ (lock order: sync_mu_, then mu_).
  struct Unsynced {
    uint64_t end_seq;     // first sequence after these records
    uint64_t end_offset;  // where they end in the active segment
    std::vector<Completion> done;
  };
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;       // syncers: something to sync, or stop
  std::condition_variable sync_idle_cv_;  // writer: a sync finished
  std::deque<Unsynced> unsynced_;         // written, waiting for a sync, oldest first
  int sync_fd_ = -1;                      // the active segment, as the writer left it
  std::string sync_path_;
  struct SyncInFlight {
    uint64_t target;  // end_seq it covers
    bool done = false;
  };
  std::deque<SyncInFlight> syncs_;  // started, oldest first; popped once it and all before are done
  uint64_t written_end_ = 0;        // end_seq of the last handed-over records
  uint64_t sync_started_end_ = 0;   // what the latest sync to start covers
  int syncs_in_flight_ = 0;
  bool syncers_stop_ = false;
  std::vector<std::thread> syncers_;

  // Unlinker state, guarded by unlink_mu_.
  std::mutex unlink_mu_;
  std::condition_variable unlink_cv_;
  std::vector<std::string> to_unlink_;
  bool unlinker_stop_ = false;
  std::thread unlinker_;  // started by the first background reclaim

  // Owner-thread state.
  std::vector<Pending> staged_;      // explicit_submit: appends since Submit()
  std::vector<Completion> running_;  // RunCompletions' batch; swapped with completed_
  bool running_completions_ = false;

  std::atomic<uint64_t> readable_end_{1};
  std::atomic<uint64_t> bytes_{0};
  std::thread writer_;
};

}  // namespace sluice::buffer
