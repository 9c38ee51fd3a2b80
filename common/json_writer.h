#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::common {

// Appends `s` as the inside of a JSON string: quotes, backslashes and control characters
// escaped; other bytes as they are (the input must be UTF-8).
void AppendJsonEscaped(std::string* out, std::string_view s);

// Builds a compact JSON document in one string (the admin API's answers, the JSON log
// lines' neighbours, SQS requests): a writer keeps commas and escaping in one place.
class JsonWriter {
 public:
  JsonWriter& BeginObject() {
    Separate();
    out_.push_back('{');
    first_ = true;
    return *this;
  }
  JsonWriter& EndObject() {
    out_.push_back('}');
    first_ = false;
    return *this;
  }
  JsonWriter& BeginArray() {
    Separate();
    out_.push_back('[');
    first_ = true;
    return *this;
  }
  JsonWriter& EndArray() {
    out_.push_back(']');
    first_ = false;
    return *this;
  }
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Number(double value);  // non-finite values are written as null
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  const std::string& str() const { return out_; }

 private:
  void Separate();
  std::string out_;
  bool first_ = true;
  bool after_key_ = false;
};

}  // namespace sluice::common
