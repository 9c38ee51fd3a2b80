#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace sluice::common {

// A 128-bit message id in the UUIDv7 layout (RFC 9562): 48 bits of Unix milliseconds,
// then a 12-bit counter that keeps ids from one generator strictly increasing within
// a millisecond, then 62 random bits that keep ids unique across restarts and processes.
struct Uuid {
  std::array<uint8_t, 16> bytes{};
  static constexpr size_t kTextSize = 36;
  std::string ToString() const;  // 8-4-4-4-12 lowercase hex
  // The same text into out[0..36), without allocating.
  void Format(char* out) const;
  static std::optional<Uuid> Parse(std::string_view text);
  auto operator<=>(const Uuid&) const = default;
};

class UuidV7Generator {
 public:
  UuidV7Generator();  // seeded from std::random_device
  explicit UuidV7Generator(uint64_t seed);
  // REQUIRES: called from one thread at a time.
  Uuid Next(uint64_t unix_ms);

 private:
  std::mt19937_64 rng_;
  uint64_t last_ms_ = 0;
  uint16_t counter_ = 0;
};

}  // namespace sluice::common
