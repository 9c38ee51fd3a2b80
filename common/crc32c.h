#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::common::crc32c {

// CRC-32C (Castagnoli), as used by iSCSI, ext4 and LevelDB. Hardware-accelerated on
// x86-64 CPUs with SSE4.2, table-driven elsewhere.
uint32_t Extend(uint32_t crc, const void* data, size_t n);
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// A CRC stored next to the data it covers is masked, so that a CRC computed over a
// buffer that itself contains CRCs does not degenerate (LevelDB's reasoning).
constexpr uint32_t kMaskDelta = 0xa282ead8u;
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace sluice::common::crc32c
