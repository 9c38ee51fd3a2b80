#include "buffer/segment_footer.h"

#include <algorithm>

#include "buffer/endian.h"
#include "buffer/message.h"

namespace sluice::buffer {
namespace {

constexpr size_t kVersion1Payload = 16;
constexpr size_t kVersion2MinPayload = 32;  // no targets: 24 bytes of fields, 8 of size

}  // namespace

std::optional<SegmentFooter> DecodeSegmentFooterRecord(std::string_view record) {
  if (record.size() < kRecordHeaderSize) return std::nullopt;
  RecordHeader header;
  if (DecodeRecordHeader(record.data(), &header) != HeaderState::kValid) return std::nullopt;
  if (record.size() != kRecordHeaderSize + header.payload_len) return std::nullopt;
  std::string_view payload = record.substr(kRecordHeaderSize);
  if (!PayloadMatches(header, payload)) return std::nullopt;
  return DecodeSegmentFooter(header, payload);
}

bool FooterCountsTargets(const SegmentFooter& footer) {
  return footer.targets && footer.targets->size() <= kMaxFooterTargets &&
         std::all_of(footer.targets->begin(), footer.targets->end(),
                     [](const auto& t) { return t.first.size() <= 255; });
}

std::string EncodeSegmentFooterPayload(const SegmentFooter& footer) {
  std::string out;
  char u64[8];
  PutU64(u64, footer.first_seq);
  out.append(u64, 8);
  PutU64(u64, footer.records);
  out.append(u64, 8);
  if (!FooterCountsTargets(footer)) return out;
  uint32_t count = 0;
  for (const auto& [name, records] : *footer.targets) count += records > 0 ? 1 : 0;
  AppendU32(&out, count);
  AppendU32(&out, 0);
  for (const auto& [name, records] : *footer.targets) {
    if (records == 0) continue;  // absent means none
    PutU64(u64, records);
    out.append(u64, 8);
    AppendU8(&out, static_cast<uint8_t>(name.size()));
    out.append(name);
  }
  out.append(PaddedSize(out.size()) - out.size(), '\0');
  PutU64(u64, kRecordHeaderSize + out.size() + 8);
  out.append(u64, 8);
  return out;
}

std::optional<SegmentFooter> DecodeSegmentFooter(const RecordHeader& header,
                                                 std::string_view payload) {
  if (!(header.flags & kFlagFooter)) return std::nullopt;
  if (payload.size() != kVersion1Payload &&
      (payload.size() < kVersion2MinPayload || payload.size() % 8 != 0)) {
    return std::nullopt;
  }
  SegmentFooter footer;
  footer.first_seq = GetU64(payload.data());
  footer.records = GetU64(payload.data() + 8);
  footer.end_seq = header.seq;
  if (footer.end_seq - footer.first_seq != footer.records) return std::nullopt;
  if (payload.size() == kVersion1Payload) return footer;

  if (GetU64(payload.data() + payload.size() - 8) != kRecordHeaderSize + payload.size()) {
    return std::nullopt;
  }
  ByteReader r(payload.substr(16, payload.size() - 24));
  uint32_t count = r.U32();
  if (r.U32() != 0 || count > kMaxFooterTargets) return std::nullopt;
  TargetCounts targets;
  std::string_view previous;
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t records = r.U64();
    std::string_view name = r.Take(r.U8());
    if (r.failed() || records == 0 || records > footer.records) return std::nullopt;
    if (i > 0 && name <= previous) return std::nullopt;  // ascending, each once
    targets.emplace_hint(targets.end(), name, records);
    previous = name;
  }
  // Only the padding may remain: fewer than 8 bytes, all zero.
  std::string_view padding = r.Take(r.remaining());
  if (padding.size() >= 8 || padding.find_first_not_of('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  footer.targets = std::move(targets);
  return footer;
}

size_t SegmentFooterSize(const SegmentFooter& footer) {
  return RecordSize(EncodeSegmentFooterPayload(footer).size());
}

void SegmentTally::Add(std::string_view payload) {
  if (!counts_ || !DecodeMessageTargets(payload, &names_)) return;
  for (std::string_view name : names_) {
    auto it = counts_->find(name);
    if (it == counts_->end()) {
      if (counts_->size() == kMaxFooterTargets) {
        counts_.reset();  // too many to list: the footer will not count
        return;
      }
      it = counts_->emplace(std::string(name), 0).first;
    }
    ++it->second;
  }
}

}  // namespace sluice::buffer
