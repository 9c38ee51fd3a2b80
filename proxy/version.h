#pragma once

namespace sluice::proxy {
inline constexpr const char* kVersion = SLUICE_VERSION;
}  // namespace sluice::proxy
