#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "buffer/dead_letter.h"
#include "buffer/file_system.h"
#include "common/uuid.h"

namespace sluice::buffer {

// dead/<target>.log, one file per target: the messages a target will not get, with the
// reason. Appends, syncs and removals run on the log's writer thread; List and Count
// may be called from any thread (List reads the file by path and sees whole records).
class DeadLetterStore {
 public:
  // "fs" must outlive the store.
  DeadLetterStore(FileSystem& fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}
  ~DeadLetterStore();
  DeadLetterStore(const DeadLetterStore&) = delete;
  DeadLetterStore& operator=(const DeadLetterStore&) = delete;

  // Opens (creating) each target's file, counts its letters and cuts a torn last one:
  // a letter is durable before the cursor passes its message, so a torn letter's
  // message is still queued and will be dead-lettered again.
  Status Open(const std::vector<std::string>& targets);
  bool Has(const std::string& target) const;

  // Writer thread. Writes one letter (not synced).
  Status Append(const DeadLetter& letter);
  // Writer thread. Makes the appended letters of `target` durable.
  Status Sync(const std::string& target);
  // Writer thread. Removes the letters whose message id is in `ids` (every letter when
  // `ids` is null): writes the survivors to a new file, syncs it, renames it over the
  // old one and syncs the directory. *removed counts what went.
  Status Remove(const std::string& target, const std::vector<common::Uuid>* ids, uint64_t* removed);
  // Closes every file (writer thread, at shutdown).
  void CloseAll();

  uint64_t Count(const std::string& target) const;
  // Every letter of `target` in the order stored.
  Status List(const std::string& target, std::vector<DeadLetter>* out) const;

 private:
  struct File {
    int fd = -1;
    uint64_t size = 0;
  };
  std::string PathOf(const std::string& target) const { return dir_ + "/" + target + ".log"; }
  Status Scan(int fd, uint64_t size, std::vector<DeadLetter>* out, uint64_t* valid_end,
              uint64_t* count) const;

  FileSystem& fs_;
  const std::string dir_;
  std::map<std::string, File> files_;  // writer thread (and Open/CloseAll)
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> counts_;  // guarded by mu_
};

}  // namespace sluice::buffer
