#include "common/uuid.h"

namespace sluice::common {

UuidV7Generator::UuidV7Generator() : rng_(std::random_device{}()) {}
UuidV7Generator::UuidV7Generator(uint64_t seed) : rng_(seed) {}

Uuid UuidV7Generator::Next(uint64_t unix_ms) {
  if (unix_ms > last_ms_) {
    last_ms_ = unix_ms;
    // Start the counter low and random so that ids stay unguessable yet leave room
    // for thousands of ids in the same millisecond.
    counter_ = static_cast<uint16_t>(rng_() & 0x3ff);
  } else {
    // Same millisecond (or the wall clock stepped back): keep ids increasing.
    if (++counter_ > 0xfff) {
      ++last_ms_;
      counter_ = 0;
    }
  }
  uint64_t ms = last_ms_;
  uint64_t rand_b = rng_();
  Uuid id;
  auto& b = id.bytes;
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  b[6] = static_cast<uint8_t>(0x70 | (counter_ >> 8));
  b[7] = static_cast<uint8_t>(counter_);
  b[8] = static_cast<uint8_t>(0x80 | ((rand_b >> 56) & 0x3f));
  for (int i = 9; i < 16; ++i) b[i] = static_cast<uint8_t>(rand_b >> (8 * (15 - i)));
  return id;
}

void Uuid::Format(char* out) const {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *out++ = '-';
    *out++ = kHex[bytes[i] >> 4];
    *out++ = kHex[bytes[i] & 0xf];
  }
}

std::string Uuid::ToString() const {
  std::string out(kTextSize, '\0');
  Format(out.data());
  return out;
}

std::optional<Uuid> Uuid::Parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  Uuid id;
  int nibble = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return std::nullopt;
      continue;
    }
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      return std::nullopt;
    id.bytes[nibble / 2] |= static_cast<uint8_t>(nibble % 2 == 0 ? v << 4 : v);
    ++nibble;
  }
  return id;
}

}  // namespace sluice::common
