#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/uuid.h"

namespace sluice::buffer {

// One queued request: what the payload of a log record holds.
struct Message {
  common::Uuid id;
  std::string method;
  std::string target;       // request-target as received: path and query
  std::string client_addr;  // for X-Forwarded-For
  std::string route;
  std::vector<std::string> targets;                          // delivery targets (fan-out)
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::string body;

  bool IsFor(std::string_view target_name) const;
};

// A Message decoded without copying: every view points into the payload it was decoded
// from, which must outlive it. What a delivery uses (it keeps the payload anyway).
struct MessageView {
  common::Uuid id;
  std::string_view method;
  std::string_view target;
  std::string_view client_addr;
  std::string_view route;
  std::vector<std::string_view> targets;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string_view body;

  bool IsFor(std::string_view target_name) const;
};

// Payload layout (little-endian): u8 version=1, 16-byte id, u16+method, u32+target,
// u16+client_addr, u16+route, u8 count + (u8+name)*, u32 count + (u16+name, u32+value)*,
// u32+body. Strings are length-prefixed with the width shown.
std::string EncodeMessage(const Message& m);
// nullopt when the payload is malformed (the record CRC matched, but the content is not
// a message this version understands).
std::optional<Message> DecodeMessage(std::string_view payload);
std::optional<MessageView> DecodeMessageView(std::string_view payload);
// Only the target list (views into `payload`), without copying headers and body: what
// counting each target's queue needs. A name listed twice is returned once: a message is
// delivered once per target. False when the payload is malformed up to the list.
bool DecodeMessageTargets(std::string_view payload, std::vector<std::string_view>* targets);

}  // namespace sluice::buffer
