#pragma once

#include <cstdint>

namespace sluice::limiter {

// A static cap on deliveries in flight to one target.
//
// Not thread-safe: owned by one dispatcher on the loop thread.
class ConcurrencyLimit {
 public:
  explicit ConcurrencyLimit(uint32_t limit) : limit_(limit) {}

  // Takes a slot if fewer than limit() are in flight.
  [[nodiscard]] bool TryAcquire();
  // Returns a slot.
  // REQUIRES: matched with an earlier successful TryAcquire().
  void Release();

  uint32_t in_flight() const { return in_flight_; }
  uint32_t limit() const { return limit_; }
  // Takes effect for new acquires only: lowering the limit below in_flight() lets the
  // deliveries already running finish and blocks new ones until enough are released.
  void SetLimit(uint32_t limit) { limit_ = limit; }

 private:
  uint32_t limit_;
  uint32_t in_flight_ = 0;
};

}  // namespace sluice::limiter
