#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

// One JSON object per line on stderr: {"ts":...,"level":...,"msg":..., fields...}.
namespace sluice::proxy::logging {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// A field value: strings are JSON-escaped and quoted, numbers written bare.
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, const char* v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, int64_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, int v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, uint64_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, double v);
  std::string_view key;
  std::string value;
  bool quoted;
};

bool ParseLevel(std::string_view name, Level* level);
void SetLevel(Level level);
bool Enabled(Level level);
void Emit(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

inline void Debug(std::string_view msg, std::initializer_list<Field> f = {}) {
  Emit(Level::kDebug, msg, f);
}
inline void Info(std::string_view msg, std::initializer_list<Field> f = {}) {
  Emit(Level::kInfo, msg, f);
}
inline void Warn(std::string_view msg, std::initializer_list<Field> f = {}) {
  Emit(Level::kWarn, msg, f);
}
inline void Error(std::string_view msg, std::initializer_list<Field> f = {}) {
  Emit(Level::kError, msg, f);
}

// Appends s to out as the inside of a JSON string.
void AppendJsonEscaped(std::string* out, std::string_view s);

}  // namespace sluice::proxy::logging
