#pragma once

#include <cstdint>

#include "common/clock.h"

namespace sluice::limiter {

// Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff and
// Jitter"): after the n-th failed attempt wait uniform(0, Ceiling(n)) with
// Ceiling(n) = min(max, initial * 2^(n-1)). Spreading retries over the whole interval
// keeps a target that just recovered from being hit by every retry at once.
//
// The random sequence comes from `seed` alone, so a seeded Backoff is reproducible on
// every platform (it does not use std::uniform_int_distribution, whose output is
// implementation-defined). Production seeds it from std::random_device.
//
// Not thread-safe.
class Backoff {
 public:
  // Negative durations count as zero.
  Backoff(common::Duration initial, common::Duration max, uint64_t seed);

  // A delay uniformly distributed in [0, Ceiling(initial, max, failed_attempt)], both ends
  // included. `failed_attempt` is the 1-based number of the attempt that just failed.
  common::Duration Next(uint32_t failed_attempt);

  // min(max, initial * 2^(failed_attempt - 1)), computed without overflow for any attempt.
  // Attempt 0 is treated as 1. Negative durations count as zero.
  static common::Duration Ceiling(common::Duration initial, common::Duration max,
                                  uint32_t failed_attempt);

  common::Duration initial() const { return initial_; }
  common::Duration max() const { return max_; }

 private:
  uint64_t NextRandom();
  // Uniform in [0, bound], unbiased.
  uint64_t UniformAtMost(uint64_t bound);

  common::Duration initial_;
  common::Duration max_;
  uint64_t state_;
};

}  // namespace sluice::limiter
