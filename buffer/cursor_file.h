#pragma once

#include <cstdint>
#include <string>

#include "buffer/file_system.h"
#include "common/status.h"

namespace sluice::buffer {

// cursors/<target>.cur: a target's delivery position, the lowest sequence number not yet
// finished (delivered or dead-lettered). Two 32-byte slots {u64 generation, u64 next_seq,
// u32 reserved, u32 masked crc, 8 bytes zero}; each update writes the slot the previous
// one did not and fdatasyncs, so a torn write can only damage the slot being written
// and the other still holds the previous position.
class CursorFile {
 public:
  explicit CursorFile(FileSystem& fs = FileSystem::Default()) : fs_(fs) {}
  CursorFile(const CursorFile&) = delete;
  CursorFile& operator=(const CursorFile&) = delete;
  ~CursorFile();

  // Opens (creating if missing) and reads the newest valid slot. A new or unreadable
  // file yields *next_seq = default_seq.
  common::Status Open(const std::string& path, uint64_t default_seq, uint64_t* next_seq);
  // Durably records next_seq (write the other slot, fdatasync).
  common::Status Store(uint64_t next_seq);
  uint64_t stored() const { return stored_; }

 private:
  FileSystem& fs_;
  std::string path_;
  int fd_ = -1;
  uint64_t generation_ = 0;
  uint64_t stored_ = 0;
};

}  // namespace sluice::buffer
