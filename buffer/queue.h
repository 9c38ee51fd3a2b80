#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "buffer/dead_letter.h"
#include "buffer/fsync_policy.h"
#include "buffer/idempotency.h"
#include "buffer/message.h"
#include "common/clock.h"
#include "common/status.h"
#include "common/uuid.h"

namespace sluice::buffer {

// What the proxy stores requests in and delivers them from: the embedded disk log
// (DiskQueue) or a broker (RabbitMQ, Kafka, SQS: broker/). Ingest, dispatch, admin and
// metrics see only this interface, so none of them changes per backend.
//
// Threads: every method is called from one owner thread (the event loop). A backend
// does its blocking work on threads of its own and reports back through `wake` (see
// QueueEvents): the owner then calls RunCompletions(), which runs the finished
// operations' callbacks on the owner thread, and pumps every target.
//
// Statuses a backend returns or completes with, and what the proxy answers:
//   kBusy         full (max_bytes, a broker's queue limit): 503 queue_full + Retry-After
//   kNoSpace      the same, found out late (disk full)
//   kUnavailable  the broker is unreachable or did not confirm: 503 + Retry-After
//   anything else a storage failure: 500, and the process stops (never retried)

// One message handed to a target's dispatcher. `message` points into `payload`: a
// QueuedMessage must not move once Next() filled it (dispatch keeps it on the heap).
struct QueuedMessage {
  // What Finish() and dead-lettering name the message by: the disk log's sequence, a
  // broker's delivery tag or offset. Unique among the target's unfinished messages.
  uint64_t tag = 0;
  uint64_t ingest_unix_ns = 0;
  std::string payload;  // EncodeMessage's bytes, as ingest stored them
  MessageView message;  // decoded from payload
};

// One target's share of the queue: its messages in order, and their completion.
class TargetQueue {
 public:
  enum class Result {
    kMessage,   // *out holds the next message
    kCaughtUp,  // none available now; the owner pumps again after RunCompletions()
    kError,     // reading failed; *error says why (logged; the owner tries again later)
  };
  virtual ~TargetQueue() = default;

  // The next message for this target. Messages come in the order they were stored;
  // one that cannot be decoded is skipped and counted in skipped().
  virtual Result Next(QueuedMessage* out, common::Status* error) = 0;
  // The message was delivered, or its dead letter is stored: it is not handed out
  // again (after a crash it may be: at least once).
  virtual void Finish(uint64_t tag) = 0;
  // Messages for this target stored but not finished, as known when it was opened;
  // ingest reports new ones to dispatch as they become durable.
  virtual uint64_t queued_at_open() const = 0;
  // A position that only moves forward as messages are finished, counted in messages
  // (the disk log's cursor): how fast the queue drains. 0 when the backend has none.
  virtual uint64_t progress() const = 0;
  virtual uint64_t skipped() const = 0;
};

// What a reload may change without a restart.
struct QueueTunables {
  uint64_t max_bytes = 1ull << 30;
  uint64_t segment_bytes = 64ull << 20;
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  common::Duration fsync_interval = std::chrono::milliseconds(10);
};

// Where a backend reports, on its own threads.
struct QueueEvents {
  // Operations finished or messages arrived: the owner calls RunCompletions() soon, on
  // its own thread (the proxy wires this to uv_async_send). Called from any thread.
  std::function<void()> wake;
  // Observers called on a backend thread (metrics); may be empty.
  std::function<void(common::Duration fsync, size_t records)> on_commit;
};

class Queue {
 public:
  // `status` OK: done; the uint64_t is what the operation says (the record's position,
  // letters affected).
  using Done = std::function<void(const common::Status& status, uint64_t value)>;
  virtual ~Queue() = default;

  // --- ingest ---
  // Stores one message (EncodeMessage's bytes; the targets are in it). Returns an error
  // without storing when the queue is full, unavailable or failed; otherwise `done` runs
  // from RunCompletions() once the message is durable as the backend promises (an
  // fdatasync, a publisher confirm, a delivery report) or with the error that stopped it.
  virtual common::Status Append(std::string payload, uint64_t ingest_unix_ns, Done done) = 0;
  // Hands the appends made since the last call to the backend at once (the proxy calls
  // it once per loop iteration). Backends that send each append at once do nothing.
  virtual void Submit() = 0;
  // Runs the callbacks of finished operations on the calling (owner) thread.
  virtual void RunCompletions() = 0;
  // Idempotency keys: stored like messages; the unexpired ones are loaded at open.
  virtual common::Status AppendIdempotencyKey(IdempotencyEntry entry, Done done) = 0;
  virtual std::vector<IdempotencyEntry> TakeLoadedIdempotencyKeys() = 0;
  // A full queue's Retry-After: how many messages, counted like TargetQueue::progress(),
  // must drain from the slowest target before there is room (0: unknown).
  virtual uint64_t BacklogBeforeRoom(uint64_t slowest_progress) const = 0;

  // --- targets ---
  // The target's queue. `added` says a reload added it: a disk log starts it at its end
  // (messages stored before were not addressed to it). *out lives until the Queue closes.
  virtual common::Status OpenTarget(const std::string& target, bool added,
                                    std::unique_ptr<TargetQueue>* out) = 0;
  // How many messages the target may have in flight at once, before OpenTarget: a
  // broker consumer holds no more than that unacknowledged (its prefetch). The disk log
  // needs nothing.
  virtual void SetTargetConcurrency(const std::string& target, uint32_t concurrency) {
    (void)target;
    (void)concurrency;
  }
  // A reload removed the target: stop counting it (its stored messages stay).
  virtual void RemoveTarget(const std::string& target) = 0;

  // --- dead letters ---
  // Stores `dl` (dl.seq is the message's tag); `done` runs once it is durable. Only then
  // may dispatch Finish() the message.
  virtual common::Status AppendDeadLetter(DeadLetter dl, Done done) = 0;
  virtual uint64_t DeadLetterCount(const std::string& target) const = 0;
  virtual common::Status ListDeadLetters(const std::string& target,
                                         std::vector<DeadLetter>* out) const = 0;
  // Deletes the letter of message `id`, or every letter when id is empty; `done` gets
  // the number deleted.
  virtual common::Status PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                          Done done) = 0;
  // Stores the letters' messages again for `target` alone (same message ids) and then
  // removes the letters: at least once. *queued (optional): how many were handed on.
  virtual common::Status ReplayDeadLetters(const std::string& target,
                                           std::optional<common::Uuid> id, Done done,
                                           size_t* queued) = 0;

  // --- state ---
  // "disk", "rabbitmq", ...: logs and /readyz?verbose.
  virtual const char* kind() const = 0;
  // OK, or the failure that stops the process (an fsync error).
  virtual common::Status fatal_error() const = 0;
  // OK while appends can succeed; else why not (full; broker unreachable). /readyz.
  virtual common::Status Availability() const = 0;
  // A reload: limits and tunables from the next operation on (a backend ignores what
  // does not apply to it).
  virtual void Reconfigure(const QueueTunables& tunables) = 0;
  // Gauges: bytes stored and the limit, segment files (0 where a backend has none).
  virtual uint64_t bytes() const = 0;
  virtual uint64_t max_bytes() const = 0;
  virtual size_t segment_count() const = 0;
  // Stops taking appends, finishes what was handed over, releases everything.
  virtual void Close() = 0;
};

}  // namespace sluice::buffer
