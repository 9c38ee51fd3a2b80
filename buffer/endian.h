#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

// Little-endian fixed-width encoding for the on-disk formats. x86-64 and arm64 are
// little-endian; the static_assert keeps a big-endian port from silently misreading.
namespace sluice::buffer {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "on-disk format is little-endian");

inline void PutU16(char* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void PutU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint16_t GetU16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Appends to a growing buffer (payload encoding).
inline void AppendU8(std::string* s, uint8_t v) { s->push_back(static_cast<char>(v)); }
inline void AppendU16(std::string* s, uint16_t v) {
  char b[2];
  PutU16(b, v);
  s->append(b, 2);
}
inline void AppendU32(std::string* s, uint32_t v) {
  char b[4];
  PutU32(b, v);
  s->append(b, 4);
}

// Reads from a payload with bounds checks; any overrun sets failed() and returns zeros.
class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}
  uint8_t U8() {
    auto s = Take(1);
    return s.empty() ? 0 : static_cast<uint8_t>(s[0]);
  }
  uint16_t U16() {
    auto s = Take(2);
    return s.empty() ? 0 : GetU16(s.data());
  }
  uint32_t U32() {
    auto s = Take(4);
    return s.empty() ? 0 : GetU32(s.data());
  }
  uint64_t U64() {
    auto s = Take(8);
    return s.empty() ? 0 : GetU64(s.data());
  }
  std::string_view Take(size_t n) {
    if (failed_ || n > data_.size() - pos_) {
      failed_ = true;
      return {};
    }
    std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  bool failed() const { return failed_; }
  bool at_end() const { return pos_ == data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace sluice::buffer
