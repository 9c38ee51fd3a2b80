#include "buffer/message.h"

#include <algorithm>

#include "buffer/endian.h"

namespace sluice::buffer {
namespace {
constexpr uint8_t kMessageVersion = 1;

template <typename LengthT>
void AppendString(std::string* out, std::string_view s, void (*put)(std::string*, LengthT)) {
  put(out, static_cast<LengthT>(s.size()));
  out->append(s);
}
}  // namespace

bool Message::IsFor(std::string_view target_name) const {
  return std::find(targets.begin(), targets.end(), target_name) != targets.end();
}

bool MessageView::IsFor(std::string_view target_name) const {
  return std::find(targets.begin(), targets.end(), target_name) != targets.end();
}

std::string EncodeMessage(const Message& m) {
  std::string out;
  size_t size = 64 + m.method.size() + m.target.size() + m.client_addr.size() + m.route.size() +
                m.body.size();
  for (const auto& t : m.targets) size += 1 + t.size();
  for (const auto& [k, v] : m.headers) size += 6 + k.size() + v.size();
  out.reserve(size);
  AppendU8(&out, kMessageVersion);
  out.append(reinterpret_cast<const char*>(m.id.bytes.data()), m.id.bytes.size());
  AppendString<uint16_t>(&out, m.method, AppendU16);
  AppendString<uint32_t>(&out, m.target, AppendU32);
  AppendString<uint16_t>(&out, m.client_addr, AppendU16);
  AppendString<uint16_t>(&out, m.route, AppendU16);
  AppendU8(&out, static_cast<uint8_t>(m.targets.size()));
  for (const auto& t : m.targets) AppendString<uint8_t>(&out, t, AppendU8);
  AppendU32(&out, static_cast<uint32_t>(m.headers.size()));
  for (const auto& [k, v] : m.headers) {
    AppendString<uint16_t>(&out, k, AppendU16);
    AppendString<uint32_t>(&out, v, AppendU32);
  }
  AppendString<uint32_t>(&out, m.body, AppendU32);
  return out;
}

bool DecodeMessageTargets(std::string_view payload, std::vector<std::string_view>* targets) {
  targets->clear();
  ByteReader r(payload);
  if (r.U8() != kMessageVersion) return false;
  r.Take(16);       // id
  r.Take(r.U16());  // method
  r.Take(r.U32());  // request-target
  r.Take(r.U16());  // client address
  r.Take(r.U16());  // route
  uint8_t count = r.U8();
  for (int i = 0; i < count && !r.failed(); ++i) {
    std::string_view name = r.Take(r.U8());
    if (std::find(targets->begin(), targets->end(), name) == targets->end()) {
      targets->push_back(name);
    }
  }
  return !r.failed();
}

std::optional<MessageView> DecodeMessageView(std::string_view payload) {
  ByteReader r(payload);
  if (r.U8() != kMessageVersion) return std::nullopt;
  MessageView m;
  std::string_view id = r.Take(16);
  if (r.failed()) return std::nullopt;
  std::copy(id.begin(), id.end(), reinterpret_cast<char*>(m.id.bytes.data()));
  m.method = r.Take(r.U16());
  m.target = r.Take(r.U32());
  m.client_addr = r.Take(r.U16());
  m.route = r.Take(r.U16());
  uint8_t ntargets = r.U8();
  m.targets.reserve(ntargets);
  for (int i = 0; i < ntargets && !r.failed(); ++i) m.targets.push_back(r.Take(r.U8()));
  uint32_t nheaders = r.U32();
  // Each header needs at least 6 bytes: a count larger than the payload is corrupt, and
  // checking it first keeps a bad count from reserving gigabytes.
  if (nheaders > payload.size() / 6) return std::nullopt;
  m.headers.reserve(nheaders);
  for (uint32_t i = 0; i < nheaders && !r.failed(); ++i) {
    std::string_view name = r.Take(r.U16());
    std::string_view value = r.Take(r.U32());
    m.headers.emplace_back(name, value);
  }
  m.body = r.Take(r.U32());
  if (r.failed() || !r.at_end()) return std::nullopt;
  return m;
}

std::optional<Message> DecodeMessage(std::string_view payload) {
  std::optional<MessageView> view = DecodeMessageView(payload);
  if (!view) return std::nullopt;
  Message m;
  m.id = view->id;
  m.method = view->method;
  m.target = view->target;
  m.client_addr = view->client_addr;
  m.route = view->route;
  m.targets.assign(view->targets.begin(), view->targets.end());
  m.headers.reserve(view->headers.size());
  for (const auto& [k, v] : view->headers) m.headers.emplace_back(k, v);
  m.body = view->body;
  return m;
}

}  // namespace sluice::buffer
