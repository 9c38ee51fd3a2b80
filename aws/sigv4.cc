#include "aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace sluice::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kHexDigits = "0123456789abcdef";

// libcrypto's one-shot digest and HMAC fail only when it cannot allocate or has no
// SHA-256 at all (a broken installation). Neither can be answered per request, and a
// signer that returned an error for it would push an impossible branch onto every caller.
[[noreturn]] void CryptoFailed(const char* what) {
  std::fprintf(stderr, "sluice: libcrypto %s failed\n", what);
  std::abort();
}

using Digest = std::array<uint8_t, 32>;

Digest Sha256(std::string_view bytes) {
  Digest out;
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    CryptoFailed("SHA-256");
  }
  return out;
}

Digest HmacSha256(std::span<const uint8_t> key, std::string_view message) {
  Digest out;
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    CryptoFailed("HMAC-SHA256");
  }
  return out;
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    int high = -1;
    int low = -1;
    if (text[i] == '%' && i + 2 < text.size()) {
      high = HexValue(text[i + 1]);
      low = HexValue(text[i + 2]);
    }
    if (high >= 0 && low >= 0) {
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

std::string AsciiLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// Trimall: what is left between the first and last non-blank, each run of blanks one space.
void AppendTrimmed(std::string_view value, std::string* out) {
  bool pending_space = false;
  bool any = false;
  for (char c : value) {
    if (IsBlank(c)) {
      pending_space = any;
      continue;
    }
    if (pending_space) out->push_back(' ');
    pending_space = false;
    any = true;
    out->push_back(c);
  }
}

// RFC 7230 tchar.
bool IsTokenChar(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= 'a' && c <= 'z') return true;
  if (c >= '0' && c <= '9') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsToken(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return IsTokenChar(static_cast<unsigned char>(c));
  });
}

bool HasLineBreakOrNul(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool OnlyScopeChars(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || IsDigit(c) || c == '-';
  });
}

bool OnlyAlnum(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || IsDigit(c);
  });
}

// The headers Sign adds, lowercased; a caller's copy would be signed twice or contradict ours.
constexpr std::string_view kAddedHeaders[] = {"authorization", "x-amz-date", "x-amz-security-token",
                                              "x-amz-content-sha256"};

common::Status Validate(const SigningRequest& request, const Credentials& credentials,
                        std::string_view region, std::string_view service,
                        std::string_view amz_date) {
  using common::Status;
  if (!IsAmzDate(amz_date)) {
    return Status::InvalidArgument("amz_date is not YYYYMMDDTHHMMSSZ: " + std::string(amz_date));
  }
  if (!OnlyScopeChars(region)) {
    return Status::InvalidArgument("region must be [a-z0-9-]+: " + std::string(region));
  }
  if (!OnlyScopeChars(service)) {
    return Status::InvalidArgument("service must be [a-z0-9-]+: " + std::string(service));
  }
  if (!OnlyAlnum(credentials.access_key_id)) {
    return Status::InvalidArgument("access key id must be [A-Za-z0-9]+");
  }
  if (credentials.secret_access_key.empty()) {
    return Status::InvalidArgument("secret access key is empty");
  }
  if (HasLineBreakOrNul(credentials.session_token)) {
    return Status::InvalidArgument("session token holds CR, LF or NUL");
  }
  if (!IsToken(request.method)) {
    return Status::InvalidArgument("method is not an HTTP token: " + std::string(request.method));
  }
  if (request.path.empty() || request.path.front() != '/') {
    return Status::InvalidArgument("path must start with '/': " + std::string(request.path));
  }
  if (request.path.find_first_of("?#") != std::string_view::npos) {
    return Status::InvalidArgument("path holds '?' or '#' (the query goes in query): " +
                                   std::string(request.path));
  }
  bool has_host = false;
  for (const Header& header : request.headers) {
    if (!IsToken(header.name)) {
      return Status::InvalidArgument("header name is not an HTTP token: " + header.name);
    }
    if (HasLineBreakOrNul(header.value)) {
      return Status::InvalidArgument("header " + header.name + " holds CR, LF or NUL");
    }
    std::string lower = AsciiLower(header.name);
    if (std::find(std::begin(kAddedHeaders), std::end(kAddedHeaders), lower) !=
        std::end(kAddedHeaders)) {
      return Status::InvalidArgument("header " + header.name + " is added by Sign");
    }
    has_host = has_host || lower == "host";
  }
  if (!has_host) return Status::InvalidArgument("no Host header");
  return Status::OK();
}

}  // namespace

std::string FormatAmzDate(common::Duration unix_time) {
  using namespace std::chrono;
  auto seconds = floor<std::chrono::seconds>(sys_time<common::Duration>(unix_time));
  auto day = floor<days>(seconds);
  year_month_day date(day);
  hh_mm_ss time(seconds - day);
  char text[32];
  std::snprintf(text, sizeof(text), "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                static_cast<int>(time.seconds().count()));
  return text;
}

bool IsAmzDate(std::string_view text) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') return false;
  for (size_t i = 0; i < 15; ++i) {
    if (i != 8 && !IsDigit(text[i])) return false;
  }
  return true;
}

std::string UriEncode(std::string_view bytes, bool keep_slash) {
  std::string out;
  out.reserve(bytes.size());
  for (char c : bytes) {
    auto byte = static_cast<unsigned char>(c);
    if (IsUnreserved(byte) || (keep_slash && c == '/')) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back("0123456789ABCDEF"[byte >> 4]);
      out.push_back("0123456789ABCDEF"[byte & 0xf]);
    }
  }
  return out;
}

std::string CanonicalUri(std::string_view path) {
  // RFC 3986 5.2.4 on whole segments, and empty segments dropped as AWS does. A trailing
  // '/' survives only if some segment does ("/a/" stays, "//" is "/").
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    start = end + 1;
  }
  std::string normalized = "/";
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) normalized.push_back('/');
    normalized.append(segments[i]);
  }
  if (!segments.empty() && path.ends_with('/')) normalized.push_back('/');
  return UriEncode(normalized, /*keep_slash=*/true);
}

std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view param = query.substr(start, end - start);
    if (!param.empty()) {
      size_t eq = param.find('=');
      std::string_view name = param.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
      params.emplace_back(UriEncode(PercentDecode(name), false),
                          UriEncode(PercentDecode(value), false));
    }
    start = end + 1;
  }
  // Sorted after encoding, as the spec says; std::string compares bytes as unsigned.
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out.append(name);
    out.push_back('=');
    out.append(value);
  }
  return out;
}

CanonicalHeaders CanonicalizeHeaders(std::span<const Header> headers) {
  // Lowercased name and position: a stable sort keeps repeated names in the order given.
  std::vector<std::pair<std::string, size_t>> order;
  order.reserve(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) order.emplace_back(AsciiLower(headers[i].name), i);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  CanonicalHeaders out;
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& name = order[i].first;
    bool repeat = i > 0 && order[i - 1].first == name;
    if (repeat) {
      out.lines.back() = ',';  // replaces the '\n' that ended this name's line so far
    } else {
      out.lines.append(name);
      out.lines.push_back(':');
      if (!out.signed_names.empty()) out.signed_names.push_back(';');
      out.signed_names.append(name);
    }
    AppendTrimmed(headers[order[i].second].value, &out.lines);
    out.lines.push_back('\n');
  }
  return out;
}

namespace {

std::string JoinCanonicalRequest(const SigningRequest& request, const CanonicalHeaders& headers,
                                 std::string_view payload_hash) {
  std::string out;
  out.append(request.method).push_back('\n');
  out.append(CanonicalUri(request.path)).push_back('\n');
  out.append(CanonicalQuery(request.query)).push_back('\n');
  out.append(headers.lines).push_back('\n');
  out.append(headers.signed_names).push_back('\n');
  out.append(payload_hash);
  return out;
}

}  // namespace

std::string CanonicalRequest(const SigningRequest& request, std::string_view payload_hash) {
  return JoinCanonicalRequest(request, CanonicalizeHeaders(request.headers), payload_hash);
}

std::string CredentialScope(std::string_view date, std::string_view region,
                            std::string_view service) {
  std::string out(date);
  out.append("/").append(region).append("/").append(service).append("/aws4_request");
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view credential_scope,
                         std::string_view canonical_request) {
  std::string out(kAlgorithm);
  out.append("\n").append(amz_date).append("\n").append(credential_scope).append("\n");
  out.append(Sha256Hex(canonical_request));
  return out;
}

SigningKey DeriveSigningKey(std::string_view secret_access_key, std::string_view date,
                            std::string_view region, std::string_view service) {
  std::string secret = "AWS4";
  secret.append(secret_access_key);
  auto secret_bytes = std::span(reinterpret_cast<const uint8_t*>(secret.data()), secret.size());
  Digest key = HmacSha256(secret_bytes, date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  return HmacSha256(key, "aws4_request");
}

std::string SignatureHex(const SigningKey& key, std::string_view string_to_sign) {
  return HexEncode(HmacSha256(key, string_to_sign));
}

std::string Sha256Hex(std::string_view bytes) { return HexEncode(Sha256(bytes)); }

std::string HexEncode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0xf]);
  }
  return out;
}

common::Status Sign(const SigningRequest& request, const Credentials& credentials,
                    std::string_view region, std::string_view service, std::string_view amz_date,
                    const SigningOptions& options, SigningResult* out) {
  common::Status s = Validate(request, credentials, region, service, amz_date);
  if (!s.ok()) return s;

  std::string payload_hash = Sha256Hex(request.body);
  std::vector<Header> added;
  added.push_back({"X-Amz-Date", std::string(amz_date)});
  if (!credentials.session_token.empty()) {
    added.push_back({"X-Amz-Security-Token", credentials.session_token});
  }
  if (options.content_sha256_header) added.push_back({"X-Amz-Content-Sha256", payload_hash});

  std::vector<Header> signed_headers(request.headers.begin(), request.headers.end());
  signed_headers.insert(signed_headers.end(), added.begin(), added.end());
  SigningRequest with_added = request;
  with_added.headers = signed_headers;

  CanonicalHeaders canonical_headers = CanonicalizeHeaders(signed_headers);
  SigningResult result;
  result.canonical_request = JoinCanonicalRequest(with_added, canonical_headers, payload_hash);
  std::string_view date = amz_date.substr(0, 8);
  std::string scope = CredentialScope(date, region, service);
  result.string_to_sign = StringToSign(amz_date, scope, result.canonical_request);
  result.signature =
      SignatureHex(DeriveSigningKey(credentials.secret_access_key, date, region, service),
                   result.string_to_sign);

  std::string authorization(kAlgorithm);
  authorization.append(" Credential=").append(credentials.access_key_id).append("/").append(scope);
  authorization.append(", SignedHeaders=").append(canonical_headers.signed_names);
  authorization.append(", Signature=").append(result.signature);
  result.headers = std::move(added);
  result.headers.push_back({"Authorization", std::move(authorization)});
  *out = std::move(result);
  return common::Status::OK();
}

}  // namespace sluice::aws
