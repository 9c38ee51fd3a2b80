#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/clock.h"

namespace sluice::common {

// "512", "64KiB", "64MiB", "1GiB" (powers of 1024), "64KB", "1MB", "1GB" (powers of 1000).
// nullopt on anything else, including overflow.
std::optional<uint64_t> ParseSize(std::string_view text);

// "250ms", "30s", "5m", "72h" (also "us", "ns"; "0" alone means zero).
std::optional<Duration> ParseDuration(std::string_view text);

// A token-bucket refill rate: "N/s", "N/m", "N/h" (N may be fractional) or "unlimited".
struct Rate {
  double per_second = 0;  // +inf when unlimited
  bool unlimited() const;
  bool operator==(const Rate&) const = default;
};
std::optional<Rate> ParseRate(std::string_view text);

}  // namespace sluice::common
