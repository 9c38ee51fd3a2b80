#include "proxy/net_address.h"

#include <uv.h>

#include <cstring>

namespace sluice::proxy {

bool ResolveLiteral(const std::string& host, uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  std::string h = host;
  if (h == "localhost") h = "127.0.0.1";
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (uv_ip4_addr(h.c_str(), port, reinterpret_cast<sockaddr_in*>(out)) == 0) return true;
  if (uv_ip6_addr(h.c_str(), port, reinterpret_cast<sockaddr_in6*>(out)) == 0) return true;
  return false;
}

std::string FormatIp(const sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(addr), buf, sizeof(buf));
  } else if (addr->sa_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(addr), buf, sizeof(buf));
  }
  return buf;
}

std::string FormatAddress(const sockaddr* addr) {
  std::string out;
  int port;
  if (addr->sa_family == AF_INET) {
    port = ntohs(reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
    out.append(FormatIp(addr));
  } else {
    port = ntohs(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port);
    out.append("[").append(FormatIp(addr)).append("]");
  }
  out.append(":").append(std::to_string(port));
  return out;
}

}  // namespace sluice::proxy
