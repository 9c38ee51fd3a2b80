#include "common/uuid.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace sluice::common {
namespace {

constexpr uint64_t kMs = 0x0189'abcd'ef01;  // some millisecond in 2023

uint64_t TimestampOf(const Uuid& id) {
  uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8) | id.bytes[i];
  return ms;
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// 8-4-4-4-12 lowercase hex, version 7, RFC 9562 variant (10xx).
void ExpectUuidV7Text(const std::string& text) {
  ASSERT_EQ(text.size(), 36u) << text;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      EXPECT_EQ(text[i], '-') << text;
    } else {
      EXPECT_TRUE(IsLowerHex(text[i])) << text;
    }
  }
  EXPECT_EQ(text[14], '7') << text;
  EXPECT_NE(std::string("89ab").find(text[19]), std::string::npos) << text;
}

TEST(Uuid, ToStringLayout) {
  UuidV7Generator gen(1);
  Uuid id = gen.Next(kMs);
  std::string text = id.ToString();
  ExpectUuidV7Text(text);
  // The first 48 bits are the Unix milliseconds.
  EXPECT_EQ(text.substr(0, 13), "0189abcd-ef01");
  EXPECT_EQ(TimestampOf(id), kMs);
  EXPECT_EQ(id.bytes[6] >> 4, 7);
  EXPECT_EQ(id.bytes[8] >> 6, 2);
}

TEST(Uuid, ToStringOfKnownBytes) {
  Uuid id;
  for (int i = 0; i < 16; ++i) id.bytes[i] = static_cast<uint8_t>(i * 17);
  EXPECT_EQ(id.ToString(), "00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_EQ(Uuid().ToString(), "00000000-0000-0000-0000-000000000000");
}

TEST(Uuid, ParseRoundTrips) {
  UuidV7Generator gen(2);
  for (int i = 0; i < 100; ++i) {
    Uuid id = gen.Next(kMs + i);
    std::optional<Uuid> parsed = Uuid::Parse(id.ToString());
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, id);
  }
}

TEST(Uuid, ParseAcceptsUpperCase) {
  std::optional<Uuid> upper = Uuid::Parse("00112233-4455-6677-8899-AABBCCDDEEFF");
  ASSERT_TRUE(upper.has_value());
  EXPECT_EQ(upper->ToString(), "00112233-4455-6677-8899-aabbccddeeff");
}

TEST(Uuid, ParseRejectsBadText) {
  for (const char* text : {
           "",
           "00112233-4455-6677-8899-aabbccddeef",    // short
           "00112233-4455-6677-8899-aabbccddeeff0",  // long
           "00112233-4455-6677-8899aaabbccddeeff",   // dash missing
           "001122334-455-6677-8899-aabbccddeeff",   // dash misplaced
           "00112233-4455-6677-8899-aabbccddeegf",   // not hex
           "0011223g-4455-6677-8899-aabbccddeeff",
           "{00112233-4455-6677-8899-aabbccddee}",
           " 0112233-4455-6677-8899-aabbccddeeff",
           "00112233_4455_6677_8899_aabbccddeeff",
           "00112233-4455-6677-8899-aabbccdd eff",
           "00112233-4455-6677-8899-+abbccddeeff",
           "0x112233-4455-6677-8899-aabbccddeeff",
       }) {
    EXPECT_EQ(Uuid::Parse(text), std::nullopt) << text;
  }
}

TEST(UuidV7Generator, SameMillisecondIdsStrictlyIncreaseAndAreUnique) {
  constexpr int kIds = 10000;  // more than one millisecond's 12-bit counter can hold
  UuidV7Generator gen(3);
  std::set<Uuid> seen;
  std::set<std::string> seen_text;
  Uuid previous = gen.Next(kMs);
  for (int i = 1; i < kIds; ++i) {
    Uuid id = gen.Next(kMs);
    ASSERT_LT(previous, id) << i;
    ASSERT_LT(previous.ToString(), id.ToString()) << i;  // text sorts like bytes
    ExpectUuidV7Text(id.ToString());
    seen.insert(id);
    seen_text.insert(id.ToString());
    previous = id;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kIds - 1));
  EXPECT_EQ(seen_text.size(), static_cast<size_t>(kIds - 1));
}

TEST(UuidV7Generator, IncreasesAcrossMilliseconds) {
  UuidV7Generator gen(4);
  Uuid previous = gen.Next(kMs);
  for (uint64_t ms = kMs + 1; ms < kMs + 1000; ++ms) {
    Uuid id = gen.Next(ms);
    ASSERT_LT(previous, id) << ms;
    EXPECT_EQ(TimestampOf(id), ms);
    previous = id;
  }
}

TEST(UuidV7Generator, KeepsIncreasingWhenTheClockStepsBack) {
  UuidV7Generator gen(5);
  Uuid a = gen.Next(kMs + 10);
  Uuid b = gen.Next(kMs);  // wall clock stepped back
  Uuid c = gen.Next(kMs + 5);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(c.ToString().substr(0, 13), a.ToString().substr(0, 13));  // stays on kMs + 10
}

TEST(UuidV7Generator, CounterOverflowMovesToTheNextMillisecond) {
  UuidV7Generator gen(6);
  Uuid first = gen.Next(kMs);
  Uuid last = first;
  for (int i = 0; i < 4096; ++i) last = gen.Next(kMs);
  // At most 4096 ids fit in one millisecond's 12-bit counter.
  EXPECT_EQ(first.ToString().substr(0, 13), "0189abcd-ef01");
  EXPECT_EQ(last.ToString().substr(0, 13), "0189abcd-ef02");
  EXPECT_LT(first, last);
}

TEST(UuidV7Generator, GeneratorsWithDifferentSeedsDoNotCollide) {
  UuidV7Generator a(7);
  UuidV7Generator b(8);
  std::set<Uuid> ids;
  for (int i = 0; i < 1000; ++i) {
    ids.insert(a.Next(kMs));
    ids.insert(b.Next(kMs));
  }
  EXPECT_EQ(ids.size(), 2000u);
}

TEST(UuidV7Generator, SameSeedSameSequence) {
  UuidV7Generator a(9);
  UuidV7Generator b(9);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.Next(kMs + i / 3), b.Next(kMs + i / 3));
}

TEST(UuidV7Generator, RandomlySeededGeneratorsDiffer) {
  UuidV7Generator a;
  UuidV7Generator b;
  EXPECT_NE(a.Next(kMs), b.Next(kMs));
}

}  // namespace
}  // namespace sluice::common
