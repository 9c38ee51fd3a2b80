#include "broker/rabbitmq_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "buffer/dead_letter.h"
#include "buffer/message.h"
#include "common/uuid.h"
#include "tests/broker/rabbitmq_server.h"
#include "tests/buffer/watchdog.h"

namespace sluice::broker::test {
namespace {

using buffer::QueuedMessage;
using buffer::TargetQueue;
using common::Status;
using common::Uuid;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The owner thread's side of a queue: `wake` sets a flag the test waits on (with a
// deadline), then the test runs completions, as the proxy's loop would.
class Owner {
 public:
  buffer::QueueEvents Events() {
    buffer::QueueEvents events;
    events.wake = [this] {
      std::lock_guard<std::mutex> lock(mu_);
      woken_ = true;
      cv_.notify_all();
    };
    events.on_commit = [this](common::Duration, size_t records) { committed_ += records; };
    return events;
  }
  // Appends the broker confirmed, as QueueEvents::on_commit counted them.
  size_t committed() const { return committed_; }

  // Runs every queue's completions and `step` until `done()` or `limit` passed. Waits
  // for a wake-up between rounds; at most 50 ms, because some conditions (a broker
  // going away) come with no wake-up.
  bool RunUntil(const std::vector<buffer::Queue*>& queues, const std::function<bool()>& done,
                std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      for (buffer::Queue* q : queues) q->RunCompletions();
      if (done()) return true;
      std::unique_lock<std::mutex> lock(mu_);
      if (std::chrono::steady_clock::now() >= deadline) return false;
      cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + milliseconds(50)),
                     [&] { return woken_; });
      woken_ = false;
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  std::atomic<size_t> committed_{0};
};

class RabbitMqQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(SharedServer().running())
        << "rabbitmq-server did not start (scripts/install-deps installs it)";
    // Every test has queues and an exchange of its own on the shared broker.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = std::string("sluice-test.") + info->name() + ".";
  }

  RabbitMqOptions Options(std::map<std::string, uint16_t> targets) {
    RabbitMqOptions o;
    o.url = SharedServer().url();
    o.exchange = prefix_ + "exchange";
    o.queue_prefix = prefix_;
    o.targets = std::move(targets);
    o.connect_timeout = seconds(3);
    o.reconnect_initial_backoff = milliseconds(50);
    o.reconnect_max_backoff = milliseconds(500);
    o.admin_timeout = seconds(20);
    o.clock = &clock_;
    return o;
  }

  std::unique_ptr<RabbitMqQueue> OpenQueue(std::map<std::string, uint16_t> targets) {
    std::unique_ptr<RabbitMqQueue> q;
    Status s = RabbitMqQueue::Open(Options(std::move(targets)), owner_.Events(), &q);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return q;
  }

  std::unique_ptr<TargetQueue> OpenTarget(RabbitMqQueue& q, const std::string& target) {
    std::unique_ptr<TargetQueue> t;
    Status s = q.OpenTarget(target, false, &t);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return t;
  }

  // A message for `targets`; its id in *id.
  std::string Message(std::vector<std::string> targets, std::string body, Uuid* id) {
    buffer::Message m;
    m.id = ids_.Next(static_cast<uint64_t>(std::chrono::duration_cast<milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count()));
    m.method = "POST";
    m.target = "/orders";
    m.client_addr = "127.0.0.1";
    m.route = "route0";
    m.targets = std::move(targets);
    m.body = std::move(body);
    if (id != nullptr) *id = m.id;
    return buffer::EncodeMessage(m);
  }

  // Appends one message and waits for its confirm. Returns the done status.
  Status AppendAndWait(RabbitMqQueue& q, std::vector<std::string> targets, Uuid* id,
                       uint64_t ingest_unix_ns = 1) {
    std::optional<Status> result;
    Status s = q.Append(Message(std::move(targets), "body", id), ingest_unix_ns,
                        [&](const Status& st, uint64_t) { result = st; });
    if (!s.ok()) return s;
    if (!owner_.RunUntil(
            {&q}, [&] { return result.has_value(); }, seconds(20))) {
      return Status::IoError("no completion within 20 s");
    }
    return *result;
  }

  // Takes messages from `t` until `done()`; each is recorded in *got and, when `finish`,
  // finished at once.
  bool Take(RabbitMqQueue& q, TargetQueue& t, std::vector<std::unique_ptr<QueuedMessage>>* got,
            const std::function<bool()>& done, bool finish = true,
            std::chrono::milliseconds limit = seconds(30)) {
    return owner_.RunUntil(
        {&q},
        [&] {
          for (;;) {
            auto m = std::make_unique<QueuedMessage>();
            Status error;
            if (t.Next(m.get(), &error) != TargetQueue::Result::kMessage) break;
            if (finish) t.Finish(m->tag);
            got->push_back(std::move(m));
          }
          return done();
        },
        limit);
  }

  // Takes from `t` until the message `id` arrives; the ids that came before it, in order.
  std::vector<Uuid> TakeUntil(RabbitMqQueue& q, TargetQueue& t, const Uuid& id) {
    std::vector<std::unique_ptr<QueuedMessage>> got;
    bool seen = false;
    EXPECT_TRUE(Take(q, t, &got, [&] {
      for (const auto& m : got) seen = seen || m->message.id == id;
      return seen;
    }));
    std::vector<Uuid> before;
    for (const auto& m : got) {
      if (m->message.id == id) break;
      before.push_back(m->message.id);
    }
    return before;
  }

  std::string prefix_;
  common::FakeClock clock_{seconds(1'800'000'000)};  // only read by the queues
  Owner owner_;
  common::UuidV7Generator ids_{42};
  buffer::test::Watchdog watchdog_{seconds(180)};
};

TEST(AmqpUrlTest, ParsesWhatTheConfigAccepts) {
  AmqpEndpoint e;
  ASSERT_TRUE(ParseAmqpUrl("amqp://guest:secret@127.0.0.1:5673/", &e).ok());
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 5673);
  EXPECT_EQ(e.user, "guest");
  EXPECT_EQ(e.password, "secret");
  EXPECT_EQ(e.vhost, "/");  // INTERFACE.md's default URL means the default vhost
  ASSERT_TRUE(ParseAmqpUrl("amqp://u:p@broker/%2f", &e).ok());
  EXPECT_EQ(e.vhost, "/");
  EXPECT_EQ(e.port, 5672);
  ASSERT_TRUE(ParseAmqpUrl("amqp://u:p@broker:1/orders", &e).ok());
  EXPECT_EQ(e.vhost, "orders");
  EXPECT_EQ(ParseAmqpUrl("amqps://u:p@broker/", &e).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ParseAmqpUrl("http://broker/", &e).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ParseAmqpUrl("", &e).code(), Status::Code::kInvalidArgument);
}

TEST_F(RabbitMqQueueTest, UnreachableBrokerIsUnavailableNotAnError) {
  RabbitMqOptions o = Options({{"a", 1}});
  o.url = "amqp://guest:guest@127.0.0.1:1/";  // nothing listens on port 1
  o.connect_timeout = seconds(1);
  std::unique_ptr<RabbitMqQueue> q;
  ASSERT_TRUE(RabbitMqQueue::Open(o, owner_.Events(), &q).ok());
  EXPECT_TRUE(q->Availability().IsUnavailable()) << q->Availability().ToString();
  Status s = q->Append(Message({"a"}, "x", nullptr), 1, [](const Status&, uint64_t) {});
  EXPECT_TRUE(s.IsUnavailable()) << s.ToString();
  q->Close();

  o.url = "http://127.0.0.1/";
  EXPECT_EQ(RabbitMqQueue::Open(o, owner_.Events(), &q).code(), Status::Code::kInvalidArgument);
}

TEST_F(RabbitMqQueueTest, AppendIsConfirmedThenDeliveredAndFinishAcksIt) {
  auto q = OpenQueue({{"a", 4}});
  ASSERT_TRUE(q->Availability().ok()) << q->Availability().ToString();
  auto t = OpenTarget(*q, "a");
  EXPECT_EQ(t->queued_at_open(), 0u);

  // `done` runs only from RunCompletions, after the broker's confirm.
  Uuid id;
  std::optional<Status> result;
  ASSERT_TRUE(
      q->Append(Message({"a"}, "hello", &id), 1234567890123, [&](const Status& s, uint64_t) {
         result = s;
       }).ok());
  EXPECT_FALSE(result.has_value());
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return result.has_value(); }, seconds(20)));
  ASSERT_TRUE(result->ok()) << result->ToString();

  std::vector<std::unique_ptr<QueuedMessage>> got;
  ASSERT_TRUE(Take(*q, *t, &got, [&] { return !got.empty(); }));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->message.id, id);
  EXPECT_EQ(got[0]->message.body, "hello");
  EXPECT_EQ(got[0]->ingest_unix_ns, 1234567890123u);
  EXPECT_EQ(t->progress(), 1u);
  q->Close();

  // Acked: a new instance does not get it again. A second message is the marker: had the
  // first come back, the queue would hand it out before the marker.
  auto q2 = OpenQueue({{"a", 4}});
  auto t2 = OpenTarget(*q2, "a");
  EXPECT_EQ(t2->queued_at_open(), 0u);
  Uuid marker;
  ASSERT_TRUE(AppendAndWait(*q2, {"a"}, &marker).ok());
  EXPECT_TRUE(TakeUntil(*q2, *t2, marker).empty());
}

TEST_F(RabbitMqQueueTest, FanOutIsOnePublishReachingEveryNamedTarget) {
  auto q = OpenQueue({{"a", 4}, {"b", 4}, {"c", 4}});
  auto a = OpenTarget(*q, "a");
  auto b = OpenTarget(*q, "b");
  auto c = OpenTarget(*q, "c");
  Uuid both, only_b, marker_a, marker_c;
  ASSERT_TRUE(AppendAndWait(*q, {"a", "b"}, &both).ok());
  EXPECT_EQ(owner_.committed(), 1u);  // one publish, one confirm, two queues
  ASSERT_TRUE(AppendAndWait(*q, {"b"}, &only_b).ok());
  ASSERT_TRUE(AppendAndWait(*q, {"a", "c"}, &marker_a).ok());
  ASSERT_TRUE(AppendAndWait(*q, {"c"}, &marker_c).ok());

  EXPECT_EQ(TakeUntil(*q, *a, marker_a), std::vector<Uuid>{both});
  std::vector<std::unique_ptr<QueuedMessage>> got_b;
  ASSERT_TRUE(Take(*q, *b, &got_b, [&] { return got_b.size() >= 2; }));
  ASSERT_EQ(got_b.size(), 2u);
  EXPECT_EQ(got_b[0]->message.id, both);
  EXPECT_EQ(got_b[1]->message.id, only_b);
  // c got the message that named it first, and nothing that did not name it.
  EXPECT_EQ(TakeUntil(*q, *c, marker_c), std::vector<Uuid>{marker_a});
}

TEST_F(RabbitMqQueueTest, UnfinishedMessagesAreRedeliveredAfterReopen) {
  std::set<Uuid> sent;
  {
    auto q = OpenQueue({{"a", 8}});
    auto t = OpenTarget(*q, "a");
    for (int i = 0; i < 5; ++i) {
      Uuid id;
      ASSERT_TRUE(AppendAndWait(*q, {"a"}, &id).ok());
      sent.insert(id);
    }
    std::vector<std::unique_ptr<QueuedMessage>> got;
    ASSERT_TRUE(Take(
        *q, *t, &got, [&] { return got.size() >= 5; }, /*finish=*/false));
    q->Close();  // none finished: the broker gets them back
  }
  auto q = OpenQueue({{"a", 8}});
  auto t = OpenTarget(*q, "a");
  // The depth is the broker's count at the declare: the five come back to the queue
  // when the old consumer's channel closes, which the broker may finish after the
  // declare (seen under ASan). It never counts more than there are.
  EXPECT_LE(t->queued_at_open(), 5u);
  std::vector<std::unique_ptr<QueuedMessage>> again;
  ASSERT_TRUE(Take(*q, *t, &again, [&] { return again.size() >= 5; }));
  std::set<Uuid> redelivered;
  for (const auto& m : again) redelivered.insert(m->message.id);
  EXPECT_EQ(redelivered, sent);
}

TEST_F(RabbitMqQueueTest, CloseWaitsForTheConfirmsOfWhatWasHandedOver) {
  auto q = OpenQueue({{"a", 4}});
  constexpr int kAppends = 50;
  int ok = 0;
  for (int i = 0; i < kAppends; ++i) {
    ASSERT_TRUE(q->Append(Message({"a"}, "x", nullptr), 1, [&](const Status& s, uint64_t) {
                   ok += s.ok();
                 }).ok());
  }
  q->Close();
  q->RunCompletions();  // the last callbacks run after Close(), on the owner
  EXPECT_EQ(ok, kAppends);
  EXPECT_TRUE(
      q->Append(Message({"a"}, "x", nullptr), 1, [](const Status&, uint64_t) {}).IsUnavailable());

  auto q2 = OpenQueue({{"a", 4}});
  auto t = OpenTarget(*q2, "a");
  EXPECT_EQ(t->queued_at_open(), static_cast<uint64_t>(kAppends));
}

TEST_F(RabbitMqQueueTest, RemovedTargetStopsConsumingAndKeepsItsMessages) {
  auto q = OpenQueue({{"a", 4}, {"b", 4}});
  auto a = OpenTarget(*q, "a");
  auto b = OpenTarget(*q, "b");
  q->RemoveTarget("a");
  Uuid kept, marker;
  ASSERT_TRUE(AppendAndWait(*q, {"a", "b"}, &kept).ok());
  ASSERT_TRUE(AppendAndWait(*q, {"b"}, &marker).ok());
  // b got both; a, removed, took nothing meanwhile.
  EXPECT_EQ(TakeUntil(*q, *b, marker), std::vector<Uuid>{kept});
  QueuedMessage m;
  Status error;
  EXPECT_EQ(a->Next(&m, &error), TargetQueue::Result::kCaughtUp);
  q->Close();
  // The message stayed in a's queue for whoever opens it next.
  auto q2 = OpenQueue({{"a", 4}});
  auto a2 = OpenTarget(*q2, "a");
  std::vector<std::unique_ptr<QueuedMessage>> got;
  ASSERT_TRUE(Take(*q2, *a2, &got, [&] { return !got.empty(); }));
  EXPECT_EQ(got[0]->message.id, kept);
}

TEST_F(RabbitMqQueueTest, PrefetchBoundsWhatOneConsumerHolds) {
  auto q = OpenQueue({{"a", 3}});
  auto t = OpenTarget(*q, "a");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(AppendAndWait(*q, {"a"}, nullptr).ok());
  std::vector<std::unique_ptr<QueuedMessage>> held;
  ASSERT_TRUE(Take(
      *q, *t, &held, [&] { return held.size() >= 3; }, /*finish=*/false));
  // Three unacked: the broker sends no more until one is finished.
  Uuid marker;
  ASSERT_TRUE(AppendAndWait(*q, {"a"}, &marker).ok());
  EXPECT_EQ(held.size(), 3u);
  t->Finish(held[0]->tag);
  ASSERT_TRUE(Take(
      *q, *t, &held, [&] { return held.size() >= 4; }, /*finish=*/false));
  EXPECT_EQ(held.size(), 4u);
}

TEST_F(RabbitMqQueueTest, RefusedPublishCompletesUnavailable) {
  auto q = OpenQueue({{"a", 1}});
  // A full queue that rejects publishes (an operator's policy): the broker nacks.
  ASSERT_TRUE(SharedServer().Ctl({"set_policy", "--apply-to", "queues", "cap", "^" + prefix_ + "a$",
                                  R"({"max-length":2,"overflow":"reject-publish"})"}));
  // The policy reaches the queue asynchronously: append until the first refusal.
  std::optional<Status> refused;
  for (int i = 0; i < 50 && !refused; ++i) {
    std::optional<Status> result;
    Status s = q->Append(Message({"a"}, "x", nullptr), 1,
                         [&](const Status& st, uint64_t) { result = st; });
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(owner_.RunUntil(
        {q.get()}, [&] { return result.has_value(); }, seconds(20)));
    if (!result->ok()) refused = result;
  }
  ASSERT_TRUE(refused.has_value()) << "the broker never refused a publish";
  EXPECT_TRUE(refused->IsUnavailable()) << refused->ToString();
  // A refusal is about the message, not the connection.
  EXPECT_TRUE(q->Availability().ok()) << q->Availability().ToString();
  ASSERT_TRUE(SharedServer().Ctl({"clear_policy", "cap"}));
}

TEST_F(RabbitMqQueueTest, ResourceAlarmMakesAppendsUnavailableUntilCleared) {
  auto q = OpenQueue({{"a", 4}});
  ASSERT_TRUE(AppendAndWait(*q, {"a"}, nullptr).ok());
  // The broker's disk alarm: it blocks a connection at its next publish and says so. That
  // publish waits for the alarm to clear, then is confirmed.
  ASSERT_TRUE(SharedServer().Ctl({"set_disk_free_limit", "1000000GB"}));
  std::optional<Status> held;
  ASSERT_TRUE(q->Append(Message({"a"}, "held", nullptr), 1, [&](const Status& st, uint64_t) {
                 held = st;
               }).ok());
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return !q->Availability().ok(); }, seconds(20)));
  EXPECT_TRUE(q->Availability().IsUnavailable()) << q->Availability().ToString();
  Status s = q->Append(Message({"a"}, "x", nullptr), 1, [](const Status&, uint64_t) {});
  EXPECT_TRUE(s.IsUnavailable()) << s.ToString();

  ASSERT_TRUE(SharedServer().Ctl({"set_disk_free_limit", "1MB"}));
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return q->Availability().ok(); }, seconds(20)))
      << q->Availability().ToString();
  EXPECT_TRUE(AppendAndWait(*q, {"a"}, nullptr).ok());
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return held.has_value(); }, seconds(20)));
  EXPECT_TRUE(held->ok()) << held->ToString();
}

TEST_F(RabbitMqQueueTest, IdleConnectionsKeepTheirHeartbeats) {
  RabbitMqOptions o = Options({{"a", 4}});
  o.heartbeat = seconds(1);  // the broker drops a connection silent for two of these
  std::unique_ptr<RabbitMqQueue> q;
  ASSERT_TRUE(RabbitMqQueue::Open(o, owner_.Events(), &q).ok());
  auto t = OpenTarget(*q, "a");
  ASSERT_TRUE(AppendAndWait(*q, {"a"}, nullptr).ok());
  std::vector<std::unique_ptr<QueuedMessage>> got;
  ASSERT_TRUE(Take(*q, *t, &got, [&] { return got.size() == 1; }));

  // Idle for several heartbeat intervals: time passing is what is tested here.
  EXPECT_FALSE(owner_.RunUntil(
      {q.get()}, [] { return false; }, milliseconds(3500)));
  EXPECT_TRUE(q->Availability().ok()) << q->Availability().ToString();
  ASSERT_TRUE(AppendAndWait(*q, {"a"}, nullptr).ok());
  ASSERT_TRUE(Take(*q, *t, &got, [&] { return got.size() == 2; }));
  // Delivered on the same consumer connection: its tag has the same generation.
  EXPECT_EQ(got[1]->tag >> RabbitMqQueue::kTagGenerationShift,
            got[0]->tag >> RabbitMqQueue::kTagGenerationShift);
}

buffer::DeadLetter Letter(const std::string& target, const std::string& payload, uint64_t dead_ns,
                          const std::string& reason) {
  buffer::DeadLetter dl;
  dl.target = target;
  dl.seq = 7;
  dl.ingest_unix_ns = dead_ns - 1000;
  dl.dead_unix_ns = dead_ns;
  dl.reason = reason;
  dl.attempts = 3;
  dl.last_status = 422;
  dl.payload = payload;
  return dl;
}

TEST_F(RabbitMqQueueTest, DeadLettersStoreListPurgeAndReplay) {
  auto q = OpenQueue({{"a", 4}});
  auto t = OpenTarget(*q, "a");
  std::vector<Uuid> ids(4);
  for (int i = 0; i < 4; ++i) {
    std::optional<Status> stored;
    ASSERT_TRUE(q->AppendDeadLetter(Letter("a", Message({"a", "b"}, "dead", &ids[i]), 1000 + i,
                                           i % 2 ? "max_attempts" : "rejected"),
                                    [&](const Status& s, uint64_t) { stored = s; })
                    .ok());
    ASSERT_TRUE(owner_.RunUntil(
        {q.get()}, [&] { return stored.has_value(); }, seconds(20)));
    ASSERT_TRUE(stored->ok()) << stored->ToString();
  }
  EXPECT_EQ(q->DeadLetterCount("a"), 4u);

  // Listing is a browse: twice gives the same letters, oldest first.
  for (int round = 0; round < 2; ++round) {
    std::vector<buffer::DeadLetter> letters;
    ASSERT_TRUE(q->ListDeadLetters("a", &letters).ok());
    ASSERT_EQ(letters.size(), 4u) << "round " << round;
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(buffer::DecodeMessage(letters[i].payload)->id, ids[i]);
      EXPECT_EQ(letters[i].target, "a");
      EXPECT_EQ(letters[i].dead_unix_ns, 1000u + i);
      EXPECT_EQ(letters[i].ingest_unix_ns, 1000u + i - 1000);
      EXPECT_EQ(letters[i].attempts, 3u);
      EXPECT_EQ(letters[i].last_status, 422);
      EXPECT_EQ(letters[i].reason, i % 2 ? "max_attempts" : "rejected");
    }
  }

  auto run = [&](auto&& start) {
    std::optional<std::pair<Status, uint64_t>> r;
    Status s = start([&](const Status& st, uint64_t n) { r.emplace(st, n); });
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(owner_.RunUntil(
        {q.get()}, [&] { return r.has_value(); }, seconds(30)));
    EXPECT_TRUE(r && r->first.ok()) << (r ? r->first.ToString() : "no answer");
    return r ? r->second : ~uint64_t{0};
  };

  // Purge one: only that letter goes.
  EXPECT_EQ(run([&](auto done) { return q->PurgeDeadLetters("a", ids[1], done); }), 1u);
  EXPECT_EQ(q->DeadLetterCount("a"), 3u);
  std::vector<buffer::DeadLetter> letters;
  ASSERT_TRUE(q->ListDeadLetters("a", &letters).ok());
  ASSERT_EQ(letters.size(), 3u);
  EXPECT_EQ(buffer::DecodeMessage(letters[0].payload)->id, ids[0]);
  EXPECT_EQ(buffer::DecodeMessage(letters[1].payload)->id, ids[2]);
  EXPECT_EQ(buffer::DecodeMessage(letters[2].payload)->id, ids[3]);

  // Replay one: it is this target's again (and only this target's: "b" named it too),
  // received now, and no longer a letter.
  size_t queued = 99;
  EXPECT_EQ(run([&](auto done) { return q->ReplayDeadLetters("a", ids[2], done, &queued); }), 1u);
  std::vector<std::unique_ptr<QueuedMessage>> got;
  ASSERT_TRUE(Take(*q, *t, &got, [&] { return !got.empty(); }));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->message.id, ids[2]);
  EXPECT_EQ(got[0]->message.targets, std::vector<std::string_view>{"a"});
  EXPECT_EQ(got[0]->ingest_unix_ns, static_cast<uint64_t>(clock_.UnixNow().count()));
  EXPECT_EQ(q->DeadLetterCount("a"), 2u);

  // A letter that is not there: NotFound (the admin API's 404), nothing changes.
  std::optional<Status> missing;
  ASSERT_TRUE(q->ReplayDeadLetters(
                   "a", ids[1], [&](const Status& st, uint64_t) { missing = st; }, nullptr)
                  .ok());
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return missing.has_value(); }, seconds(20)));
  EXPECT_TRUE(missing->IsNotFound()) << missing->ToString();
  EXPECT_EQ(q->DeadLetterCount("a"), 2u);

  // Replay all, then purge all.
  EXPECT_EQ(run([&](auto done) { return q->ReplayDeadLetters("a", std::nullopt, done, nullptr); }),
            2u);
  got.clear();
  ASSERT_TRUE(Take(*q, *t, &got, [&] { return got.size() >= 2; }));
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(q->DeadLetterCount("a"), 0u);
  ASSERT_TRUE(q->AppendDeadLetter(Letter("a", Message({"a"}, "x", nullptr), 5000, "expired"),
                                  [](const Status&, uint64_t) {})
                  .ok());
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return q->DeadLetterCount("a") == 1; }, seconds(20)));
  EXPECT_EQ(run([&](auto done) { return q->PurgeDeadLetters("a", std::nullopt, done); }), 1u);
  EXPECT_EQ(q->DeadLetterCount("a"), 0u);
  letters.clear();
  ASSERT_TRUE(q->ListDeadLetters("a", &letters).ok());
  EXPECT_TRUE(letters.empty());
  EXPECT_TRUE(q->ReplayDeadLetters(
                   "a", std::nullopt, [](const Status&, uint64_t) {}, nullptr)
                  .IsNotFound());
}

TEST_F(RabbitMqQueueTest, TwoInstancesOnOneQueueGetEachMessageOnce) {
  auto q1 = OpenQueue({{"a", 4}});
  auto q2 = OpenQueue({{"a", 4}});
  auto t1 = OpenTarget(*q1, "a");
  auto t2 = OpenTarget(*q2, "a");
  constexpr int kMessages = 200;
  std::set<Uuid> sent;
  int confirmed = 0;
  for (int i = 0; i < kMessages; ++i) {
    Uuid id;
    RabbitMqQueue& q = i % 2 ? *q1 : *q2;
    ASSERT_TRUE(q.Append(Message({"a"}, "m", &id), 1, [&](const Status& s, uint64_t) {
                   confirmed += s.ok();
                 }).ok());
    sent.insert(id);
  }
  std::vector<std::unique_ptr<QueuedMessage>> got1, got2;
  auto pump = [&](RabbitMqQueue&, TargetQueue& t,
                  std::vector<std::unique_ptr<QueuedMessage>>* got) {
    for (;;) {
      auto m = std::make_unique<QueuedMessage>();
      Status error;
      if (t.Next(m.get(), &error) != TargetQueue::Result::kMessage) break;
      t.Finish(m->tag);
      got->push_back(std::move(m));
    }
  };
  ASSERT_TRUE(owner_.RunUntil(
      {q1.get(), q2.get()},
      [&] {
        pump(*q1, *t1, &got1);
        pump(*q2, *t2, &got2);
        return confirmed == kMessages && got1.size() + got2.size() >= kMessages;
      },
      seconds(60)));
  std::multiset<Uuid> received;
  for (const auto& m : got1) received.insert(m->message.id);
  for (const auto& m : got2) received.insert(m->message.id);
  EXPECT_EQ(received.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(std::set<Uuid>(received.begin(), received.end()), sent);
  // Both consumed: the broker spread the messages over the two.
  EXPECT_GT(got1.size(), 0u);
  EXPECT_GT(got2.size(), 0u);
}

TEST_F(RabbitMqQueueTest, BrokerRestartLosesNothingConfirmedAndReconnects) {
  auto q = OpenQueue({{"a", 16}});
  auto t = OpenTarget(*q, "a");
  std::set<Uuid> confirmed;
  std::set<Uuid> failed;
  size_t refused = 0;
  auto append = [&] {
    Uuid id;
    std::string payload = Message({"a"}, "load", &id);  // before the callback copies id
    Status s = q->Append(std::move(payload), 1, [&, id](const Status& st, uint64_t) {
      if (st.ok()) {
        confirmed.insert(id);
      } else {
        EXPECT_TRUE(st.IsUnavailable()) << st.ToString();
        failed.insert(id);
      }
    });
    if (!s.ok()) {
      EXPECT_TRUE(s.IsUnavailable()) << s.ToString();
      ++refused;
    }
  };
  // Load in flight: some confirmed, some not yet, when the broker dies.
  for (int i = 0; i < 100; ++i) append();
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return confirmed.size() >= 50; }, seconds(20)))
      << confirmed.size() << " confirmed, " << failed.size() << " failed, " << refused
      << " refused";
  // Two messages taken and never finished before the crash: redelivered after it, and
  // their old tags are ignored when finished late.
  std::vector<std::unique_ptr<QueuedMessage>> held;
  ASSERT_TRUE(Take(
      *q, *t, &held, [&] { return held.size() >= 2; }, /*finish=*/false));
  held.resize(2);
  for (int i = 0; i < 100; ++i) append();
  SharedServer().Kill();

  // The queue notices by itself; meanwhile appends are refused as unavailable.
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return !q->Availability().ok(); }, seconds(20)));
  EXPECT_TRUE(q->Availability().IsUnavailable());
  size_t refused_before = refused;
  append();
  EXPECT_EQ(refused, refused_before + 1);
  // Every append handed over is answered: confirmed, or failed as unavailable.
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return confirmed.size() + failed.size() + refused == 201; }, seconds(30)));

  ASSERT_TRUE(SharedServer().Start());
  ASSERT_TRUE(owner_.RunUntil(
      {q.get()}, [&] { return q->Availability().ok(); }, seconds(30)))
      << q->Availability().ToString();
  for (const auto& m : held) t->Finish(m->tag);  // a dead connection's tags: ignored
  Uuid after;
  ASSERT_TRUE(AppendAndWait(*q, {"a"}, &after).ok());
  confirmed.insert(after);

  // Everything confirmed is there, the held two included.
  std::set<Uuid> received;
  std::vector<std::unique_ptr<QueuedMessage>> got;
  ASSERT_TRUE(Take(
      *q, *t, &got,
      [&] {
        for (const auto& m : got) received.insert(m->message.id);
        got.clear();
        return std::includes(received.begin(), received.end(), confirmed.begin(), confirmed.end());
      },
      true, seconds(60)));
  for (const auto& m : held) EXPECT_TRUE(received.count(m->message.id));
  // Nothing that was never stored shows up.
  for (const Uuid& id : received) EXPECT_TRUE(confirmed.count(id) || failed.count(id));
}

}  // namespace
}  // namespace sluice::broker::test
