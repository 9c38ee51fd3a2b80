#include "tests/buffer/log_fixture.h"

#include <algorithm>

#include "buffer/segment.h"

namespace sluice::buffer::test {

using common::Status;

std::string PayloadFor(uint64_t seq, size_t len) {
  std::string out(len, '\0');
  uint64_t x = seq * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < len; ++i) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    out[i] = static_cast<char>(1 + (x >> 32) % 255);
  }
  return out;
}

size_t EmptyFooterSize() {
  SegmentFooter footer;
  footer.targets.emplace();
  return SegmentFooterSize(footer);
}

void PrintTo(const ReadRecord& r, std::ostream* os) {
  *os << "{seq " << r.seq << ", " << r.payload.size() << " bytes}";
}

LogFixture::LogFixture() {
  options_.dir = scratch_.path() + "/log";
  options_.wake = [this] { Wake(); };
}

LogFixture::~LogFixture() { Close(); }

bool LogFixture::Open(RecoveryReport* report) {
  Close();
  open_status_ = Log::Open(options_, &log_, report);
  if (!open_status_.ok()) {
    log_.reset();
    ADD_FAILURE() << "Log::Open(" << options_.dir << "): " << open_status_.ToString();
    return false;
  }
  return true;
}

void LogFixture::Close() {
  if (log_ == nullptr) return;
  log_->Close();
  log_.reset();
}

bool LogFixture::Reopen(RecoveryReport* report) {
  Close();
  return Open(report);
}

Status LogFixture::Append(std::string payload) {
  Status s = log_->Append(std::move(payload), 1'700'000'000'000'000'000ull + accepted_,
                          [this](const Status& status, uint64_t seq) {
                            completions_.push_back(Completion{status, seq});
                          });
  if (s.ok()) ++accepted_;
  return s;
}

uint64_t LogFixture::Write(std::string payload) {
  Status s = Append(std::move(payload));
  if (!s.ok()) {
    ADD_FAILURE() << "Append: " << s.ToString();
    return 0;
  }
  if (!WaitForCompletions()) return 0;
  const Completion& c = completions_.back();
  if (!c.status.ok()) {
    ADD_FAILURE() << "completion: " << c.status.ToString();
    return 0;
  }
  return c.seq;
}

std::vector<uint64_t> LogFixture::WriteAll(const std::vector<std::string>& payloads) {
  size_t first = completions_.size();
  size_t queued = 0;
  for (const auto& p : payloads) {
    Status s = Append(p);
    if (!s.ok()) {
      ADD_FAILURE() << "Append: " << s.ToString();
      break;
    }
    ++queued;
  }
  std::vector<uint64_t> seqs(payloads.size(), 0);
  if (!WaitForCompletions()) return seqs;
  for (size_t i = 0; i < queued; ++i) {
    const Completion& c = completions_[first + i];
    if (c.status.ok()) {
      seqs[i] = c.seq;
    } else {
      ADD_FAILURE() << "completion " << i << ": " << c.status.ToString();
    }
  }
  return seqs;
}

bool LogFixture::WaitForCompletions() {
  return RunUntil([this] { return completions_.size() == accepted_; });
}

bool LogFixture::RunUntil(const std::function<bool()>& done) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + kDeadline;
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard lock(wake_mu_);
      seen = wakes_;
    }
    if (log_ != nullptr) log_->RunCompletions();
    if (done()) return true;
    const auto now = Clock::now();
    if (now >= deadline) {
      ADD_FAILURE() << "condition not reached within " << kDeadline.count() << " s";
      return false;
    }
    std::unique_lock lock(wake_mu_);
    wake_cv_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(2)),
                        [&] { return wakes_ != seen; });
  }
}

void LogFixture::Wake() {
  {
    std::lock_guard lock(wake_mu_);
    ++wakes_;
  }
  wake_cv_.notify_all();
}

std::vector<ReadRecord> LogFixture::ReadAll(uint64_t from, uint64_t* skipped) {
  std::vector<ReadRecord> out;
  LogReader reader(*log_, from);
  RecordHeader header;
  std::string payload;
  Status error;
  // Bounded: a reader that never catches up is a failure, not a hang.
  for (int guard = 0; guard < 10'000'000; ++guard) {
    auto result = reader.Next(&header, &payload, &error);
    if (result == LogReader::Result::kCaughtUp) break;
    if (result == LogReader::Result::kError) {
      ADD_FAILURE() << "LogReader::Next: " << error.ToString();
      break;
    }
    if (header.seq != reader.next_seq() - 1) {
      ADD_FAILURE() << "record seq " << header.seq << " but reader at " << reader.next_seq();
    }
    out.push_back(ReadRecord{header.seq, payload});
  }
  if (skipped != nullptr) *skipped = reader.skipped();
  return out;
}

std::string LogFixture::SegmentPath(uint64_t first_seq) const {
  return options_.dir + "/seg/" + SegmentFileName(first_seq);
}

}  // namespace sluice::buffer::test
