#include "buffer/dead_letter_store.h"

#include <fcntl.h>

#include <algorithm>

#include "buffer/message.h"
#include "buffer/record.h"
#include "buffer/segment.h"

namespace sluice::buffer {
namespace {

// One dead letter as a record: the message's seq and ingest time in the header.
Status WriteLetter(FileSystem& fs, int fd, uint64_t offset, const DeadLetter& letter,
                   uint64_t* written) {
  std::string payload = EncodeDeadLetterPayload(letter);
  char header[kRecordHeaderSize];
  EncodeRecordHeader(letter.seq, letter.ingest_unix_ns, 0, payload, header);
  std::vector<iovec> iov;
  *written = AppendRecordIovecs(header, payload, &iov);
  return fs.PwriteAll(fd, std::move(iov), offset);
}

}  // namespace

DeadLetterStore::~DeadLetterStore() { CloseAll(); }

void DeadLetterStore::CloseAll() {
  for (auto& [target, file] : files_) {
    if (file.fd >= 0) (void)fs_.Close(file.fd);
    file.fd = -1;
  }
}

Status DeadLetterStore::Scan(int fd, uint64_t size, std::vector<DeadLetter>* out,
                             uint64_t* valid_end, uint64_t* count) const {
  SegmentScanner scanner(fd, size, 0, fs_);
  RecordHeader header;
  std::string payload;
  Status io;
  *count = 0;
  *valid_end = 0;
  // The valid end is after the last whole letter: anything else (a torn letter, or a
  // footer-flagged record, which is never written here) is cut at Open.
  while (scanner.Next(&header, &payload, &io) == SegmentScanner::Result::kRecord) {
    *valid_end = scanner.offset();
    ++*count;
    if (out == nullptr) continue;
    auto letter = DecodeDeadLetterPayload(payload, header.seq, header.ingest_unix_ns);
    if (letter) out->push_back(std::move(*letter));
  }
  return io;
}

Status DeadLetterStore::Open(const std::vector<std::string>& targets) {
  // A rewrite interrupted by a crash leaves its temporary file; the original is intact.
  std::vector<std::string> names;
  Status listed = fs_.ListDir(dir_, &names);
  if (!listed.ok()) return listed;
  for (const auto& name : names) {
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".rewrite") == 0) {
      Status s = fs_.Unlink(dir_ + "/" + name);
      if (!s.ok()) return s;
    }
  }
  for (const auto& target : targets) {
    if (files_.count(target) > 0) continue;  // re-added by a reload: already open
    std::string path = PathOf(target);
    File file;
    Status s = fs_.Open(path, O_RDWR | O_CREAT, &file.fd);
    if (!s.ok()) return s;
    uint64_t size = 0;
    uint64_t count = 0;
    s = fs_.FileSize(file.fd, &size);
    if (s.ok()) s = Scan(file.fd, size, nullptr, &file.size, &count);
    if (s.ok() && file.size < size) s = fs_.Truncate(file.fd, file.size, path);
    files_[target] = file;
    if (!s.ok()) return s;
    std::lock_guard lock(mu_);
    counts_[target] = count;
  }
  return fs_.SyncDir(dir_);
}

bool DeadLetterStore::Has(const std::string& target) const {
  std::lock_guard lock(mu_);
  return counts_.count(target) > 0;
}

Status DeadLetterStore::Append(const DeadLetter& letter) {
  auto it = files_.find(letter.target);
  if (it == files_.end()) return Status::NotFound("no dead-letter file for " + letter.target);
  uint64_t written = 0;
  Status s = WriteLetter(fs_, it->second.fd, it->second.size, letter, &written);
  if (!s.ok()) return s;
  it->second.size += written;
  std::lock_guard lock(mu_);
  ++counts_[letter.target];
  return Status::OK();
}

Status DeadLetterStore::Sync(const std::string& target) {
  auto it = files_.find(target);
  if (it == files_.end()) return Status::NotFound("no dead-letter file for " + target);
  return fs_.Fdatasync(it->second.fd, PathOf(target));
}

Status DeadLetterStore::Remove(const std::string& target, const std::vector<common::Uuid>* ids,
                               uint64_t* removed) {
  *removed = 0;
  auto it = files_.find(target);
  if (it == files_.end()) return Status::NotFound("no dead-letter file for " + target);
  File& file = it->second;
  std::vector<DeadLetter> letters;
  uint64_t end = 0;
  uint64_t count = 0;
  Status s = Scan(file.fd, file.size, &letters, &end, &count);
  if (!s.ok()) return s;

  std::string path = PathOf(target);
  std::string tmp = path + ".rewrite";
  int fd = -1;
  s = fs_.Open(tmp, O_RDWR | O_CREAT | O_TRUNC, &fd);
  if (!s.ok()) return s;
  uint64_t size = 0;
  uint64_t kept = 0;
  for (const auto& letter : letters) {
    bool drop = ids == nullptr;
    if (!drop) {
      auto message = DecodeMessage(letter.payload);
      drop = message && std::find(ids->begin(), ids->end(), message->id) != ids->end();
    }
    if (drop) {
      ++*removed;
      continue;
    }
    uint64_t written = 0;
    s = WriteLetter(fs_, fd, size, letter, &written);
    if (!s.ok()) break;
    size += written;
    ++kept;
  }
  if (s.ok()) s = fs_.Fdatasync(fd, tmp);
  if (s.ok()) s = fs_.Rename(tmp, path);
  if (!s.ok()) {
    (void)fs_.Close(fd);
    (void)fs_.Unlink(tmp);
    *removed = 0;
    return s;
  }
  (void)fs_.Close(file.fd);
  file.fd = fd;
  file.size = size;
  {
    std::lock_guard lock(mu_);
    counts_[target] = kept;
  }
  return fs_.SyncDir(dir_);
}

uint64_t DeadLetterStore::Count(const std::string& target) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(target);
  return it == counts_.end() ? 0 : it->second;
}

Status DeadLetterStore::List(const std::string& target, std::vector<DeadLetter>* out) const {
  out->clear();
  if (!Has(target)) return Status::NotFound("no dead-letter file for " + target);
  int fd = -1;
  Status s = fs_.Open(PathOf(target), O_RDONLY, &fd);
  if (!s.ok()) return s;
  uint64_t size = 0;
  uint64_t end = 0;
  uint64_t count = 0;
  s = fs_.FileSize(fd, &size);
  if (s.ok()) s = Scan(fd, size, out, &end, &count);
  (void)fs_.Close(fd);
  for (auto& letter : *out) letter.target = target;
  return s;
}

}  // namespace sluice::buffer
