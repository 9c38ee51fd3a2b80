// SqsQueue against the local-aws-sqs emulator on loopback, driven on a uv loop in the
// test thread. Every wait is on a condition with a deadline.

#include "broker/sqs_queue.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "broker/base64.h"
#include "buffer/message.h"
#include "common/json_writer.h"
#include "tests/broker/fake_sqs.h"
#include "tests/broker/sqs_emulator.h"

namespace sluice::broker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeSqs;
using testing::SharedEmulator;
using testing::SqsEmulator;
using Clock = std::chrono::steady_clock;

// One loop for the test: queues opened through it are woken by one uv_async, which runs
// every queue's completions, as the proxy does.
class LoopDriver {
 public:
  LoopDriver() {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &async_,
                  [](uv_async_t* a) { static_cast<LoopDriver*>(a->data)->RunCompletions(); });
    async_.data = this;
    uv_timer_init(&loop_, &check_);
    check_.data = this;
  }
  ~LoopDriver() {
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&check_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  uv_loop_t* loop() { return &loop_; }
  buffer::QueueEvents Events() {
    buffer::QueueEvents events;
    events.wake = [this] { uv_async_send(&async_); };
    return events;
  }
  void Watch(buffer::Queue* q) { queues_.insert(q); }
  void Forget(buffer::Queue* q) { queues_.erase(q); }

  // Runs the loop until `done` holds or `timeout` passes; whether it held. `done` is
  // called once more only while it has not held (it may take something as it checks).
  bool RunUntil(const std::function<bool()>& done, Clock::duration timeout) {
    if (done()) return true;
    done_ = &done;
    met_ = false;
    deadline_ = Clock::now() + timeout;
    uv_timer_start(
        &check_,
        [](uv_timer_t* t) {
          auto* self = static_cast<LoopDriver*>(t->data);
          if ((*self->done_)()) self->met_ = true;
          if (self->met_ || Clock::now() >= self->deadline_) uv_stop(&self->loop_);
        },
        5, 5);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_timer_stop(&check_);
    done_ = nullptr;
    return met_;
  }
  // Runs the loop for `d` (a test that something does NOT happen meanwhile).
  void RunFor(Clock::duration d) {
    RunUntil([] { return false; }, d);
  }

 private:
  void RunCompletions() {
    for (auto* q : std::set<buffer::Queue*>(queues_)) q->RunCompletions();
  }
  uv_loop_t loop_;
  uv_async_t async_;
  uv_timer_t check_;
  std::set<buffer::Queue*> queues_;
  const std::function<bool()>* done_ = nullptr;
  bool met_ = false;
  Clock::time_point deadline_;
};

struct AppendResult {
  bool done = false;
  common::Status status;
};

std::string MakePayload(const std::vector<std::string>& targets, const std::string& body,
                        common::Uuid* id_out) {
  static common::UuidV7Generator ids(12345);
  buffer::Message m;
  m.id = ids.Next(static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count()));
  m.method = "POST";
  m.target = "/orders?x=1";
  m.client_addr = "127.0.0.1";
  m.route = "orders";
  m.targets = targets;
  m.headers = {{"Content-Type", "application/json"}, {"Idempotency-Key", "k1"}};
  m.body = body;
  if (id_out != nullptr) *id_out = m.id;
  return buffer::EncodeMessage(m);
}

class SqsQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(SharedEmulator().running()) << "the SQS emulator did not start";
    // Queues of one test are not seen by another: a prefix per test.
    static int n = 0;
    prefix_ = "t" + std::to_string(::getpid()) + "-" + std::to_string(n++) + "-";
  }
  void TearDown() override {
    for (auto& q : queues_) {
      driver_.Forget(q.get());
      q->Close();
    }
    queues_.clear();
    if (HasFailure()) std::fprintf(stderr, "%s\n", SharedEmulator().Describe().c_str());
  }

  SqsOptions Options(const std::vector<std::string>& targets, const std::string& endpoint = "") {
    SqsOptions o;
    o.endpoint = endpoint.empty() ? SharedEmulator().endpoint() : endpoint;
    o.queue_prefix = prefix_;
    o.credentials = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
    for (const auto& t : targets) o.targets.push_back({t, 4, 0});
    o.visibility_timeout = seconds(2);
    o.wait_time_seconds = 1;
    o.request_timeout = seconds(3);
    o.max_retry_backoff = milliseconds(200);
    o.dead_letter_scan_wait_seconds = 0;
    o.dead_letter_scan_visibility = seconds(5);
    return o;
  }

  // Opens a queue and waits until its queue URLs are resolved.
  SqsQueue* OpenQueue(SqsOptions options) {
    std::unique_ptr<SqsQueue> q;
    common::Status s =
        SqsQueue::Open(driver_.loop(), clock_, std::move(options), driver_.Events(), &q);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return nullptr;
    SqsQueue* raw = q.get();
    driver_.Watch(raw);
    queues_.push_back(std::move(q));
    EXPECT_TRUE(driver_.RunUntil([raw] { return raw->Availability().ok(); }, seconds(10)))
        << raw->Availability().ToString();
    return raw;
  }

  void CloseQueue(SqsQueue* q) {
    driver_.Forget(q);
    q->Close();
  }

  std::unique_ptr<buffer::TargetQueue> Target(SqsQueue* q, const std::string& name) {
    std::unique_ptr<buffer::TargetQueue> t;
    EXPECT_TRUE(q->OpenTarget(name, false, &t).ok());
    return t;
  }

  // Appends and waits for `done`.
  common::Status AppendAndWait(SqsQueue* q, std::string payload, uint64_t ingest_ns = 1) {
    auto result = std::make_shared<AppendResult>();
    common::Status s =
        q->Append(std::move(payload), ingest_ns, [result](const common::Status& st, uint64_t) {
          result->done = true;
          result->status = st;
        });
    if (!s.ok()) return s;
    EXPECT_FALSE(result->done) << "done ran before RunCompletions";
    EXPECT_TRUE(driver_.RunUntil([&] { return result->done; }, seconds(10)));
    return result->status;
  }

  // The next message of `t`, waiting up to `timeout`; nullptr if none came.
  std::unique_ptr<buffer::QueuedMessage> Next(buffer::TargetQueue* t, Clock::duration timeout) {
    auto m = std::make_unique<buffer::QueuedMessage>();
    common::Status error;
    bool got = driver_.RunUntil(
        [&] { return t->Next(m.get(), &error) == buffer::TargetQueue::Result::kMessage; }, timeout);
    if (!got) return nullptr;
    return m;
  }

  common::Status WaitDone(const std::function<common::Status(buffer::Queue::Done)>& start,
                          uint64_t* value) {
    auto result = std::make_shared<std::pair<bool, common::Status>>(false, common::Status::OK());
    auto v = std::make_shared<uint64_t>(0);
    common::Status s = start([result, v](const common::Status& st, uint64_t n) {
      result->first = true;
      result->second = st;
      *v = n;
    });
    if (!s.ok()) return s;
    EXPECT_TRUE(driver_.RunUntil([&] { return result->first; }, seconds(15)));
    if (value != nullptr) *value = *v;
    return result->second;
  }

  common::SystemClock clock_;
  LoopDriver driver_;
  std::string prefix_;
  std::vector<std::unique_ptr<SqsQueue>> queues_;
};

TEST_F(SqsQueueTest, OpenRefusesTheRegionEndpointWithoutTls) {
  SqsOptions o = Options({"a"});
  o.endpoint = "";
  std::unique_ptr<SqsQueue> q;
  common::Status s = SqsQueue::Open(driver_.loop(), clock_, o, driver_.Events(), &q);
  EXPECT_EQ(s.code(), common::Status::Code::kInvalidArgument);
  EXPECT_NE(s.ToString().find("TLS"), std::string::npos) << s.ToString();
  EXPECT_EQ(q, nullptr);
  o = Options({"a"});
  o.credentials = {};
  s = SqsQueue::Open(driver_.loop(), clock_, o, driver_.Events(), &q);
  EXPECT_NE(s.ToString().find("AWS_ACCESS_KEY_ID"), std::string::npos) << s.ToString();
  o = Options({std::string(80, 'x')});
  EXPECT_EQ(SqsQueue::Open(driver_.loop(), clock_, o, driver_.Events(), &q).code(),
            common::Status::Code::kInvalidArgument);
  o = Options({"a"});
  o.visibility_timeout = milliseconds(1500);
  EXPECT_EQ(SqsQueue::Open(driver_.loop(), clock_, o, driver_.Events(), &q).code(),
            common::Status::Code::kInvalidArgument);
  o = Options({"a"});
  o.wait_time_seconds = 0;
  EXPECT_EQ(SqsQueue::Open(driver_.loop(), clock_, o, driver_.Events(), &q).code(),
            common::Status::Code::kInvalidArgument);
}

TEST_F(SqsQueueTest, AppendCompletesOnceSqsHasTheMessage) {
  SqsQueue* q = OpenQueue(Options({"a"}));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(std::string(q->kind()), "sqs");
  uint64_t calls_before = q->calls();
  common::Uuid id;
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a"}, "hello", &id), 777).ok());
  EXPECT_GT(q->calls(), calls_before);
  // Another instance (nothing in memory) finds it in SQS.
  SqsQueue* other = OpenQueue(Options({"a"}));
  ASSERT_NE(other, nullptr);
  auto t = Target(other, "a");
  auto m = Next(t.get(), seconds(10));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->message.id, id);
  EXPECT_EQ(m->message.body, "hello");
  EXPECT_EQ(m->message.target, "/orders?x=1");
  EXPECT_EQ(m->ingest_unix_ns, 777u);
  ASSERT_EQ(m->message.headers.size(), 2u);
  t->Finish(m->tag);
  EXPECT_EQ(t->progress(), 1u);
}

TEST_F(SqsQueueTest, FanOutStoresOneCopyPerNamedTarget) {
  SqsQueue* q = OpenQueue(Options({"a", "b", "c"}));
  ASSERT_NE(q, nullptr);
  common::Uuid id;
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a", "b"}, "both", &id)).ok());
  auto a = Target(q, "a");
  auto b = Target(q, "b");
  auto c = Target(q, "c");
  auto ma = Next(a.get(), seconds(10));
  auto mb = Next(b.get(), seconds(10));
  ASSERT_NE(ma, nullptr);
  ASSERT_NE(mb, nullptr);
  EXPECT_EQ(ma->message.id, id);
  EXPECT_EQ(mb->message.id, id);
  EXPECT_EQ(Next(c.get(), milliseconds(1500)), nullptr);  // not named: no copy
  a->Finish(ma->tag);
  b->Finish(mb->tag);
}

TEST_F(SqsQueueTest, FinishDeletesTheMessage) {
  SqsQueue* q = OpenQueue(Options({"a"}));
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a"}, "once", nullptr)).ok());
  auto t = Target(q, "a");
  auto m = Next(t.get(), seconds(10));
  ASSERT_NE(m, nullptr);
  t->Finish(m->tag);
  driver_.RunFor(milliseconds(300));  // the DeleteMessage
  CloseQueue(q);
  // Past the visibility timeout a deleted message does not come back to anyone.
  SqsQueue* other = OpenQueue(Options({"a"}));
  ASSERT_NE(other, nullptr);
  auto t2 = Target(other, "a");
  EXPECT_EQ(Next(t2.get(), seconds(4)), nullptr);
}

TEST_F(SqsQueueTest, UnfinishedMessageReappearsAfterACrash) {
  SqsQueue* q = OpenQueue(Options({"a"}));
  ASSERT_NE(q, nullptr);
  common::Uuid id;
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a"}, "held", &id)).ok());
  auto t = Target(q, "a");
  auto m = Next(t.get(), seconds(10));
  ASSERT_NE(m, nullptr);
  CloseQueue(q);  // never finished, no longer extended: as if the instance died
  auto closed_at = Clock::now();
  SqsQueue* other = OpenQueue(Options({"a"}));
  ASSERT_NE(other, nullptr);
  auto t2 = Target(other, "a");
  auto again = Next(t2.get(), seconds(8));
  ASSERT_NE(again, nullptr) << "the message did not reappear";
  EXPECT_EQ(again->message.id, id);
  EXPECT_GE(Clock::now() - closed_at, milliseconds(500));  // not before its timeout ran
  t2->Finish(again->tag);
}

TEST_F(SqsQueueTest, HeldMessageIsExtendedAndNotRedelivered) {
  SqsQueue* a = OpenQueue(Options({"a"}));
  SqsQueue* b = OpenQueue(Options({"a"}));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::unique_ptr<buffer::TargetQueue> ts[2] = {Target(a, "a"), Target(b, "a")};
  ASSERT_TRUE(AppendAndWait(a, MakePayload({"a"}, "mine", nullptr)).ok());
  // Whoever gets it holds it for three visibility timeouts; the other must not get it.
  std::unique_ptr<buffer::QueuedMessage> got[2];
  auto take = [&](int i) {
    auto m = std::make_unique<buffer::QueuedMessage>();
    common::Status e;
    if (ts[i]->Next(m.get(), &e) == buffer::TargetQueue::Result::kMessage) got[i] = std::move(m);
  };
  ASSERT_TRUE(driver_.RunUntil(
      [&] {
        take(0);
        take(1);
        return got[0] || got[1];
      },
      seconds(10)));
  int holder = got[0] ? 0 : 1;
  int rival = 1 - holder;
  EXPECT_FALSE(driver_.RunUntil(
      [&] {
        take(rival);
        return got[rival] != nullptr;
      },
      seconds(6)))
      << "redelivered to the other instance while held";
  ts[holder]->Finish(got[holder]->tag);
}

// What sluice runs with: a 20 s long poll on a 2 s visibility timeout. The emulator
// hides a message when its receive takes it and answers once the batch is full or the
// wait is over: a receive asking for 4 of 2 messages would take both again when their
// 2 s run out, and answer with each twice. Held for over two timeouts, each message is
// handed out once all the same.
TEST_F(SqsQueueTest, LongPollOutlastingTheVisibilityTimeoutHandsNothingOutTwice) {
  SqsOptions o = Options({"a"});  // 4 ahead of delivery, visibility 2s
  o.wait_time_seconds = 20;
  SqsQueue* q = OpenQueue(o);
  ASSERT_NE(q, nullptr);
  auto t = Target(q, "a");
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a"}, "one", nullptr)).ok());
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a"}, "two", nullptr)).ok());
  std::vector<std::unique_ptr<buffer::QueuedMessage>> got;
  driver_.RunUntil(
      [&] {
        auto m = std::make_unique<buffer::QueuedMessage>();
        common::Status e;
        while (t->Next(m.get(), &e) == buffer::TargetQueue::Result::kMessage) {
          got.push_back(std::move(m));
          m = std::make_unique<buffer::QueuedMessage>();
        }
        return false;
      },
      milliseconds(4500));
  std::multiset<std::string> bodies;
  for (const auto& m : got) bodies.insert(std::string(m->message.body));
  EXPECT_EQ(bodies, (std::multiset<std::string>{"one", "two"}));
  for (const auto& m : got) t->Finish(m->tag);
}

TEST_F(SqsQueueTest, TwoInstancesShareATargetQueueWithoutDoubleDelivery) {
  SqsQueue* a = OpenQueue(Options({"t"}));
  SqsQueue* b = OpenQueue(Options({"t"}));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  constexpr int kMessages = 30;
  std::set<common::Uuid> sent;
  for (int i = 0; i < kMessages; ++i) {
    common::Uuid id;
    ASSERT_TRUE(AppendAndWait(i % 2 ? a : b, MakePayload({"t"}, std::to_string(i), &id)).ok());
    sent.insert(id);
  }
  auto ta = Target(a, "t");
  auto tb = Target(b, "t");
  std::multiset<common::Uuid> got;
  size_t by_a = 0;
  auto drain = [&](buffer::TargetQueue* t, size_t* count) {
    buffer::QueuedMessage m;
    common::Status e;
    while (t->Next(&m, &e) == buffer::TargetQueue::Result::kMessage) {
      got.insert(m.message.id);
      t->Finish(m.tag);
      if (count) ++*count;
      m = buffer::QueuedMessage();
    }
  };
  ASSERT_TRUE(driver_.RunUntil(
      [&] {
        drain(ta.get(), &by_a);
        drain(tb.get(), nullptr);
        return got.size() >= kMessages;
      },
      seconds(20)));
  driver_.RunFor(seconds(3));  // past a visibility timeout: nothing comes twice
  drain(ta.get(), &by_a);
  drain(tb.get(), nullptr);
  EXPECT_EQ(got.size(), size_t{kMessages});
  EXPECT_EQ(std::set<common::Uuid>(got.begin(), got.end()), sent);
  RecordProperty("delivered_by_a", static_cast<int>(by_a));
}

TEST_F(SqsQueueTest, DeadLettersStoreListPurgeAndReplay) {
  SqsQueue* q = OpenQueue(Options({"a"}));
  ASSERT_NE(q, nullptr);
  std::vector<common::Uuid> ids(3);
  for (int i = 0; i < 3; ++i) {
    buffer::DeadLetter dl;
    dl.target = "a";
    dl.seq = 0;
    dl.ingest_unix_ns = 1000 + static_cast<uint64_t>(i);
    dl.dead_unix_ns = 2000;
    dl.reason = i == 0 ? "rejected" : "max_attempts";
    dl.attempts = 3;
    dl.last_status = 422;
    dl.payload = MakePayload({"a"}, "dead" + std::to_string(i), &ids[static_cast<size_t>(i)]);
    ASSERT_TRUE(WaitDone([&](auto done) { return q->AppendDeadLetter(dl, done); }, nullptr).ok());
  }
  EXPECT_EQ(q->DeadLetterCount("a"), 3u);
  std::vector<buffer::DeadLetter> letters;
  ASSERT_TRUE(q->ListDeadLetters("a", &letters).ok());
  ASSERT_EQ(letters.size(), 3u);
  EXPECT_EQ(letters[0].reason, "rejected");
  EXPECT_EQ(letters[0].last_status, 422);
  EXPECT_EQ(letters[0].ingest_unix_ns, 1000u);

  // Another instance reads them from SQS (its scans; one may run while this instance's
  // own scan hides the letters: the next one sees them).
  SqsOptions other_options = Options({"a"});
  other_options.dead_letter_refresh = seconds(1);
  SqsQueue* other = OpenQueue(other_options);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(driver_.RunUntil([&] { return other->DeadLetterCount("a") == 3; }, seconds(10)));
  ASSERT_TRUE(other->ListDeadLetters("a", &letters).ok());
  std::set<common::Uuid> listed;
  for (const auto& l : letters) {
    auto m = buffer::DecodeMessage(l.payload);
    ASSERT_TRUE(m);
    listed.insert(m->id);
    EXPECT_EQ(l.attempts, 3u);
  }
  EXPECT_EQ(listed, std::set<common::Uuid>(ids.begin(), ids.end()));
  driver_.RunFor(milliseconds(300));  // its scan's letters made visible again
  CloseQueue(other);                  // its next scans would hide letters from this instance's

  // Purge one.
  uint64_t n = 0;
  ASSERT_TRUE(WaitDone([&](auto done) { return q->PurgeDeadLetters("a", ids[1], done); }, &n).ok());
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(q->DeadLetterCount("a"), 2u);
  ASSERT_TRUE(q->ListDeadLetters("a", &letters).ok());
  EXPECT_EQ(letters.size(), 2u);

  // Replay one: back in the target's queue, the letter gone.
  size_t queued = 0;
  ASSERT_TRUE(
      WaitDone([&](auto done) { return q->ReplayDeadLetters("a", ids[0], done, &queued); }, &n)
          .ok());
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(queued, 1u);
  EXPECT_EQ(q->DeadLetterCount("a"), 1u);
  auto t = Target(q, "a");
  auto m = Next(t.get(), seconds(10));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->message.id, ids[0]);
  EXPECT_EQ(m->ingest_unix_ns, 1000u);
  t->Finish(m->tag);

  // Purge all.
  ASSERT_TRUE(
      WaitDone([&](auto done) { return q->PurgeDeadLetters("a", std::nullopt, done); }, &n).ok());
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(q->DeadLetterCount("a"), 0u);
  ASSERT_TRUE(q->ListDeadLetters("a", &letters).ok());
  EXPECT_TRUE(letters.empty());
  // SQS agrees: a third instance finds none.
  SqsQueue* third = OpenQueue(Options({"a"}));
  ASSERT_NE(third, nullptr);
  driver_.RunFor(seconds(1));
  EXPECT_EQ(third->DeadLetterCount("a"), 0u);
}

TEST_F(SqsQueueTest, IdempotencyKeysAreKeptInMemoryOnly) {
  SqsQueue* q = OpenQueue(Options({"a"}));
  ASSERT_NE(q, nullptr);
  buffer::IdempotencyEntry e;
  e.scoped_key = "orders\nk1";
  ASSERT_TRUE(WaitDone([&](auto done) { return q->AppendIdempotencyKey(e, done); }, nullptr).ok());
  EXPECT_TRUE(q->TakeLoadedIdempotencyKeys().empty());
  EXPECT_EQ(q->bytes(), 0u);
  EXPECT_EQ(q->max_bytes(), 0u);
  EXPECT_EQ(q->segment_count(), 0u);
  EXPECT_EQ(q->BacklogBeforeRoom(0), 0u);
}

// Pids are reused: an earlier test binary with this pid may have left its emulator's log
// (with its "listening" line) under the name this one's takes. The port read must be
// the new emulator's.
TEST_F(SqsQueueTest, AnEmulatorLogLeftByAnEarlierProcessIsNotRead) {
  struct Planted {  // removed however the test ends: they would mislead later runs
    std::vector<std::string> paths;
    ~Planted() {
      for (const auto& path : paths) std::filesystem::remove(path);
    }
  } planted;
  for (int i = 0; i < 8; ++i) {
    std::string path = SqsEmulator::LogPathOfStart(i);
    if (std::filesystem::exists(path)) continue;  // this binary's own, maybe running
    std::ofstream(path) << "listening 1\n";
    planted.paths.push_back(path);
  }
  ASSERT_FALSE(planted.paths.empty());
  SqsEmulator own;
  std::string error;
  ASSERT_TRUE(own.Start(0, &error)) << error;
  EXPECT_NE(own.port(), 1) << "read a stale log";
  SqsQueue* q = OpenQueue(Options({"a"}, own.endpoint()));
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(AppendAndWait(q, MakePayload({"a"}, "m", nullptr)).ok());
  CloseQueue(q);
}

TEST_F(SqsQueueTest, SqsGoneMakesAppendsUnavailableUntilItIsBack) {
  SqsEmulator own;  // this test stops its own emulator, not the shared one
  std::string error;
  ASSERT_TRUE(own.Start(0, &error)) << error;
  uint16_t port = own.port();
  SqsQueue* q = OpenQueue(Options({"a"}, own.endpoint()));
  ASSERT_NE(q, nullptr);
  auto t = Target(q, "a");
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a"}, "before", nullptr)).ok());

  own.Stop();
  // Appends fail Unavailable, at once or when their SendMessage fails.
  common::Status last;
  auto give_up = Clock::now() + seconds(10);
  while (last.ok() && Clock::now() < give_up) {
    auto result = std::make_shared<AppendResult>();
    common::Status s = q->Append(MakePayload({"a"}, "during", nullptr), 1,
                                 [result](const common::Status& st, uint64_t) {
                                   result->done = true;
                                   result->status = st;
                                 });
    if (!s.ok()) {
      last = s;
      break;
    }
    ASSERT_TRUE(driver_.RunUntil([&] { return result->done; }, seconds(5)));
    last = result->status;
  }
  EXPECT_EQ(last.code(), common::Status::Code::kUnavailable) << last.ToString();
  ASSERT_TRUE(driver_.RunUntil([&] { return !q->Availability().ok(); }, seconds(10)));
  EXPECT_EQ(q->Availability().code(), common::Status::Code::kUnavailable);
  EXPECT_EQ(q->Append(MakePayload({"a"}, "fail-fast", nullptr), 1, [](auto&, auto) {}).code(),
            common::Status::Code::kUnavailable);

  // Back (empty: the emulator keeps queues in memory): the queues are created again.
  ASSERT_TRUE(own.Start(port, &error)) << error;
  ASSERT_TRUE(driver_.RunUntil([&] { return q->Availability().ok(); }, seconds(15)))
      << q->Availability().ToString();
  common::Uuid id;
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a"}, "after", &id)).ok());
  auto m = Next(t.get(), seconds(10));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->message.id, id);
  t->Finish(m->tag);
  CloseQueue(q);
}

TEST_F(SqsQueueTest, ForeignMessagesAreSkippedAndDeleted) {
  SqsQueue* q = OpenQueue(Options({"a"}));
  ASSERT_NE(q, nullptr);
  // Someone else's message in our queue: not base64 of a sluice message.
  SqsEndpoint e;
  ASSERT_TRUE(ParseSqsEndpoint(SharedEmulator().endpoint(), "us-east-1", &e).ok());
  SqsClient client(driver_.loop(), e, {"AKIDEXAMPLE", "secret", ""}, "us-east-1", clock_);
  std::optional<SqsReply> url;
  client.Call("GetQueueUrl", R"({"QueueName":")" + prefix_ + R"(a"})", seconds(5),
              [&](SqsReply r) { url = std::move(r); });
  ASSERT_TRUE(driver_.RunUntil([&] { return url.has_value(); }, seconds(5)));
  ASSERT_TRUE(url->ok()) << url->error;
  std::optional<SqsReply> sent;
  common::JsonWriter body;
  body.BeginObject().Key("QueueUrl").String(*url->body.FindString("QueueUrl"));
  body.Key("MessageBody").String("<not base64>").EndObject();
  client.Call("SendMessage", body.str(), seconds(5), [&](SqsReply r) { sent = std::move(r); });
  ASSERT_TRUE(driver_.RunUntil([&] { return sent.has_value(); }, seconds(5)));
  ASSERT_TRUE(sent->ok()) << sent->error;
  common::Uuid id;
  ASSERT_TRUE(AppendAndWait(q, MakePayload({"a"}, "ours", &id)).ok());
  auto t = Target(q, "a");
  // SQS does not keep order: ours may come before or after the foreign one.
  buffer::QueuedMessage m;
  bool got = false;
  ASSERT_TRUE(driver_.RunUntil(
      [&] {
        common::Status e;
        if (!got && t->Next(&m, &e) == buffer::TargetQueue::Result::kMessage) got = true;
        return got && t->skipped() == 1;
      },
      seconds(10)));
  EXPECT_EQ(m.message.id, id);
  t->Finish(m.tag);
  // Deleted, not left to come back: nothing more arrives past a visibility timeout.
  buffer::QueuedMessage more;
  common::Status error;
  EXPECT_FALSE(driver_.RunUntil(
      [&] { return t->Next(&more, &error) == buffer::TargetQueue::Result::kMessage; }, seconds(3)));
  EXPECT_EQ(t->skipped(), 1u);
  client.Shutdown();
}

// ---- Failures the emulator cannot produce, from a scripted fake ----

std::string QueueUrlOf(const std::string& body) {
  JsonValue v;
  if (!ParseJson(body, &v).ok()) return "";
  return std::string(v.FindString("QueueUrl").value_or(""));
}

// A healthy SQS: queue URLs "http://fake/<name>", empty long polls of 100 ms.
FakeSqs::Answer Healthy(const std::string& action, const std::string& body) {
  if (action == "GetQueueUrl") {
    JsonValue v;
    if (!ParseJson(body, &v).ok()) return {400, "{}", 0};
    return {200,
            R"({"QueueUrl":"http://fake/)" + std::string(v.FindString("QueueName").value_or("")) +
                R"("})",
            0};
  }
  if (action == "ReceiveMessage") return {200, "{}", 100};
  if (action == "SendMessage") return {200, R"({"MessageId":"m1"})", 0};
  return {200, "{}", 0};
}

TEST_F(SqsQueueTest, PartialFanOutFailureCompletesUnavailable) {
  std::string b_url = "http://fake/" + prefix_ + "b";
  FakeSqs fake([b_url](const std::string& action, const std::string& body) {
    if (action == "SendMessage" && QueueUrlOf(body) == b_url) {
      return FakeSqs::Answer{500, R"({"__type":"InternalError"})", 0};
    }
    return Healthy(action, body);
  });
  SqsQueue* q = OpenQueue(Options({"a", "b"}, fake.endpoint()));
  ASSERT_NE(q, nullptr);
  common::Status s = AppendAndWait(q, MakePayload({"a", "b"}, "x", nullptr));
  EXPECT_EQ(s.code(), common::Status::Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.ToString().find("InternalError"), std::string::npos) << s.ToString();
  EXPECT_EQ(fake.Count("SendMessage"), 2u);  // both were tried: a has its copy
  EXPECT_TRUE(AppendAndWait(q, MakePayload({"a"}, "x", nullptr)).ok());
  EXPECT_TRUE(q->Availability().ok());  // one failure is not an outage
}

TEST_F(SqsQueueTest, MessageTooLargeForSqsIsRefusedWithoutACall) {
  FakeSqs fake(Healthy);
  SqsOptions o = Options({"a"}, fake.endpoint());
  o.max_message_bytes = 400;
  SqsQueue* q = OpenQueue(o);
  ASSERT_NE(q, nullptr);
  common::Status s = q->Append(MakePayload({"a"}, std::string(300, 'x'), nullptr), 1,
                               [](auto&, auto) { ADD_FAILURE() << "done ran"; });
  EXPECT_EQ(s.code(), common::Status::Code::kUnavailable);
  EXPECT_NE(s.ToString().find("exceeds"), std::string::npos) << s.ToString();
  EXPECT_EQ(fake.Count("SendMessage"), 0u);
  EXPECT_TRUE(AppendAndWait(q, MakePayload({"a"}, "small", nullptr)).ok());
}

TEST_F(SqsQueueTest, ThrottlingMakesTheQueueUnavailableUntilACallSucceeds) {
  FakeSqs fake(Healthy);
  SqsQueue* q = OpenQueue(Options({"a"}, fake.endpoint()));
  ASSERT_NE(q, nullptr);
  auto t = Target(q, "a");
  fake.SetHandler([](const std::string&, const std::string&) {
    return FakeSqs::Answer{400, R"({"__type":"com.amazonaws.sqs#ThrottlingException"})", 0};
  });
  common::Status last;
  for (int i = 0; i < 10 && q->Availability().ok(); ++i) {
    last = AppendAndWait(q, MakePayload({"a"}, "x", nullptr));
    EXPECT_EQ(last.code(), common::Status::Code::kUnavailable) << last.ToString();
  }
  ASSERT_FALSE(q->Availability().ok());
  EXPECT_NE(q->Availability().ToString().find("ThrottlingException"), std::string::npos);
  // Fails fast meanwhile, without a call.
  size_t sends = fake.Count("SendMessage");
  EXPECT_EQ(q->Append(MakePayload({"a"}, "x", nullptr), 1, [](auto&, auto) {}).code(),
            common::Status::Code::kUnavailable);
  EXPECT_EQ(fake.Count("SendMessage"), sends);
  fake.SetHandler(Healthy);
  ASSERT_TRUE(driver_.RunUntil([&] { return q->Availability().ok(); }, seconds(5)));
  EXPECT_TRUE(AppendAndWait(q, MakePayload({"a"}, "x", nullptr)).ok());
}

TEST_F(SqsQueueTest, MalformedReceiveAnswersDeliverNothing) {
  std::atomic<int> n{0};
  FakeSqs fake([&n](const std::string& action, const std::string& body) {
    if (action != "ReceiveMessage") return Healthy(action, body);
    switch (n++) {
      case 0:
        return FakeSqs::Answer{200, R"({"Messages":5})", 0};
      case 1:
        return FakeSqs::Answer{200, R"({"Messages":[{"Body":"eA=="},7,null]})", 0};
      case 2:
        return FakeSqs::Answer{200, R"({"Messages":[{"ReceiptHandle":"r1","Body":7}]})", 0};
      case 3:
        return FakeSqs::Answer{200, R"({"Messages":[{"ReceiptHandle":"r2","Body":"eA=="}]})", 0};
      case 4:
        return FakeSqs::Answer{200, R"({"Messages":[)", 0};
      default:
        return FakeSqs::Answer{200, "{}", 100};
    }
  });
  SqsQueue* q = OpenQueue(Options({"a"}, fake.endpoint()));
  ASSERT_NE(q, nullptr);
  auto t = Target(q, "a");
  buffer::QueuedMessage m;
  common::Status e;
  EXPECT_FALSE(driver_.RunUntil(
      [&] { return t->Next(&m, &e) == buffer::TargetQueue::Result::kMessage; }, seconds(2)));
  // Two had receipt handles (a body that is not base64; base64 of "x", not a message):
  // skipped and deleted. The one without a handle cannot be deleted: ignored.
  EXPECT_EQ(t->skipped(), 2u);
  ASSERT_TRUE(driver_.RunUntil([&] { return fake.Count("DeleteMessage") == 2; }, seconds(2)));
  std::set<std::string> deleted;
  for (const auto& [action, body] : fake.calls()) {
    if (action != "DeleteMessage") continue;
    JsonValue v;
    ASSERT_TRUE(ParseJson(body, &v).ok());
    deleted.insert(std::string(v.FindString("ReceiptHandle").value_or("")));
  }
  EXPECT_EQ(deleted, (std::set<std::string>{"r1", "r2"}));
  EXPECT_GE(n.load(), 6);  // it went on polling
}

TEST_F(SqsQueueTest, DeletedQueueIsResolvedAgain) {
  std::atomic<bool> gone{true};
  FakeSqs fake([&gone](const std::string& action, const std::string& body) {
    if (action == "SendMessage" && gone.exchange(false)) {
      return FakeSqs::Answer{
          400, R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"})", 0};
    }
    return Healthy(action, body);
  });
  SqsQueue* q = OpenQueue(Options({"a"}, fake.endpoint()));
  ASSERT_NE(q, nullptr);
  size_t lookups = fake.Count("GetQueueUrl");
  EXPECT_EQ(AppendAndWait(q, MakePayload({"a"}, "x", nullptr)).code(),
            common::Status::Code::kUnavailable);
  ASSERT_TRUE(driver_.RunUntil([&] { return fake.Count("GetQueueUrl") > lookups && q->ready(); },
                               seconds(5)));
  EXPECT_TRUE(AppendAndWait(q, MakePayload({"a"}, "x", nullptr)).ok());
}

TEST_F(SqsQueueTest, HeldMessagesGetTheirVisibilityExtended) {
  std::atomic<int> receives{0};
  std::string payload64 = Base64Encode(MakePayload({"a"}, "held", nullptr));
  FakeSqs fake([&](const std::string& action, const std::string& body) {
    if (action == "ReceiveMessage" && receives++ == 0) {
      return FakeSqs::Answer{
          200,
          R"({"Messages":[{"MessageId":"m1","ReceiptHandle":"h1","Body":")" + payload64 + R"("}]})",
          0};
    }
    return Healthy(action, body);
  });
  SqsQueue* q = OpenQueue(Options({"a"}, fake.endpoint()));  // visibility 2s
  ASSERT_NE(q, nullptr);
  auto t = Target(q, "a");
  auto m = Next(t.get(), seconds(5));
  ASSERT_NE(m, nullptr);
  driver_.RunFor(milliseconds(4500));
  size_t extended = fake.Count("ChangeMessageVisibility");
  EXPECT_GE(extended, 3u);  // about every second while held for 4.5 s
  EXPECT_LE(extended, 6u);
  for (const auto& [action, body] : fake.calls()) {
    if (action != "ChangeMessageVisibility") continue;
    EXPECT_NE(body.find(R"("ReceiptHandle":"h1","VisibilityTimeout":2)"), std::string::npos)
        << body;
  }
  t->Finish(m->tag);
  ASSERT_TRUE(driver_.RunUntil([&] { return fake.Count("DeleteMessage") == 1; }, seconds(2)));
  driver_.RunFor(milliseconds(1500));
  EXPECT_EQ(fake.Count("ChangeMessageVisibility"), extended);  // finished: no more
}

// SQS delivers at least once: a copy of a message this instance still holds may come
// with another receive. It is not handed out a second time, and the delete names the
// newest receipt (SQS wants the latest one).
TEST_F(SqsQueueTest, HeldMessageReceivedAgainIsNotHandedOutTwice) {
  std::atomic<int> receives{0};
  std::string payload64 = Base64Encode(MakePayload({"a"}, "held", nullptr));
  FakeSqs fake([&](const std::string& action, const std::string& body) {
    if (action == "ReceiveMessage") {
      int n = receives++;
      if (n < 2) {
        std::string receipt = n == 0 ? "h1" : "h2";
        return FakeSqs::Answer{200,
                               R"({"Messages":[{"MessageId":"m1","ReceiptHandle":")" + receipt +
                                   R"(","Body":")" + payload64 + R"("}]})",
                               n == 0 ? 0 : 200};
      }
    }
    return Healthy(action, body);
  });
  SqsQueue* q = OpenQueue(Options({"a"}, fake.endpoint()));
  ASSERT_NE(q, nullptr);
  auto t = Target(q, "a");
  auto m = Next(t.get(), seconds(5));
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(driver_.RunUntil([&] { return receives >= 3; }, seconds(5)));
  EXPECT_FALSE(Next(t.get(), milliseconds(500))) << "handed out twice";
  t->Finish(m->tag);
  ASSERT_TRUE(driver_.RunUntil([&] { return fake.Count("DeleteMessage") == 1; }, seconds(2)));
  for (const auto& [action, body] : fake.calls()) {
    if (action != "DeleteMessage") continue;
    EXPECT_NE(body.find(R"("ReceiptHandle":"h2")"), std::string::npos) << body;
  }
}

// SQS hid a received message at some moment between the receive and its answer: the
// lease counts from the receive. An answer that took 1.5 s of a 2 s timeout is extended
// at the next tick, not a second later. And no long poll waits more than half the
// timeout, so no message can arrive with less than half of it left.
TEST_F(SqsQueueTest, LeaseCountsFromWhenTheReceiveWasSent) {
  std::atomic<int> receives{0};
  std::string payload64 = Base64Encode(MakePayload({"a"}, "slow", nullptr));
  FakeSqs fake([&](const std::string& action, const std::string& body) {
    if (action == "ReceiveMessage" && receives++ == 0) {
      return FakeSqs::Answer{
          200,
          R"({"Messages":[{"MessageId":"m1","ReceiptHandle":"h1","Body":")" + payload64 + R"("}]})",
          1500};
    }
    return Healthy(action, body);
  });
  SqsOptions o = Options({"a"}, fake.endpoint());  // visibility 2s
  o.wait_time_seconds = 20;
  SqsQueue* q = OpenQueue(o);
  ASSERT_NE(q, nullptr);
  auto t = Target(q, "a");
  auto m = Next(t.get(), seconds(5));
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(driver_.RunUntil([&] { return fake.Count("ChangeMessageVisibility") > 0; },
                               milliseconds(400)))
      << "not extended with under 0.5 s left";
  for (const auto& [action, body] : fake.calls()) {
    if (action != "ReceiveMessage" || body.find("-dead\"") != std::string::npos) continue;
    EXPECT_NE(body.find(R"("WaitTimeSeconds":1,)"), std::string::npos) << body;
  }
  t->Finish(m->tag);
}

}  // namespace
}  // namespace sluice::broker
