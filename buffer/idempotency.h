#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "buffer/file_system.h"
#include "common/uuid.h"

namespace sluice::buffer {

// One remembered Idempotency-Key (IETF draft "The Idempotency-Key HTTP Header Field"):
// the key, scoped to its route, maps to the message it created and a fingerprint of the
// request, so a repeat can be answered with the same id and a different request with
// the same key refused.
struct IdempotencyEntry {
  std::string scoped_key;  // route name, '\n', key
  common::Uuid id;
  uint64_t fingerprint = 0;
  uint64_t expires_unix_ns = 0;
};

// Keys in memory, on the loop thread. Bounded: past max_keys the oldest are forgotten
// first (a repeat of a forgotten key is queued again: at least once, never lost).
class IdempotencyIndex {
 public:
  explicit IdempotencyIndex(size_t max_keys) : max_keys_(max_keys) {}

  struct Slot {
    IdempotencyEntry entry;
    bool pending;  // its message is not durable yet
  };
  // The live entry for `scoped_key`, or nullptr (absent or expired).
  const Slot* Find(const std::string& scoped_key, uint64_t now_unix_ns) const;
  void Insert(IdempotencyEntry entry, bool pending);
  void MarkDone(const std::string& scoped_key);
  void Erase(const std::string& scoped_key);
  // Drops expired entries (call periodically).
  void Expire(uint64_t now_unix_ns);
  size_t size() const { return slots_.size(); }
  uint64_t evicted() const { return evicted_; }

 private:
  void DropOldest();
  size_t max_keys_;
  std::unordered_map<std::string, Slot> slots_;
  std::deque<std::pair<uint64_t, std::string>> order_;  // (expires, key), insertion order
  uint64_t evicted_ = 0;
};

// The durable side: idempotency/<unix milliseconds at its start>.log, records in the log's
// framing. A file is deleted once every entry in it has expired. Writer thread only.
class IdempotencyFiles {
 public:
  // "fs" must outlive this object. A new file is started every `roll_after`.
  IdempotencyFiles(FileSystem& fs, std::string dir, uint64_t roll_after_ns);
  ~IdempotencyFiles();
  IdempotencyFiles(const IdempotencyFiles&) = delete;
  IdempotencyFiles& operator=(const IdempotencyFiles&) = delete;

  // Reads every file; returns the unexpired entries oldest first and deletes files
  // whose entries have all expired.
  Status Open(uint64_t now_unix_ns, std::vector<IdempotencyEntry>* live);
  // Appends and (sync) fdatasyncs the entries.
  Status Append(const std::vector<IdempotencyEntry>& entries, uint64_t now_unix_ns, bool sync);
  // Deletes files whose newest expiry has passed (not the one being written).
  Status DropExpired(uint64_t now_unix_ns);
  void Close();

 private:
  struct File {
    std::string path;
    uint64_t max_expires_unix_ns = 0;
  };
  Status StartFile(uint64_t now_unix_ns);

  FileSystem& fs_;
  const std::string dir_;
  const uint64_t roll_after_ns_;
  std::vector<File> sealed_;
  File active_;
  int active_fd_ = -1;
  uint64_t active_size_ = 0;
  uint64_t active_started_ns_ = 0;
};

std::string EncodeIdempotencyEntry(const IdempotencyEntry& e);
std::optional<IdempotencyEntry> DecodeIdempotencyEntry(std::string_view payload);

}  // namespace sluice::buffer
