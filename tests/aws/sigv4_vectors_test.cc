// AWS's published SigV4 answers: the signature test suite (aws-sig-v4-test-suite,
// "service" in us-east-1 at 20150830T123600Z with the documentation's example key) and
// the IAM ListUsers example of the signing documentation. Each vector is checked step by
// step (canonical request, string to sign, Authorization), so a failure names the step.
//
// Only the data is AWS's. Two vectors are as the original suite states them, not as some
// later re-packagings do: post-x-www-form-urlencoded and -parameters sign no
// Content-Length (the suite's request files have none; packagings that added one kept
// the old signatures, which then no longer match their own canonical requests), and
// -parameters' Content-Type is "charset=utf8". Both were checked for consistency
// (canonical request -> string to sign -> signature) independently of this code.
// post-sts-header-after is left out: it adds the token after signing, which Sign never
// does (SQS wants it signed); post-sts-header-before is the case Sign implements.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "aws/sigv4.h"

namespace sluice::aws {
namespace {

constexpr std::string_view kAccessKeyId = "AKIDEXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kAmzDate = "20150830T123600Z";
constexpr std::string_view kHost = "example.amazonaws.com";
constexpr std::string_view kEmptyHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr std::string_view kStsToken =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7W"
    "Z0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8F"
    "DrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

struct Vector {
  std::string name;
  std::string method;
  std::string path;
  std::string query;
  // The request's headers without X-Amz-Date (and without X-Amz-Security-Token): Sign
  // adds those.
  std::vector<Header> headers;
  std::string body;
  std::string session_token;
  std::string canonical_request;
  std::string string_to_sign_hash;  // the last line of the string to sign
  std::string signed_headers;
  std::string signature;
};

// The canonical request of the many vectors whose only headers are Host and X-Amz-Date.
std::string PlainCanonical(std::string_view method, std::string_view uri, std::string_view query) {
  return std::string(method) + "\n" + std::string(uri) + "\n" + std::string(query) +
         "\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" +
         std::string(kEmptyHash);
}

std::vector<Header> HostOnly() { return {{"Host", std::string(kHost)}}; }

std::vector<Vector> SuiteVectors() {
  return {
      {"get-vanilla", "GET", "/", "", HostOnly(), "", "", PlainCanonical("GET", "/", ""),
       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-vanilla-empty-query-key", "GET", "/", "Param1=value1", HostOnly(), "", "",
       PlainCanonical("GET", "/", "Param1=value1"),
       "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab", "host;x-amz-date",
       "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
      {"get-vanilla-query-order-key", "GET", "/", "Param1=value2&Param1=Value1", HostOnly(), "", "",
       PlainCanonical("GET", "/", "Param1=Value1&Param1=value2"),
       "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89", "host;x-amz-date",
       "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
      {"get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", HostOnly(),
       "", "", PlainCanonical("GET", "/", "Param1=value1&Param2=value2"),
       "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0", "host;x-amz-date",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"get-vanilla-query-order-value", "GET", "/", "Param1=value2&Param1=value1", HostOnly(), "",
       "", PlainCanonical("GET", "/", "Param1=value1&Param1=value2"),
       "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606", "host;x-amz-date",
       "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
      {"get-vanilla-query-unreserved", "GET", "/",
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       HostOnly(), "", "",
       PlainCanonical("GET", "/",
                      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
                      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
       "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177", "host;x-amz-date",
       "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
      // U+1234 (ETHIOPIC SYLLABLE SEE), raw UTF-8 in the query.
      {"get-vanilla-utf8-query", "GET", "/", "\xE1\x88\xB4=bar", HostOnly(), "", "",
       PlainCanonical("GET", "/", "%E1%88%B4=bar"),
       "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073", "host;x-amz-date",
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"get-header-key-duplicate",
       "GET",
       "/",
       "",
       {{"Host", std::string(kHost)},
        {"My-Header1", "value2"},
        {"My-Header1", "value2"},
        {"My-Header1", "value1"}},
       "",
       "",
       "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
       "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" +
           std::string(kEmptyHash),
       "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
       "host;my-header1;x-amz-date",
       "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
      {"get-header-value-order",
       "GET",
       "/",
       "",
       {{"Host", std::string(kHost)},
        {"My-Header1", "value4"},
        {"My-Header1", "value1"},
        {"My-Header1", "value3"},
        {"My-Header1", "value2"}},
       "",
       "",
       "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\n"
       "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" +
           std::string(kEmptyHash),
       "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
       "host;my-header1;x-amz-date",
       "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
      // The values as a parser hands them over from "My-Header1: value1" and
      // "My-Header2: \"a   b   c\"": with the space after the colon.
      {"get-header-value-trim",
       "GET",
       "/",
       "",
       {{"Host", std::string(kHost)}, {"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
       "",
       "",
       "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
       "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" +
           std::string(kEmptyHash),
       "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
       "host;my-header1;my-header2;x-amz-date",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"get-unreserved", "GET",
       "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", HostOnly(), "",
       "",
       PlainCanonical("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                      ""),
       "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9", "host;x-amz-date",
       "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-utf8", "GET", "/\xE1\x88\xB4", "", HostOnly(), "", "",
       PlainCanonical("GET", "/%E1%88%B4", ""),
       "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102", "host;x-amz-date",
       "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
      {"get-space", "GET", "/example space/", "", HostOnly(), "", "",
       PlainCanonical("GET", "/example%20space/", ""),
       "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86", "host;x-amz-date",
       "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
      {"get-relative", "GET", "/example/..", "", HostOnly(), "", "", PlainCanonical("GET", "/", ""),
       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-relative-relative", "GET", "/example1/example2/../..", "", HostOnly(), "", "",
       PlainCanonical("GET", "/", ""),
       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-slash", "GET", "//", "", HostOnly(), "", "", PlainCanonical("GET", "/", ""),
       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-slash-dot-slash", "GET", "/./", "", HostOnly(), "", "", PlainCanonical("GET", "/", ""),
       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-slash-pointless-dot", "GET", "/./example", "", HostOnly(), "", "",
       PlainCanonical("GET", "/example", ""),
       "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702", "host;x-amz-date",
       "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"},
      {"get-slashes", "GET", "//example//", "", HostOnly(), "", "",
       PlainCanonical("GET", "/example/", ""),
       "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015", "host;x-amz-date",
       "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
      {"post-vanilla", "POST", "/", "", HostOnly(), "", "", PlainCanonical("POST", "/", ""),
       "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87", "host;x-amz-date",
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"post-vanilla-query", "POST", "/", "Param1=value1", HostOnly(), "", "",
       PlainCanonical("POST", "/", "Param1=value1"),
       "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd", "host;x-amz-date",
       "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
      {"post-header-key-sort",
       "POST",
       "/",
       "",
       {{"Host", std::string(kHost)}, {"My-Header1", "value1"}},
       "",
       "",
       "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\n"
       "host;my-header1;x-amz-date\n" +
           std::string(kEmptyHash),
       "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
       "host;my-header1;x-amz-date",
       "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
      {"post-header-value-case",
       "POST",
       "/",
       "",
       {{"Host", std::string(kHost)}, {"My-Header1", "VALUE1"}},
       "",
       "",
       "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\n"
       "host;my-header1;x-amz-date\n" +
           std::string(kEmptyHash),
       "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
       "host;my-header1;x-amz-date",
       "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       "",
       {{"Content-Type", "application/x-www-form-urlencoded"}, {"Host", std::string(kHost)}},
       "Param1=value1",
       "",
       "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
       "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
       "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
       "content-type;host;x-amz-date",
       "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
      {"post-x-www-form-urlencoded-parameters",
       "POST",
       "/",
       "",
       {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"},
        {"Host", std::string(kHost)}},
       "Param1=value1",
       "",
       "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf8\n"
       "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
       "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
       "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
       "content-type;host;x-amz-date",
       "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
      {"post-sts-header-before", "POST", "/", "", HostOnly(), "", std::string(kStsToken),
       "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:" +
           std::string(kStsToken) + "\n\nhost;x-amz-date;x-amz-security-token\n" +
           std::string(kEmptyHash),
       "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
       "host;x-amz-date;x-amz-security-token",
       "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
  };
}

std::string StringToSignFor(const Vector& v) {
  return "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n" +
         v.string_to_sign_hash;
}

class SuiteVector : public testing::TestWithParam<Vector> {};

// The steps on the request as the suite writes it, X-Amz-* headers included.
TEST_P(SuiteVector, CanonicalRequestAndStringToSign) {
  const Vector& v = GetParam();
  std::vector<Header> headers = v.headers;
  headers.push_back({"X-Amz-Date", std::string(kAmzDate)});
  if (!v.session_token.empty()) headers.push_back({"X-Amz-Security-Token", v.session_token});
  SigningRequest request{v.method, v.path, v.query, headers, v.body};

  std::string canonical = CanonicalRequest(request, Sha256Hex(v.body));
  EXPECT_EQ(canonical, v.canonical_request);
  std::string scope = CredentialScope("20150830", "us-east-1", "service");
  EXPECT_EQ(StringToSign(kAmzDate, scope, canonical), StringToSignFor(v));
  EXPECT_EQ(SignatureHex(DeriveSigningKey(kSecret, "20150830", "us-east-1", "service"),
                         StringToSignFor(v)),
            v.signature);
}

// Sign as a caller uses it: it adds X-Amz-Date (and the token) itself.
TEST_P(SuiteVector, SignAddsTheHeadersAndTheAuthorization) {
  const Vector& v = GetParam();
  SigningRequest request{v.method, v.path, v.query, v.headers, v.body};
  Credentials credentials{std::string(kAccessKeyId), std::string(kSecret), v.session_token};
  SigningResult result;
  ASSERT_TRUE(Sign(request, credentials, "us-east-1", "service", kAmzDate, {}, &result).ok());

  EXPECT_EQ(result.canonical_request, v.canonical_request);
  EXPECT_EQ(result.string_to_sign, StringToSignFor(v));
  EXPECT_EQ(result.signature, v.signature);
  std::vector<Header> expected = {{"X-Amz-Date", std::string(kAmzDate)}};
  if (!v.session_token.empty()) expected.push_back({"X-Amz-Security-Token", v.session_token});
  expected.push_back({"Authorization",
                      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                      "aws4_request, SignedHeaders=" +
                          v.signed_headers + ", Signature=" + v.signature});
  EXPECT_EQ(result.headers, expected);
}

std::string TestName(const testing::TestParamInfo<Vector>& info) {
  std::string name = info.param.name;
  for (char& c : name) c = c == '-' ? '_' : c;
  return name;
}

INSTANTIATE_TEST_SUITE_P(AwsSigV4TestSuite, SuiteVector, testing::ValuesIn(SuiteVectors()),
                         TestName);

// "GET https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08" from the SigV4
// documentation, with its documented canonical-request hash, signing key and signature.
TEST(IamListUsersExample, EveryDocumentedStep) {
  std::vector<Header> headers = {
      {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
      {"Host", "iam.amazonaws.com"}};
  SigningRequest request{"GET", "/", "Action=ListUsers&Version=2010-05-08", headers, ""};
  Credentials credentials{std::string(kAccessKeyId), std::string(kSecret), ""};
  SigningResult result;
  ASSERT_TRUE(Sign(request, credentials, "us-east-1", "iam", kAmzDate, {}, &result).ok());

  EXPECT_EQ(result.canonical_request,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
            "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
            "host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n" +
                std::string(kEmptyHash));
  EXPECT_EQ(Sha256Hex(result.canonical_request),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  EXPECT_EQ(result.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  EXPECT_EQ(HexEncode(DeriveSigningKey(kSecret, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
  EXPECT_EQ(result.headers.back(),
            (Header{"Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                    "SignedHeaders=content-type;host;x-amz-date, "
                    "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"}));
}

// The signing-key derivation example of the documentation (date 20120215, iam).
TEST(SigningKeyExample, DerivesTheDocumentedKey) {
  EXPECT_EQ(HexEncode(DeriveSigningKey(kSecret, "20120215", "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(Sha256Example, EmptyPayloadHash) { EXPECT_EQ(Sha256Hex(""), kEmptyHash); }

}  // namespace
}  // namespace sluice::aws
