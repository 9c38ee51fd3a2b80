#pragma once

#include <uv.h>

#include <functional>

#include "common/clock.h"

namespace sluice::proxy {

// A one-shot timer for the libuv loop with nanosecond resolution: a timerfd
// (CLOCK_MONOTONIC) watched by a uv_poll_t. libuv's own timers count whole milliseconds of
// the loop's cached time, so a 100 us wait for the next token became 1 ms or more and a
// target paced at thousands of deliveries per second got far less than its rate.
//
// Where no timerfd can be had (out of file descriptors, or its poll handle fails), it falls
// back to a uv_timer_t with the wait rounded up to whole milliseconds, and logs that it did:
// pacing gets coarse, never stuck.
//
// Like a uv timer it keeps the loop alive only while armed. Its handles live on the heap and
// are freed in their close callbacks, which may run after this object is gone.
//
// Loop thread only.
class PacingTimer {
 public:
  // "loop" must outlive this timer. `fire` runs on the loop thread, once per expiry, and
  // never after Stop() or the destructor.
  PacingTimer(uv_loop_t* loop, std::function<void()> fire);
  ~PacingTimer();
  PacingTimer(const PacingTimer&) = delete;
  PacingTimer& operator=(const PacingTimer&) = delete;

  // Fires once, `delay` from now (zero or less: as soon as the loop polls), replacing any
  // expiry armed before.
  void Start(common::Duration delay);
  void Stop();
  bool armed() const;
  // False once it has fallen back to millisecond timers.
  bool precise() const;

 private:
  struct State;
  State* state_;  // heap: freed by the last close callback
};

}  // namespace sluice::proxy
