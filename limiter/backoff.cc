#include "limiter/backoff.h"

#include <algorithm>
#include <limits>

namespace sluice::limiter {

Backoff::Backoff(common::Duration initial, common::Duration max, uint64_t seed)
    : initial_(std::max(initial, common::Duration::zero())),
      max_(std::max(max, common::Duration::zero())),
      state_(seed) {}

common::Duration Backoff::Ceiling(common::Duration initial, common::Duration max,
                                  uint32_t failed_attempt) {
  int64_t base = std::max<int64_t>(initial.count(), 0);
  int64_t cap = std::max<int64_t>(max.count(), 0);
  uint32_t doublings = failed_attempt == 0 ? 0 : failed_attempt - 1;
  if (base == 0) return common::Duration::zero();
  // base * 2^doublings <= cap  <=>  base <= cap / 2^doublings (integer division), and a
  // shift of 63 or more would exceed any int64 cap anyway.
  if (doublings >= 63 || base > (cap >> doublings)) return common::Duration(cap);
  return common::Duration(base << doublings);
}

common::Duration Backoff::Next(uint32_t failed_attempt) {
  int64_t ceiling = Ceiling(initial_, max_, failed_attempt).count();
  return common::Duration(static_cast<int64_t>(UniformAtMost(static_cast<uint64_t>(ceiling))));
}

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, full period, passes BigCrush;
// plenty for jitter and cheap to keep one per target.
uint64_t Backoff::NextRandom() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Backoff::UniformAtMost(uint64_t bound) {
  if (bound == std::numeric_limits<uint64_t>::max()) return NextRandom();
  uint64_t range = bound + 1;
  // Reject the lowest (2^64 mod range) values so that every residue is equally likely.
  uint64_t threshold = (0 - range) % range;
  for (;;) {
    uint64_t r = NextRandom();
    if (r >= threshold) return r % range;
  }
}

}  // namespace sluice::limiter
