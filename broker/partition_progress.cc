#include "broker/partition_progress.h"

namespace sluice::broker {

void PartitionProgress::Seen(int64_t offset, bool pending) {
  if (pending) unfinished_.insert(offset);
  if (offset + 1 > next_) next_ = offset + 1;
}

bool PartitionProgress::Finish(int64_t offset) { return unfinished_.erase(offset) == 1; }

int64_t PartitionProgress::CommitPoint() const {
  return unfinished_.empty() ? next_ : *unfinished_.begin();
}

}  // namespace sluice::broker
