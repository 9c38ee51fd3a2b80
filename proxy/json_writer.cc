#include "proxy/json_writer.h"

#include <cmath>
#include <cstdio>

#include "proxy/logging.h"

namespace sluice::proxy {

void JsonWriter::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_) out_.push_back(',');
  first_ = false;
}

JsonWriter& JsonWriter::Key(std::string_view key) {
  Separate();
  out_.push_back('"');
  logging::AppendJsonEscaped(&out_, key);
  out_.append("\":");
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(std::string_view value) {
  Separate();
  out_.push_back('"');
  logging::AppendJsonEscaped(&out_, value);
  out_.push_back('"');
  return *this;
}

JsonWriter& JsonWriter::Number(double value) {
  if (!std::isfinite(value)) return Null();
  Separate();
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.10g", value);
  out_.append(buf);
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t value) {
  Separate();
  out_.append(std::to_string(value));
  return *this;
}

JsonWriter& JsonWriter::Uint(uint64_t value) {
  Separate();
  out_.append(std::to_string(value));
  return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
  Separate();
  out_.append(value ? "true" : "false");
  return *this;
}

JsonWriter& JsonWriter::Null() {
  Separate();
  out_.append("null");
  return *this;
}

}  // namespace sluice::proxy
