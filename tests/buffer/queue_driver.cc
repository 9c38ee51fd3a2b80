#include "tests/buffer/queue_driver.h"

#include <gtest/gtest.h>

#include <memory>

#include "buffer/message.h"

namespace sluice::buffer::test {

QueueEvents QueueDriver::Events() {
  QueueEvents events;
  events.wake = [this] {
    {
      std::lock_guard lock(mu_);
      ++wakes_;
    }
    cv_.notify_all();
  };
  return events;
}

bool QueueDriver::RunUntil(Queue& queue, const std::function<bool()>& done,
                           std::chrono::milliseconds deadline_in) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + deadline_in;
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard lock(mu_);
      seen = wakes_;
    }
    queue.Submit();
    queue.RunCompletions();
    if (done()) return true;
    const auto now = Clock::now();
    if (now >= deadline) {
      ADD_FAILURE() << "condition not reached within " << deadline_in.count() << " ms";
      return false;
    }
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(2)),
                   [&] { return wakes_ != seen; });
  }
}

common::Status QueueDriver::Store(Queue& queue, const std::vector<std::string>& targets,
                                  const std::string& body) {
  Message m;
  m.id = ids_.Next(next_ms_++);
  m.method = "POST";
  m.target = "/orders";
  m.client_addr = "127.0.0.1";
  m.route = "r";
  m.targets = targets;
  m.headers = {{"Content-Type", "text/plain"}};
  m.body = body;
  auto result = std::make_shared<std::optional<common::Status>>();
  common::Status s = queue.Append(EncodeMessage(m), 1,
                                  [result](const common::Status& st, uint64_t) { *result = st; });
  if (!s.ok()) return s;
  if (!RunUntil(queue, [&] { return result->has_value(); })) {
    return common::Status::IoError("append not completed in time");
  }
  return **result;
}

std::vector<QueuedMessage> QueueDriver::Drain(TargetQueue& target) {
  std::vector<QueuedMessage> out;
  for (;;) {
    auto m = std::make_unique<QueuedMessage>();
    common::Status error;
    TargetQueue::Result r = target.Next(m.get(), &error);
    if (r == TargetQueue::Result::kError) ADD_FAILURE() << error.ToString();
    if (r != TargetQueue::Result::kMessage) break;
    // The views point into m->payload: re-decode after the copy moves it.
    QueuedMessage copy;
    copy.tag = m->tag;
    copy.ingest_unix_ns = m->ingest_unix_ns;
    copy.payload = m->payload;
    out.push_back(std::move(copy));
  }
  for (auto& m : out) m.message = *DecodeMessageView(m.payload);
  return out;
}

std::string BodyOf(const QueuedMessage& m) { return std::string(m.message.body); }

}  // namespace sluice::buffer::test
