#include "limiter/adaptive_concurrency.h"

#include <algorithm>
#include <cmath>

namespace sluice::limiter {

using namespace std::chrono_literals;

namespace {
constexpr common::Duration kMinWindow = 100ms;
constexpr common::Duration kBaselinePeriod = 30s;
}  // namespace

AdaptiveConcurrency::AdaptiveConcurrency(uint32_t min, uint32_t max, const common::Clock& clock)
    : min_(std::max<uint32_t>(1, min)),
      max_(std::max(std::max<uint32_t>(1, min), max)),
      clock_(clock),
      limit_(min_) {
  window_start_ = clock_.Now();
  period_start_ = window_start_;
}

common::Duration AdaptiveConcurrency::baseline() const {
  return std::min(min_current_, min_previous_);
}

void AdaptiveConcurrency::RotateBaseline(common::Duration now) {
  if (now - period_start_ < kBaselinePeriod) return;
  min_previous_ = min_current_;
  min_current_ = common::Duration::max();
  period_start_ = now;
}

void AdaptiveConcurrency::Decrease() {
  common::Duration now = clock_.Now();
  // Once per window: the failures of one overloaded moment are one signal.
  if (window_saw_overload_ && now - window_start_ < std::max(kMinWindow, baseline())) return;
  window_saw_overload_ = true;
  window_start_ = now;
  successes_in_window_ = 0;
  window_used_limit_ = false;
  slow_start_ = false;
  uint32_t lowered = static_cast<uint32_t>(std::floor(double(limit_) * kDecrease));
  limit_ = std::max(min_, std::min(lowered, limit_ - 1));
  limit_ = std::max(limit_, min_);
}

void AdaptiveConcurrency::MaybeIncrease(uint32_t in_flight) {
  common::Duration now = clock_.Now();
  if (in_flight + 1 >= limit_) window_used_limit_ = true;
  ++successes_in_window_;
  common::Duration window =
      std::max(kMinWindow, baseline() == common::Duration::max() ? kMinWindow : baseline());
  if (now - window_start_ < window) return;
  // A window without overload: grow, but only if the limit was what held us back.
  if (window_used_limit_ && successes_in_window_ > 0) {
    uint32_t grown = slow_start_ ? limit_ * 2 : limit_ + 1;
    limit_ = std::min(max_, grown);
  }
  window_start_ = now;
  window_saw_overload_ = false;
  successes_in_window_ = 0;
  window_used_limit_ = false;
}

void AdaptiveConcurrency::OnSuccess(common::Duration latency, uint32_t in_flight) {
  common::Duration now = clock_.Now();
  RotateBaseline(now);
  min_current_ = std::min(min_current_, latency);
  common::Duration base = baseline();
  if (base != common::Duration::max() &&
      double(latency.count()) > double(base.count()) * kLatencyTolerance && latency - base > 1ms) {
    Decrease();  // queueing inside the target: back off before it starts failing
    return;
  }
  MaybeIncrease(in_flight);
}

void AdaptiveConcurrency::OnOverload() { Decrease(); }

void AdaptiveConcurrency::Reconfigure(uint32_t min, uint32_t max) {
  min_ = std::max<uint32_t>(1, min);
  max_ = std::max(min_, max);
  limit_ = std::clamp(limit_, min_, max_);
}

}  // namespace sluice::limiter
