#include "broker/json.h"

#include <gtest/gtest.h>

#include <random>

#include "broker/base64.h"
#include "common/json_writer.h"

namespace sluice::broker {
namespace {

JsonValue Parsed(std::string_view text) {
  JsonValue v;
  common::Status s = ParseJson(text, &v);
  EXPECT_TRUE(s.ok()) << text << ": " << s.ToString();
  return v;
}

bool Rejects(std::string_view text) {
  JsonValue v;
  return ParseJson(text, &v).IsCorruption();
}

TEST(JsonTest, ReadsAnSqsAnswer) {
  JsonValue v =
      Parsed(R"( {"Messages":[{"Body":"aGk=","ReceiptHandle":"r1","MessageAttributes":)"
             R"({"SluiceIngestNs":{"DataType":"Number","StringValue":"42"}}}],"n":-1.5e3,"t":true,)"
             R"("f":false,"z":null,"e":{},"a":[]} )");
  ASSERT_TRUE(v.is_object());
  const JsonValue* messages = v.Find("Messages");
  ASSERT_NE(messages, nullptr);
  ASSERT_EQ(messages->items().size(), 1u);
  EXPECT_EQ(messages->items()[0].FindString("Body"), "aGk=");
  EXPECT_EQ(v.Find("n")->text(), "-1.5e3");
  EXPECT_TRUE(v.Find("t")->boolean());
  EXPECT_EQ(v.Find("z")->type(), JsonValue::Type::kNull);
  EXPECT_EQ(v.FindString("n"), std::nullopt);  // a number is not a string
  EXPECT_EQ(v.Find("missing"), nullptr);
}

TEST(JsonTest, DecodesEscapesAndSurrogatePairs) {
  JsonValue v = Parsed(R"(["a\"b\\c\/\b\f\n\r\t", "\u00e9\u20ac", "\ud83d\ude00"])");
  EXPECT_EQ(v.items()[0].text(), "a\"b\\c/\b\f\n\r\t");
  EXPECT_EQ(v.items()[1].text(), "\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(v.items()[2].text(), "\xf0\x9f\x98\x80");
}

TEST(JsonTest, RejectsWhatRfc8259Forbids) {
  for (const char* bad : {"",
                          " ",
                          "{",
                          "}",
                          "[1,]",
                          "{\"a\":1,}",
                          "{\"a\"1}",
                          "{a:1}",
                          "01",
                          "1.",
                          ".5",
                          "-",
                          "1e",
                          "+1",
                          "tru",
                          "nul",
                          "\"abc",
                          "\"a\x01\"",
                          "\"\\x\"",
                          "\"\\u12\"",
                          "\"\\ud800\"",
                          "\"\\udc00\"",
                          "\"\\ud800\\u0041\"",
                          "[1] 2",
                          "{\"a\":1}}",
                          "'a'",
                          "[1 2]"}) {
    EXPECT_TRUE(Rejects(bad)) << bad;
  }
}

TEST(JsonTest, BoundsNesting) {
  std::string deep(kMaxJsonDepth - 1, '[');
  deep += std::string(kMaxJsonDepth - 1, ']');
  Parsed(deep);
  std::string too_deep(kMaxJsonDepth + 1, '[');
  too_deep += std::string(kMaxJsonDepth + 1, ']');
  EXPECT_TRUE(Rejects(too_deep));
  EXPECT_TRUE(Rejects(std::string(100000, '[')));  // no stack overflow
}

// The writer (common::JsonWriter) and this reader agree on every escape.
TEST(JsonTest, WriterEscapesAndTheReaderRoundTrips) {
  common::JsonWriter b;
  std::string nasty = "q\"b\\s\n\x01\x1f/\xc3\xa9";
  b.BeginObject().Key("k\"").String(nasty).Key("n").Uint(18446744073709551615ull);
  b.Key("a").BeginArray().String("x").BeginObject().EndObject().EndArray().EndObject();
  EXPECT_EQ(b.str(),
            "{\"k\\\"\":\"q\\\"b\\\\s\\n\\u0001\\u001f/\xc3\xa9\",\"n\":18446744073709551615,"
            "\"a\":[\"x\",{}]}");
  JsonValue v = Parsed(b.str());
  EXPECT_EQ(v.FindString("k\""), nasty);
  EXPECT_EQ(ParseUint(v.Find("n")->text()), 18446744073709551615ull);
}

TEST(JsonTest, ParseUintIsStrict) {
  EXPECT_EQ(ParseUint("0"), 0u);
  EXPECT_EQ(ParseUint("123"), 123u);
  for (const char* bad : {"", "-1", "1.0", "1e3", " 1", "18446744073709551616", "0x1"}) {
    EXPECT_EQ(ParseUint(bad), std::nullopt) << bad;
  }
}

// Random bytes and random mutations of a valid answer: the reader answers, never
// crashes, and what it accepts it accepts whole. Bounded: a few thousand inputs.
TEST(JsonTest, SurvivesMutatedInput) {
  const std::string seed =
      R"({"Messages":[{"Body":"aGk=","Id":"\u00e9","N":[1,-2.5e-3,true,false,null]}]})";
  std::mt19937 rng(20261127);
  const std::string alphabet = "{}[]\",:\\u0123456789abcdefnulltrue-+.eE \t\n\x01\xff";
  for (int i = 0; i < 20000; ++i) {
    std::string input = seed;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !input.empty(); ++e) {
      size_t at = rng() % input.size();
      switch (rng() % 3) {
        case 0:
          input[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          input.erase(at, 1 + rng() % 3);
          break;
        default:
          input.insert(at, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    if (i % 4 == 0) {
      input.resize(rng() % 64);
      for (auto& c : input) c = static_cast<char>(rng());
    }
    JsonValue v;
    (void)ParseJson(input, &v);
  }
}

TEST(Base64Test, EncodesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Decode("Zm9vYmE="), "fooba");
}

TEST(Base64Test, RoundTripsEveryByte) {
  std::mt19937 rng(7);
  for (int len = 0; len < 300; ++len) {
    std::string bytes(static_cast<size_t>(len), '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    EXPECT_EQ(Base64Decode(Base64Encode(bytes)), bytes);
  }
}

TEST(Base64Test, RejectsNonCanonicalText) {
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zm9v\n", "Zm 9", "Zm9v====", "=Zm9",
                          "Zg==Zg==", "Zm-_"}) {
    EXPECT_EQ(Base64Decode(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace sluice::broker
