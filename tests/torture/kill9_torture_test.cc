// kill -9 torture: the real binary under steady keep-alive load, fanning out to a healthy
// and a flaky target, SIGKILLed at random moments and restarted on the same buffer dir
// dozens of times. Afterwards every acknowledged body must reach both targets.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "tests/torture/load_generator.h"
#include "tests/torture/torture_fixture.h"

namespace sluice::torture {
namespace {

using e2e::Reply;

constexpr int kMinKillCycles = 50;

// Target "a" is healthy (downstream_), "b" (flaky_) misbehaves until told to stop. Both
// retry forever with short backoff: an outage never dead-letters.
constexpr const char* kFanOut = R"(
targets:
  a:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 8
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 20ms, max_backoff: 500ms}
  b:
    url: http://127.0.0.1:@FLAKY_PORT@
    rate: unlimited
    concurrency: 16
    timeout: 1s
    retry: {max_attempts: 0, initial_backoff: 20ms, max_backoff: 500ms}
routes:
  - name: torture
    match: {path_prefix: /}
    queue: [a, b]
)";

// Per request: 10% 503, 4% reset at once, 3% reset after 50 ms (the target may have acted
// on it: a lost answer), 10% answered after 20..300 ms, 2% after 1.2 s (past the 1 s
// timeout: sluice retries what the target did accept), the rest 200 at once.
Reply FlakyReply(const ReceivedRequest&) {
  thread_local std::mt19937 rng(std::random_device{}());
  int roll = std::uniform_int_distribution<int>(0, 99)(rng);
  Reply reply;
  if (roll < 10) {
    reply.status = 503;
  } else if (roll < 14) {
    reply.reset = true;
  } else if (roll < 17) {
    reply.reset = true;
    reply.delay = Millis(50);
  } else if (roll < 27) {
    reply.delay = Millis(std::uniform_int_distribution<int>(20, 300)(rng));
  } else if (roll < 29) {
    reply.delay = Millis(1'200);
  }
  return reply;
}

Reply Healthy(const ReceivedRequest&) { return Reply{}; }

class Kill9Torture : public TortureTest {
 protected:
  void SetUp() override {
    TortureTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(flaky_.Start()) << flaky_.error();
  }
  void TearDown() override {
    TortureTest::TearDown();  // kills sluice first
    flaky_.Stop();
  }

  DeliveryTracker flaky_tracker_;
  Downstream flaky_;
};

TEST_F(Kill9Torture, AcknowledgedRequestsSurviveRepeatedKill9UnderLoad) {
  downstream_.SetResponder(tracker_.Wrap(Healthy));
  flaky_.SetResponder(flaky_tracker_.Wrap(FlakyReply));
  ASSERT_TRUE(StartWith(FixedPortConfig(kFanOut, sluice_.BufferDir(),
                                        {{"@FLAKY_PORT@", std::to_string(flaky_.port())}})));

  LoadOptions load_options;
  load_options.clients = 4;
  load_options.rate_per_client = 100;
  load_options.tag = "kill9";
  LoadGenerator load(ingest_port_, load_options);
  load.Start();

  // Kill at random moments 50..500 ms after each (re)start; leave it down 0..50 ms, so
  // clients meet refused connects as well as connections cut mid-request.
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> uptime_ms(50, 500);
  std::uniform_int_distribution<int> downtime_ms(0, 50);
  int cycles = 0;
  Deadline loop_deadline(Millis(120'000));
  SteadyClock::time_point loop_start = SteadyClock::now();
  while (cycles < kMinKillCycles + 10 && !loop_deadline.Expired()) {
    std::this_thread::sleep_for(Millis(uptime_ms(rng)));
    if (std::optional<e2e::ExitStatus> exited = sluice_.UnexpectedExit()) {
      FAIL() << "sluice exited on its own in cycle " << cycles << " (" << exited->ToString() << ")";
    }
    sluice_.Kill9();
    ++cycles;
    std::this_thread::sleep_for(Millis(downtime_ms(rng)));
    ASSERT_TRUE(sluice_.Restart()) << "restart after kill " << cycles << ": " << sluice_.error();
  }
  Report("kill_cycles", cycles);
  Report("kill_loop_seconds",
         std::chrono::duration<double>(SteadyClock::now() - loop_start).count());
  ASSERT_GE(cycles, kMinKillCycles) << "too few kill cycles within the time limit";

  // Faults stop; the load stops; what was acknowledged must now drain to both targets.
  flaky_.SetResponder(flaky_tracker_.Wrap(Healthy));
  load.Stop();
  std::map<std::string, std::string> acked = load.Acknowledged();
  std::set<std::string> sent = load.SentBodies();
  Report("requests_sent", static_cast<double>(sent.size()));
  Report("acknowledged_ids_checked", static_cast<double>(acked.size()));
  // Refused while sluice was down, or cut off by the kill.
  Report("requests_without_answer", static_cast<double>(load.CountStatus(0)));
  ASSERT_GT(acked.size(), 1000u) << "the load hardly got through: nothing much was tested";
  for (int status : {400, 404, 413, 500, 503}) {
    EXPECT_EQ(load.CountStatus(status), 0u) << "answers with status " << status;
  }

  auto drained = [&] { return tracker_.AllDelivered(acked) && flaky_tracker_.AllDelivered(acked); };
  SteadyClock::time_point drain_start = SteadyClock::now();
  EXPECT_TRUE(WaitFor(drained, Millis(90'000)))
      << "draining: a delivered " << tracker_.CountDelivered(acked) << ", b delivered "
      << flaky_tracker_.CountDelivered(acked) << " of " << acked.size();

  Report("drain_seconds", std::chrono::duration<double>(SteadyClock::now() - drain_start).count());
  DeliveryAudit a = Audit(downstream_.Requests(), acked, sent);
  DeliveryAudit b = Audit(flaky_.Requests(), acked, sent);
  Report("duplicates_target_a", static_cast<double>(a.duplicates));
  Report("duplicates_target_b", static_cast<double>(b.duplicates));
  Report("unacknowledged_but_delivered_a", static_cast<double>(a.unacked_delivered));
  Report("unacknowledged_but_delivered_b", static_cast<double>(b.unacked_delivered));
  for (const auto& [name, audit] : {std::pair{"a (healthy)", &a}, std::pair{"b (flaky)", &b}}) {
    EXPECT_TRUE(audit->lost.empty() && audit->unknown.empty() && audit->wrong_id.empty())
        << "target " << name << ": " << audit->Describe();
  }

  // Still alive and well: fresh requests are acknowledged and reach both targets.
  std::map<std::string, std::string> fresh;
  e2e::HttpClient client(ingest_port_);
  for (int i = 0; i < 20; ++i) {
    e2e::Request request =
        e2e::Post("/after/" + std::to_string(i), "after-torture-" + std::to_string(i));
    std::optional<e2e::HttpMessage> answer = client.RoundTrip(request);
    ASSERT_TRUE(answer) << client.error();
    ASSERT_EQ(answer->status, 202) << answer->body;
    fresh[request.body] = answer->Header("Sluice-Message-Id").value_or("");
  }
  EXPECT_TRUE(
      WaitFor([&] { return tracker_.AllDelivered(fresh) && flaky_tracker_.AllDelivered(fresh); },
              Millis(15'000)))
      << "requests after the torture were not delivered to both targets";
}

}  // namespace
}  // namespace sluice::torture
