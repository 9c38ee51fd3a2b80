#pragma once

#include <algorithm>
#include <chrono>

namespace sluice::e2e {

using SteadyClock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// A point in time after which a wait gives up. Every wait in the harness takes one, so a
// misbehaving binary fails a test instead of hanging it.
class Deadline {
 public:
  explicit Deadline(SteadyClock::duration from_now) : at_(SteadyClock::now() + from_now) {}

  bool Expired() const { return SteadyClock::now() >= at_; }
  SteadyClock::time_point at() const { return at_; }

  // Remaining time in whole milliseconds, rounded up, never negative (a poll(2) timeout).
  int RemainingMs() const {
    auto left = std::chrono::ceil<Millis>(at_ - SteadyClock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 1'000'000'000));
  }

 private:
  SteadyClock::time_point at_;
};

}  // namespace sluice::e2e
