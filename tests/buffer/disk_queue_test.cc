// DiskQueue through the Queue interface: what dispatch relies on (each target sees its
// own messages in order, the cursor is the lowest unfinished one, a reopen resumes
// there) and what a reload relies on (a re-added target resumes with its depth).
#include "buffer/disk_queue.h"

#include <gtest/gtest.h>

#include "tests/buffer/queue_driver.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer::test {
namespace {

class DiskQueueTest : public testing::Test {
 protected:
  void Open(std::vector<std::string> targets, uint64_t max_bytes = 1 << 20) {
    queue_.reset();
    LogOptions options;
    options.dir = dir_.path();
    options.segment_bytes = 64 << 10;
    options.max_bytes = max_bytes;
    options.fsync = FsyncPolicy::kNever;
    options.targets = std::move(targets);
    ASSERT_TRUE(DiskQueue::Open(options, driver_.Events(), &queue_).ok());
  }
  std::unique_ptr<TargetQueue> Target(const std::string& name, bool added = false) {
    std::unique_ptr<TargetQueue> t;
    common::Status s = queue_->OpenTarget(name, added, &t);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return t;
  }
  static std::vector<std::string> Bodies(const std::vector<QueuedMessage>& messages) {
    std::vector<std::string> out;
    for (const auto& m : messages) out.push_back(BodyOf(m));
    return out;
  }

  ScratchDir dir_;
  QueueDriver driver_;
  std::unique_ptr<DiskQueue> queue_;
};

TEST_F(DiskQueueTest, EachTargetSeesOnlyItsMessagesInOrder) {
  Open({"a", "b"});
  ASSERT_TRUE(driver_.Store(*queue_, {"a"}, "1").ok());
  ASSERT_TRUE(driver_.Store(*queue_, {"a", "b"}, "2").ok());
  ASSERT_TRUE(driver_.Store(*queue_, {"b"}, "3").ok());
  auto a = Target("a");
  auto b = Target("b");
  EXPECT_EQ(Bodies(driver_.Drain(*a)), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(Bodies(driver_.Drain(*b)), (std::vector<std::string>{"2", "3"}));
}

TEST_F(DiskQueueTest, ProgressIsTheLowestUnfinishedMessage) {
  Open({"a"});
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(driver_.Store(*queue_, {"a"}, std::to_string(i)).ok());
  auto a = Target("a");
  auto got = driver_.Drain(*a);
  ASSERT_EQ(got.size(), 4u);
  uint64_t start = a->progress();
  EXPECT_EQ(start, got[0].tag);
  a->Finish(got[1].tag);
  a->Finish(got[3].tag);
  EXPECT_EQ(a->progress(), got[0].tag) << "the first is not finished";
  a->Finish(got[0].tag);
  EXPECT_EQ(a->progress(), got[2].tag);
  a->Finish(got[2].tag);
  EXPECT_EQ(a->progress(), got[3].tag + 1);
}

TEST_F(DiskQueueTest, ReopenDeliversWhatWasNotFinishedAndCountsIt) {
  Open({"a"});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(driver_.Store(*queue_, {"a"}, std::to_string(i)).ok());
  {
    auto a = Target("a");
    auto got = driver_.Drain(*a);
    ASSERT_EQ(got.size(), 3u);
    a->Finish(got[0].tag);
    a->Finish(got[2].tag);  // out of order: "1" is still in flight at the "crash"
  }
  queue_->Close();
  Open({"a"});
  auto a = Target("a");
  EXPECT_EQ(a->queued_at_open(), 2u) << "1 and 2: the cursor could not pass 1";
  EXPECT_EQ(Bodies(driver_.Drain(*a)), (std::vector<std::string>{"1", "2"}))
      << "at least once: 2 was finished above the cursor and is delivered again";
}

TEST_F(DiskQueueTest, ReaddedTargetResumesWithItsDepth) {
  Open({"a", "b"});
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(driver_.Store(*queue_, {"a", "b"}, std::to_string(i)).ok());
  }
  {
    auto b = Target("b");
    auto got = driver_.Drain(*b);
    ASSERT_EQ(got.size(), 3u);
    b->Finish(got[0].tag);
  }
  queue_->RemoveTarget("b");  // a reload removes b, a later one adds it back
  auto b = Target("b", /*added=*/true);
  EXPECT_EQ(b->queued_at_open(), 2u);
  EXPECT_EQ(Bodies(driver_.Drain(*b)), (std::vector<std::string>{"1", "2"}));
}

TEST_F(DiskQueueTest, NewTargetAddedByReloadStartsAtTheEnd) {
  Open({"a"});
  ASSERT_TRUE(driver_.Store(*queue_, {"a"}, "before").ok());
  auto c = Target("c", /*added=*/true);
  EXPECT_EQ(c->queued_at_open(), 0u);
  EXPECT_TRUE(driver_.Drain(*c).empty());
  ASSERT_TRUE(driver_.Store(*queue_, {"c"}, "after").ok());
  EXPECT_EQ(Bodies(driver_.Drain(*c)), (std::vector<std::string>{"after"}));
}

TEST_F(DiskQueueTest, UndecodableRecordIsSkippedAndCounted) {
  Open({"a"});
  bool done = false;
  ASSERT_TRUE(
      queue_->Append("not a message", 1, [&](const common::Status&, uint64_t) { done = true; })
          .ok());
  ASSERT_TRUE(driver_.RunUntil(*queue_, [&] { return done; }));
  ASSERT_TRUE(driver_.Store(*queue_, {"a"}, "good").ok());
  auto a = Target("a");
  EXPECT_EQ(Bodies(driver_.Drain(*a)), (std::vector<std::string>{"good"}));
  EXPECT_EQ(a->skipped(), 1u);
}

TEST_F(DiskQueueTest, FullQueueRefusesAppendsWithBusy) {
  Open({"a"}, /*max_bytes=*/4096);
  EXPECT_TRUE(queue_->Availability().ok());
  common::Status s;
  for (int i = 0; i < 100 && s.ok(); ++i) s = driver_.Store(*queue_, {"a"}, std::string(512, 'x'));
  EXPECT_EQ(s.code(), common::Status::Code::kBusy) << s.ToString();
}

}  // namespace
}  // namespace sluice::buffer::test
