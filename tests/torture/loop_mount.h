#pragma once

#include <cstdint>
#include <string>

#include "tests/e2e/temp_dir.h"

namespace sluice::torture {

// A small, freshly made ext4 file system on a loop device (root only): an image file in a
// temp dir, mounted on a mount point beside it. Unmount() (also run by the destructor)
// unmounts, lazily if something still holds it, and the temp dir goes with the image
// unless Keep() was called.
class LoopMount {
 public:
  LoopMount();
  ~LoopMount();
  LoopMount(const LoopMount&) = delete;
  LoopMount& operator=(const LoopMount&) = delete;

  // False with why() when it cannot be done here (not root, no loop devices, no
  // mkfs.ext4): a reason to skip, not a failure.
  bool Mount(uint64_t bytes);
  void Unmount();
  bool mounted() const { return mounted_; }
  const std::string& path() const { return mount_point_; }
  const std::string& why() const { return why_; }
  // Keeps the image (and its temp dir) for inspection; prints nothing itself.
  void Keep() { dir_.Keep(); }
  std::string image() const { return dir_.path() + "/fs.img"; }

  // Free bytes for an unprivileged writer (statvfs f_bavail).
  uint64_t FreeBytes() const;

 private:
  e2e::TempDir dir_;
  std::string mount_point_;
  bool mounted_ = false;
  std::string why_;
};

}  // namespace sluice::torture
