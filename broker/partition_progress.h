#pragma once

#include <cstddef>
#include <cstdint>
#include <set>

namespace sluice::broker {

// One Kafka partition as a consumer group member works through it: the offsets handed
// out and not yet finished, and the offset that is safe to commit. Messages finish out
// of order (a target delivers several at once), so the commit stays at the lowest
// unfinished offset: a crash redelivers what was in flight and loses nothing.
// Not thread-safe: the owner guards it.
class PartitionProgress {
 public:
  // A fetched message. `pending`: it was handed out and must finish before the commit
  // passes it; otherwise (another target's message, undecodable) it is done at once.
  // Offsets arrive in increasing order.
  void Seen(int64_t offset, bool pending);
  // The message at `offset` finished. False when it was not pending (already finished).
  bool Finish(int64_t offset);
  // The offset to commit (the next one to read after a restart): the lowest unfinished,
  // or one past the highest seen. -1 before any message was seen.
  int64_t CommitPoint() const;
  // One past the highest offset seen (where fetching continues); -1 before any.
  int64_t next() const { return next_; }
  size_t unfinished() const { return unfinished_.size(); }

 private:
  std::set<int64_t> unfinished_;
  int64_t next_ = -1;
};

}  // namespace sluice::broker
