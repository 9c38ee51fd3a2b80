#pragma once

#include <cstdint>

#include "common/clock.h"

namespace sluice::limiter {

// An adaptive in-flight limit for one target (`concurrency: {adaptive: true}`), in the
// AIMD family of Netflix's concurrency-limits and TCP congestion control:
//
//  - the target is overloaded when it answers 429/503, times out, or its latency rises
//    well above the lowest latency seen recently (queueing in the target);
//  - on overload the limit shrinks multiplicatively (x0.75), at most once per
//    measurement window, so a burst of failures from one moment counts once;
//  - otherwise it grows: doubling per window until the first overload (slow start),
//    then by one per window while the limit is actually being used;
//  - always within [min, max]. The token-bucket rate still applies on top.
//
// Driven by the caller with results and an injected clock; owns no timer.
class AdaptiveConcurrency {
 public:
  AdaptiveConcurrency(uint32_t min, uint32_t max, const common::Clock& clock);

  uint32_t limit() const { return limit_; }
  // A 2xx (or any answer that is not an overload signal) after `latency`, with
  // `in_flight` attempts running when it started (is the limit the bottleneck?).
  void OnSuccess(common::Duration latency, uint32_t in_flight);
  // 429, 503 or a timeout.
  void OnOverload();
  void Reconfigure(uint32_t min, uint32_t max);

  // The reference latency: the minimum over the current and previous baseline period.
  common::Duration baseline() const;

  // Latency above baseline * kLatencyTolerance counts as overload.
  static constexpr double kLatencyTolerance = 2.0;
  static constexpr double kDecrease = 0.75;

 private:
  void Decrease();
  void MaybeIncrease(uint32_t in_flight);
  void RotateBaseline(common::Duration now);

  uint32_t min_;
  uint32_t max_;
  const common::Clock& clock_;
  uint32_t limit_;
  bool slow_start_ = true;
  // A window is at least 100 ms and at least the baseline latency: one "round trip".
  common::Duration window_start_{0};
  bool window_saw_overload_ = false;
  uint32_t successes_in_window_ = 0;
  bool window_used_limit_ = false;
  // Baseline latency: min over two rolling periods, so it follows a target whose
  // unloaded latency changes (a deploy) within two periods.
  common::Duration period_start_{0};
  common::Duration min_current_ = common::Duration::max();
  common::Duration min_previous_ = common::Duration::max();
};

}  // namespace sluice::limiter
