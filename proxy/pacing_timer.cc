#include "proxy/pacing_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdint>

#include "proxy/logging.h"

namespace sluice::proxy {

struct PacingTimer::State {
  uv_loop_t* loop;
  std::function<void()> fire;  // empty once the owner is gone
  int fd = -1;                 // the timerfd while precise
  uv_poll_t poll;              // watches fd while precise
  uv_timer_t timer;            // the fallback
  bool precise = false;
  bool fallback_ready = false;
  bool armed = false;
  int open_handles = 0;
  bool orphaned = false;  // the PacingTimer is gone: the last close callback deletes this
  bool firing = false;    // inside fire, which may destroy the PacingTimer

  void Start(common::Duration delay);
  void Stop();
  // Leaves the timerfd for a millisecond uv timer; an armed expiry fires at once, so that
  // its owner re-arms on the new timer.
  void FallBack(const char* what, int error);
  void Fire();
  void Close(uv_handle_t* handle);
  static void OnReadable(uv_poll_t* poll, int status, int events);
  static void OnTimer(uv_timer_t* timer);
  static void OnClosed(uv_handle_t* handle);
};

PacingTimer::PacingTimer(uv_loop_t* loop, std::function<void()> fire) : state_(new State) {
  state_->loop = loop;
  state_->fire = std::move(fire);
  int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) {
    state_->FallBack("timerfd_create", uv_translate_sys_error(errno));
    return;
  }
  int rc = uv_poll_init(loop, &state_->poll, fd);
  if (rc != 0) {
    ::close(fd);
    state_->FallBack("uv_poll_init", rc);
    return;
  }
  state_->fd = fd;
  state_->poll.data = state_;
  ++state_->open_handles;
  state_->precise = true;
  // Watched for good: readable only once expired, and starting and stopping the watch
  // would cost an epoll_ctl each time. Referenced only while armed.
  rc = uv_poll_start(&state_->poll, UV_READABLE, State::OnReadable);
  if (rc != 0) {
    state_->FallBack("uv_poll_start", rc);
    return;
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&state_->poll));
}

PacingTimer::~PacingTimer() {
  state_->Stop();
  state_->orphaned = true;
  // A callback that destroys its own timer is still running: Fire() lets go of it after.
  if (!state_->firing) state_->fire = nullptr;
  if (state_->precise) state_->Close(reinterpret_cast<uv_handle_t*>(&state_->poll));
  if (state_->fallback_ready) state_->Close(reinterpret_cast<uv_handle_t*>(&state_->timer));
  // The close callbacks run later, from the loop, and the last one deletes state_.
}

void PacingTimer::Start(common::Duration delay) { state_->Start(delay); }
void PacingTimer::Stop() { state_->Stop(); }
bool PacingTimer::armed() const { return state_->armed; }
bool PacingTimer::precise() const { return state_->precise; }

void PacingTimer::State::Start(common::Duration delay) {
  // A zero it_value would disarm the timerfd: wait at least a nanosecond.
  int64_t ns = std::max<int64_t>(1, delay.count());
  armed = true;
  if (precise) {
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    // Only EINVAL (a value out of range) is possible here, and ours never is. Re-arming
    // also discards an expiry not yet read.
    [[maybe_unused]] int rc = ::timerfd_settime(fd, 0, &spec, nullptr);
    assert(rc == 0);
    uv_ref(reinterpret_cast<uv_handle_t*>(&poll));
  } else {
    // Round up: never wake before the deadline.
    uint64_t ms = static_cast<uint64_t>((ns + 999'999) / 1'000'000);
    [[maybe_unused]] int rc = uv_timer_start(&timer, OnTimer, ms, 0);
    assert(rc == 0);
  }
}

void PacingTimer::State::Stop() {
  if (!armed) return;
  armed = false;
  if (precise) {
    itimerspec disarm{};
    [[maybe_unused]] int rc = ::timerfd_settime(fd, 0, &disarm, nullptr);
    assert(rc == 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&poll));
  } else {
    uv_timer_stop(&timer);
  }
}

void PacingTimer::State::FallBack(const char* what, int error) {
  logging::Warn("pacing timer: no timerfd, waits are rounded up to whole milliseconds",
                {{"call", what}, {"error", uv_strerror(error)}});
  if (precise) {
    precise = false;
    Close(reinterpret_cast<uv_handle_t*>(&poll));
  }
  if (!fallback_ready) {
    uv_timer_init(loop, &timer);
    timer.data = this;
    ++open_handles;
    fallback_ready = true;
  }
  if (armed) Start(common::Duration(0));
}

void PacingTimer::State::Fire() {
  armed = false;
  if (!fire) return;
  firing = true;
  fire();  // may re-arm, or destroy the PacingTimer
  firing = false;
  if (orphaned) fire = nullptr;
}

void PacingTimer::State::Close(uv_handle_t* handle) {
  if (!uv_is_closing(handle)) uv_close(handle, OnClosed);
}

void PacingTimer::State::OnReadable(uv_poll_t* poll, int status, int /*events*/) {
  auto* s = static_cast<State*>(poll->data);
  if (status < 0) {
    // libuv has stopped watching the fd.
    s->FallBack("poll", status);
    return;
  }
  uint64_t expirations = 0;
  // EAGAIN: re-armed or stopped after the expiry was polled; nothing is due.
  if (::read(s->fd, &expirations, sizeof(expirations)) != sizeof(expirations)) return;
  uv_unref(reinterpret_cast<uv_handle_t*>(&s->poll));
  s->Fire();
}

void PacingTimer::State::OnTimer(uv_timer_t* timer) { static_cast<State*>(timer->data)->Fire(); }

void PacingTimer::State::OnClosed(uv_handle_t* handle) {
  auto* s = static_cast<State*>(handle->data);
  if (handle == reinterpret_cast<uv_handle_t*>(&s->poll)) ::close(s->fd);
  if (--s->open_handles == 0 && s->orphaned) delete s;
}

}  // namespace sluice::proxy
