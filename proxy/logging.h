#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

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
void EmitFields(Level level, std::string_view msg, const std::vector<Field>& fields);

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

// RFC 3339 UTC with milliseconds: "2026-11-27T15:28:04.550Z".
std::string FormatUtc(uint64_t unix_ns);

}  // namespace sluice::proxy::logging

namespace sluice::proxy::logging {

// Keeps per-message log lines (one per delivery, per dead letter...) from flooding the
// log when a target fails for every message: each message text may emit `burst` lines
// at once and `per_second` after that; what is held back is counted and reported on
// the next line that gets through ("suppressed": N). Thread-safe.
class LineLimiter {
 public:
  LineLimiter(double per_second, double burst) : per_second_(per_second), burst_(burst) {}
  // True if a line with this message may be written at `now`; *suppressed is then the
  // number held back since the last one.
  bool Allow(std::string_view msg, std::chrono::nanoseconds now, uint64_t* suppressed);

 private:
  struct Bucket {
    double tokens;
    std::chrono::nanoseconds last;
    uint64_t suppressed = 0;
  };
  double per_second_;
  double burst_;
  std::mutex mu_;
  std::map<std::string, Bucket, std::less<>> buckets_;
};

// Emit() through a process-wide LineLimiter (10 lines/s per message, bursts of 20).
void EmitLimited(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

}  // namespace sluice::proxy::logging
