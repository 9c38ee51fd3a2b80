#include "buffer/cursor_file.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

constexpr uint64_t kDefault = 17;

class CursorFileTest : public testing::Test {
 protected:
  CursorFileTest() : path_(dir_.path() + "/t.cur") {}

  // Opens a fresh CursorFile on path_ and returns the loaded position.
  uint64_t Load() {
    file_ = std::make_unique<CursorFile>();
    uint64_t seq = 0;
    common::Status s = file_->Open(path_, kDefault, &seq);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(file_->stored(), seq);
    return seq;
  }

  void Store(uint64_t seq) {
    common::Status s = file_->Store(seq);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(file_->stored(), seq);
  }

  // Stores `seq` and returns the byte range the store changed: the slot just written.
  std::pair<size_t, size_t> StoreAndFindSlot(uint64_t seq) {
    std::string before = test::ReadFile(path_);
    Store(seq);
    std::string after = test::ReadFile(path_);
    before.resize(after.size(), '\0');
    size_t first = 0, last = after.size();
    while (first < after.size() && before[first] == after[first]) ++first;
    while (last > first && before[last - 1] == after[last - 1]) --last;
    EXPECT_LT(first, last) << "Store changed nothing";
    return {first, last};
  }

  test::ScratchDir dir_;
  std::string path_;
  std::unique_ptr<CursorFile> file_;
};

TEST_F(CursorFileTest, NewFileYieldsDefault) {
  EXPECT_FALSE(test::FileExists(path_));
  EXPECT_EQ(Load(), kDefault);
  EXPECT_TRUE(test::FileExists(path_));
}

TEST_F(CursorFileTest, EmptyFileYieldsDefault) {
  test::WriteFile(path_, "");
  EXPECT_EQ(Load(), kDefault);
}

TEST_F(CursorFileTest, StoreThenReopen) {
  Load();
  Store(42);
  EXPECT_EQ(Load(), 42u);
}

TEST_F(CursorFileTest, LatestOfManyStoresWins) {
  Load();
  for (uint64_t seq = 1; seq <= 50; ++seq) Store(seq * 3);
  EXPECT_EQ(Load(), 150u);
  Store(7);  // a cursor may be set back; the newest store wins, not the largest value
  EXPECT_EQ(Load(), 7u);
}

TEST_F(CursorFileTest, LargeValuesSurvive) {
  Load();
  Store(UINT64_MAX);
  EXPECT_EQ(Load(), UINT64_MAX);
}

TEST_F(CursorFileTest, StoresAlternateSlots) {
  Load();
  const size_t a = StoreAndFindSlot(10).first / 32;
  const size_t b = StoreAndFindSlot(20).first / 32;
  const size_t c = StoreAndFindSlot(30).first / 32;
  EXPECT_NE(a, b);
  EXPECT_EQ(a, c);
}

TEST_F(CursorFileTest, TornNewerSlotFallsBackToOlder) {
  Load();
  Store(10);
  std::string before_newer = test::ReadFile(path_);
  auto [first, last] = StoreAndFindSlot(20);
  const std::string good = test::ReadFile(path_);
  const size_t slot = first / 32 * 32;
  ASSERT_LE(last, slot + 32);
  // Every byte of the newer slot's generation, position and checksum.
  for (size_t i = slot; i < slot + 24; ++i) {
    SCOPED_TRACE(i);
    test::WriteFile(path_, good);
    test::FlipBit(path_, i, static_cast<int>(i % 8));
    EXPECT_EQ(Load(), 10u);
  }
  // A torn write: a prefix of the new slot reached the disk, the rest is the old bytes.
  before_newer.resize(good.size(), '\0');
  for (size_t cut = slot + 1; cut < last; ++cut) {
    SCOPED_TRACE(cut);
    std::string torn = good.substr(0, cut) + before_newer.substr(cut);
    test::WriteFile(path_, torn);
    uint64_t loaded = Load();
    EXPECT_EQ(loaded, 10u);
  }
}

TEST_F(CursorFileTest, StoreAfterFallbackKeepsTheGoodSlot) {
  Load();
  Store(10);
  auto [first, last] = StoreAndFindSlot(20);
  test::FlipBit(path_, first, 0);
  ASSERT_EQ(Load(), 10u);
  // The next store must reuse the damaged slot: if it overwrote the good one, a torn
  // write now would leave nothing valid.
  auto [again_first, again_last] = StoreAndFindSlot(30);
  EXPECT_EQ(again_first / 32, first / 32);
  EXPECT_EQ(Load(), 30u);
  test::FlipBit(path_, again_first, 0);
  EXPECT_EQ(Load(), 10u);
  (void)last;
  (void)again_last;
}

TEST_F(CursorFileTest, OlderSlotDamagedKeepsNewer) {
  Load();
  auto [older, older_end] = StoreAndFindSlot(10);
  Store(20);
  test::FlipBit(path_, older, 3);
  EXPECT_EQ(Load(), 20u);
  (void)older_end;
}

TEST_F(CursorFileTest, BothSlotsGarbageYieldsDefault) {
  Load();
  Store(10);
  Store(20);
  std::string garbage(64, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 37 + 11);
  test::WriteFile(path_, garbage);
  EXPECT_EQ(Load(), kDefault);
}

TEST_F(CursorFileTest, ShortFileYieldsDefault) {
  Load();
  Store(10);  // the only valid slot ends where the file ends
  const std::string content = test::ReadFile(path_);
  for (size_t n = 0; n < content.size(); ++n) {
    SCOPED_TRACE(n);
    test::WriteFile(path_, content.substr(0, n));
    EXPECT_EQ(Load(), kDefault);
  }
}

TEST_F(CursorFileTest, AllZeroSlotsYieldDefault) {
  test::WriteFile(path_, std::string(64, '\0'));
  EXPECT_EQ(Load(), kDefault);
}

}  // namespace
}  // namespace sluice::buffer
