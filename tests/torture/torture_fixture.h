#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/downstream.h"
#include "tests/e2e/sluice_fixture.h"

namespace sluice::torture {

using e2e::Deadline;
using e2e::Downstream;
using e2e::Millis;
using e2e::ReceivedRequest;
using e2e::SteadyClock;

// A free loopback port below the kernel's ephemeral range. A port that is connected to
// while nothing listens on it (a target in an outage, sluice between kill and restart)
// must not be an ephemeral one: thousands of connects can then self-connect (source port
// == destination port), which both fakes a peer and keeps the port from being bound again.
uint16_t PickPortBelowEphemeralRange();

// How the acknowledged bodies fared at one target.
struct DeliveryAudit {
  size_t acked = 0;                   // acknowledged bodies checked
  size_t delivered = 0;               // of those, answered 2xx by the target at least once
  size_t duplicates = 0;              // extra 2xx copies of acknowledged bodies
  size_t unacked_delivered = 0;       // bodies delivered although their request got no 202
  std::vector<std::string> lost;      // acknowledged, never answered 2xx
  std::vector<std::string> unknown;   // received, never sent by the load
  std::vector<std::string> wrong_id;  // a copy whose Sluice-Message-Id is not the 202's
  std::string Describe(size_t examples = 5) const;
};

// Compares what a target received with what the clients sent and had acknowledged.
DeliveryAudit Audit(const std::vector<ReceivedRequest>& received,
                    const std::map<std::string, std::string>& acked_body_to_id,
                    const std::set<std::string>& sent_bodies);

// Counts, as they happen, the bodies a target answers 2xx: a cheap progress check for
// tens of thousands of deliveries (Downstream::WaitFor re-scans every request on every
// arrival). Install with target.SetResponder(tracker.Wrap(responder)).
class DeliveryTracker {
 public:
  e2e::Responder Wrap(e2e::Responder inner);
  // How many of `bodies` have been answered 2xx at least once.
  size_t CountDelivered(const std::map<std::string, std::string>& bodies) const;
  bool AllDelivered(const std::map<std::string, std::string>& bodies) const {
    return CountDelivered(bodies) == bodies.size();
  }
  // Arrival time of the first 2xx answer to each body.
  std::map<std::string, SteadyClock::time_point> FirstDelivery() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, SteadyClock::time_point> first_;
};

// SluiceE2eTest with fixed listener ports (below the ephemeral range), so that a restarted
// sluice is found where clients left it, and a config builder for any buffer dir.
class TortureTest : public e2e::SluiceE2eTest {
 protected:
  void SetUp() override;
  // After the base's report: kills sluice and stops downstream_, so that no responder
  // (which may use a tracker) runs while members are destroyed.
  void TearDown() override;

  // listen/admin on the fixed ports, `buffer: {dir: buffer_dir, fsync: batch<buffer_options_>}`,
  // then `body` with @DOWNSTREAM_PORT@ (downstream_) and @BUFFER_DIR@ replaced, and every
  // extra placeholder in `vars`.
  std::string FixedPortConfig(const std::string& body, const std::string& buffer_dir,
                              const std::map<std::string, std::string>& vars = {}) const;
  ::testing::AssertionResult StartWith(const std::string& yaml);

  // Prints "[ torture  ] key: value" and records it as a test property (JUnit XML).
  void Report(const std::string& key, const std::string& value);
  void Report(const std::string& key, double value);

  // Polls `done` every 50 ms until it holds; fails at once if sluice died.
  ::testing::AssertionResult WaitFor(const std::function<bool()>& done, Millis timeout);

  DeliveryTracker tracker_;  // for downstream_, once wrapped into its responder
  uint16_t ingest_port_ = 0;
  uint16_t admin_port_ = 0;
};

}  // namespace sluice::torture
