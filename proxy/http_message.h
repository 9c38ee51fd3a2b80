#pragma once

#include <strings.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::proxy {

using HeaderList = std::vector<std::pair<std::string, std::string>>;
// A header the caller owns, for building answers without copying (see SerializeResponse).
using HeaderField = std::pair<std::string_view, std::string_view>;

// Inline: header names are compared against many constants per request, and most
// differ in length.
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}
// The first header named `name` (case-insensitive), or nullptr.
const std::string* FindHeader(const HeaderList& headers, std::string_view name);
// Splits a comma-separated header value into trimmed, non-empty tokens.
std::vector<std::string_view> SplitTokens(std::string_view value);

struct HttpRequest {
  std::string method;
  std::string target;  // request-target (path and query)
  int version_major = 1;
  int version_minor = 1;
  HeaderList headers;
  std::string body;
  bool keep_alive = true;

  std::string_view Path() const;  // target without the query
};

struct HttpResponse {
  int status = 0;
  HeaderList headers;
  std::string body;
  bool keep_alive = true;
};

const char* ReasonPhrase(int status);

// Serialises a response: status line, the given headers, Content-Length, and
// "Connection: close" when close is set.
std::string SerializeResponse(int status, const HeaderList& headers, std::string_view body,
                              bool close);
// The same from views: answers built from literals and ids allocate only the result.
std::string SerializeResponse(int status, std::initializer_list<HeaderField> headers,
                              std::string_view body, bool close);

}  // namespace sluice::proxy
