// Sign against an independent implementation: botocore's SigV4Auth (Debian
// python3-botocore), which the AWS CLI and boto3 sign every request with. A few hundred
// random requests (fixed seed) are signed by both; every header Sign adds must be equal.
// One python3 process signs the whole batch (botocore_sign.py).
//
// Both sides sign the same request. Where botocore's input differs in form, it is because
// botocore takes it in another shape, not because the request differs:
// - Query: Sign gets the query as sent (percent-encoded, with random choices of which
//   characters are escaped, hex case, '=' left raw in values, empty parameters "&&",
//   parameters without '='); botocore gets the decoded (name, value) list through
//   AWSRequest.params, which it encodes itself. That is how botocore's own serializers
//   hand it a query; a query left in botocore's URL is signed verbatim (neither decoded
//   nor re-encoded, empty parameters kept), which is not what AWS computes.
// - The path goes to both as sent; both normalise it and encode it once more.
// - Date: botocore stamps X-Amz-Date from datetime.utcnow(), which the script answers
//   with the request's time; Sign gets FormatAmzDate of the same time.
// Input classes left out, and why:
// - Header names botocore never signs (User-Agent, Expect, X-Amzn-Trace-Id) and Date
//   (botocore rewrites it): Sign signs every header it is given, the caller chooses.
// - Header values with bytes other than printable ASCII, space and tab: botocore collapses
//   whatever Python calls whitespace (VT, FF, U+0085, U+00A0...); HTTP allows none of those
//   but obs-text, which sluice does not send. CR, LF and NUL are refused by Sign.
// - Decoded query names and values that are not UTF-8: botocore encodes str, not bytes.
// - Paths with '?', '#' (refused by Sign), tab, CR, LF or other controls (Python's URL
//   parser strips tab, CR and LF; none is legal on a request line).
// - Lowercase methods: botocore uppercases the method, Sign signs it as given.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "aws/sigv4.h"

namespace sluice::aws {
namespace {

constexpr int kRequests = 400;
constexpr uint64_t kSeed = 20150830;

// Deterministic across standard libraries: mt19937_64's output is fixed by the standard,
// and only "% n" is applied to it (the <random> distributions are implementation-defined).
class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}
  size_t Below(size_t n) { return static_cast<size_t>(engine_() % n); }
  bool OneIn(size_t n) { return Below(n) == 0; }
  std::string_view Pick(std::span<const std::string_view> items) {
    return items[Below(items.size())];
  }
  char PickChar(std::string_view chars) { return chars[Below(chars.size())]; }

 private:
  std::mt19937_64 engine_;
};

constexpr std::string_view kUnreserved =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
// U+00E9, U+1234, U+1F600: two, three and four UTF-8 bytes.
constexpr std::string_view kMultibyte[] = {"\xC3\xA9", "\xE1\x88\xB4", "\xF0\x9F\x98\x80"};

// One random request, in both shapes.
struct Case {
  std::string method;
  std::string path;                                         // as sent, to both
  std::vector<std::pair<std::string, std::string>> params;  // decoded, to botocore
  std::string query;                                        // as sent, to Sign
  std::vector<Header> headers;
  std::string body;
  Credentials credentials;
  std::string region;
  std::string service;
  int64_t unix_time = 0;
  bool content_sha256 = false;
};

std::string PercentByte(Random& random, unsigned char byte) {
  const char* digits = random.OneIn(2) ? "0123456789ABCDEF" : "0123456789abcdef";
  return {'%', digits[byte >> 4], digits[byte & 0xf]};
}

// A path segment as sent: unreserved, sub-delims, ':' and '@', escapes of any byte (either
// hex case), a '%' that starts no escape, raw UTF-8, a space, and a few bytes a strict
// client would escape but a signer must still take as given.
std::string PathSegment(Random& random) {
  switch (random.Below(8)) {
    case 0:
      return "";
    case 1:
      return ".";
    case 2:
      return "..";
    default:
      break;
  }
  std::string out;
  size_t length = 1 + random.Below(10);
  for (size_t i = 0; i < length; ++i) {
    switch (random.Below(10)) {
      case 0:
        out += PercentByte(random, static_cast<unsigned char>(random.Below(256)));
        break;
      case 1:
        out += std::string(random.Pick(kMultibyte));
        break;
      case 2:
        out += random.PickChar("!$&'()*+,;=:@");
        break;
      case 3:
        out += random.PickChar(" %\"<>[\\]^`{|}");
        break;
      default:
        out += random.PickChar(kUnreserved);
        break;
    }
  }
  return out;
}

std::string Path(Random& random) {
  std::string path;
  size_t segments = random.Below(6);
  for (size_t i = 0; i < segments; ++i) path += "/" + PathSegment(random);
  if (path.empty() || random.OneIn(4)) path += "/";
  return path;
}

// A decoded query name or value: anything UTF-8, including the bytes that structure a
// query ('&', '=', '%', '+', '#') and controls.
std::string QueryText(Random& random, size_t max_length) {
  std::string out;
  size_t length = random.Below(max_length + 1);
  for (size_t i = 0; i < length; ++i) {
    switch (random.Below(8)) {
      case 0:
        out += std::string(random.Pick(kMultibyte));
        break;
      case 1:
      case 2:
        out += random.PickChar(" !\"#$%&'()*+,/:;<=>?@[\\]^`{|}");
        break;
      case 3:
        out += random.PickChar(std::string_view("\t\x01\x7f", 3));
        break;
      default:
        out += random.PickChar(kUnreserved);
        break;
    }
  }
  return out;
}

// "text" as a client might send it: what would change the query's structure is always
// escaped, everything else randomly raw or escaped. '=' may stay raw in a value, as the
// name ends at the first '='.
std::string SendQueryText(Random& random, std::string_view text, bool is_value) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    bool must_escape = c == '&' || c == '%' || c == '#' || c == ' ' || byte < 0x20 ||
                       byte == 0x7f || (c == '=' && !is_value);
    out += must_escape || random.OneIn(2) ? PercentByte(random, byte) : std::string(1, c);
  }
  return out;
}

void AddQuery(Random& random, Case* c) {
  size_t count = random.Below(6);
  for (size_t i = 0; i < count; ++i) {
    std::string name;
    if (!c->params.empty() && random.OneIn(5)) {
      name = c->params[random.Below(c->params.size())].first;  // a repeated name
    } else {
      name = QueryText(random, 8);
      if (name.empty() && !random.OneIn(8)) name = "Action";
    }
    std::string value = random.OneIn(5) ? "" : QueryText(random, 12);
    c->params.emplace_back(name, value);

    if (!c->query.empty()) c->query += "&";
    if (random.OneIn(10)) c->query += "&";  // an empty parameter, which Sign drops
    c->query += SendQueryText(random, name, false);
    // "a" means "a=", but a lone "" is no parameter at all: an empty name keeps its '='.
    if (!value.empty() || name.empty() || !random.OneIn(2)) {
      c->query += "=" + SendQueryText(random, value, true);
    }
  }
  if (count > 0 && random.OneIn(10)) c->query += "&";
}

std::string RandomCase(Random& random, std::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    if (random.OneIn(2)) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return out;
}

bool IsExcludedName(std::string_view lower) {
  for (std::string_view name :
       {"host", "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256",
        "user-agent", "expect", "x-amzn-trace-id", "date"}) {
    if (lower == name) return true;
  }
  return false;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// A header value: printable ASCII with runs of spaces and tabs anywhere, or nothing.
std::string HeaderValue(Random& random) {
  if (random.OneIn(10)) return "";
  if (random.OneIn(20)) return std::string(1 + random.Below(3), random.OneIn(2) ? ' ' : '\t');
  std::string out;
  size_t length = 1 + random.Below(30);
  for (size_t i = 0; i < length; ++i) {
    if (random.OneIn(5)) {
      out += std::string(1 + random.Below(3), random.PickChar(" \t"));
    } else {
      out += static_cast<char>(0x21 + random.Below(0x7e - 0x21 + 1));
    }
  }
  return out;
}

void AddHeaders(Random& random, Case* c) {
  constexpr std::string_view kHosts[] = {"example.amazonaws.com", "sqs.eu-west-1.amazonaws.com",
                                         "localhost:4566", "127.0.0.1:9324", "[::1]:8443"};
  c->headers.push_back({RandomCase(random, "host"), std::string(random.Pick(kHosts))});
  constexpr std::string_view kTokenChars = "abcdefghijklmnopqrstuvwxyz0123456789-!#$%&'*+.^_`|~";
  std::vector<std::string> names;  // lowercased, Host not among them
  size_t count = random.Below(6);
  for (size_t i = 0; i < count; ++i) {
    std::string name;
    if (!names.empty() && random.OneIn(3)) {
      // The same name again, maybe in another case: its values join in the order given.
      name = RandomCase(random, names[random.Below(names.size())]);
    } else {
      do {
        name = random.OneIn(3) ? "x-amz-meta-" : "";
        size_t length = 1 + random.Below(10);
        for (size_t j = 0; j < length; ++j) name += random.PickChar(kTokenChars);
      } while (IsExcludedName(name));
      names.push_back(name);
      name = RandomCase(random, name);
    }
    // Anywhere in the list: the canonical form must not depend on the order of names.
    auto at = c->headers.begin() + static_cast<std::ptrdiff_t>(random.Below(c->headers.size() + 1));
    c->headers.insert(at, {name, HeaderValue(random)});
  }
}

std::string RandomText(Random& random, std::string_view chars, size_t min, size_t max) {
  std::string out;
  size_t length = min + random.Below(max - min + 1);
  for (size_t i = 0; i < length; ++i) out += random.PickChar(chars);
  return out;
}

Case MakeCase(Random& random) {
  constexpr std::string_view kMethods[] = {"GET",  "POST",  "PUT",    "DELETE",
                                           "HEAD", "PATCH", "OPTIONS"};
  constexpr std::string_view kRegions[] = {"us-east-1", "eu-west-1", "ap-southeast-2",
                                           "us-gov-west-1", "cn-north-1"};
  constexpr std::string_view kServices[] = {"sqs", "sns", "s3", "execute-api", "service"};
  constexpr std::string_view kBase64 =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
  Case c;
  c.method = random.Pick(kMethods);
  c.path = random.OneIn(4) ? "/" : Path(random);
  AddQuery(random, &c);
  AddHeaders(random, &c);
  if (!random.OneIn(3)) {
    size_t length = random.Below(200);
    for (size_t i = 0; i < length; ++i) c.body += static_cast<char>(random.Below(256));
  }
  c.credentials.access_key_id = RandomText(random, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 16, 20);
  c.credentials.secret_access_key = RandomText(random, kBase64, 40, 40);
  if (random.OneIn(2)) c.credentials.session_token = RandomText(random, kBase64, 20, 300);
  c.region = random.OneIn(4) ? RandomText(random, "abcdefghijklmnopqrstuvwxyz0123456789-", 1, 15)
                             : std::string(random.Pick(kRegions));
  c.service = random.OneIn(4) ? RandomText(random, "abcdefghijklmnopqrstuvwxyz0123456789-", 1, 15)
                              : std::string(random.Pick(kServices));
  c.unix_time = static_cast<int64_t>(random.Below(4102444800));  // 1970 .. 2099
  c.content_sha256 = random.OneIn(4);
  return c;
}

std::string Hex(std::string_view bytes) {
  return HexEncode(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// Every string as hex: nothing the JSON needs escaped.
std::string ToJson(const std::vector<Case>& cases) {
  std::ostringstream out;
  auto q = [](std::string_view bytes) { return "\"" + Hex(bytes) + "\""; };
  out << "{\"requests\": [\n";
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    out << "{\"method\": " << q(c.method) << ", \"path\": " << q(c.path) << ", \"params\": [";
    for (size_t j = 0; j < c.params.size(); ++j) {
      out << (j ? ", " : "") << "[" << q(c.params[j].first) << ", " << q(c.params[j].second) << "]";
    }
    out << "], \"headers\": [";
    for (size_t j = 0; j < c.headers.size(); ++j) {
      out << (j ? ", " : "") << "[" << q(c.headers[j].name) << ", " << q(c.headers[j].value) << "]";
    }
    out << "], \"body\": " << q(c.body) << ", \"access_key\": " << q(c.credentials.access_key_id)
        << ", \"secret\": " << q(c.credentials.secret_access_key)
        << ", \"token\": " << q(c.credentials.session_token) << ", \"region\": " << q(c.region)
        << ", \"service\": " << q(c.service) << ", \"unix_time\": " << c.unix_time
        << ", \"content_sha256\": " << (c.content_sha256 ? "true" : "false") << "}"
        << (i + 1 < cases.size() ? ",\n" : "\n");
  }
  out << "]}\n";
  return out.str();
}

// What botocore added for one request.
struct Reference {
  std::string amz_date;
  std::string security_token;
  std::string content_sha256;
  std::string authorization;
  std::string canonical_request;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sigv4_botocore.XXXXXX");
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs botocore_sign.py over the batch. Fails the test (and returns nothing) with the
// reason when python3 or botocore is missing or the script fails.
std::vector<Reference> SignWithBotocore(const std::vector<Case>& cases) {
  std::string python = SLUICE_TEST_PYTHON3;
  if (python.empty()) {
    ADD_FAILURE() << "python3 not found when configuring: install the Debian packages python3 "
                     "and python3-botocore (scripts/install-deps), then re-run cmake";
    return {};
  }
  ScratchDir dir;
  if (dir.path().empty()) {
    ADD_FAILURE() << "mkdtemp failed";
    return {};
  }
  std::filesystem::path in = dir.path() / "requests.json";
  std::filesystem::path out = dir.path() / "signed.txt";
  std::filesystem::path err = dir.path() / "stderr.txt";
  std::ofstream(in, std::ios::binary) << ToJson(cases);
  std::string command = "'" + python + "' '" SLUICE_TEST_BOTOCORE_SIGN "' < '" + in.string() +
                        "' > '" + out.string() + "' 2> '" + err.string() + "'";
  int status = std::system(command.c_str());
  if (status != 0) {
    ADD_FAILURE() << "botocore_sign.py failed ("
                  << (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                        : "wait status " + std::to_string(status))
                  << "):\n"
                  << ReadFile(err);
    return {};
  }
  std::vector<Reference> references;
  std::istringstream lines(ReadFile(out));
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    size_t start = 0;
    while (true) {
      size_t space = line.find(' ', start);
      fields.push_back(Unhex(line.substr(start, space - start)));
      if (space == std::string::npos) break;
      start = space + 1;
    }
    if (fields.size() != 5) {
      ADD_FAILURE() << "botocore_sign.py wrote a line of " << fields.size() << " fields";
      return {};
    }
    references.push_back({fields[0], fields[1], fields[2], fields[3], fields[4]});
  }
  if (references.size() != cases.size()) {
    ADD_FAILURE() << "botocore_sign.py answered " << references.size() << " of " << cases.size()
                  << " requests:\n"
                  << ReadFile(err);
    return {};
  }
  return references;
}

std::string Describe(const Case& c) {
  std::ostringstream out;
  out << c.method << " path=" << Hex(c.path) << " (hex) query=" << c.query << "\n";
  for (const Header& h : c.headers) out << "  [" << h.name << "]: [" << h.value << "]\n";
  out << "  token=" << (c.credentials.session_token.empty() ? "no" : "yes")
      << " content_sha256=" << c.content_sha256 << " region=" << c.region
      << " service=" << c.service << " time=" << c.unix_time << " body=" << c.body.size() << "B";
  return out.str();
}

TEST(SigV4AgainstBotocore, RandomRequestsSignAlike) {
  Random random(kSeed);
  std::vector<Case> cases;
  for (int i = 0; i < kRequests; ++i) cases.push_back(MakeCase(random));

  std::vector<Reference> references = SignWithBotocore(cases);
  ASSERT_EQ(references.size(), cases.size());

  int mismatches = 0;
  for (size_t i = 0; i < cases.size() && mismatches < 5; ++i) {
    const Case& c = cases[i];
    const Reference& ref = references[i];
    SigningRequest request{c.method, c.path, c.query, c.headers, c.body};
    SigningOptions options;
    options.content_sha256_header = c.content_sha256;
    SigningResult result;
    common::Status s = Sign(request, c.credentials, c.region, c.service,
                            FormatAmzDate(std::chrono::seconds(c.unix_time)), options, &result);
    ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << Describe(c);

    std::vector<Header> expected = {{"X-Amz-Date", ref.amz_date}};
    if (!ref.security_token.empty())
      expected.push_back({"X-Amz-Security-Token", ref.security_token});
    if (!ref.content_sha256.empty())
      expected.push_back({"X-Amz-Content-Sha256", ref.content_sha256});
    expected.push_back({"Authorization", ref.authorization});
    if (result.headers != expected) {
      ++mismatches;
      ADD_FAILURE() << "request " << i << " signs differently from botocore\n"
                    << Describe(c) << "\n--- our canonical request:\n"
                    << result.canonical_request << "\n--- botocore's:\n"
                    << ref.canonical_request << "\n--- our Authorization:\n"
                    << result.headers.back().value << "\n--- botocore's:\n"
                    << ref.authorization;
    }
  }
}

// The comparison only means something if the generator reaches the classes it is
// meant to: count them on the same seed.
TEST(SigV4AgainstBotocore, TheRandomRequestsCoverEveryInputClass) {
  Random random(kSeed);
  int tokens = 0, content_sha256 = 0, dot_segments = 0, empty_segments = 0, path_escapes = 0,
      query_escapes = 0, raw_utf8_query = 0, empty_params = 0, repeated_params = 0,
      repeated_headers = 0, blank_runs = 0, bodies = 0;
  for (int i = 0; i < kRequests; ++i) {
    Case c = MakeCase(random);
    tokens += !c.credentials.session_token.empty();
    content_sha256 += c.content_sha256;
    dot_segments += c.path.find("/..") != std::string::npos;
    empty_segments += c.path.find("//") != std::string::npos;
    path_escapes += c.path.find('%') != std::string::npos;
    query_escapes += c.query.find('%') != std::string::npos;
    raw_utf8_query += c.query.find('\xE1') != std::string::npos;
    empty_params += c.query.find("&&") != std::string::npos;
    bodies += !c.body.empty();
    for (size_t a = 0; a < c.params.size(); ++a) {
      for (size_t b = a + 1; b < c.params.size(); ++b) {
        repeated_params += c.params[a].first == c.params[b].first;
      }
    }
    for (size_t a = 0; a < c.headers.size(); ++a) {
      blank_runs += c.headers[a].value.find("  ") != std::string::npos ||
                    c.headers[a].value.find('\t') != std::string::npos;
      for (size_t b = a + 1; b < c.headers.size(); ++b) {
        repeated_headers += Lower(c.headers[a].name) == Lower(c.headers[b].name);
      }
    }
  }
  for (auto [name, count] : {std::pair{"session tokens", tokens},
                             {"content sha256 headers", content_sha256},
                             {"dot segments", dot_segments},
                             {"empty path segments", empty_segments},
                             {"path escapes", path_escapes},
                             {"query escapes", query_escapes},
                             {"raw UTF-8 in queries", raw_utf8_query},
                             {"empty query parameters", empty_params},
                             {"repeated query names", repeated_params},
                             {"repeated header names", repeated_headers},
                             {"blank runs in header values", blank_runs},
                             {"bodies", bodies}}) {
    EXPECT_GE(count, 10) << name;
  }
}

}  // namespace
}  // namespace sluice::aws
