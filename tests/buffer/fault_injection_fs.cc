#include "tests/buffer/fault_injection_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <utility>

namespace sluice::buffer::test {
namespace {

namespace fs = std::filesystem;

// The unit in which Loss::kSomeUnsynced keeps or loses a write: a disk sector.
constexpr uint64_t kSectorBytes = 512;

std::string Normal(const std::string& path) {
  std::string out = fs::path(path).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string Parent(const std::string& normal_path) {
  return fs::path(normal_path).parent_path().string();
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string ReadWhole(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[8192];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// Up to `len` bytes of the file at `path` from `offset` (descriptors under test may be
// write-only, so the snapshot reads through its own).
Status ReadRange(const std::string& path, uint64_t offset, uint64_t len, std::string* out) {
  out->clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("snapshot: open " + path, errno);
  out->resize(static_cast<size_t>(len));
  ssize_t n = ::pread(fd, out->data(), out->size(), static_cast<off_t>(offset));
  int err = errno;
  ::close(fd);
  if (n < 0) return Status::FromErrno("snapshot: pread " + path, err);
  out->resize(static_cast<size_t>(n));
  return Status::OK();
}

uint64_t IovBytes(const std::vector<iovec>& iov) {
  uint64_t n = 0;
  for (const auto& v : iov) n += v.iov_len;
  return n;
}

// The first `len` bytes of `iov`.
std::vector<iovec> IovPrefix(const std::vector<iovec>& iov, uint64_t len) {
  std::vector<iovec> out;
  for (const auto& v : iov) {
    if (len == 0) break;
    size_t take = static_cast<size_t>(std::min<uint64_t>(len, v.iov_len));
    out.push_back({v.iov_base, take});
    len -= take;
  }
  return out;
}

// Restores `old_bytes` at `offset` and cuts the file at path to `old_size`.
common::Status ApplyUndo(const std::string& path, uint64_t offset, const std::string& old_bytes,
                         uint64_t old_size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return common::Status::FromErrno("revert: open " + path, errno);
  common::Status s;
  if (!old_bytes.empty() &&
      ::pwrite(fd, old_bytes.data(), old_bytes.size(), static_cast<off_t>(offset)) !=
          static_cast<ssize_t>(old_bytes.size())) {
    s = common::Status::FromErrno("revert: pwrite " + path, errno);
  }
  if (s.ok() && ::ftruncate(fd, static_cast<off_t>(old_size)) != 0) {
    s = common::Status::FromErrno("revert: ftruncate " + path, errno);
  }
  ::close(fd);
  return s;
}

}  // namespace

FaultInjectionFileSystem::FaultInjectionFileSystem(std::string root, std::string stash,
                                                   FileSystem& base)
    : root_(Normal(root)), stash_(Normal(stash)), base_(base) {}

FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

void FaultInjectionFileSystem::PassGate() {
  std::unique_lock lock(gate_mu_);
  ++paused_calls_;
  gate_cv_.wait(lock, [&] { return !paused_; });
  --paused_calls_;
}

void FaultInjectionFileSystem::PauseMutations() {
  std::lock_guard lock(gate_mu_);
  paused_ = true;
}

void FaultInjectionFileSystem::ResumeMutations() {
  {
    std::lock_guard lock(gate_mu_);
    paused_ = false;
  }
  gate_cv_.notify_all();
}

int FaultInjectionFileSystem::paused_calls() const {
  std::lock_guard lock(gate_mu_);
  return paused_calls_;
}

bool FaultInjectionFileSystem::CountMutation() {
  ++ops_;
  if (crash_at_op_ != 0 && ops_ >= crash_at_op_) crashed_ = true;
  return !crashed_;
}

Status FaultInjectionFileSystem::CrashedError(const std::string& what) const {
  return Status::IoError(what + ": simulated crash", EIO);
}

std::shared_ptr<FaultInjectionFileSystem::File> FaultInjectionFileSystem::FileAt(
    const std::string& path) {
  auto it = by_path_.find(path);
  if (it != by_path_.end()) return it->second;
  auto file = std::make_shared<File>();
  file->path = path;
  by_path_[path] = file;
  files_.push_back(file);
  return file;
}

std::shared_ptr<FaultInjectionFileSystem::File> FaultInjectionFileSystem::FileOf(int fd) {
  auto it = by_fd_.find(fd);
  return it == by_fd_.end() ? nullptr : it->second;
}

Status FaultInjectionFileSystem::SnapshotRange(File& file, int fd, uint64_t offset, uint64_t len,
                                               uint64_t new_size) {
  uint64_t old_size = 0;
  Status s = base_.FileSize(fd, &old_size);
  if (!s.ok()) return s;
  // Bytes [from, to) that existed before: what the change overwrites.
  auto old_bytes = [&](uint64_t from, uint64_t to, std::string* out) -> Status {
    out->clear();
    if (from >= old_size) return Status::OK();
    return ReadRange(file.path, from, std::min(to, old_size) - from, out);
  };
  if (len == 0) {
    if (new_size != old_size) file.undo.push_back(Undo{old_size, "", old_size});
    return Status::OK();
  }
  for (uint64_t at = offset; at < offset + len;) {
    uint64_t end = std::min(offset + len, (at / kSectorBytes + 1) * kSectorBytes);
    Undo undo{at, "", old_size};
    s = old_bytes(at, end, &undo.old_bytes);
    if (!s.ok()) return s;
    file.undo.push_back(std::move(undo));
    at = end;
  }
  return Status::OK();
}

uint64_t FaultInjectionFileSystem::UsedBytesLocked() const {
  uint64_t used = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      auto size = it->file_size(size_ec);
      if (!size_ec) used += size;
    }
  }
  return used;
}

Status FaultInjectionFileSystem::Open(const std::string& path, int flags, int* fd) {
  const bool mutates = (flags & (O_CREAT | O_TRUNC)) != 0;
  if (mutates) PassGate();
  std::lock_guard lock(mu_);
  if (crashed_ || (mutates && !CountMutation())) return CrashedError("open " + path);
  const std::string name = Normal(path);
  const bool existed = Exists(name);
  std::string truncated;  // what O_TRUNC throws away
  if (existed && (flags & O_TRUNC) != 0) truncated = ReadWhole(name);
  Status s = base_.Open(path, flags, fd);
  if (!s.ok()) return s;
  auto file = FileAt(name);
  by_fd_[*fd] = file;
  if ((flags & O_CREAT) != 0 && !existed) {
    unsynced_entries_.push_back(
        EntryChange{EntryChange::Kind::kCreated, {Parent(name)}, name, file, "", nullptr});
  }
  if (existed && (flags & O_TRUNC) != 0 && !truncated.empty()) {
    file->undo.push_back(Undo{0, truncated, truncated.size()});
  }
  return s;
}

Status FaultInjectionFileSystem::Close(int fd) {
  std::lock_guard lock(mu_);
  by_fd_.erase(fd);
  Status s = base_.Close(fd);
  return crashed_ ? Status::OK() : s;
}

Status FaultInjectionFileSystem::PwriteAll(int fd, std::vector<iovec> iov, uint64_t offset) {
  PassGate();
  std::lock_guard lock(mu_);
  if (crashed_ || !CountMutation()) return CrashedError("pwritev");
  uint64_t size = 0;
  Status s = base_.FileSize(fd, &size);
  if (!s.ok()) return s;
  const uint64_t len = IovBytes(iov);
  uint64_t write_len = len;
  bool full = false;
  if (capacity_ != kUnlimited && offset + len > size) {
    const uint64_t used = UsedBytesLocked();
    const uint64_t room = capacity_ > used ? capacity_ - used : 0;
    if (offset + len - size > room) {
      // A real disk takes what fits, then refuses: a short write, then ENOSPC.
      full = true;
      write_len = size + room > offset ? size + room - offset : 0;
    }
  }
  if (auto file = FileOf(fd)) {
    s = SnapshotRange(*file, fd, offset, write_len, std::max(size, offset + write_len));
    if (!s.ok()) return s;
  }
  if (write_len > 0) {
    s = base_.PwriteAll(fd, full ? IovPrefix(iov, write_len) : std::move(iov), offset);
    if (!s.ok()) return s;
  }
  if (full) return Status::FromErrno("pwritev", ENOSPC);
  return Status::OK();
}

Status FaultInjectionFileSystem::PreadUpTo(int fd, void* buf, size_t n, uint64_t offset,
                                           size_t* got) {
  std::lock_guard lock(mu_);
  if (crashed_) return CrashedError("pread");
  return base_.PreadUpTo(fd, buf, n, offset, got);
}

Status FaultInjectionFileSystem::Fdatasync(int fd, const std::string& what) {
  PassGate();
  std::lock_guard lock(mu_);
  if (crashed_ || !CountMutation()) return CrashedError("fdatasync " + what);
  auto file = FileOf(fd);
  if (file == nullptr || file->path.find(fail_fdatasync_path_) != std::string::npos) {
    if (++fdatasyncs_ == fail_fdatasync_at_) {
      ++fdatasync_errors_;
      return Status::IoError("fdatasync " + what + ": injected error", EIO);
    }
  }
  if (file != nullptr) file->undo.clear();
  return Status::OK();
}

Status FaultInjectionFileSystem::Fallocate(int fd, uint64_t size, const std::string& path) {
  PassGate();
  std::lock_guard lock(mu_);
  if (crashed_ || !CountMutation()) return CrashedError("fallocate " + path);
  uint64_t old_size = 0;
  Status s = base_.FileSize(fd, &old_size);
  if (!s.ok()) return s;
  if (capacity_ != kUnlimited && size > old_size) {
    const uint64_t used = UsedBytesLocked();
    if (used + (size - old_size) > capacity_) {
      return Status::FromErrno("fallocate " + path, ENOSPC);
    }
  }
  if (auto file = FileOf(fd)) {
    s = SnapshotRange(*file, fd, old_size, 0, std::max(size, old_size));
    if (!s.ok()) return s;
  }
  return base_.Fallocate(fd, size, path);
}

Status FaultInjectionFileSystem::Truncate(int fd, uint64_t size, const std::string& path) {
  PassGate();
  std::lock_guard lock(mu_);
  if (crashed_ || !CountMutation()) return CrashedError("ftruncate " + path);
  if (auto file = FileOf(fd)) {
    uint64_t old_size = 0;
    Status s = base_.FileSize(fd, &old_size);
    if (!s.ok()) return s;
    // One undo for the whole cut: a truncate is a single metadata change, never torn.
    Undo undo{size, "", old_size};
    if (size < old_size) {
      s = ReadRange(file->path, size, old_size - size, &undo.old_bytes);
      if (!s.ok()) return s;
    }
    if (size != old_size) file->undo.push_back(std::move(undo));
  }
  return base_.Truncate(fd, size, path);
}

Status FaultInjectionFileSystem::FileSize(int fd, uint64_t* size) {
  std::lock_guard lock(mu_);
  if (crashed_) return CrashedError("fstat");
  return base_.FileSize(fd, size);
}

Status FaultInjectionFileSystem::SyncDir(const std::string& dir) {
  PassGate();
  std::lock_guard lock(mu_);
  if (crashed_ || !CountMutation()) return CrashedError("fsync directory " + dir);
  const std::string name = Normal(dir);
  struct stat st;
  if (::stat(name.c_str(), &st) != 0) return Status::FromErrno("open " + dir, errno);
  if (!S_ISDIR(st.st_mode)) return Status::FromErrno("open " + dir, ENOTDIR);
  std::vector<EntryChange> still;
  for (auto& change : unsynced_entries_) {
    std::erase(change.dirs, name);
    if (!change.dirs.empty()) {
      still.push_back(std::move(change));
      continue;
    }
    // Durable now: a file unlinked or renamed over is gone for real.
    std::shared_ptr<File> gone = change.kind == EntryChange::Kind::kUnlinked  ? change.file
                                 : change.kind == EntryChange::Kind::kRenamed ? change.replaced
                                                                              : nullptr;
    if (gone != nullptr) {
      ::unlink(gone->path.c_str());
      gone->path.clear();
    }
  }
  unsynced_entries_.swap(still);
  return Status::OK();
}

Status FaultInjectionFileSystem::MakeDirs(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (crashed_) return CrashedError("mkdir " + dir);
  std::vector<std::string> missing;
  if (track_directories_) {
    for (fs::path p = Normal(dir); !p.empty() && p != p.root_path(); p = p.parent_path()) {
      if (Exists(p.string())) break;
      missing.push_back(p.string());
    }
  }
  Status s = base_.MakeDirs(dir);
  if (!s.ok()) return s;
  // Outermost first, so the crash undoes them innermost first.
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    unsynced_entries_.push_back(
        EntryChange{EntryChange::Kind::kMadeDir, {Parent(*it)}, *it, nullptr, "", nullptr});
  }
  return s;
}

Status FaultInjectionFileSystem::ListDir(const std::string& dir, std::vector<std::string>* names) {
  std::lock_guard lock(mu_);
  if (crashed_) return CrashedError("opendir " + dir);
  return base_.ListDir(dir, names);
}

Status FaultInjectionFileSystem::Stash(const std::string& name, std::shared_ptr<File>* file) {
  *file = FileAt(name);
  const std::string stashed = stash_ + "/" + std::to_string(++stashed_);
  if (::rename(name.c_str(), stashed.c_str()) != 0) {
    return Status::FromErrno("stash " + name, errno);
  }
  by_path_.erase(name);
  (*file)->path = stashed;
  return Status::OK();
}

Status FaultInjectionFileSystem::Unlink(const std::string& path) {
  PassGate();
  std::lock_guard lock(mu_);
  if (crashed_ || !CountMutation()) return CrashedError("unlink " + path);
  const std::string name = Normal(path);
  if (!Exists(name)) return Status::OK();  // as POSIX's: unlinking nothing succeeds
  std::shared_ptr<File> file;
  Status s = Stash(name, &file);
  if (!s.ok()) return s;
  unsynced_entries_.push_back(
      EntryChange{EntryChange::Kind::kUnlinked, {Parent(name)}, name, file, "", nullptr});
  return Status::OK();
}

Status FaultInjectionFileSystem::Rename(const std::string& from, const std::string& to) {
  PassGate();
  std::lock_guard lock(mu_);
  if (crashed_ || !CountMutation()) return CrashedError("rename " + from);
  const std::string old_name = Normal(from);
  const std::string new_name = Normal(to);
  if (!Exists(old_name)) return Status::FromErrno("rename " + from, ENOENT);
  auto file = FileAt(old_name);
  std::shared_ptr<File> replaced;
  if (Exists(new_name)) {
    Status s = Stash(new_name, &replaced);
    if (!s.ok()) return s;
  }
  if (::rename(old_name.c_str(), new_name.c_str()) != 0) {
    return Status::FromErrno("rename " + from, errno);
  }
  by_path_.erase(old_name);
  by_path_[new_name] = file;
  file->path = new_name;
  std::vector<std::string> dirs{Parent(new_name)};
  if (Parent(old_name) != dirs[0]) dirs.push_back(Parent(old_name));
  unsynced_entries_.push_back(EntryChange{EntryChange::Kind::kRenamed, std::move(dirs), new_name,
                                          file, old_name, replaced});
  return Status::OK();
}

Status FaultInjectionFileSystem::LockDir(const std::string& dir, int* fd) {
  std::lock_guard lock(mu_);
  if (crashed_) return CrashedError("lock " + dir);
  Status s = base_.LockDir(dir, fd);
  if (s.ok()) by_fd_[*fd] = nullptr;  // tracked only to tell whether it was closed
  return s;
}

void FaultInjectionFileSystem::CrashAfter(uint64_t ops) {
  std::lock_guard lock(mu_);
  crash_at_op_ = ops_ + ops + 1;
}

void FaultInjectionFileSystem::SimulateCrash() {
  std::lock_guard lock(mu_);
  crashed_ = true;
}

bool FaultInjectionFileSystem::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

uint64_t FaultInjectionFileSystem::mutating_ops() const {
  std::lock_guard lock(mu_);
  return ops_;
}

void FaultInjectionFileSystem::SetCapacity(uint64_t bytes) {
  std::lock_guard lock(mu_);
  capacity_ = bytes;
}

uint64_t FaultInjectionFileSystem::UsedBytes() const {
  std::lock_guard lock(mu_);
  return UsedBytesLocked();
}

void FaultInjectionFileSystem::FailFdatasync(uint64_t nth, std::string path_part) {
  std::lock_guard lock(mu_);
  fdatasyncs_ = 0;
  fail_fdatasync_at_ = nth;
  fail_fdatasync_path_ = std::move(path_part);
}

uint64_t FaultInjectionFileSystem::injected_fdatasync_errors() const {
  std::lock_guard lock(mu_);
  return fdatasync_errors_;
}

void FaultInjectionFileSystem::set_track_directories(bool on) {
  std::lock_guard lock(mu_);
  track_directories_ = on;
}

Status FaultInjectionFileSystem::RevertToDurableState(Loss loss, uint64_t seed) {
  std::lock_guard lock(mu_);
  crashed_ = true;
  if (!by_fd_.empty()) {
    return Status::InvalidArgument(std::to_string(by_fd_.size()) +
                                   " descriptors still open: close the Log first");
  }
  std::mt19937_64 coin(seed);
  auto survives = [&] { return loss == Loss::kSomeUnsynced && (coin() & 1) != 0; };

  // Directory entries, newest change first: a name unlinked and then created again gets
  // its old file back.
  auto Restore = [](const std::shared_ptr<File>& file, const std::string& name) {
    if (::rename(file->path.c_str(), name.c_str()) != 0) {
      return Status::FromErrno("revert: rename " + file->path + " to " + name, errno);
    }
    file->path = name;
    return Status::OK();
  };
  for (auto it = unsynced_entries_.rbegin(); it != unsynced_entries_.rend(); ++it) {
    Status s;
    switch (it->kind) {
      case EntryChange::Kind::kCreated:
        // A later rename that survived keeps the file under its new name.
        if (survives() || it->file->path != it->name) break;
        if (::unlink(it->file->path.c_str()) != 0) {
          s = Status::FromErrno("revert: unlink " + it->file->path, errno);
        }
        it->file->path.clear();
        break;
      case EntryChange::Kind::kUnlinked:
        if (survives()) {
          ::unlink(it->file->path.c_str());
          it->file->path.clear();
        } else {
          s = Restore(it->file, it->name);
        }
        break;
      case EntryChange::Kind::kRenamed:
        if (survives()) {
          if (it->replaced != nullptr) {
            ::unlink(it->replaced->path.c_str());
            it->replaced->path.clear();
          }
          break;
        }
        s = Restore(it->file, it->from);
        if (s.ok() && it->replaced != nullptr) s = Restore(it->replaced, it->name);
        break;
      case EntryChange::Kind::kMadeDir:
        if (survives()) break;
        std::error_code ec;
        fs::remove_all(it->name, ec);
        if (ec) s = Status::IoError("revert: remove " + it->name + ": " + ec.message());
        break;
    }
    if (!s.ok()) return s;
  }
  // File contents, newest effect first.
  for (const auto& file : files_) {
    if (file->path.empty() || !Exists(file->path)) continue;
    for (auto it = file->undo.rbegin(); it != file->undo.rend(); ++it) {
      if (survives()) continue;
      Status s = ApplyUndo(file->path, it->offset, it->old_bytes, it->old_size);
      if (!s.ok()) return s;
    }
  }
  unsynced_entries_.clear();
  files_.clear();
  by_path_.clear();
  return Status::OK();
}

}  // namespace sluice::buffer::test
