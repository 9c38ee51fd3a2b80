#include "broker/dead_letter_view.h"

#include <gtest/gtest.h>

namespace sluice::broker {
namespace {

common::Uuid Id(uint8_t n) {
  common::Uuid id;
  id.bytes[15] = n;
  return id;
}

buffer::DeadLetter Letter(const std::string& reason, uint64_t dead_ns) {
  buffer::DeadLetter dl;
  dl.target = "a";
  dl.reason = reason;
  dl.dead_unix_ns = dead_ns;
  return dl;
}

TEST(DeadLetterViewTest, TombstoneDeletes) {
  DeadLetterView v;
  v.Apply(Id(1), 0, 5, Letter("rejected", 1));
  v.Apply(Id(2), 1, 3, Letter("expired", 2));
  EXPECT_EQ(v.count(), 2u);
  v.Apply(Id(1), 0, 6, std::nullopt);
  EXPECT_EQ(v.count(), 1u);
  EXPECT_EQ(v.Find(Id(1)), nullptr);
  ASSERT_NE(v.Find(Id(2)), nullptr);
  EXPECT_EQ(v.Find(Id(2))->reason, "expired");
}

// Our own delivery report applies the tombstone first; the tailing reader then reads
// the older letter record: it must not come back.
TEST(DeadLetterViewTest, OlderRecordReadLateIsIgnored) {
  DeadLetterView v;
  v.Apply(Id(1), 2, 10, Letter("rejected", 1));
  v.Apply(Id(1), 2, 11, std::nullopt);
  v.Apply(Id(1), 2, 10, Letter("rejected", 1));  // the reader catches up
  EXPECT_EQ(v.count(), 0u);
  v.Apply(Id(1), 2, 11, std::nullopt);
  EXPECT_EQ(v.count(), 0u);
}

TEST(DeadLetterViewTest, NewerLetterReplacesWithoutDoubleCounting) {
  DeadLetterView v;
  v.Apply(Id(1), 0, 1, Letter("rejected", 1));
  v.Apply(Id(1), 0, 2, Letter("max_attempts", 2));
  EXPECT_EQ(v.count(), 1u);
  EXPECT_EQ(v.Find(Id(1))->reason, "max_attempts");
}

TEST(DeadLetterViewTest, ListsOldestFirstAndIdsOfLiveLetters) {
  DeadLetterView v;
  v.Apply(Id(1), 0, 1, Letter("late", 30));
  v.Apply(Id(2), 0, 2, Letter("early", 10));
  v.Apply(Id(3), 0, 3, Letter("gone", 20));
  v.Apply(Id(3), 0, 4, std::nullopt);
  auto list = v.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].reason, "early");
  EXPECT_EQ(list[1].reason, "late");
  EXPECT_EQ(v.Ids().size(), 2u);
}

}  // namespace
}  // namespace sluice::broker
