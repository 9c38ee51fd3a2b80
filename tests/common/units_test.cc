#include "common/units.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace sluice::common {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kTiB = 1ull << 40;

TEST(ParseSize, PlainBytes) {
  EXPECT_EQ(ParseSize("0"), 0u);
  EXPECT_EQ(ParseSize("512"), 512u);
  EXPECT_EQ(ParseSize("512B"), 512u);
  EXPECT_EQ(ParseSize("18446744073709551615"), std::numeric_limits<uint64_t>::max());
}

TEST(ParseSize, BinarySuffixes) {
  EXPECT_EQ(ParseSize("64KiB"), 64 * kKiB);
  EXPECT_EQ(ParseSize("64MiB"), 64 * kMiB);
  EXPECT_EQ(ParseSize("1GiB"), kGiB);
  EXPECT_EQ(ParseSize("2TiB"), 2 * kTiB);
  EXPECT_EQ(ParseSize("0KiB"), 0u);
}

TEST(ParseSize, DecimalSuffixes) {
  EXPECT_EQ(ParseSize("64KB"), 64'000u);
  EXPECT_EQ(ParseSize("64kB"), 64'000u);
  EXPECT_EQ(ParseSize("1MB"), 1'000'000u);
  EXPECT_EQ(ParseSize("1GB"), 1'000'000'000u);
  EXPECT_EQ(ParseSize("3TB"), 3'000'000'000'000u);
}

TEST(ParseSize, SpaceBeforeTheSuffix) { EXPECT_EQ(ParseSize("64 MiB"), 64 * kMiB); }

TEST(ParseSize, Overflow) {
  EXPECT_EQ(ParseSize("18446744073709551616"), std::nullopt);  // 2^64
  EXPECT_EQ(ParseSize("99999999999999999999999"), std::nullopt);
  EXPECT_EQ(ParseSize("17179869184GiB"), std::nullopt);  // exactly 2^64
  EXPECT_EQ(ParseSize("17179869183GiB"), 17179869183ull * kGiB);
  EXPECT_EQ(ParseSize("16777216TiB"), std::nullopt);
  EXPECT_EQ(ParseSize("18446744073709552KB"), std::nullopt);
}

TEST(ParseSize, Garbage) {
  for (const char* text : {"", " ", "MiB", "abc", "1.5MiB", "1mib", "1MIB", "1KIB", "1kb", "1 GiBx",
                           "1GiB1", "0x10", "1e3", " 1", "1_000", "1,000", "1 2"}) {
    EXPECT_EQ(ParseSize(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(ParseSize, Negative) {
  EXPECT_EQ(ParseSize("-1"), std::nullopt);
  EXPECT_EQ(ParseSize("-1KiB"), std::nullopt);
  EXPECT_EQ(ParseSize("+1"), std::nullopt);
}

TEST(ParseDuration, EachSuffix) {
  EXPECT_EQ(ParseDuration("7ns"), 7ns);
  EXPECT_EQ(ParseDuration("7us"), 7us);
  EXPECT_EQ(ParseDuration("250ms"), 250ms);
  EXPECT_EQ(ParseDuration("30s"), 30s);
  EXPECT_EQ(ParseDuration("5m"), 5min);
  EXPECT_EQ(ParseDuration("72h"), 72h);
}

TEST(ParseDuration, Zero) {
  EXPECT_EQ(ParseDuration("0"), Duration(0));  // the only unitless duration
  EXPECT_EQ(ParseDuration("0s"), Duration(0));
  EXPECT_EQ(ParseDuration("0ms"), Duration(0));
  EXPECT_EQ(ParseDuration("5"), std::nullopt);
}

TEST(ParseDuration, Overflow) {
  EXPECT_EQ(ParseDuration("9223372036854775807ns"), Duration::max());
  EXPECT_EQ(ParseDuration("9223372036854775808ns"), std::nullopt);
  EXPECT_EQ(ParseDuration("2562047h"), 2562047h);
  EXPECT_EQ(ParseDuration("2562048h"), std::nullopt);
  EXPECT_EQ(ParseDuration("99999999999999999999s"), std::nullopt);
  EXPECT_EQ(ParseDuration("18446744073709551615h"), std::nullopt);
}

TEST(ParseDuration, Garbage) {
  for (const char* text : {"", "s", "ms", "1d", "1w", "1.5s", "1S", "1H", "1sec", "1 s s", "1s1",
                           "30 seconds", "1e3ms", " 1s", "1h30m"}) {
    EXPECT_EQ(ParseDuration(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(ParseDuration, Negative) {
  EXPECT_EQ(ParseDuration("-1s"), std::nullopt);
  EXPECT_EQ(ParseDuration("-0"), std::nullopt);
  EXPECT_EQ(ParseDuration("+1s"), std::nullopt);
}

TEST(ParseRate, EachUnit) {
  EXPECT_EQ(ParseRate("100/s"), Rate{100});
  EXPECT_EQ(ParseRate("120/m"), Rate{2});
  EXPECT_EQ(ParseRate("7200/h"), Rate{2});
  EXPECT_DOUBLE_EQ(ParseRate("1/h")->per_second, 1.0 / 3600);
}

TEST(ParseRate, Fractional) {
  EXPECT_EQ(ParseRate("0.5/s"), Rate{0.5});
  EXPECT_EQ(ParseRate("2.5/s"), Rate{2.5});
  EXPECT_EQ(ParseRate("100 /s"), Rate{100});  // space before the slash
}

TEST(ParseRate, Unlimited) {
  std::optional<Rate> rate = ParseRate("unlimited");
  ASSERT_TRUE(rate.has_value());
  EXPECT_TRUE(rate->unlimited());
  EXPECT_TRUE(std::isinf(rate->per_second));
  EXPECT_FALSE(ParseRate("100/s")->unlimited());
  EXPECT_FALSE(Rate{}.unlimited());
}

TEST(ParseRate, Overflow) {
  EXPECT_EQ(ParseRate("1" + std::string(400, '0') + "/s"), std::nullopt);
  EXPECT_EQ(ParseRate("0." + std::string(400, '0') + "1/s"), std::nullopt);  // underflows to 0
  EXPECT_EQ(ParseRate("1" + std::string(300, '0') + "/s"), Rate{1e300});
}

TEST(ParseRate, ZeroIsNotARate) {
  EXPECT_EQ(ParseRate("0/s"), std::nullopt);
  EXPECT_EQ(ParseRate("0.0/m"), std::nullopt);
}

TEST(ParseRate, Garbage) {
  for (const char* text :
       {"",          "fast",        "100",    "/s",   "100/",  "100/d",   "100/S",
        "100/sec",   "100/s ",      "1e3/s",  ".5/s", "5./s",  "1.2.3/s", "Unlimited",
        "UNLIMITED", "unlimited/s", "100//s", "1/1s", "inf/s", "nan/s",   "0x10/s"}) {
    EXPECT_EQ(ParseRate(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(ParseRate, Negative) {
  EXPECT_EQ(ParseRate("-1/s"), std::nullopt);
  EXPECT_EQ(ParseRate("-0.5/m"), std::nullopt);
  EXPECT_EQ(ParseRate("+1/s"), std::nullopt);
}

}  // namespace
}  // namespace sluice::common
