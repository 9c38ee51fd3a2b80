#pragma once

#include <cstdint>
#include <optional>

#include "common/clock.h"

namespace sluice::proxy {

// How fast the targets drain the log, from periodic samples of the low-water mark (the
// lowest cursor over all targets), smoothed with an exponentially weighted average.
// Answers the Retry-After of a full queue: how long until the oldest segment can go.
class DrainEstimate {
 public:
  // `low_water` is a sequence number; it only moves forward.
  void Sample(common::Duration now, uint64_t low_water);
  uint64_t low_water() const { return last_low_water_; }
  // Seconds until `sequences` more are drained; nullopt while nothing drains.
  std::optional<double> SecondsFor(uint64_t sequences) const;
  // Retry-After for a full queue when `sequences` must drain first: at least 1 s, at
  // most kMaxRetryAfter, kStalledRetryAfter while nothing drains.
  int RetryAfterSeconds(uint64_t sequences) const;

  static constexpr int kMaxRetryAfter = 300;
  static constexpr int kStalledRetryAfter = 30;

 private:
  bool have_sample_ = false;
  bool have_rate_ = false;
  common::Duration last_time_{0};
  uint64_t last_low_water_ = 0;
  double rate_ = 0;  // sequences per second
};

}  // namespace sluice::proxy
