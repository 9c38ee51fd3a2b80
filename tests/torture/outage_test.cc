// A target down for a minute under steady load: nothing acknowledged is lost, and when it
// returns the backlog drains at the configured rate, never faster than the bucket allows.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "tests/torture/load_generator.h"
#include "tests/torture/torture_fixture.h"

namespace sluice::torture {
namespace {

constexpr double kRate = 200;  // deliveries/s, the target's configured rate
constexpr int kBurst = 10;
constexpr int kConcurrency = 8;
constexpr double kLoadRate = 50;  // requests/s from the clients
constexpr Millis kOutage{60'000};

constexpr const char* kPacedTarget = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: 200/s
    burst: 10
    concurrency: 8
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 100ms, max_backoff: 1s}
)";

using Outage = TortureTest;

TEST_F(Outage, SixtySecondsDownLosesNothingAndDrainsAtTheConfiguredRate) {
  // Connected to for a minute while nothing listens: keep it out of the ephemeral range.
  downstream_.Stop();
  ASSERT_TRUE(downstream_.Start(PickPortBelowEphemeralRange())) << downstream_.error();
  downstream_.SetResponder(tracker_.Wrap([](const ReceivedRequest&) { return e2e::Reply{}; }));
  ASSERT_TRUE(StartWith(FixedPortConfig(kPacedTarget, sluice_.BufferDir())));

  LoadOptions load_options;
  load_options.clients = 2;
  load_options.rate_per_client = kLoadRate / 2;
  load_options.tag = "outage";
  LoadGenerator load(ingest_port_, load_options);
  load.Start();

  // Flowing first.
  ASSERT_TRUE(WaitFor([&] { return downstream_.Count() >= 50; }, Millis(10'000)));

  downstream_.Stop();
  std::this_thread::sleep_for(kOutage);
  ASSERT_FALSE(sluice_.UnexpectedExit()) << "sluice died during the outage";
  // The backlog: acknowledged, not yet delivered.
  std::map<std::string, std::string> backlog = load.Acknowledged();
  std::erase_if(backlog, [&](const auto& entry) { return tracker_.AllDelivered({entry}); });
  const size_t before_outage = downstream_.Count();
  ASSERT_TRUE(downstream_.StartAgain()) << downstream_.error();
  const SteadyClock::time_point back = SteadyClock::now();

  // The backlog (everything acknowledged while it was down) drains while the load goes on.
  EXPECT_TRUE(WaitFor([&] { return tracker_.AllDelivered(backlog); }, Millis(90'000)))
      << tracker_.CountDelivered(backlog) << " of " << backlog.size() << " backlog delivered";
  load.Stop();
  std::map<std::string, std::string> acked = load.Acknowledged();
  std::set<std::string> sent = load.SentBodies();
  EXPECT_EQ(acked.size(), sent.size()) << "every request must be acknowledged during an outage";
  EXPECT_TRUE(WaitFor([&] { return tracker_.AllDelivered(acked); }, Millis(30'000)))
      << tracker_.CountDelivered(acked) << " of " << acked.size() << " delivered";

  DeliveryAudit audit = Audit(downstream_.Requests(), acked, sent);
  EXPECT_TRUE(audit.lost.empty() && audit.unknown.empty() && audit.wrong_id.empty())
      << audit.Describe();
  Report("acknowledged_ids_checked", static_cast<double>(acked.size()));
  Report("backlog_messages", static_cast<double>(backlog.size()));
  Report("duplicates", static_cast<double>(audit.duplicates));

  // The drain: from the target's return to the first delivery of the last backlog message.
  std::map<std::string, SteadyClock::time_point> first = tracker_.FirstDelivery();
  SteadyClock::time_point drained = back;
  for (const auto& [body, id] : backlog) drained = std::max(drained, first[body]);
  std::vector<SteadyClock::time_point> arrivals;  // every request after the return
  for (const ReceivedRequest& r : downstream_.Requests()) {
    if (r.index >= before_outage && r.arrival <= drained) arrivals.push_back(r.arrival);
  }
  std::sort(arrivals.begin(), arrivals.end());
  ASSERT_GT(arrivals.size(), 1000u) << "too small a backlog to measure a drain rate";
  double span = std::chrono::duration<double>(arrivals.back() - arrivals.front()).count();
  double drain_rate = static_cast<double>(arrivals.size() - 1) / span;
  Report("drain_requests", static_cast<double>(arrivals.size()));
  Report("drain_seconds", span);
  Report("drain_rate_per_second", drain_rate);
  Report("configured_rate_per_second", kRate);

  // A token bucket starts at most burst + rate * T attempts in any T seconds. Arrivals may
  // bunch by scheduling jitter on a busy 2-core machine: allow 250 ms of it, plus the
  // in-flight window. A missing or doubled limit still fails by far.
  const double slack = kRate * 0.25 + kConcurrency;
  EXPECT_GE(span, (static_cast<double>(arrivals.size()) - kBurst - slack) / kRate)
      << arrivals.size() << " deliveries in " << span << " s: faster than rate " << kRate
      << "/s with burst " << kBurst << " allows";
  size_t busiest = 0;  // most arrivals in any one-second window
  for (size_t i = 0, j = 0; i < arrivals.size(); ++i) {
    while (j < arrivals.size() && arrivals[j] - arrivals[i] < std::chrono::seconds(1)) ++j;
    busiest = std::max(busiest, j - i);
  }
  Report("busiest_second_deliveries", static_cast<double>(busiest));
  EXPECT_LE(static_cast<double>(busiest), kRate + kBurst + slack)
      << "a one-second window with more deliveries than the bucket allows";
}

}  // namespace
}  // namespace sluice::torture
