#include "buffer/read_ahead.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "tests/buffer/counting_fs.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

// A file of known bytes read through a small window; the counting file system shows
// which reads reached the disk.
class ReadAheadTest : public testing::Test {
 protected:
  static constexpr size_t kCapacity = 256;

  void SetUp() override { path_ = dir_.path() + "/file"; }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
  }

  int OpenFile(const std::string& content) {
    test::WriteFile(path_, content);
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    return fd;
  }

  std::string Read(int fd, uint64_t offset, size_t n, uint64_t limit) {
    std::string_view out;
    common::Status s = ahead_.Read(fs_, fd, offset, n, limit, &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::string(out);
  }

  size_t DiskReads() const { return fs_.Reads().size(); }

  test::ScratchDir dir_;
  std::string path_;
  std::vector<int> fds_;
  test::CountingFileSystem fs_;
  ReadAhead ahead_{kCapacity};
};

std::string Numbered(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

TEST_F(ReadAheadTest, ReadsInsideTheWindowCostNoDiskRead) {
  const std::string content = Numbered(1000);
  int fd = OpenFile(content);
  EXPECT_EQ(Read(fd, 0, 32, 1000), content.substr(0, 32));
  EXPECT_EQ(Read(fd, 32, 100, 1000), content.substr(32, 100));
  EXPECT_EQ(Read(fd, 200, 56, 1000), content.substr(200, 56));  // ends at the window's end
  EXPECT_EQ(DiskReads(), 1u);
  auto reads = fs_.Reads();
  EXPECT_EQ(reads[0].offset, 0u);
  EXPECT_EQ(reads[0].n, kCapacity);
}

TEST_F(ReadAheadTest, ReadCrossingTheWindowEndRefillsFromItsStart) {
  const std::string content = Numbered(1000);
  int fd = OpenFile(content);
  EXPECT_EQ(Read(fd, 0, 32, 1000), content.substr(0, 32));
  EXPECT_EQ(Read(fd, 250, 32, 1000), content.substr(250, 32));
  ASSERT_EQ(DiskReads(), 2u);
  EXPECT_EQ(fs_.Reads()[1].offset, 250u);
  EXPECT_EQ(Read(fd, 260, 100, 1000), content.substr(260, 100));  // inside the new window
  EXPECT_EQ(DiskReads(), 2u);
}

TEST_F(ReadAheadTest, ReadingBackwardsRefills) {
  const std::string content = Numbered(1000);
  int fd = OpenFile(content);
  EXPECT_EQ(Read(fd, 500, 32, 1000), content.substr(500, 32));
  EXPECT_EQ(Read(fd, 100, 32, 1000), content.substr(100, 32));
  EXPECT_EQ(DiskReads(), 2u);
}

TEST_F(ReadAheadTest, NeverReadsAtOrBeyondTheLimit) {
  int fd = OpenFile(Numbered(1000));
  Read(fd, 0, 32, 100);
  Read(fd, 96, 4, 100);
  for (const auto& r : fs_.Reads()) EXPECT_LE(r.offset + r.n, 100u);
}

// The writer appends after a fill: the bytes past the old limit were zeros (fallocated)
// when the window was filled, and must be read again, not served from it.
TEST_F(ReadAheadTest, BytesPastTheLimitOfTheFillAreReadAgain) {
  std::string content = std::string(64, 'a') + std::string(448, '\0');
  int fd = OpenFile(content);
  EXPECT_EQ(Read(fd, 0, 32, 64), std::string(32, 'a'));
  content.replace(64, 64, std::string(64, 'b'));
  test::WriteFile(path_, content);  // same inode: the descriptor sees the new bytes
  EXPECT_EQ(Read(fd, 64, 32, 128), std::string(32, 'b'));
  EXPECT_EQ(Read(fd, 96, 32, 128), std::string(32, 'b'));
  EXPECT_EQ(DiskReads(), 2u);
}

TEST_F(ReadAheadTest, ShortAtTheEndOfTheFile) {
  const std::string content = Numbered(40);
  int fd = OpenFile(content);
  EXPECT_EQ(Read(fd, 32, 16, 1000), content.substr(32, 8));
  EXPECT_EQ(Read(fd, 40, 8, 1000), "");
}

TEST_F(ReadAheadTest, ClearForgetsTheWindow) {
  const std::string content = Numbered(1000);
  int fd = OpenFile(content);
  Read(fd, 0, 32, 1000);
  ahead_.Clear();
  EXPECT_EQ(Read(fd, 0, 32, 1000), content.substr(0, 32));
  EXPECT_EQ(DiskReads(), 2u);
}

TEST_F(ReadAheadTest, AnotherDescriptorIsReadAfresh) {
  int first = OpenFile(Numbered(1000));
  Read(first, 0, 32, 1000);
  int second = OpenFile(std::string(1000, 'z'));
  EXPECT_EQ(Read(second, 0, 32, 1000), std::string(32, 'z'));
  EXPECT_EQ(DiskReads(), 2u);
}

}  // namespace
}  // namespace sluice::buffer
