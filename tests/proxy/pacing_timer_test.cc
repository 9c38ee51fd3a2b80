#include "proxy/pacing_timer.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <uv.h>

#include <chrono>
#include <memory>

#include "common/clock.h"

namespace sluice::proxy {
namespace {

using namespace std::chrono_literals;

// Each case runs its own loop. A watchdog timer, unreferenced so that it never keeps the
// loop alive by itself, stops a loop that something else keeps running for too long.
class PacingTimerTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    uv_timer_init(&loop_, &watchdog_);
    watchdog_.data = this;
    uv_timer_start(
        &watchdog_,
        [](uv_timer_t* t) {
          static_cast<PacingTimerTest*>(t->data)->watchdog_fired_ = true;
          uv_stop(t->loop);
        },
        30'000, 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&watchdog_));
  }

  void TearDown() override {
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);  // runs close callbacks
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
  }

  // Runs the loop until nothing keeps it alive.
  void Run() {
    uv_run(&loop_, UV_RUN_DEFAULT);
    ASSERT_FALSE(watchdog_fired_) << "the loop was still alive after 30 s";
  }

  std::unique_ptr<PacingTimer> Timer(std::function<void()> fire) {
    return std::make_unique<PacingTimer>(&loop_, std::move(fire));
  }

  uv_loop_t loop_;
  uv_timer_t watchdog_;
  bool watchdog_fired_ = false;
};

TEST_F(PacingTimerTest, UnarmedDoesNotKeepTheLoopAlive) {
  int fired = 0;
  auto timer = Timer([&] { ++fired; });
  EXPECT_TRUE(timer->precise());
  EXPECT_FALSE(timer->armed());
  Run();
  EXPECT_EQ(fired, 0);
}

TEST_F(PacingTimerTest, FiresOnceNeverBeforeItsDelay) {
  common::SystemClock clock;
  int fired = 0;
  common::Duration fired_at{0};
  auto timer = Timer([&] {
    ++fired;
    fired_at = clock.Now();
  });
  common::Duration started = clock.Now();
  timer->Start(300us);
  EXPECT_TRUE(timer->armed());
  Run();
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(timer->armed());
  // A CLOCK_MONOTONIC timerfd never expires early (the same clock as SystemClock).
  EXPECT_GE(fired_at - started, 300us);
}

TEST_F(PacingTimerTest, ZeroDelayFiresOnTheNextPoll) {
  int fired = 0;
  auto timer = Timer([&] { ++fired; });
  timer->Start(0ns);
  Run();
  EXPECT_EQ(fired, 1);
}

TEST_F(PacingTimerTest, StartReplacesTheExpiryArmedBefore) {
  int fired = 0;
  auto timer = Timer([&] { ++fired; });
  timer->Start(std::chrono::hours(1));
  timer->Start(1us);
  Run();  // returns: the hour-long expiry is gone
  EXPECT_EQ(fired, 1);
}

TEST_F(PacingTimerTest, StopDiscardsAnExpiryNotYetRun) {
  int fired = 0;
  auto timer = Timer([&] { ++fired; });
  timer->Start(1ns);
  // Let the timerfd expire before the loop polls it: Stop must discard that expiry too.
  uv_sleep(2);
  timer->Stop();
  EXPECT_FALSE(timer->armed());
  Run();
  EXPECT_EQ(fired, 0);
}

TEST_F(PacingTimerTest, ReArmsFromItsOwnCallback) {
  int fired = 0;
  std::unique_ptr<PacingTimer> timer;
  timer = Timer([&] {
    if (++fired < 5) timer->Start(100us);
  });
  timer->Start(100us);
  Run();
  EXPECT_EQ(fired, 5);
}

TEST_F(PacingTimerTest, DestroyedWhileArmedNeverFires) {
  int fired = 0;
  auto timer = Timer([&] { ++fired; });
  timer->Start(1ns);
  uv_sleep(2);
  timer.reset();
  Run();  // closes the handles; TearDown checks none is left
  EXPECT_EQ(fired, 0);
}

TEST_F(PacingTimerTest, DestroyedFromItsOwnCallback) {
  int fired = 0;
  std::unique_ptr<PacingTimer> timer;
  timer = Timer([&] {
    ++fired;
    timer.reset();
  });
  timer->Start(1us);
  Run();
  EXPECT_EQ(fired, 1);
}

// With no file descriptor to spare (RLIMIT_NOFILE below the next free one) there is no
// timerfd: the timer falls back to libuv's millisecond timer and still fires.
class PacingTimerWithoutFdsTest : public PacingTimerTest {
 protected:
  void SetUp() override {
    PacingTimerTest::SetUp();
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved_), 0);
    rlimit none = saved_;
    none.rlim_cur = 0;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &none), 0);
  }
  void TearDown() override {
    RestoreFds();
    PacingTimerTest::TearDown();
  }
  void RestoreFds() { ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved_), 0); }

  rlimit saved_{};
};

TEST_F(PacingTimerWithoutFdsTest, FallsBackToMillisecondTimer) {
  int fired = 0;
  auto timer = Timer([&] { ++fired; });
  RestoreFds();
  EXPECT_FALSE(timer->precise());
  timer->Start(100us);  // rounded up to 1 ms
  EXPECT_TRUE(timer->armed());
  Run();
  EXPECT_EQ(fired, 1);
  timer->Start(std::chrono::hours(1));
  timer->Stop();
  Run();
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace sluice::proxy
