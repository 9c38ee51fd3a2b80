#pragma once

#include <cstdint>
#include <string>
#include <vector>

// Files and directories for buffer/ tests: a scratch directory per test and the small set
// of byte-level edits the tests use to damage a log the way a crash or a bad disk would.
namespace sluice::buffer::test {

// A fresh directory from mkdtemp, removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Whole content of a file; empty when it cannot be read.
std::string ReadFile(const std::string& path);
// Replaces the file's content.
void WriteFile(const std::string& path, const std::string& content);
bool FileExists(const std::string& path);
uint64_t FileSize(const std::string& path);
// Copies `from` and everything below it to `to`, which must not exist.
void CopyTree(const std::string& from, const std::string& to);
void RemoveTree(const std::string& path);

// Cuts the file to `size` bytes.
void TruncateFile(const std::string& path, uint64_t size);
// Overwrites bytes starting at `offset` in place (the file keeps its size or grows).
void OverwriteAt(const std::string& path, uint64_t offset, const std::string& bytes);
// Flips bit `bit` of the byte at `offset`.
void FlipBit(const std::string& path, uint64_t offset, int bit);

// The seg/ files of a log directory, oldest first.
struct SegmentFile {
  uint64_t first_seq;
  std::string path;
  uint64_t size;
};
std::vector<SegmentFile> SegmentFiles(const std::string& log_dir);

}  // namespace sluice::buffer::test
