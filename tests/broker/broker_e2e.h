#pragma once

#include <string>

#include "tests/e2e/sluice_fixture.h"

namespace sluice::e2e {

// What every broker backend must show end to end, as verbs over the standard fixture.
// A backend's test sets buffer_options_ (its buffer.kind and connection block) in SetUp
// and calls these; each returns a failure with the reason, or success.
class BrokerE2eTest : public SluiceE2eTest {
 protected:
  // n POSTs are answered 202 and each reaches the target once, with the id its 202 gave;
  // /admin/targets names `kind` as the buffer.
  ::testing::AssertionResult DeliversEachAcceptedRequestOnce(int n, const std::string& kind);
  // n POSTs to a slow target, kill -9 of sluice once `before_kill` were delivered, a
  // restart: every accepted request is delivered (`redelivery_wait`: how long what the
  // killed instance held may take to come back). Prints the duplicates.
  ::testing::AssertionResult Kill9LosesNothingAcknowledged(int n, size_t before_kill,
                                                           Millis redelivery_wait);
  // A second instance on the same queue; n POSTs through each; every message delivered
  // exactly once across them, both say their limits are per instance, and the second
  // exits 0 on SIGTERM.
  ::testing::AssertionResult TwoInstancesDeliverEachMessageOnce(int n);
};

}  // namespace sluice::e2e
