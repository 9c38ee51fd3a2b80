#include "proxy/drain_estimate.h"

#include <algorithm>
#include <cmath>

namespace sluice::proxy {

namespace {
// Weight of the newest sample: with 1 s samples, about the last 5 s count.
constexpr double kAlpha = 0.2;
}  // namespace

void DrainEstimate::Sample(common::Duration now, uint64_t low_water) {
  if (have_sample_ && now > last_time_) {
    double seconds = std::chrono::duration<double>(now - last_time_).count();
    double moved = low_water > last_low_water_ ? double(low_water - last_low_water_) : 0.0;
    double observed = moved / seconds;
    // The first interval seeds the average; an average started at 0 would report a
    // slow drain for the first several seconds.
    rate_ = have_rate_ ? kAlpha * observed + (1 - kAlpha) * rate_ : observed;
    have_rate_ = true;
  }
  have_sample_ = true;
  last_time_ = now;
  last_low_water_ = std::max(last_low_water_, low_water);
}

std::optional<double> DrainEstimate::SecondsFor(uint64_t sequences) const {
  if (sequences == 0) return 0.0;
  // Below a thousandth of a message per second the estimate says nothing useful.
  if (rate_ < 1e-3) return std::nullopt;
  return double(sequences) / rate_;
}

int DrainEstimate::RetryAfterSeconds(uint64_t sequences) const {
  std::optional<double> seconds = SecondsFor(sequences);
  if (!seconds) return kStalledRetryAfter;
  return static_cast<int>(std::clamp(std::ceil(*seconds), 1.0, double(kMaxRetryAfter)));
}

}  // namespace sluice::proxy
