#include "broker/dead_letter_view.h"

#include <algorithm>

namespace sluice::broker {

void DeadLetterView::Apply(const common::Uuid& id, int32_t partition, int64_t offset,
                           std::optional<buffer::DeadLetter> letter) {
  auto [it, inserted] = entries_.try_emplace(id);
  Entry& e = it->second;
  // A different partition means the topic was repartitioned: the record read last wins.
  if (!inserted && e.partition == partition && offset <= e.offset) return;
  if (e.letter) --count_;
  e.partition = partition;
  e.offset = offset;
  e.letter = std::move(letter);
  if (e.letter) ++count_;
}

std::vector<buffer::DeadLetter> DeadLetterView::List() const {
  std::vector<buffer::DeadLetter> out;
  out.reserve(count_);
  for (const auto& [id, e] : entries_) {
    if (e.letter) out.push_back(*e.letter);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.dead_unix_ns < b.dead_unix_ns; });
  return out;
}

std::vector<common::Uuid> DeadLetterView::Ids() const {
  std::vector<common::Uuid> out;
  out.reserve(count_);
  for (const auto& [id, e] : entries_) {
    if (e.letter) out.push_back(id);
  }
  return out;
}

const buffer::DeadLetter* DeadLetterView::Find(const common::Uuid& id) const {
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.letter ? &*it->second.letter : nullptr;
}

}  // namespace sluice::broker
