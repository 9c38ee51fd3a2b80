#include "limiter/concurrency_limit.h"

#include <cassert>

namespace sluice::limiter {

bool ConcurrencyLimit::TryAcquire() {
  if (in_flight_ >= limit_) return false;
  ++in_flight_;
  return true;
}

void ConcurrencyLimit::Release() {
  assert(in_flight_ > 0 && "Release() without a matching TryAcquire()");
  if (in_flight_ > 0) --in_flight_;
}

}  // namespace sluice::limiter
