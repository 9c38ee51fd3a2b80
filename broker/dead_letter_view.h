#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "buffer/dead_letter.h"
#include "common/uuid.h"

namespace sluice::broker {

// One target's dead letters as its dead-letter topic says. The topic is keyed by
// message id and meant to be compacted: the newest record of an id wins, and a
// tombstone (no value) deletes it. Records reach this view twice, from our own delivery
// reports and from the reader that tails the topic, in either order; since every record
// of one id lands in one partition, its offset orders them and an older record than the
// one applied is ignored. Not thread-safe: the owner guards it.
class DeadLetterView {
 public:
  // The record at (partition, offset) for message `id`: a letter, or a tombstone.
  void Apply(const common::Uuid& id, int32_t partition, int64_t offset,
             std::optional<buffer::DeadLetter> letter);
  uint64_t count() const { return count_; }
  // The live letters, oldest dead-lettering first.
  std::vector<buffer::DeadLetter> List() const;
  // The ids of the live letters.
  std::vector<common::Uuid> Ids() const;
  // The live letter of `id`, if any.
  const buffer::DeadLetter* Find(const common::Uuid& id) const;

 private:
  struct Entry {
    int32_t partition = 0;
    int64_t offset = -1;
    std::optional<buffer::DeadLetter> letter;  // nullopt: deleted by a tombstone
  };
  std::map<common::Uuid, Entry> entries_;
  uint64_t count_ = 0;
};

}  // namespace sluice::broker
