#pragma once

#include <span>
#include <string>
#include <string_view>

#include "config/config.h"
#include "proxy/http_message.h"

namespace sluice::proxy {

// What a request to a target carries besides the client's own request.
struct UpstreamExtras {
  // Queued deliveries: the message id, the 1-based attempt; empty id for pass-through.
  std::string_view message_id;
  uint32_t attempt = 0;
};

// Serialises a client's request for a target (INTERFACE.md, "Delivery to a target"):
// method, base path + path + query, headers as received minus hop-by-hop ones (those
// named in Connection too) and the ones sluice sets itself, Host kept (added when
// missing), X-Forwarded-For appended, Via added, the body re-framed with Content-Length.
// With a message id: Sluice-Message-Id, Sluice-Attempt, and Idempotency-Key unless the
// client sent one.
std::string BuildUpstreamRequest(const config::Url& url, std::string_view method,
                                 std::string_view target, std::span<const HeaderField> headers,
                                 std::string_view body, std::string_view client_addr,
                                 const UpstreamExtras& extras);
std::string BuildUpstreamRequest(const config::Url& url, std::string_view method,
                                 std::string_view target, const HeaderList& headers,
                                 std::string_view body, std::string_view client_addr,
                                 const UpstreamExtras& extras);

// Headers of a target's response to relay to the client: hop-by-hop ones and
// Content-Length (the server re-frames) removed, Via added.
HeaderList RelayResponseHeaders(const HeaderList& headers);

bool IsHopByHopHeader(std::string_view name,
                      const std::vector<std::string_view>& connection_tokens);

}  // namespace sluice::proxy
