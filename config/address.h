#pragma once

#include <string>
#include <string_view>

#include "config/config.h"

namespace sluice::config {

// Parses a listen address "host:port": "127.0.0.1:8080", "localhost:80", "[::1]:8080",
// "0.0.0.0:0" (port 0: the system picks a free port). An IPv6 host is stored without
// its brackets. On failure stores a message in "*error" and returns false.
[[nodiscard]] bool ParseHostPort(std::string_view text, HostPort* out, std::string* error);

// Parses "http://host[:port][/base]"; the port defaults to 80 and must not be 0, a
// trailing "/" of the base path is dropped ("http://h:1/" has base ""). No userinfo,
// query or fragment; https is not supported. On failure stores a message in "*error".
[[nodiscard]] bool ParseHttpUrl(std::string_view text, Url* out, std::string* error);

}  // namespace sluice::config
