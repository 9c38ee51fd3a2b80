#include "limiter/retry_after.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>

namespace sluice::limiter {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

// Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110.
constexpr seconds kExampleDate{784111777};
// Two minutes before it: every example form then means "in 120 s".
constexpr common::Duration kTwoMinutesBefore = kExampleDate - seconds(120);
// 2026-01-01T00:00:00Z.
constexpr common::Duration kNewYear2026 = seconds(1767225600);

std::optional<common::Duration> Parse(std::string_view value,
                                      common::Duration unix_now = kNewYear2026) {
  return ParseRetryAfter(value, unix_now);
}

TEST(ParseRetryAfterTest, DelaySeconds) {
  EXPECT_EQ(Parse("120"), seconds(120));
  EXPECT_EQ(Parse("1"), seconds(1));
  EXPECT_EQ(Parse("007"), seconds(7));
}

TEST(ParseRetryAfterTest, DelaySecondsZero) { EXPECT_EQ(Parse("0"), nanoseconds(0)); }

TEST(ParseRetryAfterTest, DelaySecondsIgnoresUnixNow) {
  EXPECT_EQ(Parse("30", nanoseconds(0)), seconds(30));
}

TEST(ParseRetryAfterTest, SurroundingWhitespaceIsIgnored) {
  EXPECT_EQ(Parse("  120"), seconds(120));
  EXPECT_EQ(Parse("120 \t"), seconds(120));
  EXPECT_EQ(Parse("\t120\t"), seconds(120));
  EXPECT_EQ(Parse(" Sun, 06 Nov 1994 08:49:37 GMT ", kTwoMinutesBefore), seconds(120));
}

TEST(ParseRetryAfterTest, InnerWhitespaceIsGarbage) {
  EXPECT_EQ(Parse("1 20"), std::nullopt);
  EXPECT_EQ(Parse("Sun,  06 Nov 1994 08:49:37 GMT", kTwoMinutesBefore), std::nullopt);
}

TEST(ParseRetryAfterTest, EmptyOrBlankIsGarbage) {
  EXPECT_EQ(Parse(""), std::nullopt);
  EXPECT_EQ(Parse("   "), std::nullopt);
}

TEST(ParseRetryAfterTest, HugeDelayUpToDurationRange) {
  // 9223372036 s is the largest whole number of seconds a Duration holds.
  EXPECT_EQ(Parse("9223372036"), seconds(9223372036));
  EXPECT_EQ(Parse("9223372037"), std::nullopt);
  EXPECT_EQ(Parse("18446744073709551615"), std::nullopt);
  EXPECT_EQ(Parse("99999999999999999999999999999"), std::nullopt);
}

TEST(ParseRetryAfterTest, NegativeOrSignedIsGarbage) {
  EXPECT_EQ(Parse("-1"), std::nullopt);
  EXPECT_EQ(Parse("-0"), std::nullopt);
  EXPECT_EQ(Parse("+5"), std::nullopt);
}

TEST(ParseRetryAfterTest, Garbage) {
  EXPECT_EQ(Parse("soon"), std::nullopt);
  EXPECT_EQ(Parse("1.5"), std::nullopt);
  EXPECT_EQ(Parse("120s"), std::nullopt);
  EXPECT_EQ(Parse("0x10"), std::nullopt);
  EXPECT_EQ(Parse("120,"), std::nullopt);
  EXPECT_EQ(Parse(std::string_view("12\0", 3)), std::nullopt);
}

TEST(ParseRetryAfterTest, ImfFixdate) {
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:49:37 GMT", kTwoMinutesBefore), seconds(120));
}

TEST(ParseRetryAfterTest, Rfc850Date) {
  EXPECT_EQ(Parse("Sunday, 06-Nov-94 08:49:37 GMT", kTwoMinutesBefore), seconds(120));
}

TEST(ParseRetryAfterTest, AsctimeDate) {
  EXPECT_EQ(Parse("Sun Nov  6 08:49:37 1994", kTwoMinutesBefore), seconds(120));
  EXPECT_EQ(Parse("Sun Nov 06 08:49:37 1994", kTwoMinutesBefore), seconds(120));
  EXPECT_EQ(Parse("Sun Nov 6 08:49:37 1994", kTwoMinutesBefore), std::nullopt);
}

TEST(ParseRetryAfterTest, DateIsMeasuredFromUnixNowToTheNanosecond) {
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:49:37 GMT", kExampleDate - nanoseconds(1)), nanoseconds(1));
}

TEST(ParseRetryAfterTest, PastOrPresentDateIsZero) {
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:49:37 GMT", kExampleDate), nanoseconds(0));
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:49:37 GMT"), nanoseconds(0));
  EXPECT_EQ(Parse("Sun Nov  6 08:49:37 1994"), nanoseconds(0));
  EXPECT_EQ(Parse("Thu, 01 Jan 1970 00:00:00 GMT"), nanoseconds(0));
  EXPECT_EQ(Parse("Mon, 01 Jan 0001 00:00:00 GMT"), nanoseconds(0));
}

TEST(ParseRetryAfterTest, FutureDateAcrossLeapDay) {
  // 2024-02-29T12:00:00Z, one day after 2024-02-28T12:00:00Z.
  EXPECT_EQ(Parse("Thu, 29 Feb 2024 12:00:00 GMT", seconds(1709208000 - 86400)), seconds(86400));
}

TEST(ParseRetryAfterTest, Rfc850TwoDigitYearWithinFiftyYearsIsThisCentury) {
  // From 2026, "70" is 2070 (44 years ahead).
  EXPECT_EQ(Parse("Tuesday, 01-Jan-70 00:00:00 GMT"), seconds(3155760000) - kNewYear2026);
}

TEST(ParseRetryAfterTest, Rfc850TwoDigitYearBeyondFiftyYearsIsLastCentury) {
  // From 2026, "80" would be 2080 (54 years ahead): it means 1980, in the past.
  EXPECT_EQ(Parse("Tuesday, 01-Jan-80 00:00:00 GMT"), nanoseconds(0));
}

TEST(ParseRetryAfterTest, DateBeyondDurationRangeIsOverflow) {
  EXPECT_EQ(Parse("Fri, 31 Dec 9999 23:59:59 GMT"), std::nullopt);
}

TEST(ParseRetryAfterTest, InvalidMonth) {
  EXPECT_EQ(Parse("Sun, 06 Foo 1994 08:49:37 GMT", kTwoMinutesBefore), std::nullopt);
  EXPECT_EQ(Parse("Sunday, 06-Foo-94 08:49:37 GMT", kTwoMinutesBefore), std::nullopt);
  EXPECT_EQ(Parse("Sun Foo  6 08:49:37 1994", kTwoMinutesBefore), std::nullopt);
}

TEST(ParseRetryAfterTest, DayThatDoesNotExist) {
  EXPECT_EQ(Parse("Fri, 30 Feb 2024 00:00:00 GMT"), std::nullopt);
  EXPECT_EQ(Parse("Thu, 29 Feb 2029 00:00:00 GMT"), std::nullopt);  // not a leap year
  EXPECT_EQ(Parse("Thu, 31 Apr 2030 00:00:00 GMT"), std::nullopt);
  EXPECT_EQ(Parse("Thu, 00 Jan 2030 00:00:00 GMT"), std::nullopt);
  EXPECT_EQ(Parse("Thu, 32 Jan 2030 00:00:00 GMT"), std::nullopt);
}

TEST(ParseRetryAfterTest, TimeOutOfRange) {
  EXPECT_EQ(Parse("Sun, 06 Nov 2039 24:00:00 GMT"), std::nullopt);
  EXPECT_EQ(Parse("Sun, 06 Nov 2039 08:60:00 GMT"), std::nullopt);
  EXPECT_EQ(Parse("Sun, 06 Nov 2039 08:49:61 GMT"), std::nullopt);
}

TEST(ParseRetryAfterTest, LeapSecondCountsAsNextMinute) {
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:48:60 GMT", kTwoMinutesBefore),
            Parse("Sun, 06 Nov 1994 08:49:00 GMT", kTwoMinutesBefore));
}

TEST(ParseRetryAfterTest, MalformedDates) {
  const common::Duration now = kTwoMinutesBefore;
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:49:37 UTC", now), std::nullopt);  // zone must be GMT
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:49:37", now), std::nullopt);
  EXPECT_EQ(Parse("sun, 06 nov 1994 08:49:37 gmt", now), std::nullopt);  // case-sensitive
  EXPECT_EQ(Parse("Sun, 6 Nov 1994 08:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(Parse("Sun, 06 Nov 94 08:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 8:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(Parse("Xyz, 06 Nov 1994 08:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(Parse("Sunday, 06 Nov 1994 08:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(Parse("Sun, 06-Nov-94 08:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(Parse("Sunday, 06-Nov-1994 08:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(Parse("Sun Nov  6 08:49:37 1994 GMT", now), std::nullopt);
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:49:37 GMT trailing", now), std::nullopt);
  EXPECT_EQ(Parse("Sun, 06 Nov 1994 08:49:37 GM", now), std::nullopt);
}

}  // namespace
}  // namespace sluice::limiter
