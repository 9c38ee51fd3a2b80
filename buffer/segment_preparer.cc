#include "buffer/segment_preparer.h"

#include <fcntl.h>

#include <algorithm>

namespace sluice::buffer {
namespace {

// Zeros per write: large enough that O_DIRECT writes are efficient, small enough that a
// Take waits at most one of them.
constexpr uint64_t kChunk = 1u << 20;

}  // namespace

SegmentPreparer::SegmentPreparer(FileSystem& fs, std::string path)
    : fs_(fs), path_(std::move(path)) {}

SegmentPreparer::~SegmentPreparer() { Stop(); }

void SegmentPreparer::Start(uint64_t bytes) {
  std::lock_guard lock(mu_);
  if (stop_ || state_ != State::kNone || bytes == 0) return;
  state_ = State::kZeroing;
  size_ = bytes;
  zeroed_ = 0;
  written_ = 0;
  if (!thread_.joinable()) thread_ = std::thread([this] { Main(); });
  cv_.notify_one();
}

void SegmentPreparer::Pace(uint64_t written, uint64_t capacity) {
  std::lock_guard lock(mu_);
  written_ = written;
  capacity_ = std::max<uint64_t>(capacity, 1);
  if (state_ == State::kZeroing && !busy_ && zeroed_ < AllowedLocked()) cv_.notify_one();
}

uint64_t SegmentPreparer::AllowedLocked() const {
  const double fill = std::min(1.0, static_cast<double>(written_) / static_cast<double>(capacity_));
  const auto ahead = static_cast<uint64_t>(fill * static_cast<double>(size_)) + size_ / 8;
  return std::min(size_, std::max<uint64_t>(ahead, 1));
}

bool SegmentPreparer::Take(uint64_t* zeroed) {
  std::unique_lock lock(mu_);
  if (state_ == State::kNone) return false;
  // No further chunk starts; the one being written (at most kChunk) finishes first.
  state_ = State::kNone;
  cv_.wait(lock, [&] { return !busy_; });
  if (fd_ < 0) return false;  // the file was never created (or failed and was removed)
  (void)fs_.Close(fd_);
  fd_ = -1;
  *zeroed = zeroed_;
  ++taken_;
  return true;
}

void SegmentPreparer::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::unique_lock lock(mu_);
  if (fd_ >= 0) DropLocked(lock);
  state_ = State::kNone;
}

// Closes and removes the spare. REQUIRES: mu_ held, the thread not writing it.
void SegmentPreparer::DropLocked(std::unique_lock<std::mutex>& lock) {
  (void)lock;
  if (fd_ >= 0) (void)fs_.Close(fd_);
  fd_ = -1;
  (void)fs_.Unlink(path_);
  state_ = State::kNone;
}

void SegmentPreparer::Main() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock,
             [&] { return stop_ || (state_ == State::kZeroing && zeroed_ < AllowedLocked()); });
    if (stop_) return;
    const uint64_t offset = zeroed_;
    const uint64_t n = std::min(kChunk, size_ - offset);
    const bool last = offset + n == size_;
    int fd = fd_;
    busy_ = true;
    lock.unlock();

    Status s;
    if (fd < 0) s = fs_.Open(path_, O_RDWR | O_CREAT | O_TRUNC, &fd);
    if (s.ok()) s = fs_.WriteZeros(fd, offset, n);
    // Commits the blocks' allocation now, not in the first flush after the roll.
    if (s.ok() && last) s = fs_.Fdatasync(fd, path_);

    lock.lock();
    busy_ = false;
    fd_ = fd;
    if (s.ok()) {
      zeroed_ += n;
      zeroed_total_ += n;
      if (last && state_ == State::kZeroing) state_ = State::kReady;
    } else {
      // Not data: give the spare up; the roll fallocates as before.
      DropLocked(lock);
    }
    cv_.notify_all();  // a Take may wait for this chunk
  }
}

uint64_t SegmentPreparer::taken() const {
  std::lock_guard lock(mu_);
  return taken_;
}

uint64_t SegmentPreparer::zeroed_total() const {
  std::lock_guard lock(mu_);
  return zeroed_total_;
}

}  // namespace sluice::buffer
