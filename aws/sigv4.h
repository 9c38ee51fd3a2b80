#pragma once

// AWS Signature Version 4 (header form, AWS4-HMAC-SHA256) for the requests sluice sends
// to AWS services. Pure functions of their inputs: the caller supplies the time, so
// signing is deterministic and tests need no clock.
//
// The steps are exposed one by one (canonical request, string to sign, signing key,
// signature) because a wrong signature only ever comes back as a 403 that does not say
// which step went wrong; tests check each against AWS's published vectors.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "common/clock.h"
#include "common/status.h"

namespace sluice::aws {

struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};

// The request as it will go on the wire. Views: what they refer to must outlive the call.
struct SigningRequest {
  // Sent and signed exactly as given ("GET", "POST"); methods are case-sensitive.
  std::string_view method;
  // The path as on the request line: already percent-encoded, starting with '/', no query.
  std::string_view path;
  // Everything after '?' as sent (percent-encoded), "" when there is none.
  std::string_view query;
  // Every header given is signed. Must include Host; must not include the headers Sign
  // adds (Authorization, X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-Sha256).
  std::span<const Header> headers;
  std::string_view body;
};

struct SigningOptions {
  // Also send (and sign) X-Amz-Content-Sha256, the hex SHA-256 of the body. S3 requires
  // it; SQS and most JSON-protocol services do not.
  bool content_sha256_header = false;
};

struct SigningResult {
  // The headers to add to the request, in this order: X-Amz-Date, X-Amz-Security-Token
  // (when the credentials carry a session token), X-Amz-Content-Sha256 (when asked for),
  // Authorization. All but Authorization are part of the signature.
  std::vector<Header> headers;
  // The intermediate steps, for tests and for logging a 403 (none of them holds a secret).
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // 64 lowercase hex digits
};

// Signs "request" for "service" ("sqs") in "region" ("us-east-1") at "amz_date"
// ("YYYYMMDDTHHMMSSZ", UTC; see FormatAmzDate). InvalidArgument, and "*out" untouched, when
// the inputs cannot make a valid signature: a malformed amz_date, region or service (must
// be [a-z0-9-]+), access key id (must be [A-Za-z0-9]+), an empty secret, a path that does
// not start with '/' or holds '?' or '#', no Host header, a header name that is not an
// HTTP token, a header value or session token with CR, LF or NUL, or a header Sign adds.
//
// Canonical forms (as AWS's services compute them for every service but S3):
// - path: "." and ".." segments resolved and empty segments dropped, then percent-encoded
//   once more (so "%20" on the wire is signed as "%2520"); see CanonicalUri.
// - query: decoded, RFC 3986-encoded, sorted by name then value; see CanonicalQuery.
// - headers: names lowercased, values trimmed with runs of spaces and tabs collapsed to
//   one space, repeated names joined with ',' in the order given, sorted by name.
[[nodiscard]] common::Status Sign(const SigningRequest& request, const Credentials& credentials,
                                  std::string_view region, std::string_view service,
                                  std::string_view amz_date, const SigningOptions& options,
                                  SigningResult* out);

// ---- The steps Sign is made of. REQUIRES: inputs Sign would accept. ----

// "YYYYMMDDTHHMMSSZ" for a time since the Unix epoch (Clock::UnixNow()), truncated to the
// second. REQUIRES: a time from 1970 on (common::Duration itself ends in 2262).
std::string FormatAmzDate(common::Duration unix_time);
// True when "text" has the shape FormatAmzDate produces (digits, 'T', 'Z' in place).
bool IsAmzDate(std::string_view text);

// Percent-encodes every byte but the RFC 3986 unreserved ones (A-Z a-z 0-9 - . _ ~), as
// "%XX" with uppercase hex; '/' is also kept when "keep_slash".
std::string UriEncode(std::string_view bytes, bool keep_slash);

// The canonical URI of a path as sent: "//a/./b/../c/" -> "/a/c/", "/a b" -> "/a%20b",
// "/a%2Fb" -> "/a%252Fb". "" -> "/".
std::string CanonicalUri(std::string_view path);

// The canonical query string of a query as sent. Each '&'-separated parameter is split
// at its first '=' (none: empty value), "%XX" is decoded (a '%' not followed by two hex
// digits stays a literal '%'; '+' stays '+', it is not a space in SigV4), both halves are
// UriEncoded, and the pairs are sorted by name then value. Empty parameters ("a=1&&b=2")
// are dropped.
std::string CanonicalQuery(std::string_view query);

// The header block of the canonical request: "name:value\n" per distinct name, and the
// SignedHeaders list, "name;name".
struct CanonicalHeaders {
  std::string lines;
  std::string signed_names;
};
CanonicalHeaders CanonicalizeHeaders(std::span<const Header> headers);

// The canonical request for "request" with the headers it carries (which, unlike for
// Sign, must already include X-Amz-Date and the other signed X-Amz-* headers) and the hex
// SHA-256 of its body.
std::string CanonicalRequest(const SigningRequest& request, std::string_view payload_hash);

// "YYYYMMDD/region/service/aws4_request"; "date" is the first 8 characters of amz_date.
std::string CredentialScope(std::string_view date, std::string_view region,
                            std::string_view service);

// "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex SHA-256 of the canonical request>".
std::string StringToSign(std::string_view amz_date, std::string_view credential_scope,
                         std::string_view canonical_request);

// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
// It changes once a day per region and service, so a caller signing often may keep it.
using SigningKey = std::array<uint8_t, 32>;
SigningKey DeriveSigningKey(std::string_view secret_access_key, std::string_view date,
                            std::string_view region, std::string_view service);

// Hex HMAC-SHA256 of the string to sign under the signing key.
std::string SignatureHex(const SigningKey& key, std::string_view string_to_sign);

// Lowercase hex SHA-256 of "bytes" (the payload hash).
std::string Sha256Hex(std::string_view bytes);

// Lowercase hex of "bytes".
std::string HexEncode(std::span<const uint8_t> bytes);

}  // namespace sluice::aws
