#pragma once

#include <string>

namespace sluice::e2e {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction
// unless Keep() was called (a failed test keeps its files for inspection).
class TempDir {
 public:
  // Aborts the test binary if mkdtemp fails: nothing sensible can run without a directory.
  explicit TempDir(const std::string& prefix = "sluice-e2e");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  void Keep() { keep_ = true; }

  // Writes `content` to path()/name, replacing the file; returns the full path.
  std::string WriteFile(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
  bool keep_ = false;
};

// Whole content of a file; empty if it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace sluice::e2e
