#include "tests/buffer/counting_fs.h"

namespace sluice::buffer::test {
namespace {

// The entries (Read or Call) whose path contains `path_part`.
template <typename Entry>
std::vector<Entry> WithPathPart(const std::vector<Entry>& entries, std::string_view path_part) {
  std::vector<Entry> out;
  for (const Entry& e : entries) {
    if (e.path.find(path_part) != std::string::npos) out.push_back(e);
  }
  return out;
}

}  // namespace

std::string CountingFileSystem::PathOfLocked(int fd) const {
  auto it = paths_.find(fd);
  return it == paths_.end() ? "" : it->second;
}

Status CountingFileSystem::Open(const std::string& path, int flags, int* fd) {
  Status s = base_.Open(path, flags, fd);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    paths_[*fd] = path;
  }
  return s;
}

Status CountingFileSystem::Close(int fd) {
  {
    std::lock_guard lock(mu_);
    paths_.erase(fd);
  }
  return base_.Close(fd);
}

Status CountingFileSystem::PreadUpTo(int fd, void* buf, size_t n, uint64_t offset, size_t* got) {
  Read read{"", offset, n};
  {
    std::lock_guard lock(mu_);
    read.path = PathOfLocked(fd);
    reads_.push_back(read);
  }
  if (on_read_) on_read_(read);
  return base_.PreadUpTo(fd, buf, n, offset, got);
}

Status CountingFileSystem::PwriteAll(int fd, std::vector<iovec> iov, uint64_t offset) {
  {
    std::lock_guard lock(mu_);
    calls_.push_back(Call{Call::Op::kWrite, PathOfLocked(fd), std::this_thread::get_id()});
  }
  return base_.PwriteAll(fd, std::move(iov), offset);
}

Status CountingFileSystem::Fdatasync(int fd, const std::string& what) {
  {
    std::lock_guard lock(mu_);
    calls_.push_back(Call{Call::Op::kSync, what, std::this_thread::get_id()});
  }
  return base_.Fdatasync(fd, what);
}

std::vector<CountingFileSystem::Call> CountingFileSystem::Calls(std::string_view path_part) const {
  std::lock_guard lock(mu_);
  return WithPathPart(calls_, path_part);
}

std::vector<CountingFileSystem::Read> CountingFileSystem::Reads(std::string_view path_part) const {
  std::lock_guard lock(mu_);
  return WithPathPart(reads_, path_part);
}

void CountingFileSystem::ClearReads() {
  std::lock_guard lock(mu_);
  reads_.clear();
}

}  // namespace sluice::buffer::test
