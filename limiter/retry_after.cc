#include "limiter/retry_after.h"

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>

namespace sluice::limiter {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / kNanosPerSecond;

constexpr std::array<std::string_view, 7> kShortDays = {"Mon", "Tue", "Wed", "Thu",
                                                        "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// Reads a date left to right; every method consumes input only on success.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : rest_(text) {}

  bool done() const { return rest_.empty(); }

  bool Literal(std::string_view literal) {
    if (!rest_.starts_with(literal)) return false;
    rest_.remove_prefix(literal.size());
    return true;
  }

  // Exactly `count` decimal digits.
  std::optional<int> Digits(size_t count) {
    if (rest_.size() < count) return std::nullopt;
    int value = 0;
    for (size_t i = 0; i < count; ++i) {
      if (!IsDigit(rest_[i])) return std::nullopt;
      value = value * 10 + (rest_[i] - '0');
    }
    rest_.remove_prefix(count);
    return value;
  }

  // The index of the name that the input starts with.
  template <size_t N>
  std::optional<unsigned> OneOf(const std::array<std::string_view, N>& names) {
    for (unsigned i = 0; i < N; ++i) {
      if (Literal(names[i])) return i;
    }
    return std::nullopt;
  }

 private:
  std::string_view rest_;
};

struct TimeOfDay {
  int hour, minute, second;
};

// hour ":" minute ":" second. A second of 60 (leap second) is accepted and counts as the
// first second of the next minute.
std::optional<TimeOfDay> ParseTimeOfDay(Scanner& in) {
  auto hour = in.Digits(2);
  if (!hour || !in.Literal(":")) return std::nullopt;
  auto minute = in.Digits(2);
  if (!minute || !in.Literal(":")) return std::nullopt;
  auto second = in.Digits(2);
  if (!second || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  return TimeOfDay{*hour, *minute, *second};
}

// Seconds since the Unix epoch, or nullopt if the day does not exist.
std::optional<int64_t> UnixSeconds(int year, unsigned month, unsigned day, TimeOfDay t) {
  std::chrono::year_month_day date{std::chrono::year(year), std::chrono::month(month),
                                   std::chrono::day(day)};
  if (!date.ok()) return std::nullopt;
  int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  return days * 86400 + t.hour * 3600 + t.minute * 60 + t.second;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<int64_t> ParseImfFixdate(std::string_view text) {
  Scanner in(text);
  if (!in.OneOf(kShortDays) || !in.Literal(", ")) return std::nullopt;
  auto day = in.Digits(2);
  if (!day || !in.Literal(" ")) return std::nullopt;
  auto month = in.OneOf(kMonths);
  if (!month || !in.Literal(" ")) return std::nullopt;
  auto year = in.Digits(4);
  if (!year || !in.Literal(" ")) return std::nullopt;
  auto time = ParseTimeOfDay(in);
  if (!time || !in.Literal(" GMT") || !in.done()) return std::nullopt;
  return UnixSeconds(*year, *month + 1, *day, *time);
}

// RFC 9110 section 5.6.7: a two-digit year more than 50 years in the future means the
// most recent past year with the same last two digits.
int ResolveTwoDigitYear(int two_digits, common::Duration unix_now) {
  auto today =
      std::chrono::floor<std::chrono::days>(std::chrono::sys_time<common::Duration>(unix_now));
  int current_year = static_cast<int>(std::chrono::year_month_day(today).year());
  int century = current_year - ((current_year % 100) + 100) % 100;
  int year = century + two_digits;
  if (year > current_year + 50) year -= 100;
  return year;
}

// Obsolete RFC 850 form: "Sunday, 06-Nov-94 08:49:37 GMT"
std::optional<int64_t> ParseRfc850Date(std::string_view text, common::Duration unix_now) {
  Scanner in(text);
  if (!in.OneOf(kLongDays) || !in.Literal(", ")) return std::nullopt;
  auto day = in.Digits(2);
  if (!day || !in.Literal("-")) return std::nullopt;
  auto month = in.OneOf(kMonths);
  if (!month || !in.Literal("-")) return std::nullopt;
  auto year = in.Digits(2);
  if (!year || !in.Literal(" ")) return std::nullopt;
  auto time = ParseTimeOfDay(in);
  if (!time || !in.Literal(" GMT") || !in.done()) return std::nullopt;
  return UnixSeconds(ResolveTwoDigitYear(*year, unix_now), *month + 1, *day, *time);
}

// Obsolete asctime form: "Sun Nov  6 08:49:37 1994" (day is 2DIGIT or SP DIGIT).
std::optional<int64_t> ParseAsctimeDate(std::string_view text) {
  Scanner in(text);
  if (!in.OneOf(kShortDays) || !in.Literal(" ")) return std::nullopt;
  auto month = in.OneOf(kMonths);
  if (!month || !in.Literal(" ")) return std::nullopt;
  std::optional<int> day = in.Literal(" ") ? in.Digits(1) : in.Digits(2);
  if (!day || !in.Literal(" ")) return std::nullopt;
  auto time = ParseTimeOfDay(in);
  if (!time || !in.Literal(" ")) return std::nullopt;
  auto year = in.Digits(4);
  if (!year || !in.done()) return std::nullopt;
  return UnixSeconds(*year, *month + 1, *day, *time);
}

std::optional<common::Duration> ParseDelaySeconds(std::string_view digits) {
  uint64_t seconds = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), seconds);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (seconds > static_cast<uint64_t>(kMaxSeconds)) return std::nullopt;
  return common::Duration(static_cast<int64_t>(seconds) * kNanosPerSecond);
}

std::optional<common::Duration> DelayUntil(int64_t date_seconds, common::Duration unix_now) {
  if (date_seconds > kMaxSeconds) return std::nullopt;
  if (date_seconds < -kMaxSeconds) return common::Duration::zero();
  int64_t date_ns = date_seconds * kNanosPerSecond;
  if (date_ns <= unix_now.count()) return common::Duration::zero();
  // Both fit in int64 and date_ns > unix_now, so the unsigned difference is exact.
  uint64_t delay = static_cast<uint64_t>(date_ns) - static_cast<uint64_t>(unix_now.count());
  if (delay > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return common::Duration(static_cast<int64_t>(delay));
}

}  // namespace

std::optional<common::Duration> ParseRetryAfter(std::string_view value, common::Duration unix_now) {
  value = TrimOws(value);
  if (value.empty()) return std::nullopt;
  if (IsDigit(value.front())) return ParseDelaySeconds(value);

  std::optional<int64_t> date = ParseImfFixdate(value);
  if (!date) date = ParseRfc850Date(value, unix_now);
  if (!date) date = ParseAsctimeDate(value);
  if (!date) return std::nullopt;
  return DelayUntil(*date, unix_now);
}

}  // namespace sluice::limiter
