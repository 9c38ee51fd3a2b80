#include "buffer/idempotency.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer::test {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

IdempotencyEntry Entry(const std::string& key, uint64_t expires, uint64_t fingerprint = 7) {
  IdempotencyEntry e;
  e.scoped_key = key;
  e.id.bytes[0] = static_cast<uint8_t>(key.size());
  e.fingerprint = fingerprint;
  e.expires_unix_ns = expires;
  return e;
}

TEST(IdempotencyIndexTest, FindsLiveKeysOnly) {
  IdempotencyIndex index(100);
  index.Insert(Entry("r\nk", 10 * kSecond), /*pending=*/true);
  ASSERT_NE(index.Find("r\nk", 5 * kSecond), nullptr);
  EXPECT_TRUE(index.Find("r\nk", 5 * kSecond)->pending);
  index.MarkDone("r\nk");
  EXPECT_FALSE(index.Find("r\nk", 5 * kSecond)->pending);
  EXPECT_EQ(index.Find("r\nk", 10 * kSecond), nullptr) << "expired at its deadline";
  EXPECT_EQ(index.Find("r\nother", 5 * kSecond), nullptr);
}

TEST(IdempotencyIndexTest, ExpireFreesMemory) {
  IdempotencyIndex index(100);
  for (int i = 0; i < 50; ++i)
    index.Insert(Entry("k" + std::to_string(i), (i + 1) * kSecond), false);
  index.Expire(25 * kSecond);
  EXPECT_EQ(index.size(), 25u);
  EXPECT_NE(index.Find("k30", 25 * kSecond), nullptr);
}

TEST(IdempotencyIndexTest, BoundedByForgettingTheOldest) {
  IdempotencyIndex index(3);
  for (int i = 0; i < 5; ++i) index.Insert(Entry("k" + std::to_string(i), 100 * kSecond), false);
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(index.evicted(), 2u);
  EXPECT_EQ(index.Find("k0", 0), nullptr);
  EXPECT_EQ(index.Find("k1", 0), nullptr);
  EXPECT_NE(index.Find("k4", 0), nullptr);
}

TEST(IdempotencyIndexTest, EraseForgetsAFailedFirstRequest) {
  IdempotencyIndex index(10);
  index.Insert(Entry("k", 100 * kSecond), true);
  index.Erase("k");
  EXPECT_EQ(index.Find("k", 0), nullptr);
}

TEST(IdempotencyEntryTest, RoundTripsAndRejectsTruncation) {
  IdempotencyEntry e = Entry("orders\norder-42", 123 * kSecond, 0xdeadbeef);
  std::string encoded = EncodeIdempotencyEntry(e);
  auto decoded = DecodeIdempotencyEntry(encoded);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->scoped_key, e.scoped_key);
  EXPECT_EQ(decoded->id, e.id);
  EXPECT_EQ(decoded->fingerprint, e.fingerprint);
  EXPECT_EQ(decoded->expires_unix_ns, e.expires_unix_ns);
  for (size_t n = 0; n < encoded.size(); ++n) {
    EXPECT_FALSE(DecodeIdempotencyEntry(encoded.substr(0, n))) << "truncated at " << n;
  }
}

TEST(IdempotencyFilesTest, EntriesSurviveReopenUntilTheyExpire) {
  ScratchDir dir;
  std::string path = dir.path() + "/idem";
  {
    IdempotencyFiles files(FileSystem::Default(), path, 600 * kSecond);
    std::vector<IdempotencyEntry> live;
    ASSERT_TRUE(files.Open(1000 * kSecond, &live).ok());
    EXPECT_TRUE(live.empty());
    ASSERT_TRUE(
        files.Append({Entry("a", 2000 * kSecond), Entry("b", 3000 * kSecond)}, 1000 * kSecond, true)
            .ok());
  }
  IdempotencyFiles files(FileSystem::Default(), path, 600 * kSecond);
  std::vector<IdempotencyEntry> live;
  ASSERT_TRUE(files.Open(2500 * kSecond, &live).ok());
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].scoped_key, "b");
}

TEST(IdempotencyFilesTest, FullyExpiredFilesAreDeleted) {
  ScratchDir dir;
  std::string path = dir.path() + "/idem";
  IdempotencyFiles files(FileSystem::Default(), path, 10 * kSecond);
  std::vector<IdempotencyEntry> live;
  ASSERT_TRUE(files.Open(0, &live).ok());
  ASSERT_TRUE(files.Append({Entry("a", 50 * kSecond)}, 1 * kSecond, true).ok());
  ASSERT_TRUE(files.Append({Entry("b", 90 * kSecond)}, 20 * kSecond, true).ok());  // rolls
  auto count = [&] {
    return std::distance(std::filesystem::directory_iterator(path),
                         std::filesystem::directory_iterator());
  };
  EXPECT_EQ(count(), 2);
  ASSERT_TRUE(files.DropExpired(60 * kSecond).ok());
  EXPECT_EQ(count(), 1) << "the first file held only expired keys";
  ASSERT_TRUE(files.DropExpired(100 * kSecond).ok());
  EXPECT_EQ(count(), 1) << "the file being written stays";
}

}  // namespace
}  // namespace sluice::buffer::test
