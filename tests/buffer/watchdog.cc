#include "tests/buffer/watchdog.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace sluice::buffer::test {

Watchdog::Watchdog(std::chrono::seconds limit, std::string what)
    : limit_(limit),
      what_(std::move(what)),
      deadline_(std::chrono::steady_clock::now() + limit),
      thread_([this] { Watch(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::Arm(std::string what) {
  std::lock_guard lock(mu_);
  what_ = std::move(what);
  deadline_ = std::chrono::steady_clock::now() + limit_;
  cv_.notify_all();
}

void Watchdog::Watch() {
  std::unique_lock lock(mu_);
  while (!done_) {
    if (std::chrono::steady_clock::now() >= deadline_) {
      std::fprintf(stderr, "watchdog: %s still running after %lld s: the log hangs\n",
                   what_.c_str(), static_cast<long long>(limit_.count()));
      std::fflush(stderr);
      std::abort();
    }
    cv_.wait_until(lock, deadline_);
  }
}

}  // namespace sluice::buffer::test
