#include "proxy/lazy_deadline.h"

#include <algorithm>
#include <chrono>

namespace sluice::proxy {

void LazyDeadline::Set(common::Duration after) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(after).count();
  uint64_t now = uv_now(timer_->loop);
  deadline_ms_ = now + static_cast<uint64_t>(std::max<int64_t>(ms, 1));
  if (armed_ms_ == 0 || deadline_ms_ < armed_ms_) Arm(deadline_ms_, now);
}

bool LazyDeadline::Expired() {
  armed_ms_ = 0;  // a one-shot timer that just fired
  if (deadline_ms_ == 0) return false;
  uint64_t now = uv_now(timer_->loop);
  if (now >= deadline_ms_) {
    deadline_ms_ = 0;
    return true;
  }
  Arm(deadline_ms_, now);
  return false;
}

void LazyDeadline::Arm(uint64_t at_ms, uint64_t now_ms) {
  uv_timer_start(timer_, on_fire_, at_ms - now_ms, 0);
  armed_ms_ = at_ms;
  ++timer_starts_;
}

}  // namespace sluice::proxy
