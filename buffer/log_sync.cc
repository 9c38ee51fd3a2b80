// Syncing for FsyncPolicy::kBatch. A sync runs one fdatasync covering everything written
// before it started, then completes, in order, every batch it covers. When little else
// waits to be written, the writer runs it itself (plain group commit); otherwise a syncer
// thread does and the writer keeps writing: up to `syncers` fdatasyncs run at once, as a
// disk serves concurrent flushes faster than back-to-back ones.
//
// Why a later sync covers earlier writes: fdatasync starts writeback of the file's dirty
// pages, waits for every page under writeback (also pages another sync started), then
// flushes the device cache. So when a sync that started after batch N was written
// returns success, batch N is durable, whichever sync wrote its pages out.
#include <algorithm>

#include "buffer/log.h"

namespace sluice::buffer {

using common::Status;

void Log::StartSyncers() {
  int n = std::max(1, options_.syncers);
  for (int i = 0; i < n; ++i) syncers_.emplace_back([this] { SyncerMain(); });
}

bool Log::SyncDue() const {
  if (written_end_ <= sync_started_end_) return false;
  return syncs_in_flight_ == 0 || written_end_ - sync_started_end_ >= options_.overlap_min_records;
}

void Log::HandToSyncers(std::vector<Completion> done) {
  size_t queued;
  {
    std::lock_guard state(mu_);
    queued = pending_.size();
  }
  std::unique_lock lock(sync_mu_);
  sync_fd_ = active_fd_;
  const std::string& path = segments_.back().path;  // the writer's own to read
  if (sync_path_ != path) sync_path_ = path;
  written_end_ = next_seq_;
  unsynced_.push_back(Unsynced{next_seq_, active_offset_, std::move(done)});
  // Little else to write and no sync running: the writer syncs itself, and what arrives
  // meanwhile waits for the next batch (plain group commit, no thread hand-off). With
  // more to write, a syncer takes the sync and the writer goes on writing.
  if (syncs_in_flight_ == 0 && queued < options_.overlap_min_records) {
    RunOneSync(lock);
    return;
  }
  // Otherwise a syncer starts now, or the one in flight takes these when it is done.
  // The threads start with the first hand-off: a log that never needs them (fsync never,
  // light load, a short-lived test or fuzz input) does not pay for them.
  if (syncers_.empty()) StartSyncers();
  if (SyncDue()) {
    lock.unlock();
    sync_cv_.notify_one();
  }
}

void Log::DrainSyncs() {
  std::unique_lock lock(sync_mu_);
  sync_idle_cv_.wait(lock, [&] { return unsynced_.empty() && syncs_in_flight_ == 0; });
}

void Log::StopSyncers() {
  {
    std::lock_guard lock(sync_mu_);
    syncers_stop_ = true;
  }
  sync_cv_.notify_all();
  for (auto& t : syncers_) t.join();
  syncers_.clear();
}

void Log::SyncerMain() {
  std::unique_lock lock(sync_mu_);
  for (;;) {
    auto finished = [&] { return syncers_stop_ && written_end_ <= sync_started_end_; };
    sync_cv_.wait(lock, [&] { return finished() || SyncDue(); });
    if (!SyncDue()) return;  // stopping, and nothing left to sync
    RunOneSync(lock);
  }
}

void Log::RunOneSync(std::unique_lock<std::mutex>& lock) {
  uint64_t target = written_end_;
  int fd = sync_fd_;
  std::string path = sync_path_;
  sync_started_end_ = target;
  ++syncs_in_flight_;
  // A reference stays valid while others are pushed and popped (std::deque); this one
  // is popped only once it is done.
  SyncInFlight& me = syncs_.emplace_back(SyncInFlight{target});
  lock.unlock();

  common::Duration started = clock_.Now();
  Status s = fs_.Fdatasync(fd, path);
  common::Duration took = clock_.Now() - started;

  lock.lock();
  --syncs_in_flight_;
  me.done = true;
  // What is durable: the targets of the syncs done, in the order they started, up to
  // the first still running. A later sync that returns first proves nothing while an
  // earlier one may yet fail: after a failed writeback the kernel may have dropped the
  // pages, and the later fdatasync would not see them (fsyncgate).
  uint64_t durable = 0;
  while (!syncs_.empty() && syncs_.front().done) {
    durable = std::max(durable, syncs_.front().target);
    syncs_.pop_front();
  }
  target = durable;
  Status fatal;
  {
    std::lock_guard state(mu_);
    // The kernel may have dropped the pages it failed to write: the log's state on
    // disk is unknown, and a later fsync would report success for lost data. So one
    // failed sync fails every record not yet acknowledged, whatever other syncs say.
    if (!s.ok()) SetFatalLocked(s);
    if (failed_.load(std::memory_order_acquire)) fatal = fatal_;
  }
  std::vector<Completion> ready;
  size_t records = 0;
  uint64_t durable_end = 0;
  uint64_t durable_offset = 0;
  while (!unsynced_.empty() && (!fatal.ok() || unsynced_.front().end_seq <= target)) {
    Unsynced& batch = unsynced_.front();
    for (auto& c : batch.done) {
      if (!fatal.ok()) c.status = fatal;
      ready.push_back(std::move(c));
    }
    records += batch.done.size();
    durable_end = batch.end_seq;
    durable_offset = batch.end_offset;
    unsynced_.pop_front();
  }
  if (fatal.ok() && records > 0) {
    {
      // Size and readable_end move together, under the lock ReadableIn takes. A roll
      // waits for syncs in flight, so these records are in the last segment.
      std::lock_guard state(mu_);
      segments_.back().size = durable_offset;
      readable_end_.store(durable_end, std::memory_order_release);
    }
    if (options_.on_commit) options_.on_commit(took, records);
  }
  // Queued under sync_mu_, so completions reach the owner in sequence order.
  QueueCompletions(&ready);
  sync_idle_cv_.notify_all();
  if (syncers_stop_) sync_cv_.notify_all();  // the others may now see nothing left
  if (!ready.empty() && options_.wake) {
    lock.unlock();
    options_.wake();
    lock.lock();
  }
}

}  // namespace sluice::buffer
