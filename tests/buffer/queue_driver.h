#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "buffer/queue.h"
#include "common/status.h"
#include "common/uuid.h"

namespace sluice::buffer::test {

// Plays the proxy's part for a Queue under test, whatever its backend: it is the owner
// thread, runs RunCompletions() when the backend wakes it, and waits with a deadline,
// never by sleeping.
class QueueDriver {
 public:
  static constexpr std::chrono::seconds kDeadline{30};

  // What to pass to the backend: `wake` notifies this driver.
  QueueEvents Events();
  // Runs `queue`'s completions until done() holds; false (and a test failure) at the
  // deadline.
  [[nodiscard]] bool RunUntil(Queue& queue, const std::function<bool()>& done,
                              std::chrono::milliseconds deadline = kDeadline);

  // Appends a message for `targets` with `body` and waits for its completion. Returns
  // the completion's status (or Append's own error).
  common::Status Store(Queue& queue, const std::vector<std::string>& targets,
                       const std::string& body);
  // Takes every message the target has now (until Next says kCaughtUp), in order.
  std::vector<QueuedMessage> Drain(TargetQueue& target);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wakes_ = 0;
  common::UuidV7Generator ids_;
  uint64_t next_ms_ = 1;
};

// The body of a message as a string (for assertions).
std::string BodyOf(const QueuedMessage& m);

}  // namespace sluice::buffer::test
