#include "proxy/logging.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <vector>

#include "common/json_writer.h"

namespace sluice::proxy::logging {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

std::string FormatUtc(uint64_t unix_ns) {
  std::time_t secs = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ns / 1'000'000 % 1000));
  return buf;
}

Field::Field(std::string_view k, double v) : key(k), quoted(false) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  value = buf;
}

bool ParseLevel(std::string_view name, Level* level) {
  if (name == "debug")
    *level = Level::kDebug;
  else if (name == "info")
    *level = Level::kInfo;
  else if (name == "warn")
    *level = Level::kWarn;
  else if (name == "error")
    *level = Level::kError;
  else
    return false;
  return true;
}

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }
bool Enabled(Level level) { return static_cast<int>(level) >= g_level.load(); }

void Emit(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  EmitFields(level, msg, std::vector<Field>(fields));
}

void EmitFields(Level level, std::string_view msg, const std::vector<Field>& fields) {
  if (!Enabled(level)) return;
  std::string line;
  line.reserve(128);
  line.append("{\"ts\":\"");
  auto now = std::chrono::system_clock::now().time_since_epoch();
  line.append(FormatUtc(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count())));
  line.append("\",\"level\":\"").append(LevelName(level)).append("\",\"msg\":\"");
  common::AppendJsonEscaped(&line, msg);
  line.push_back('"');
  for (const auto& f : fields) {
    line.append(",\"");
    common::AppendJsonEscaped(&line, f.key);
    line.append("\":");
    if (f.quoted) {
      line.push_back('"');
      common::AppendJsonEscaped(&line, f.value);
      line.push_back('"');
    } else {
      line.append(f.value);
    }
  }
  line.append("}\n");
  // One write(2) per line keeps lines whole when several threads log.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

bool LineLimiter::Allow(std::string_view msg, std::chrono::nanoseconds now, uint64_t* suppressed) {
  std::lock_guard lock(mu_);
  auto it = buckets_.find(msg);
  if (it == buckets_.end()) it = buckets_.emplace(std::string(msg), Bucket{burst_, now}).first;
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.tokens = std::min(burst_, b.tokens + std::max(0.0, elapsed) * per_second_);
  b.last = now;
  if (b.tokens < 1) {
    ++b.suppressed;
    return false;
  }
  b.tokens -= 1;
  *suppressed = b.suppressed;
  b.suppressed = 0;
  return true;
}

void EmitLimited(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  static LineLimiter limiter(10, 20);
  if (!Enabled(level)) return;
  uint64_t suppressed = 0;
  auto now = std::chrono::steady_clock::now().time_since_epoch();
  if (!limiter.Allow(msg, now, &suppressed)) return;
  if (suppressed == 0) {
    Emit(level, msg, fields);
    return;
  }
  std::vector<Field> with(fields);
  with.emplace_back("suppressed", suppressed);
  // initializer_list cannot be built at run time: emit through the vector overload.
  EmitFields(level, msg, with);
}

}  // namespace sluice::proxy::logging
