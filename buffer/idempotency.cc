#include "buffer/idempotency.h"

#include <fcntl.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "buffer/endian.h"
#include "buffer/record.h"
#include "buffer/segment.h"

namespace sluice::buffer {

// ---- IdempotencyIndex

const IdempotencyIndex::Slot* IdempotencyIndex::Find(const std::string& scoped_key,
                                                     uint64_t now_unix_ns) const {
  auto it = slots_.find(scoped_key);
  if (it == slots_.end() || it->second.entry.expires_unix_ns <= now_unix_ns) return nullptr;
  return &it->second;
}

void IdempotencyIndex::Insert(IdempotencyEntry entry, bool pending) {
  std::string key = entry.scoped_key;
  uint64_t expires = entry.expires_unix_ns;
  slots_[key] = Slot{std::move(entry), pending};
  order_.emplace_back(expires, std::move(key));
  while (slots_.size() > max_keys_) DropOldest();
}

void IdempotencyIndex::MarkDone(const std::string& scoped_key) {
  auto it = slots_.find(scoped_key);
  if (it != slots_.end()) it->second.pending = false;
}

void IdempotencyIndex::Erase(const std::string& scoped_key) { slots_.erase(scoped_key); }

void IdempotencyIndex::DropOldest() {
  while (!order_.empty()) {
    auto [expires, key] = std::move(order_.front());
    order_.pop_front();
    auto it = slots_.find(key);
    // A key re-inserted later has a newer order entry; this one is stale.
    if (it != slots_.end() && it->second.entry.expires_unix_ns == expires) {
      slots_.erase(it);
      ++evicted_;
      return;
    }
  }
}

void IdempotencyIndex::Expire(uint64_t now_unix_ns) {
  while (!order_.empty() && order_.front().first <= now_unix_ns) {
    auto it = slots_.find(order_.front().second);
    if (it != slots_.end() && it->second.entry.expires_unix_ns <= now_unix_ns) slots_.erase(it);
    order_.pop_front();
  }
  // Stale order entries of erased keys are bounded by the insert count; trim them when
  // they dominate so memory stays proportional to live keys.
  if (order_.size() > 2 * slots_.size() + 1024) {
    std::deque<std::pair<uint64_t, std::string>> kept;
    for (auto& item : order_) {
      auto it = slots_.find(item.second);
      if (it != slots_.end() && it->second.entry.expires_unix_ns == item.first) {
        kept.push_back(std::move(item));
      }
    }
    order_.swap(kept);
  }
}

// ---- encoding: u8 version · u64 expires · 16-byte id · u64 fingerprint · u16+key

std::string EncodeIdempotencyEntry(const IdempotencyEntry& e) {
  std::string out;
  out.reserve(40 + e.scoped_key.size());
  AppendU8(&out, 1);
  char u64[8];
  PutU64(u64, e.expires_unix_ns);
  out.append(u64, 8);
  out.append(reinterpret_cast<const char*>(e.id.bytes.data()), 16);
  PutU64(u64, e.fingerprint);
  out.append(u64, 8);
  AppendU16(&out, static_cast<uint16_t>(e.scoped_key.size()));
  out.append(e.scoped_key);
  return out;
}

std::optional<IdempotencyEntry> DecodeIdempotencyEntry(std::string_view payload) {
  ByteReader r(payload);
  if (r.U8() != 1) return std::nullopt;
  IdempotencyEntry e;
  std::string_view expires = r.Take(8);
  std::string_view id = r.Take(16);
  std::string_view fingerprint = r.Take(8);
  e.scoped_key = r.Take(r.U16());
  if (r.failed() || !r.at_end()) return std::nullopt;
  e.expires_unix_ns = GetU64(expires.data());
  std::memcpy(e.id.bytes.data(), id.data(), 16);
  e.fingerprint = GetU64(fingerprint.data());
  return e;
}

// ---- IdempotencyFiles

IdempotencyFiles::IdempotencyFiles(FileSystem& fs, std::string dir, uint64_t roll_after_ns)
    : fs_(fs), dir_(std::move(dir)), roll_after_ns_(roll_after_ns) {}

IdempotencyFiles::~IdempotencyFiles() { Close(); }

void IdempotencyFiles::Close() {
  if (active_fd_ >= 0) (void)fs_.Close(active_fd_);
  active_fd_ = -1;
}

Status IdempotencyFiles::Open(uint64_t now_unix_ns, std::vector<IdempotencyEntry>* live) {
  Status s = fs_.MakeDirs(dir_);
  std::vector<std::string> names;
  if (s.ok()) s = fs_.ListDir(dir_, &names);
  if (!s.ok()) return s;
  std::sort(names.begin(), names.end());  // zero-padded seconds: oldest first
  bool removed = false;
  for (const auto& name : names) {
    std::string path = dir_ + "/" + name;
    int fd = -1;
    s = fs_.Open(path, O_RDONLY, &fd);
    if (!s.ok()) return s;
    uint64_t size = 0;
    s = fs_.FileSize(fd, &size);
    File file{path, 0};
    if (s.ok()) {
      // A torn last entry was never acknowledged (its 202 waits for the sync).
      SegmentScanner scanner(fd, size, 0, fs_);
      RecordHeader header;
      std::string payload;
      while (scanner.Next(&header, &payload, &s) == SegmentScanner::Result::kRecord) {
        auto entry = DecodeIdempotencyEntry(payload);
        if (!entry) continue;
        file.max_expires_unix_ns = std::max(file.max_expires_unix_ns, entry->expires_unix_ns);
        if (entry->expires_unix_ns > now_unix_ns) live->push_back(std::move(*entry));
      }
    }
    (void)fs_.Close(fd);
    if (!s.ok()) return s;
    if (file.max_expires_unix_ns <= now_unix_ns) {
      s = fs_.Unlink(path);
      if (!s.ok()) return s;
      removed = true;
    } else {
      sealed_.push_back(std::move(file));
    }
  }
  if (removed) s = fs_.SyncDir(dir_);
  return s;
}

Status IdempotencyFiles::StartFile(uint64_t now_unix_ns) {
  Close();
  if (!active_.path.empty()) sealed_.push_back(active_);
  char name[40];
  // Named by the millisecond it starts: a restart never appends to an older file (whose
  // tail might be torn), since start-up takes longer than that.
  std::snprintf(name, sizeof(name), "%020llu.log",
                static_cast<unsigned long long>(now_unix_ns / 1'000'000));
  active_ = File{dir_ + "/" + name, 0};
  Status s = fs_.Open(active_.path, O_RDWR | O_CREAT, &active_fd_);
  if (s.ok()) s = fs_.FileSize(active_fd_, &active_size_);
  if (s.ok()) s = fs_.SyncDir(dir_);
  active_started_ns_ = now_unix_ns;
  return s;
}

Status IdempotencyFiles::Append(const std::vector<IdempotencyEntry>& entries, uint64_t now_unix_ns,
                                bool sync) {
  Status s;
  if (active_fd_ < 0 || now_unix_ns - active_started_ns_ >= roll_after_ns_) {
    s = StartFile(now_unix_ns);
    if (!s.ok()) return s;
  }
  std::vector<std::string> payloads;
  std::vector<char> headers(entries.size() * kRecordHeaderSize);
  std::vector<iovec> iov;
  payloads.reserve(entries.size());
  uint64_t bytes = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    payloads.push_back(EncodeIdempotencyEntry(entries[i]));
    const std::string& p = payloads.back();
    char* h = headers.data() + i * kRecordHeaderSize;
    EncodeRecordHeader(0, now_unix_ns, 0, p, h);
    bytes += AppendRecordIovecs(h, p, &iov);
    active_.max_expires_unix_ns = std::max(active_.max_expires_unix_ns, entries[i].expires_unix_ns);
  }
  s = fs_.PwriteAll(active_fd_, std::move(iov), active_size_);
  if (s.ok() && sync) s = fs_.Fdatasync(active_fd_, active_.path);
  if (s.ok()) active_size_ += bytes;
  return s;
}

Status IdempotencyFiles::DropExpired(uint64_t now_unix_ns) {
  bool removed = false;
  for (auto it = sealed_.begin(); it != sealed_.end();) {
    if (it->max_expires_unix_ns > now_unix_ns || it->path == active_.path) {
      ++it;
      continue;
    }
    Status s = fs_.Unlink(it->path);
    if (!s.ok()) return s;
    removed = true;
    it = sealed_.erase(it);
  }
  return removed ? fs_.SyncDir(dir_) : Status::OK();
}

}  // namespace sluice::buffer
