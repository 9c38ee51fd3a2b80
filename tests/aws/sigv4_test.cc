// The canonical forms case by case, the amz date, and what Sign accepts and returns.
// AWS's own vectors are in sigv4_vectors_test.cc, botocore's answers in
// sigv4_botocore_test.cc.

#include "aws/sigv4.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace sluice::aws {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(UriEncode, KeepsUnreservedOnly) {
  EXPECT_EQ(UriEncode("AZaz09-._~", false), "AZaz09-._~");
  EXPECT_EQ(UriEncode(" !*'()+,/:;=?@%", false), "%20%21%2A%27%28%29%2B%2C%2F%3A%3B%3D%3F%40%25");
  EXPECT_EQ(UriEncode("a/b c", true), "a/b%20c");
  EXPECT_EQ(UriEncode(std::string_view("\x00\x7f\xff", 3), false), "%00%7F%FF");
  EXPECT_EQ(UriEncode("\xC3\xA9", false), "%C3%A9");  // é: each UTF-8 byte, uppercase hex
  EXPECT_EQ(UriEncode("", false), "");
}

TEST(CanonicalUri, ResolvesDotSegmentsAndDropsEmptyOnes) {
  EXPECT_EQ(CanonicalUri(""), "/");
  EXPECT_EQ(CanonicalUri("/"), "/");
  EXPECT_EQ(CanonicalUri("//"), "/");
  EXPECT_EQ(CanonicalUri("/a/b/../c"), "/a/c");
  EXPECT_EQ(CanonicalUri("/a/./b/"), "/a/b/");
  EXPECT_EQ(CanonicalUri("/a/.."), "/");
  EXPECT_EQ(CanonicalUri("/../../a"), "/a");  // ".." above the root stays at the root
  EXPECT_EQ(CanonicalUri("/a//b///"), "/a/b/");
  EXPECT_EQ(CanonicalUri("/a/../"), "/");
  EXPECT_EQ(CanonicalUri("/.../..a/a.."), "/.../..a/a..");  // only exact "." and ".."
}

TEST(CanonicalUri, EncodesThePathAsSentOnceMore) {
  // Every service but S3 signs the wire path encoded a second time.
  EXPECT_EQ(CanonicalUri("/a%20b"), "/a%2520b");
  EXPECT_EQ(CanonicalUri("/a%2Fb"), "/a%252Fb");
  EXPECT_EQ(CanonicalUri("/a b"), "/a%20b");
  EXPECT_EQ(CanonicalUri("/123456789012/my-queue.fifo"), "/123456789012/my-queue.fifo");
  // Encoded dots are not dot segments.
  EXPECT_EQ(CanonicalUri("/%2E%2E/x"), "/%252E%252E/x");
  EXPECT_EQ(CanonicalUri("/a:b@c!$&'()*+,;="), "/a%3Ab%40c%21%24%26%27%28%29%2A%2B%2C%3B%3D");
}

TEST(CanonicalQuery, SortsByNameThenValue) {
  EXPECT_EQ(CanonicalQuery(""), "");
  EXPECT_EQ(CanonicalQuery("b=2&a=1"), "a=1&b=2");
  EXPECT_EQ(CanonicalQuery("a=2&a=10&a=1"), "a=1&a=10&a=2");
  EXPECT_EQ(CanonicalQuery("b=1&B=1&a=1"), "B=1&a=1&b=1");  // by byte: uppercase first
  // Sorted after encoding: '%' (0x25) sorts before '-' (0x2D).
  EXPECT_EQ(CanonicalQuery("a-b=1&a%20b=2"), "a%20b=2&a-b=1");
}

TEST(CanonicalQuery, DecodesThenEncodes) {
  EXPECT_EQ(CanonicalQuery("x=%41%7e%7E"), "x=A~~");      // unreserved come out plain
  EXPECT_EQ(CanonicalQuery("x=%2f%2F/"), "x=%2F%2F%2F");  // hex case does not matter
  EXPECT_EQ(CanonicalQuery("x=a+b"), "x=a%2Bb");          // '+' is not a space
  EXPECT_EQ(CanonicalQuery("x=a%20b&y=a b"), "x=a%20b&y=a%20b");
  EXPECT_EQ(CanonicalQuery("x=b=c"), "x=b%3Dc");  // split at the first '='
  EXPECT_EQ(CanonicalQuery("k%3Dv=1"), "k%3Dv=1");
  EXPECT_EQ(CanonicalQuery("x=%zz&y=%4&z=%"), "x=%25zz&y=%254&z=%25");  // not escapes
  EXPECT_EQ(CanonicalQuery("x=%C3%A9&y=\xC3\xA9"), "x=%C3%A9&y=%C3%A9");
}

TEST(CanonicalQuery, EmptyValuesAndEmptyParameters) {
  EXPECT_EQ(CanonicalQuery("a"), "a=");
  EXPECT_EQ(CanonicalQuery("a="), "a=");
  EXPECT_EQ(CanonicalQuery("=v"), "=v");
  EXPECT_EQ(CanonicalQuery("a=1&&b=2&"), "a=1&b=2");
  EXPECT_EQ(CanonicalQuery("&"), "");
}

TEST(CanonicalizeHeaders, LowercasesTrimsCollapsesAndSorts) {
  std::vector<Header> headers = {{"X-B", "  two   words\t\t here  "},
                                 {"Host", "example.com"},
                                 {"x-a", "\tv\t"},
                                 {"X-Empty", ""},
                                 {"X-Blank", " \t "}};
  CanonicalHeaders out = CanonicalizeHeaders(headers);
  EXPECT_EQ(out.lines, "host:example.com\nx-a:v\nx-b:two words here\nx-blank:\nx-empty:\n");
  EXPECT_EQ(out.signed_names, "host;x-a;x-b;x-blank;x-empty");
}

TEST(CanonicalizeHeaders, RepeatedNamesJoinInTheOrderGiven) {
  std::vector<Header> headers = {
      {"X-Rep", "b"}, {"Host", "h"}, {"x-rep", " a "}, {"X-REP", "c"}, {"X-Rep", ""}};
  CanonicalHeaders out = CanonicalizeHeaders(headers);
  EXPECT_EQ(out.lines, "host:h\nx-rep:b,a,c,\n");
  EXPECT_EQ(out.signed_names, "host;x-rep");
}

TEST(CanonicalizeHeaders, SortsByLowercasedName) {
  // "x-a-b" < "x-ab" because '-' (0x2D) < 'a'; uppercase input must not change that.
  std::vector<Header> headers = {{"X-AB", "2"}, {"X-A-B", "1"}, {"Host", "h"}};
  EXPECT_EQ(CanonicalizeHeaders(headers).signed_names, "host;x-a-b;x-ab");
}

TEST(AmzDate, FormatsUtcAndTruncatesToTheSecond) {
  EXPECT_EQ(FormatAmzDate(seconds(0)), "19700101T000000Z");
  EXPECT_EQ(FormatAmzDate(seconds(1440938160)), "20150830T123600Z");
  EXPECT_EQ(FormatAmzDate(seconds(1440938160) + milliseconds(999)), "20150830T123600Z");
  EXPECT_EQ(FormatAmzDate(seconds(951868799)), "20000229T235959Z");
  EXPECT_EQ(FormatAmzDate(seconds(2147483648)), "20380119T031408Z");  // past 32-bit time_t
  // common::Duration counts nanoseconds in 64 bits: it ends in April 2262.
  EXPECT_EQ(FormatAmzDate(seconds(9214646399)), "22611231T235959Z");
}

TEST(AmzDate, RecognisesTheShape) {
  EXPECT_TRUE(IsAmzDate("20150830T123600Z"));
  EXPECT_TRUE(IsAmzDate(FormatAmzDate(seconds(1))));
  EXPECT_FALSE(IsAmzDate(""));
  EXPECT_FALSE(IsAmzDate("20150830"));
  EXPECT_FALSE(IsAmzDate("20150830T123600"));
  EXPECT_FALSE(IsAmzDate("20150830t123600Z"));
  EXPECT_FALSE(IsAmzDate("20150830T123600z"));
  EXPECT_FALSE(IsAmzDate("2015-08-30T12:36"));
  EXPECT_FALSE(IsAmzDate("2015083OT123600Z"));  // letter O
  EXPECT_FALSE(IsAmzDate("20150830T123600Z "));
}

// Everything Sign takes, for the tests to vary one field at a time.
struct Inputs {
  std::string method = "POST";
  std::string path = "/";
  std::string query;
  std::vector<Header> headers = {{"Host", "sqs.eu-west-1.amazonaws.com"},
                                 {"Content-Type", "application/x-amz-json-1.0"},
                                 {"X-Amz-Target", "AmazonSQS.SendMessage"}};
  std::string body = R"({"QueueUrl":"https://sqs.eu-west-1.amazonaws.com/1/q","MessageBody":"m"})";
  Credentials credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  std::string region = "eu-west-1";
  std::string service = "sqs";
  std::string amz_date = "20240229T235959Z";
  SigningOptions options;
};

common::Status SignInputs(const Inputs& in, SigningResult* out) {
  SigningRequest request{in.method, in.path, in.query, in.headers, in.body};
  return Sign(request, in.credentials, in.region, in.service, in.amz_date, in.options, out);
}

std::string SignatureOf(const Inputs& in) {
  SigningResult result;
  common::Status s = SignInputs(in, &result);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return result.signature;
}

class SignTest : public testing::Test {
 protected:
  common::Status SignIt(SigningResult* out) { return SignInputs(in_, out); }

  // InvalidArgument, with "why" in the message, and the result left alone.
  void ExpectRejected(std::string_view why) {
    SigningResult result;
    result.signature = "untouched";
    common::Status s = SignIt(&result);
    EXPECT_EQ(s.code(), common::Status::Code::kInvalidArgument) << why;
    EXPECT_NE(s.ToString().find(why), std::string::npos) << s.ToString();
    EXPECT_EQ(result.signature, "untouched");
  }

  Inputs in_;
};

TEST_F(SignTest, ReturnsDateThenAuthorization) {
  SigningResult result;
  ASSERT_TRUE(SignIt(&result).ok());
  ASSERT_EQ(result.headers.size(), 2u);
  EXPECT_EQ(result.headers[0], (Header{"X-Amz-Date", "20240229T235959Z"}));
  EXPECT_EQ(result.headers[1].name, "Authorization");
  EXPECT_EQ(result.headers[1].value,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240229/eu-west-1/sqs/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" +
                result.signature);
  EXPECT_EQ(result.signature.size(), 64u);
}

TEST_F(SignTest, SessionTokenIsAddedAndSigned) {
  in_.credentials.session_token = "FQoGZXIvYXdzEXAMPLE//token+=";
  SigningResult result;
  ASSERT_TRUE(SignIt(&result).ok());
  ASSERT_EQ(result.headers.size(), 3u);
  EXPECT_EQ(result.headers[1], (Header{"X-Amz-Security-Token", "FQoGZXIvYXdzEXAMPLE//token+="}));
  EXPECT_NE(result.canonical_request.find("\nx-amz-security-token:FQoGZXIvYXdzEXAMPLE//token+=\n"),
            std::string::npos);
  EXPECT_NE(result.headers[2].value.find(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"),
            std::string::npos);
}

TEST_F(SignTest, ContentSha256HeaderOnlyWhenAskedFor) {
  SigningResult without;
  ASSERT_TRUE(SignIt(&without).ok());
  EXPECT_EQ(without.canonical_request.find("x-amz-content-sha256"), std::string::npos);

  in_.options.content_sha256_header = true;
  in_.credentials.session_token = "token";
  SigningResult with;
  ASSERT_TRUE(SignIt(&with).ok());
  ASSERT_EQ(with.headers.size(), 4u);
  EXPECT_EQ(with.headers[0].name, "X-Amz-Date");
  EXPECT_EQ(with.headers[1].name, "X-Amz-Security-Token");
  EXPECT_EQ(with.headers[2], (Header{"X-Amz-Content-Sha256", Sha256Hex(in_.body)}));
  EXPECT_EQ(with.headers[3].name, "Authorization");
  EXPECT_NE(with.canonical_request.find("\nx-amz-content-sha256:" + Sha256Hex(in_.body) + "\n"),
            std::string::npos);
}

TEST_F(SignTest, IsTheStepsComposed) {
  SigningResult result;
  ASSERT_TRUE(SignIt(&result).ok());
  std::vector<Header> with_date = in_.headers;
  with_date.push_back({"x-amz-date", in_.amz_date});
  SigningRequest request{in_.method, in_.path, in_.query, with_date, in_.body};
  EXPECT_EQ(result.canonical_request, CanonicalRequest(request, Sha256Hex(in_.body)));
  std::string scope = CredentialScope("20240229", in_.region, in_.service);
  EXPECT_EQ(scope, "20240229/eu-west-1/sqs/aws4_request");
  EXPECT_EQ(result.string_to_sign, StringToSign(in_.amz_date, scope, result.canonical_request));
  EXPECT_EQ(result.signature, SignatureHex(DeriveSigningKey(in_.credentials.secret_access_key,
                                                            "20240229", in_.region, in_.service),
                                           result.string_to_sign));
}

TEST_F(SignTest, EverySignedInputChangesTheSignature) {
  const std::string base = SignatureOf(in_);
  auto changes = [&](auto mutate) {
    Inputs changed = in_;
    mutate(changed);
    return SignatureOf(changed) != base;
  };
  EXPECT_TRUE(changes([](Inputs& in) { in.method = "PUT"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.path = "/1/q"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.query = "a=1"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.headers[2].value = "AmazonSQS.ReceiveMessage"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.headers.push_back({"X-Extra", ""}); }));
  EXPECT_TRUE(changes([](Inputs& in) { in.body += " "; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.region = "eu-west-2"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.service = "sns"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.amz_date = "20240229T235958Z"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.credentials.secret_access_key += "x"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.credentials.session_token = "t"; }));
  EXPECT_TRUE(changes([](Inputs& in) { in.options.content_sha256_header = true; }));
  // What the canonical forms call the same request signs the same.
  EXPECT_FALSE(changes([](Inputs& in) { in.headers[0].name = "HOST"; }));
  EXPECT_FALSE(changes([](Inputs& in) { in.headers[1].value = "  application/x-amz-json-1.0\t"; }));
  EXPECT_FALSE(changes([](Inputs& in) { std::swap(in.headers[0], in.headers[2]); }));
  EXPECT_FALSE(changes([](Inputs& in) { in.path = "/./"; }));
  EXPECT_FALSE(changes([](Inputs& in) { in.query = "&"; }));
  // The key id is in the Authorization header, not in what is signed.
  EXPECT_FALSE(changes([](Inputs& in) { in.credentials.access_key_id = "AKIDOTHER"; }));
}

TEST_F(SignTest, RejectsAMalformedDate) {
  in_.amz_date = "2024-02-29T23:59:59Z";
  ExpectRejected("amz_date");
}

TEST_F(SignTest, RejectsABadRegionOrService) {
  in_.region = "";
  ExpectRejected("region");
  in_.region = "eu/west";
  ExpectRejected("region");
  in_.region = "eu-west-1";
  in_.service = "SQS";
  ExpectRejected("service");
}

TEST_F(SignTest, RejectsBadCredentials) {
  in_.credentials.access_key_id = "";
  ExpectRejected("access key id");
  in_.credentials.access_key_id = "AKID/EXAMPLE";
  ExpectRejected("access key id");
  in_.credentials.access_key_id = "AKIDEXAMPLE";
  in_.credentials.secret_access_key = "";
  ExpectRejected("secret");
  in_.credentials.secret_access_key = "s";
  in_.credentials.session_token = "to\r\nken";
  ExpectRejected("session token");
}

TEST_F(SignTest, RejectsABadMethodOrPath) {
  in_.method = "";
  ExpectRejected("method");
  in_.method = "GET /";
  ExpectRejected("method");
  in_.method = "GET";
  in_.path = "";
  ExpectRejected("path");
  in_.path = "relative";
  ExpectRejected("path");
  in_.path = "/a?b=c";
  ExpectRejected("path holds");
  in_.path = "/a#frag";
  ExpectRejected("path holds");
}

TEST_F(SignTest, RejectsBadHeaders) {
  in_.headers.erase(in_.headers.begin());
  ExpectRejected("no Host");
  in_.headers.push_back({"Host", "h"});
  in_.headers.push_back({"Bad Name", "v"});
  ExpectRejected("not an HTTP token");
  in_.headers.back() = {"", "v"};
  ExpectRejected("not an HTTP token");
  in_.headers.back() = {"X-Split", "a\r\nX-Injected: b"};
  ExpectRejected("CR, LF or NUL");
  in_.headers.back() = {"X-Nul", std::string("a\0b", 3)};
  ExpectRejected("CR, LF or NUL");
}

TEST_F(SignTest, RejectsTheHeadersItAdds) {
  for (const char* name :
       {"Authorization", "x-amz-date", "X-AMZ-SECURITY-TOKEN", "X-Amz-Content-Sha256"}) {
    in_.headers.push_back({name, "v"});
    ExpectRejected("is added by Sign");
    in_.headers.pop_back();
  }
}

}  // namespace
}  // namespace sluice::aws
