#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "buffer/file_system.h"

namespace sluice::buffer {
namespace {

class PosixFileSystem final : public FileSystem {
 public:
  Status Open(const std::string& path, int flags, int* fd) override {
    int f;
    do {
      f = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    } while (f < 0 && errno == EINTR);
    if (f < 0) return Status::FromErrno("open " + path, errno);
    *fd = f;
    return Status::OK();
  }

  Status Close(int fd) override {
    // EINTR from close leaves the descriptor closed on Linux: never retry.
    if (::close(fd) != 0 && errno != EINTR) return Status::FromErrno("close", errno);
    return Status::OK();
  }

  Status PwriteAll(int fd, std::vector<iovec> iov, uint64_t offset) override {
    size_t first = 0;
    while (first < iov.size()) {
      int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
      ssize_t n = ::pwritev(fd, iov.data() + first, count, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("pwritev", errno);
      }
      offset += static_cast<uint64_t>(n);
      // Skip the fully written vectors, trim a partly written one.
      size_t left = static_cast<size_t>(n);
      while (first < iov.size() && left >= iov[first].iov_len) {
        left -= iov[first].iov_len;
        ++first;
      }
      if (first < iov.size() && left > 0) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    return Status::OK();
  }

  Status PreadUpTo(int fd, void* buf, size_t n, uint64_t offset, size_t* got) override {
    size_t done = 0;
    while (done < n) {
      ssize_t r =
          ::pread(fd, static_cast<char*>(buf) + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("pread", errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    *got = done;
    return Status::OK();
  }

  Status Fdatasync(int fd, const std::string& what) override {
    if (::fdatasync(fd) != 0) return Status::IoError("fdatasync " + what, errno);
    return Status::OK();
  }

  Status Fallocate(int fd, uint64_t size, const std::string& path) override {
    int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
    if (err != 0) return Status::FromErrno("fallocate " + path, err);
    return Status::OK();
  }

  Status Truncate(int fd, uint64_t size, const std::string& path) override {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      return Status::FromErrno("ftruncate " + path, errno);
    }
    return Status::OK();
  }

  Status FileSize(int fd, uint64_t* size) override {
    struct stat st;
    if (::fstat(fd, &st) != 0) return Status::FromErrno("fstat", errno);
    *size = static_cast<uint64_t>(st.st_size);
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    int fd = -1;
    Status s = Open(dir, O_RDONLY | O_DIRECTORY, &fd);
    if (!s.ok()) return s;
    if (::fsync(fd) != 0) s = Status::IoError("fsync directory " + dir, errno);
    ::close(fd);
    return s;
  }

  Status MakeDirs(const std::string& dir) override {
    size_t pos = 0;
    while (pos != std::string::npos) {
      pos = dir.find('/', pos + 1);
      std::string path = dir.substr(0, pos);
      if (path.empty()) continue;
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
        return Status::FromErrno("mkdir " + path, errno);
      }
    }
    return Status::OK();
  }

  Status ListDir(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Status::FromErrno("opendir " + dir, errno);
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names->push_back(std::move(name));
    }
    ::closedir(d);
    return Status::OK();
  }

  Status Unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno("unlink " + path, errno);
    }
    return Status::OK();
  }

  Status LockDir(const std::string& dir, int* fd) override {
    Status s = Open(dir + "/LOCK", O_RDWR | O_CREAT, fd);
    if (!s.ok()) return s;
    if (::flock(*fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(*fd);
      *fd = -1;
      if (err == EWOULDBLOCK) {
        return Status::Busy(dir + "/LOCK is held by another process (is another sluice running " +
                            "on this buffer.dir?)");
      }
      return Status::FromErrno("flock " + dir + "/LOCK", err);
    }
    return Status::OK();
  }
};

}  // namespace

Status FileSystem::Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return Status::FromErrno("rename " + from, errno);
  return Status::OK();
}

FileSystem& FileSystem::Default() {
  static PosixFileSystem fs;
  return fs;
}

}  // namespace sluice::buffer
