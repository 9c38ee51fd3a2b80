#include "proxy/http_message.h"

#include <strings.h>

namespace sluice::proxy {

const std::string* FindHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return &v;
  }
  return nullptr;
}

std::vector<std::string_view> SplitTokens(std::string_view value) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view token = value.substr(start, comma - start);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (!token.empty()) out.push_back(token);
    start = comma + 1;
  }
  return out;
}

std::string_view HttpRequest::Path() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? t : t.substr(0, q);
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 422:
      return "Unprocessable Content";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

namespace {

// Status line, headers, Content-Length, Connection: close, the empty line and the body,
// into one string sized up front.
template <typename Headers>
std::string Serialize(int status, const Headers& headers, std::string_view body, bool close) {
  size_t size = 96 + body.size();
  for (const auto& [k, v] : headers) size += k.size() + v.size() + 4;
  std::string out;
  out.reserve(size);
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(ReasonPhrase(status));
  out.append("\r\n");
  for (const auto& [k, v] : headers) out.append(k).append(": ").append(v).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  if (close) out.append("Connection: close\r\n");
  out.append("\r\n");
  out.append(body);
  return out;
}

}  // namespace

std::string SerializeResponse(int status, const HeaderList& headers, std::string_view body,
                              bool close) {
  return Serialize(status, headers, body, close);
}

std::string SerializeResponse(int status, std::initializer_list<HeaderField> headers,
                              std::string_view body, bool close) {
  return Serialize(status, headers, body, close);
}

}  // namespace sluice::proxy
