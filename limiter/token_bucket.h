#pragma once

#include <cstdint>

#include "common/clock.h"
#include "common/units.h"

namespace sluice::limiter {

// A token bucket that refills `rate` tokens per second and hands out whole tokens. It starts
// full, with `burst` tokens.
//
// Refill is computed lazily from the injected monotonic clock whenever the bucket is asked;
// the bucket owns no timer. A caller that finds it empty asks TimeUntilNextToken() (or, to
// wake for a batch, TimeUntilTokens(TokensPerWakeUp())) and arms its own timer for that long.
//
// What `burst` allows. Over any interval of length t (t_end - t_start; both ends included)
// the bucket hands out
//   - at most burst + 1/2 + rate * t tokens, hence never more than ceil(burst + rate * t):
//     exactly burst + rate * t when that is a whole number, e.g. in any 100 ms at 1000/s
//     burst 1 at most 101;
//   - at most `burst` at one instant, and in any interval shorter than half a token
//     interval (1 / (2 * rate));
//   - at most burst + rate * t over [start, start + t] from construction.
//
// The half token is a lateness allowance. A bucket capped at exactly `burst` tokens would
// meet the tighter bound floor(burst + rate * t) over every interval, and that bound leaves
// no room for a consumer that wakes late: with burst 1 the bucket is full the moment a
// token is ready, so whatever time a wake-up is late is lost for good. Timers on a loaded
// machine fire tens of microseconds to milliseconds late, so a target at 1000/s burst 1
// got 570-960/s. Holding up to burst + 1/2 tokens (in GCRA terms: the theoretical arrival
// time may fall half a token interval behind the clock before time is lost) means a
// consumer that wakes at most (burst - 1/2) / rate after the first token became available
// (after the n-th: (burst - n + 1/2) / rate) loses nothing: it gets every token the rate
// allows, on schedule. Time is lost only while
// the bucket is full: the consumer had nothing to take (idle), or woke later than that, and
// then only the excess.
//
// Tokens are counted fractionally (double) and time is credited from the last refill
// instant, so nothing is lost to rounding either. (Waits are whole nanoseconds; the part of
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
  // The same for `n` tokens at once: Duration::max() if the bucket never holds that many
  // (n > burst, or no refill).
  common::Duration TimeUntilTokens(uint32_t n) const;

  // How many tokens a consumer with a backlog should wait for before it wakes up: enough
  // for about one wake-up per millisecond at high rates, so that starts (and the target's
  // work) come in batches rather than one system call round per token, but at most half
  // the burst, so that the other half stays as the allowance for waking late. 1 when the
  // burst is below 4 or the rate at most 1000/s.
  uint32_t TokensPerWakeUp() const;

  // Changes rate and burst from now on. Tokens accrued so far (at the old rate) are kept,
  // clamped to the new capacity (burst + 1/2); raising the burst does not add tokens.
  // Leaving unlimited mode starts from `burst` tokens, as a new bucket does.
  void Reconfigure(common::Rate rate, uint32_t burst);

  common::Rate rate() const { return rate_; }
  uint32_t burst() const { return burst_; }

  // Tokens held now, fractional: up to burst + 1/2 (for metrics and tests).
  double tokens() const;

 private:
  bool unlimited() const;
  // Most tokens the bucket holds: burst plus the lateness allowance.
  double capacity() const;
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
