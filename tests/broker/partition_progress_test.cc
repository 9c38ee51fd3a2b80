#include "broker/partition_progress.h"

#include <gtest/gtest.h>

namespace sluice::broker {
namespace {

TEST(PartitionProgressTest, NothingSeenCommitsNothing) {
  PartitionProgress p;
  EXPECT_EQ(p.CommitPoint(), -1);
}

TEST(PartitionProgressTest, InOrderFinishesCommitPastTheLast) {
  PartitionProgress p;
  p.Seen(10, true);
  p.Seen(11, true);
  EXPECT_EQ(p.CommitPoint(), 10);
  EXPECT_TRUE(p.Finish(10));
  EXPECT_EQ(p.CommitPoint(), 11);
  EXPECT_TRUE(p.Finish(11));
  EXPECT_EQ(p.CommitPoint(), 12);
}

TEST(PartitionProgressTest, OutOfOrderFinishStaysAtLowestUnfinished) {
  PartitionProgress p;
  for (int64_t o = 0; o < 5; ++o) p.Seen(o, true);
  EXPECT_TRUE(p.Finish(4));
  EXPECT_TRUE(p.Finish(1));
  EXPECT_TRUE(p.Finish(2));
  EXPECT_EQ(p.CommitPoint(), 0);
  EXPECT_TRUE(p.Finish(0));
  EXPECT_EQ(p.CommitPoint(), 3);
  EXPECT_EQ(p.unfinished(), 1u);
}

TEST(PartitionProgressTest, OtherTargetsMessagesMoveTheCommitAlone) {
  PartitionProgress p;
  p.Seen(7, false);
  p.Seen(8, false);
  EXPECT_EQ(p.CommitPoint(), 9);
  p.Seen(9, true);
  p.Seen(10, false);
  EXPECT_EQ(p.CommitPoint(), 9);
  EXPECT_TRUE(p.Finish(9));
  EXPECT_EQ(p.CommitPoint(), 11);
}

TEST(PartitionProgressTest, SecondFinishIsRefused) {
  PartitionProgress p;
  p.Seen(3, true);
  EXPECT_TRUE(p.Finish(3));
  EXPECT_FALSE(p.Finish(3));
  EXPECT_FALSE(p.Finish(99));
  EXPECT_EQ(p.CommitPoint(), 4);
}

}  // namespace
}  // namespace sluice::broker
