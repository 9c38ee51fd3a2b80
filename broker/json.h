#pragma once

// The JSON the SQS JSON protocol (x-amz-json-1.0) needs: a writer for request bodies and a
// small, strict reader for responses. The reader takes bytes from the network, so it is
// bounded (depth, size) and never trusts them: any deviation from RFC 8259 is an error.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::broker {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Type type() const { return type_; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_string() const { return type_ == Type::kString; }

  // The member `key` of an object, or nullptr (not an object, or no such member). When a
  // key repeats, the first one counts.
  const JsonValue* Find(std::string_view key) const;
  // The string member `key`, or nullopt when absent or not a string.
  std::optional<std::string_view> FindString(std::string_view key) const;
  // A string, or for a number its text as written.
  const std::string& text() const { return text_; }
  bool boolean() const { return boolean_; }
  const std::vector<JsonValue>& items() const { return items_; }
  const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }

 private:
  friend class JsonParser;
  Type type_ = Type::kNull;
  bool boolean_ = false;
  std::string text_;
  std::vector<JsonValue> items_;
  std::vector<std::pair<std::string, JsonValue>> members_;
};

// Parses one JSON document (surrounding whitespace allowed). Corruption, with the byte
// offset, on malformed input, nesting deeper than kMaxJsonDepth, a string holding a raw
// control character or an unpaired surrogate escape.
inline constexpr int kMaxJsonDepth = 32;
[[nodiscard]] common::Status ParseJson(std::string_view text, JsonValue* out);

// A decimal uint64 from text (a JSON number's or a string's): digits only, no overflow.
std::optional<uint64_t> ParseUint(std::string_view text);

}  // namespace sluice::broker
