#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace sluice::buffer::test {

// Aborts the test binary with a message when what it watches runs past `limit`: a log
// that hangs after a failure (say, a deadlock on its own mutex inside RunCompletions,
// where no deadline can reach) must fail the run, not stall it.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit, std::string what = "test");
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Restarts the clock, now for `what`.
  void Arm(std::string what);

 private:
  void Watch();

  const std::chrono::seconds limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string what_;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;  // last: starts once the rest is initialised
};

}  // namespace sluice::buffer::test
