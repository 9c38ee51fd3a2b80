#include "common/units.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

namespace sluice::common {
namespace {

// Splits "123.5abc" into the number and the suffix; the number must be non-empty.
struct NumberAndSuffix {
  std::string_view number;
  std::string_view suffix;
};
std::optional<NumberAndSuffix> Split(std::string_view text, bool allow_fraction) {
  size_t i = 0;
  while (i < text.size() &&
         ((text[i] >= '0' && text[i] <= '9') || (allow_fraction && text[i] == '.')))
    ++i;
  if (i == 0) return std::nullopt;
  std::string_view suffix = text.substr(i);
  while (!suffix.empty() && suffix.front() == ' ') suffix.remove_prefix(1);
  return NumberAndSuffix{text.substr(0, i), suffix};
}

std::optional<uint64_t> ParseUnsigned(std::string_view digits) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  return value;
}

std::optional<double> ParseDecimal(std::string_view digits) {
  if (digits.front() == '.' || digits.back() == '.') return std::nullopt;
  // from_chars for double is available in GCC 11+.
  double value = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || !std::isfinite(value))
    return std::nullopt;
  return value;
}

std::optional<uint64_t> Multiply(uint64_t value, uint64_t unit) {
  if (unit != 0 && value > std::numeric_limits<uint64_t>::max() / unit) return std::nullopt;
  return value * unit;
}

}  // namespace

std::optional<uint64_t> ParseSize(std::string_view text) {
  auto parts = Split(text, /*allow_fraction=*/false);
  if (!parts) return std::nullopt;
  auto value = ParseUnsigned(parts->number);
  if (!value) return std::nullopt;
  std::string_view s = parts->suffix;
  uint64_t unit;
  if (s.empty() || s == "B")
    unit = 1;
  else if (s == "KiB")
    unit = 1ull << 10;
  else if (s == "MiB")
    unit = 1ull << 20;
  else if (s == "GiB")
    unit = 1ull << 30;
  else if (s == "TiB")
    unit = 1ull << 40;
  else if (s == "KB" || s == "kB")
    unit = 1000ull;
  else if (s == "MB")
    unit = 1000ull * 1000;
  else if (s == "GB")
    unit = 1000ull * 1000 * 1000;
  else if (s == "TB")
    unit = 1000ull * 1000 * 1000 * 1000;
  else
    return std::nullopt;
  return Multiply(*value, unit);
}

std::optional<Duration> ParseDuration(std::string_view text) {
  auto parts = Split(text, /*allow_fraction=*/false);
  if (!parts) return std::nullopt;
  auto value = ParseUnsigned(parts->number);
  if (!value) return std::nullopt;
  std::string_view s = parts->suffix;
  uint64_t unit_ns;
  if (s == "ns")
    unit_ns = 1;
  else if (s == "us")
    unit_ns = 1000;
  else if (s == "ms")
    unit_ns = 1000'000;
  else if (s == "s")
    unit_ns = 1000'000'000;
  else if (s == "m")
    unit_ns = 60ull * 1000'000'000;
  else if (s == "h")
    unit_ns = 3600ull * 1000'000'000;
  else if (s.empty() && *value == 0)
    unit_ns = 1;
  else
    return std::nullopt;
  auto ns = Multiply(*value, unit_ns);
  if (!ns || *ns > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return Duration(static_cast<int64_t>(*ns));
}

bool Rate::unlimited() const { return std::isinf(per_second); }

std::optional<Rate> ParseRate(std::string_view text) {
  if (text == "unlimited") return Rate{std::numeric_limits<double>::infinity()};
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view number = text.substr(0, slash);
  std::string_view per = text.substr(slash + 1);
  while (!number.empty() && number.back() == ' ') number.remove_suffix(1);
  if (number.empty()) return std::nullopt;
  for (char c : number)
    if (!((c >= '0' && c <= '9') || c == '.')) return std::nullopt;
  auto value = ParseDecimal(number);
  if (!value || *value <= 0) return std::nullopt;
  double seconds;
  if (per == "s")
    seconds = 1;
  else if (per == "m")
    seconds = 60;
  else if (per == "h")
    seconds = 3600;
  else
    return std::nullopt;
  return Rate{*value / seconds};
}

}  // namespace sluice::common
