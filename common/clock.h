#pragma once

#include <chrono>
#include <cstdint>

namespace sluice::common {

using Duration = std::chrono::nanoseconds;

// Time as seen by everything that waits or measures. Production code uses
// SystemClock; tests use FakeClock and move time explicitly (never sleep).
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time since an arbitrary origin; never goes backwards.
  virtual Duration Now() const = 0;
  // Wall-clock time since the Unix epoch (for record timestamps and Retry-After dates).
  virtual Duration UnixNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  Duration Now() const override {
    return std::chrono::duration_cast<Duration>(
        std::chrono::steady_clock::now().time_since_epoch());
  }
  Duration UnixNow() const override {
    return std::chrono::duration_cast<Duration>(
        std::chrono::system_clock::now().time_since_epoch());
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(Duration unix_start = std::chrono::seconds(1'700'000'000))
      : unix_offset_(unix_start) {}
  Duration Now() const override { return now_; }
  Duration UnixNow() const override { return unix_offset_ + now_; }
  void Advance(Duration d) { now_ += d; }

 private:
  Duration now_{0};
  Duration unix_offset_;
};

}  // namespace sluice::common
