#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace sluice::common {
namespace {

TEST(Status, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kOk);
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s.errno_value(), 0);
}

TEST(Status, CarriesCodeMessageAndErrno) {
  Status s = Status::IoError("write segment 7", EIO);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_EQ(s.errno_value(), EIO);
  EXPECT_EQ(s.ToString(), "I/O error: write segment 7: Input/output error");
  EXPECT_EQ(Status::Corruption("bad crc").ToString(), "corruption: bad crc");
  EXPECT_TRUE(Status::Corruption("x").IsCorruption());
  EXPECT_TRUE(Status::NotFound("x").IsNotFound());
}

TEST(Status, FromErrnoClassifies) {
  EXPECT_TRUE(Status::FromErrno("f", ENOSPC).IsNoSpace());
  EXPECT_TRUE(Status::FromErrno("f", EDQUOT).IsNoSpace());
  EXPECT_TRUE(Status::FromErrno("f", ENOENT).IsNotFound());
  EXPECT_EQ(Status::FromErrno("f", EIO).code(), Status::Code::kIoError);
}

TEST(Status, CopiesAreIndependent) {
  Status a = Status::Busy("locked");
  Status b = a;
  EXPECT_EQ(b.ToString(), a.ToString());
  a = Status::OK();
  EXPECT_TRUE(a.ok());
  EXPECT_EQ(b.ToString(), "busy: locked");
  Status& same = b;
  b = same;  // self-assignment keeps the state
  EXPECT_EQ(b.ToString(), "busy: locked");
  Status c = std::move(b);
  EXPECT_EQ(c.code(), Status::Code::kBusy);
}

}  // namespace
}  // namespace sluice::common
