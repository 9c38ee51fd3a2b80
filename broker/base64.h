#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::broker {

// Standard base64 (RFC 4648 section 4) with padding: how message payloads travel in SQS
// bodies, which must be valid XML characters.
std::string Base64Encode(std::string_view bytes);
// nullopt unless `text` is canonical padded base64 (length a multiple of 4, alphabet
// only, unused bits zero).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace sluice::broker
