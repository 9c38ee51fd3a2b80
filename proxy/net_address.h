#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace sluice::proxy {

// Parses an IPv4 or IPv6 literal ("127.0.0.1", "::1", "[::1]"); "localhost" maps to
// 127.0.0.1. False for anything that needs DNS.
bool ResolveLiteral(const std::string& host, uint16_t port, sockaddr_storage* out);
// "127.0.0.1:8080" or "[::1]:8080".
std::string FormatAddress(const sockaddr* addr);
// The address alone: "127.0.0.1" or "::1".
std::string FormatIp(const sockaddr* addr);

}  // namespace sluice::proxy
