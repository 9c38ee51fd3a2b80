#pragma once

// buffer.kind: sqs — the queue behind sluice is one SQS queue per target
// (queue_prefix + target) and one for its dead letters (queue_prefix + target + "-dead").
//
// Unlike the other brokers, SQS is plain HTTP: this backend runs on the proxy's own libuv
// loop with the loop's HTTP client, and has no threads. It keeps the Queue contract all
// the same: callbacks run from RunCompletions(), after `events.wake`.
//
// - Append: one SendMessage per target the message names (SQS has no fan-out); `done`
//   is OK only when every copy is stored. A partial failure completes Unavailable: the
//   client retries, and the targets that already have a copy get a duplicate (at least
//   once; downstreams dedupe on Idempotency-Key). The body is the payload in base64
//   (SQS bodies must be XML characters); the ingest time travels in a message attribute.
// - Consumption: long-poll ReceiveMessage per target, never holding more than the
//   target's share in hand; Finish() deletes the message. A message held unfinished (in
//   delivery, or waiting for a retry) has its visibility extended before it runs out, so
//   a healthy instance never has its message handed to another; a crashed instance's
//   messages reappear when their visibility timeout ends. A held message that SQS hands
//   over again (at least once) is not handed out twice: its newest receipt is kept.
// - Dead letters: SendMessage to the dead queue. Listing and counting answer from a cache
//   that this instance's own changes update at once and a periodic scan refreshes (other
//   instances' changes show up then). Purging and replaying scan the dead queue for the
//   letters first (not PurgeQueue: it takes up to a minute and one a minute).
// - Idempotency keys are remembered in memory only (until a restart).
// - Availability: Unavailable while the queue URLs are not resolved, and after
//   `failures_before_unavailable` consecutive calls failed, until one succeeds; appends
//   fail fast meanwhile while polls keep probing.

#include <uv.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "aws/credentials.h"
#include "broker/sqs_client.h"
#include "buffer/queue.h"
#include "common/clock.h"

namespace sluice::broker {

struct SqsTargetOptions {
  std::string name;
  // How many messages are kept received ahead of delivery, and how many long polls may
  // run at once (one per ten).
  uint32_t concurrency = 4;
  // Most messages received and not yet finished; 0: what dispatch may hold at once
  // (concurrency in flight, max(64, 4 * concurrency) waiting for a retry, one ahead).
  size_t max_in_hand = 0;
};

struct SqsOptions {
  std::string region = "us-east-1";
  std::string endpoint;  // http://host[:port]; "" (the region's https endpoint) is refused
  std::string queue_prefix = "sluice-";
  aws::Credentials credentials;  // e.g. aws::Credentials::FromEnvironment
  std::vector<SqsTargetOptions> targets;

  // What a receive hides a message for, counted from when the receive was sent; extended
  // when half of it is left. Whole seconds, 1s..12h. Also how soon a crashed instance's
  // unfinished messages reappear.
  common::Duration visibility_timeout = std::chrono::seconds(30);
  // ReceiveMessage's WaitTimeSeconds, 1..20 (0 would poll without pause); capped at half
  // the visibility timeout, so that a message never arrives with less than half left.
  int wait_time_seconds = 20;
  // A call's timeout on top of its long-poll wait.
  common::Duration request_timeout = std::chrono::seconds(10);
  uint32_t failures_before_unavailable = 3;
  // Failed polls and queue URL look-ups are retried after a backoff up to this.
  common::Duration max_retry_backoff = std::chrono::seconds(1);
  // How often the dead-letter cache is rebuilt from SQS.
  common::Duration dead_letter_refresh = std::chrono::seconds(60);
  // A scan of a dead queue reads at most this many letters (listing, replay, purge one).
  size_t max_dead_letters_scanned = 1000;
  // A scan's receives hide the letters this long (they are made visible again when the
  // scan's operation ends) and wait this long for more (0 is a short poll, which on SQS
  // may miss letters).
  common::Duration dead_letter_scan_visibility = std::chrono::seconds(30);
  int dead_letter_scan_wait_seconds = 1;
  // A message whose base64 body is larger is refused before sending (Unavailable: the
  // interface has no "too large"): SQS takes 1 MiB per message, attributes included, so
  // payloads up to about 768 KiB.
  size_t max_message_bytes = (1u << 20) - 1024;
};

class SqsQueue final : public buffer::Queue {
 public:
  // Checks the options (endpoint, credentials, queue names) and starts resolving the
  // queue URLs on `loop` (creating missing queues); returns without waiting for SQS.
  // Until the URLs are known, Availability() and appends say Unavailable. "loop" and
  // "clock" must outlive the queue; every call comes from the loop's thread.
  static common::Status Open(uv_loop_t* loop, const common::Clock& clock, SqsOptions options,
                             buffer::QueueEvents events, std::unique_ptr<SqsQueue>* out);
  ~SqsQueue() override;

  // Every configured target's queue URLs are known.
  bool ready() const;
  // SQS calls sent so far (tests, logs).
  uint64_t calls() const { return client_ ? client_->calls() : 0; }

  common::Status Append(std::string payload, uint64_t ingest_unix_ns, Done done) override;
  void Submit() override {}
  void RunCompletions() override;
  common::Status AppendIdempotencyKey(buffer::IdempotencyEntry entry, Done done) override;
  std::vector<buffer::IdempotencyEntry> TakeLoadedIdempotencyKeys() override { return {}; }
  uint64_t BacklogBeforeRoom(uint64_t) const override { return 0; }

  common::Status OpenTarget(const std::string& target, bool added,
                            std::unique_ptr<buffer::TargetQueue>* out) override;
  void RemoveTarget(const std::string& target) override;

  common::Status AppendDeadLetter(buffer::DeadLetter dl, Done done) override;
  uint64_t DeadLetterCount(const std::string& target) const override;
  common::Status ListDeadLetters(const std::string& target,
                                 std::vector<buffer::DeadLetter>* out) const override;
  common::Status PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                  Done done) override;
  common::Status ReplayDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                   Done done, size_t* queued) override;

  const char* kind() const override { return "sqs"; }
  common::Status fatal_error() const override { return common::Status::OK(); }
  common::Status Availability() const override;
  void Reconfigure(const buffer::QueueTunables&) override {}
  uint64_t bytes() const override { return 0; }
  uint64_t max_bytes() const override { return 0; }
  size_t segment_count() const override { return 0; }
  void Close() override;

 private:
  class Target;
  class TargetView;
  struct Tick;
  struct Letter;

  SqsQueue(uv_loop_t* loop, const common::Clock& clock, SqsOptions options, SqsEndpoint endpoint,
           buffer::QueueEvents events);

  Target& AddTarget(const std::string& name, uint32_t concurrency, size_t max_in_hand);
  Target* FindTarget(const std::string& name) const;
  void Call(std::string_view action, std::string body, common::Duration timeout,
            SqsClient::Done done);
  void Note(const SqsReply& reply);
  void Complete(Done done, common::Status status, uint64_t value);
  // Keeps `done` until Settle(): Close() fails what is still held.
  uint64_t Hold(Done done);
  void Settle(uint64_t id, common::Status status, uint64_t value);
  common::Duration Backoff(uint32_t failures) const;
  void OnTick();
  void Resolve(Target& t);
  void ResolveQueue(Target& t, bool dead);
  void Poll(Target& t);
  int ReceiveWaitSeconds() const;
  void OnReceived(Target& t, uint32_t asked, common::Duration sent, SqsReply reply);
  void PollFailed(Target& t);
  void Extend(Target& t);
  void DeleteLater(std::string url, std::string receipt, int attempts);
  void Delete(std::string url, std::string receipt, int attempts);
  void FinishMessage(Target& t, uint64_t tag);
  bool NextMessage(Target& t, buffer::QueuedMessage* out);

  // Dead letters: one operation at a time per target (see sqs_queue.cc).
  using DeadOp = std::function<void(std::function<void()> next)>;
  void RunDeadOp(Target& t, DeadOp op);
  void StartDeadOp(Target& t);
  void ScanDead(Target& t, std::function<void(common::Status, std::vector<Letter>)> done);
  void DeleteLetters(Target& t, std::vector<Letter> letters, std::function<void(uint64_t)> then);
  void ReleaseLetters(Target& t, std::vector<Letter> letters, std::function<void()> then);
  void RefreshDead(Target& t, std::function<void()> next);

  uv_loop_t* loop_;
  const common::Clock& clock_;
  SqsOptions options_;
  buffer::QueueEvents events_;
  std::unique_ptr<SqsClient> client_;
  Tick* tick_ = nullptr;  // owns a uv_timer_t; freed in its close callback
  std::map<std::string, std::unique_ptr<Target>> targets_;
  std::vector<std::function<void()>> completions_;
  // Operations waiting for an answer; failed with Unavailable at Close().
  std::unordered_map<uint64_t, Done> pending_;
  uint64_t next_pending_ = 1;
  struct RetryDelete {
    std::string url;
    std::string receipt;
    int attempts;
  };
  std::vector<RetryDelete> retry_deletes_;
  uint32_t consecutive_failures_ = 0;
  std::string last_error_;
  common::Duration last_probe_{};
  uint64_t next_tag_ = 1;
  bool closed_ = false;
};

}  // namespace sluice::broker
