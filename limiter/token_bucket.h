#pragma once

#include <cstdint>

#include "common/clock.h"
#include "common/units.h"

namespace sluice::limiter {

// A token bucket that refills `rate` tokens per second up to `burst` tokens. It starts full.
//
// Refill is computed lazily from the injected monotonic clock whenever the bucket is asked;
// the bucket owns no timer. A caller that finds it empty asks TimeUntilNextToken() and arms
// its own timer for that long.
//
// Tokens are counted fractionally (double) and time is credited from the last refill
// instant, so nothing is lost to rounding: over any interval [0, t] at most
// burst + rate * t tokens are handed out, and a consumer that takes a token as soon as one
// is available gets that many, give or take one. (Waits are whole nanoseconds; the part of
// a nanosecond waited too long is credited to the next token unless the bucket is full.)
//
// A rate of +inf (common::Rate::unlimited()) never limits. A rate that is zero, negative
// or NaN never refills: the bucket hands out what it holds and then stays empty.
//
// Not thread-safe: owned by one dispatcher on the loop thread.
class TokenBucket {
 public:
  // "clock" must remain live while this bucket is in use.
  TokenBucket(common::Rate rate, uint32_t burst, const common::Clock& clock);

  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Takes one token if one is available now.
  [[nodiscard]] bool TryTake();

  // How long until TryTake() will succeed (assuming nobody else takes): zero if a token is
  // available now, Duration::max() if none will ever be (zero rate or zero burst).
  // Rounded up to the next nanosecond, so after advancing the clock by this amount
  // TryTake() succeeds.
  common::Duration TimeUntilNextToken() const;

  // Changes rate and burst from now on. Tokens accrued so far (at the old rate) are kept,
  // clamped to the new burst; raising the burst does not add tokens. Leaving unlimited
  // mode starts from a full bucket of the new burst.
  void Reconfigure(common::Rate rate, uint32_t burst);

  common::Rate rate() const { return rate_; }
  uint32_t burst() const { return burst_; }

  // Tokens held now, fractional (for metrics and tests).
  double tokens() const;

 private:
  bool unlimited() const;
  // Tokens the bucket holds at monotonic time `now`, without changing state.
  double TokensAt(common::Duration now) const;
  // Credits the time since last_refill_ to tokens_.
  void Refill();

  const common::Clock& clock_;
  common::Rate rate_;
  double refill_per_ns_;  // 0 when the bucket never refills; unused when unlimited
  uint32_t burst_;
  double tokens_;
  common::Duration last_refill_;
};

}  // namespace sluice::limiter
