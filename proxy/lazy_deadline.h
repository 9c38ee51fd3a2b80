#pragma once

#include <uv.h>

#include <cstdint>

#include "common/clock.h"

namespace sluice::proxy {

// A deadline kept on a libuv timer that is cheap to push back. A keep-alive connection
// moves its deadline on every request (read timeout, then idle timeout); restarting a
// uv timer each time is a heap removal and insertion, which showed up in ingest profiles.
// Here a later deadline is only recorded: the timer stays armed for the earlier one and,
// when it fires, Expired() re-arms it for the rest. An earlier deadline re-arms at once.
//
// "timer" must be initialised, and remain live while this is in use; on_fire is its
// callback, which must call Expired() first and do nothing when it returns false.
// Times are libuv loop times (uv_now): milliseconds, as libuv timers are.
class LazyDeadline {
 public:
  LazyDeadline(uv_timer_t* timer, uv_timer_cb on_fire) : timer_(timer), on_fire_(on_fire) {}

  // The deadline becomes now + after (at least 1 ms), replacing any earlier or later one.
  void Set(common::Duration after);
  // No deadline. The timer may still fire once; Expired() then returns false.
  void Clear() { deadline_ms_ = 0; }
  bool is_set() const { return deadline_ms_ != 0; }

  // From the timer callback: true when the deadline has passed (it is then cleared);
  // false when there is none or it lies ahead (the timer is re-armed for it).
  [[nodiscard]] bool Expired();

  // Timer starts so far (for tests: how rarely the timer is touched).
  uint64_t timer_starts() const { return timer_starts_; }

 private:
  void Arm(uint64_t at_ms, uint64_t now_ms);

  uv_timer_t* timer_;
  uv_timer_cb on_fire_;
  uint64_t deadline_ms_ = 0;  // 0: none
  uint64_t armed_ms_ = 0;     // when the timer will fire; 0: not armed
  uint64_t timer_starts_ = 0;
};

}  // namespace sluice::proxy
