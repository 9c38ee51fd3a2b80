#include "config/address.h"

#include <charconv>

#include "config/error_list.h"

namespace sluice::config {
namespace {

bool IsHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool IsIpv6Char(char c) {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
         c == '.';
}

// Splits "host:port" / "[v6]:port" / "host" / "[v6]" into host (brackets removed) and the
// port text (empty when absent; `has_port` tells "host:" from "host"). Validates the host.
struct HostAndPort {
  std::string host;
  std::string_view port;
  bool has_port = false;
};
bool SplitHostPort(std::string_view text, HostAndPort* out, std::string* error) {
  std::string_view host;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      *error = "missing \"]\" after the IPv6 address";
      return false;
    }
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (host.empty() || host.find(':') == std::string_view::npos) {
      *error = "\"[...]\" must hold an IPv6 address";
      return false;
    }
    for (char c : host) {
      if (!IsIpv6Char(c)) {
        *error = Quote(host) + " is not an IPv6 address";
        return false;
      }
    }
    if (!rest.empty() && rest.front() != ':') {
      *error = "expected \":\" after \"]\"";
      return false;
    }
  } else {
    size_t colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
      *error = "an IPv6 address needs brackets, like \"[::1]:8080\"";
      return false;
    }
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    if (host.empty()) {
      *error = "the host is missing";
      return false;
    }
    for (char c : host) {
      if (!IsHostNameChar(c)) {
        *error = Quote(host) + " is not a valid host name";
        return false;
      }
    }
  }
  out->host = std::string(host);
  out->has_port = !rest.empty();
  out->port = out->has_port ? rest.substr(1) : std::string_view();
  return true;
}

bool ParsePort(std::string_view text, uint16_t min, uint16_t* port, std::string* error) {
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  bool digits_only = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits_only || ec != std::errc() || ptr != text.data() + text.size() || value < min ||
      value > 65535) {
    *error = "the port must be a number from " + std::to_string(min) + " to 65535";
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

bool ParseHostPort(std::string_view text, HostPort* out, std::string* error) {
  HostAndPort parts;
  std::string why;
  if (SplitHostPort(text, &parts, &why) && !parts.has_port) why = "the port is missing";
  HostPort result;
  result.host = std::move(parts.host);
  if (why.empty()) ParsePort(parts.port, 0, &result.port, &why);
  if (!why.empty()) {
    *error = "expected host:port like \"127.0.0.1:8080\", got " + Quote(text) + " (" + why + ")";
    return false;
  }
  *out = std::move(result);
  return true;
}

bool ParseHttpUrl(std::string_view text, Url* out, std::string* error) {
  constexpr std::string_view kScheme = "http://";
  auto fail = [&](std::string_view why) {
    *error = "expected a URL like \"http://127.0.0.1:9000\", got " + Quote(text) + " (" +
             std::string(why) + ")";
    return false;
  };
  if (text.starts_with("https://")) return fail("https is not supported");
  if (!text.starts_with(kScheme)) return fail("it must start with \"http://\"");
  std::string_view rest = text.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail("no query or fragment allowed");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return fail("no user info allowed");
  HostAndPort parts;
  std::string why;
  if (!SplitHostPort(authority, &parts, &why)) return fail(why);
  Url result;
  result.host = std::move(parts.host);
  if (parts.has_port && !ParsePort(parts.port, 1, &result.port, &why)) return fail(why);
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return fail("the path contains a space or control character");
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  result.base_path = std::string(path);
  *out = std::move(result);
  return true;
}

}  // namespace sluice::config
