#include "tests/torture/loop_mount.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>

#include "tests/e2e/child_process.h"

namespace sluice::torture {
namespace {

bool Executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

std::string FindTool(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    std::string path = std::string(dir) + "/" + name;
    if (Executable(path)) return path;
  }
  return "";
}

std::string Describe(const e2e::CommandResult& r) {
  return r.status.ToString() + (r.timed_out ? " (timed out)" : "") + ": " + r.err + r.out;
}

}  // namespace

LoopMount::LoopMount() : dir_("sluice-torture-fs"), mount_point_(dir_.path() + "/mnt") {}

LoopMount::~LoopMount() { Unmount(); }

bool LoopMount::Mount(uint64_t bytes) {
  if (::geteuid() != 0) {
    why_ = "needs root (mounts a loop-device ext4 image)";
    return false;
  }
  struct stat st;
  if (::stat("/dev/loop-control", &st) != 0) {
    why_ = "no loop devices (/dev/loop-control is missing)";
    return false;
  }
  std::string mkfs = FindTool("mkfs.ext4");
  std::string mount = FindTool("mount");
  if (mkfs.empty() || mount.empty()) {
    why_ = "mkfs.ext4 or mount not installed (e2fsprogs, mount)";
    return false;
  }
  e2e::TempDir scratch("sluice-torture-cmd");
  int fd = ::open(image().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool made_image = fd >= 0 && ::ftruncate(fd, static_cast<off_t>(bytes)) == 0;
  if (fd >= 0) ::close(fd);
  if (!made_image || ::mkdir(mount_point_.c_str(), 0755) != 0) {
    why_ = "cannot create the image or the mount point in " + dir_.path();
    return false;
  }
  // -m 0: no blocks reserved for root, so root (sluice here) sees the same "full" as anyone.
  e2e::CommandResult made =
      e2e::RunCommand({mkfs, "-q", "-F", "-m", "0", image()}, scratch.path(), e2e::Millis(30'000));
  if (made.status.code != 0) {
    why_ = "mkfs.ext4 failed: " + Describe(made);
    return false;
  }
  e2e::CommandResult mounted = e2e::RunCommand({mount, "-o", "loop", image(), mount_point_},
                                               scratch.path(), e2e::Millis(30'000));
  if (mounted.status.code != 0) {
    why_ = "mount -o loop failed (no loop device available?): " + Describe(mounted);
    return false;
  }
  mounted_ = true;
  return true;
}

void LoopMount::Unmount() {
  if (!mounted_) return;
  e2e::TempDir scratch("sluice-torture-cmd");
  std::string umount = FindTool("umount");
  e2e::CommandResult r =
      e2e::RunCommand({umount, mount_point_}, scratch.path(), e2e::Millis(30'000));
  if (r.status.code != 0) {
    // Something still has a file open there: detach now, the kernel finishes later.
    r = e2e::RunCommand({umount, "-l", mount_point_}, scratch.path(), e2e::Millis(30'000));
    if (r.status.code != 0) {
      std::fprintf(stderr, "LoopMount: cannot unmount %s: %s\n", mount_point_.c_str(),
                   Describe(r).c_str());
      dir_.Keep();  // never delete recursively through a live mount
    }
  }
  mounted_ = false;
}

uint64_t LoopMount::FreeBytes() const {
  struct statvfs vfs;
  if (::statvfs(mount_point_.c_str(), &vfs) != 0) return 0;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace sluice::torture
