#include "limiter/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace sluice::limiter {
namespace {

// A token short by less than this counts as whole: a picosecond of refill, and never less
// than 1e-12 tokens. That is far above the floating-point error of crediting time
// (~1e-16 per refill near one token) and far below anything a rate can be measured to.
// Without it, 0.9999999999999999 tokens after a wait computed in exact arithmetic would
// turn into a 1 ns retry.
double TokenEpsilon(double refill_per_ns) { return std::max(refill_per_ns * 1e-3, 1e-12); }

// Tokens the bucket may hold beyond `burst` (see the header): a consumer may wake this many
// token intervals late, beyond what the burst itself absorbs, without losing time. Below
// one, so that no interval ever gets more than ceil(burst + rate * t) and no instant more
// than `burst`; one half also keeps two starts at burst 1 half a token interval apart.
constexpr double kLatenessAllowance = 0.5;

double RefillPerNs(common::Rate rate) {
  // NaN, zero and negative rates never refill.
  if (!(rate.per_second > 0)) return 0;
  return rate.per_second / 1e9;
}

}  // namespace

TokenBucket::TokenBucket(common::Rate rate, uint32_t burst, const common::Clock& clock)
    : clock_(clock),
      rate_(rate),
      refill_per_ns_(RefillPerNs(rate)),
      burst_(burst),
      tokens_(burst),
      last_refill_(clock.Now()) {}

bool TokenBucket::unlimited() const { return rate_.unlimited() && rate_.per_second > 0; }

double TokenBucket::capacity() const {
  // A bucket that can never hand out a token has nothing to be late for.
  return burst_ == 0 ? 0 : burst_ + kLatenessAllowance;
}

double TokenBucket::TokensAt(common::Duration now) const {
  if (now <= last_refill_ || refill_per_ns_ == 0) return tokens_;
  double credit = static_cast<double>((now - last_refill_).count()) * refill_per_ns_;
  return std::min(capacity(), tokens_ + credit);
}

void TokenBucket::Refill() {
  common::Duration now = clock_.Now();
  tokens_ = TokensAt(now);
  // A monotonic clock never goes back; if one did, credit nothing until it passes the
  // last refill again rather than crediting the same interval twice.
  last_refill_ = std::max(last_refill_, now);
}

bool TokenBucket::TryTake() {
  if (unlimited()) return true;
  Refill();
  if (tokens_ < 1 - TokenEpsilon(refill_per_ns_)) return false;
  tokens_ -= 1;
  return true;
}

common::Duration TokenBucket::TimeUntilNextToken() const { return TimeUntilTokens(1); }

common::Duration TokenBucket::TimeUntilTokens(uint32_t n) const {
  if (unlimited() || n == 0) return common::Duration::zero();
  double tokens = TokensAt(clock_.Now());
  double epsilon = TokenEpsilon(refill_per_ns_);
  if (tokens >= n - epsilon) return common::Duration::zero();
  if (refill_per_ns_ == 0 || n > burst_) return common::Duration::max();
  // Aim half an epsilon past the threshold so that TryTake() succeeds after this wait
  // however the refills in between were rounded; round up to a whole nanosecond.
  double wait_ns = std::ceil((n - epsilon / 2 - tokens) / refill_per_ns_);
  // 2^63 is exactly representable; anything at or above it does not fit in a Duration.
  if (!(wait_ns < 9223372036854775808.0)) return common::Duration::max();
  return common::Duration(std::max<int64_t>(1, static_cast<int64_t>(wait_ns)));
}

uint32_t TokenBucket::TokensPerWakeUp() const {
  if (unlimited() || refill_per_ns_ == 0) return 1;
  // Tokens accrued per millisecond, rounded up (10000/s is 10, not 11 by a rounding error).
  double per_ms = std::ceil(rate_.per_second / 1000 - 1e-9);
  double half_burst = burst_ / 2;
  return static_cast<uint32_t>(std::max(1.0, std::min(per_ms, half_burst)));
}

void TokenBucket::Reconfigure(common::Rate rate, uint32_t burst) {
  if (unlimited()) {
    // An unlimited bucket is always full.
    tokens_ = burst_;
    last_refill_ = std::max(last_refill_, clock_.Now());
  } else {
    Refill();
  }
  rate_ = rate;
  refill_per_ns_ = RefillPerNs(rate);
  burst_ = burst;
  tokens_ = std::min(tokens_, capacity());
}

double TokenBucket::tokens() const {
  if (unlimited()) return burst_;
  return TokensAt(clock_.Now());
}

}  // namespace sluice::limiter
