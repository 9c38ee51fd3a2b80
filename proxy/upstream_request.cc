#include "proxy/upstream_request.h"

namespace sluice::proxy {
namespace {

using namespace std::string_view_literals;

// Headers sluice sets itself; a client's copies are dropped, not forwarded twice.
bool IsOwnHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Sluice-Message-Id") ||
         EqualsIgnoreCase(name, "Sluice-Attempt") || EqualsIgnoreCase(name, "X-Forwarded-For") ||
         EqualsIgnoreCase(name, "Via");
}

template <typename Headers>
std::vector<std::string_view> ConnectionTokens(const Headers& headers) {
  std::vector<std::string_view> tokens;
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, "Connection")) {
      for (auto t : SplitTokens(v)) tokens.push_back(t);
    }
  }
  return tokens;
}

}  // namespace

bool IsHopByHopHeader(std::string_view name,
                      const std::vector<std::string_view>& connection_tokens) {
  static constexpr std::string_view kHopByHop[] = {
      "Connection",        "Keep-Alive",        "Proxy-Connection", "TE",
      "Trailer",           "Transfer-Encoding", "Upgrade",          "Proxy-Authorization",
      "Proxy-Authenticate"};
  for (auto h : kHopByHop) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  for (auto t : connection_tokens) {
    if (EqualsIgnoreCase(name, t)) return true;
  }
  return false;
}

std::string BuildUpstreamRequest(const config::Url& url, std::string_view method,
                                 std::string_view target, const HeaderList& headers,
                                 std::string_view body, std::string_view client_addr,
                                 const UpstreamExtras& extras) {
  std::vector<HeaderField> views(headers.begin(), headers.end());
  return BuildUpstreamRequest(url, method, target, views, body, client_addr, extras);
}

std::string BuildUpstreamRequest(const config::Url& url, std::string_view method,
                                 std::string_view target, std::span<const HeaderField> headers,
                                 std::string_view body, std::string_view client_addr,
                                 const UpstreamExtras& extras) {
  std::vector<std::string_view> connection_tokens = ConnectionTokens(headers);
  std::string prior_xff;
  std::string prior_via;
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, "X-Forwarded-For")) {
      prior_xff.append(prior_xff.empty() ? ""sv : ", "sv).append(v);
    } else if (EqualsIgnoreCase(k, "Via")) {
      prior_via.append(prior_via.empty() ? ""sv : ", "sv).append(v);
    }
  }
  size_t size = 256 + body.size() + method.size() + url.base_path.size() + target.size() +
                url.host.size() + prior_xff.size() + prior_via.size() + client_addr.size() +
                3 * extras.message_id.size();
  for (const auto& [k, v] : headers) size += k.size() + v.size() + 4;
  std::string out;
  out.reserve(size);
  out.append(method).append(" "sv).append(url.base_path);
  if (target.empty() || target[0] != '/') out.append("/"sv);
  out.append(target).append(" HTTP/1.1\r\n"sv);
  bool has_host = false;
  bool has_idempotency_key = false;
  for (const auto& [k, v] : headers) {
    if (IsHopByHopHeader(k, connection_tokens) || IsOwnHeader(k)) continue;
    if (EqualsIgnoreCase(k, "Host")) has_host = true;
    if (EqualsIgnoreCase(k, "Idempotency-Key")) has_idempotency_key = true;
    out.append(k).append(": "sv).append(v).append("\r\n"sv);
  }
  if (!has_host) {
    out.append("Host: "sv).append(url.host).append(":"sv).append(std::to_string(url.port));
    out.append("\r\n"sv);
  }
  if (!extras.message_id.empty()) {
    out.append("Sluice-Message-Id: "sv).append(extras.message_id).append("\r\n"sv);
    out.append("Sluice-Attempt: "sv).append(std::to_string(extras.attempt)).append("\r\n"sv);
    if (!has_idempotency_key) {
      out.append("Idempotency-Key: "sv).append(extras.message_id).append("\r\n"sv);
    }
  }
  out.append("X-Forwarded-For: "sv);
  if (!prior_xff.empty()) out.append(prior_xff).append(", "sv);
  out.append(client_addr).append("\r\n"sv);
  out.append("Via: "sv);
  if (!prior_via.empty()) out.append(prior_via).append(", "sv);
  out.append("1.1 sluice\r\n"sv);
  bool bodyless = body.empty() && (method == "GET" || method == "HEAD" || method == "DELETE" ||
                                   method == "OPTIONS");
  if (!bodyless)
    out.append("Content-Length: "sv).append(std::to_string(body.size())).append("\r\n"sv);
  out.append("\r\n"sv);
  out.append(body);
  return out;
}

HeaderList RelayResponseHeaders(const HeaderList& headers) {
  std::vector<std::string_view> connection_tokens = ConnectionTokens(headers);
  HeaderList out;
  std::string prior_via;
  for (const auto& [k, v] : headers) {
    if (IsHopByHopHeader(k, connection_tokens) || EqualsIgnoreCase(k, "Content-Length")) continue;
    if (EqualsIgnoreCase(k, "Via")) {
      prior_via.append(prior_via.empty() ? "" : ", ").append(v);
      continue;
    }
    out.emplace_back(k, v);
  }
  out.emplace_back("Via", prior_via.empty() ? "1.1 sluice" : prior_via + ", 1.1 sluice");
  return out;
}

}  // namespace sluice::proxy
