// Dead-letter listing, purge and replay through the Log: the library functions the
// admin API exposes.
#include <gtest/gtest.h>

#include "buffer/dead_letter.h"
#include "buffer/log.h"
#include "buffer/log_reader.h"
#include "buffer/message.h"
#include "tests/buffer/log_fixture.h"

namespace sluice::buffer::test {
namespace {

class DeadLetterStoreTest : public LogFixture {
 protected:
  DeadLetterStoreTest() { options_.targets = {"orders", "audit"}; }

  // Stores a dead letter for `target` holding a message with a fresh id and `body`;
  // returns the message id.
  common::Uuid Bury(const std::string& target, const std::string& body, const char* reason) {
    Message m;
    m.id = ids_.Next(1'700'000'000'000 + next_++);
    m.method = "POST";
    m.target = "/orders";
    m.targets = {"orders", "audit"};
    m.body = body;
    DeadLetter dl;
    dl.target = target;
    dl.seq = next_;
    dl.ingest_unix_ns = 42;
    dl.reason = reason;
    dl.attempts = 3;
    dl.last_status = 400;
    dl.payload = EncodeMessage(m);
    bool done = false;
    common::Status status;
    EXPECT_TRUE(log_->AppendDeadLetter(dl,
                                       [&](const common::Status& s, uint64_t) {
                                         status = s;
                                         done = true;
                                       })
                    .ok());
    EXPECT_TRUE(RunUntil([&] { return done; }));
    EXPECT_TRUE(status.ok()) << status.ToString();
    return m.id;
  }

  std::vector<std::string> Bodies(const std::string& target) {
    std::vector<DeadLetter> letters;
    EXPECT_TRUE(log_->ListDeadLetters(target, &letters).ok());
    std::vector<std::string> bodies;
    for (const auto& l : letters) bodies.push_back(DecodeMessage(l.payload)->body);
    return bodies;
  }

  // Runs a purge or replay and waits for its callback; returns the count it reports.
  uint64_t Await(const std::function<common::Status(Log::AppendDone)>& start,
                 common::Status* status = nullptr) {
    bool done = false;
    uint64_t count = 0;
    common::Status result;
    common::Status s = start([&](const common::Status& st, uint64_t n) {
      result = st;
      count = n;
      done = true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return 0;
    EXPECT_TRUE(RunUntil([&] { return done; }));
    if (status != nullptr) *status = result;
    EXPECT_TRUE(result.ok()) << result.ToString();
    return count;
  }

  common::UuidV7Generator ids_{7};
  uint64_t next_ = 1;
};

TEST_F(DeadLetterStoreTest, ListsLettersInOrderWithTheirReasons) {
  ASSERT_TRUE(Open());
  Bury("orders", "a", "rejected");
  Bury("orders", "b", "max_attempts");
  Bury("audit", "c", "expired");
  std::vector<DeadLetter> letters;
  ASSERT_TRUE(log_->ListDeadLetters("orders", &letters).ok());
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].reason, "rejected");
  EXPECT_EQ(letters[0].attempts, 3u);
  EXPECT_EQ(letters[0].last_status, 400);
  EXPECT_EQ(letters[0].target, "orders");
  EXPECT_EQ(letters[1].reason, "max_attempts");
  EXPECT_EQ(Bodies("audit"), std::vector<std::string>{"c"});
  EXPECT_EQ(log_->DeadLetterCount("orders"), 2u);
}

TEST_F(DeadLetterStoreTest, UnknownTargetIsNotFound) {
  ASSERT_TRUE(Open());
  std::vector<DeadLetter> letters;
  EXPECT_TRUE(log_->ListDeadLetters("nope", &letters).IsNotFound());
  EXPECT_TRUE(log_->PurgeDeadLetters("nope", std::nullopt, [](const common::Status&, uint64_t) {})
                  .IsNotFound());
}

TEST_F(DeadLetterStoreTest, PurgeOneByIdKeepsTheOthersAcrossRestart) {
  ASSERT_TRUE(Open());
  Bury("orders", "a", "rejected");
  common::Uuid b = Bury("orders", "b", "rejected");
  Bury("orders", "c", "rejected");
  EXPECT_EQ(Await([&](Log::AppendDone d) { return log_->PurgeDeadLetters("orders", b, d); }), 1u);
  EXPECT_EQ(Bodies("orders"), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(log_->DeadLetterCount("orders"), 2u);
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(Bodies("orders"), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(log_->DeadLetterCount("orders"), 2u);
  // Still appendable after the rewrite.
  Bury("orders", "d", "expired");
  EXPECT_EQ(Bodies("orders"), (std::vector<std::string>{"a", "c", "d"}));
}

TEST_F(DeadLetterStoreTest, PurgeAllEmptiesOnlyThatTarget) {
  ASSERT_TRUE(Open());
  Bury("orders", "a", "rejected");
  Bury("orders", "b", "rejected");
  Bury("audit", "c", "rejected");
  EXPECT_EQ(
      Await([&](Log::AppendDone d) { return log_->PurgeDeadLetters("orders", std::nullopt, d); }),
      2u);
  EXPECT_TRUE(Bodies("orders").empty());
  EXPECT_EQ(Bodies("audit"), std::vector<std::string>{"c"});
}

TEST_F(DeadLetterStoreTest, ReplayQueuesTheMessageForThatTargetOnlyAndRemovesTheLetter) {
  ASSERT_TRUE(Open());
  uint64_t before = log_->readable_end();
  Bury("orders", "a", "rejected");
  common::Uuid b = Bury("orders", "b", "rejected");
  EXPECT_EQ(Await([&](Log::AppendDone d) { return log_->ReplayDeadLetters("orders", b, d); }), 1u);
  EXPECT_EQ(Bodies("orders"), std::vector<std::string>{"a"});
  auto records = ReadAll(before);
  ASSERT_EQ(records.size(), 1u);
  auto message = DecodeMessage(records[0].payload);
  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(message->id, b) << "a replayed message keeps its id (downstreams deduplicate on it)";
  EXPECT_EQ(message->body, "b");
  EXPECT_EQ(message->targets, std::vector<std::string>{"orders"})
      << "the other fan-out target already had it";
}

TEST_F(DeadLetterStoreTest, ReplayAllThenNothingLeft) {
  ASSERT_TRUE(Open());
  uint64_t before = log_->readable_end();
  for (const char* body : {"a", "b", "c"}) Bury("audit", body, "max_attempts");
  EXPECT_EQ(
      Await([&](Log::AppendDone d) { return log_->ReplayDeadLetters("audit", std::nullopt, d); }),
      3u);
  EXPECT_TRUE(Bodies("audit").empty());
  EXPECT_EQ(log_->DeadLetterCount("audit"), 0u);
  EXPECT_EQ(ReadAll(before).size(), 3u);
  EXPECT_TRUE(log_->ReplayDeadLetters("audit", std::nullopt, [](const common::Status&, uint64_t) {})
                  .IsNotFound());
}

TEST_F(DeadLetterStoreTest, ReplayOfUnknownIdIsNotFound) {
  ASSERT_TRUE(Open());
  Bury("orders", "a", "rejected");
  common::Uuid other = ids_.Next(1);
  EXPECT_TRUE(log_->ReplayDeadLetters("orders", other, [](const common::Status&, uint64_t) {})
                  .IsNotFound());
  EXPECT_EQ(Bodies("orders"), std::vector<std::string>{"a"});
}

}  // namespace
}  // namespace sluice::buffer::test
