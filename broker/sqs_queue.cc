#include "broker/sqs_queue.h"

#include <algorithm>
#include <unordered_set>

#include "broker/base64.h"
#include "broker/json.h"
#include "buffer/message.h"
#include "common/json_writer.h"

namespace sluice::broker {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The message attribute that carries the ingest time (SQS attribute names: letters,
// digits, '-', '_', '.'; not starting with "AWS." or "Amazon.").
constexpr std::string_view kIngestAttribute = "SluiceIngestNs";
// SQS keeps a message at most 14 days; the default is 4. Dead letters should last.
constexpr std::string_view kRetentionSeconds = "1209600";
constexpr int64_t kMaxVisibilitySeconds = 12 * 3600;
constexpr uint32_t kMaxReceive = 10;  // SQS's MaxNumberOfMessages limit
constexpr int kDeleteAttempts = 5;

int64_t Seconds(common::Duration d) { return duration_cast<seconds>(d).count(); }

bool IsQueueName(std::string_view name) {
  if (name.empty() || name.size() > 80) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::string QueueNameBody(std::string_view name, bool create) {
  common::JsonWriter j;
  j.BeginObject().Key("QueueName").String(name);
  if (create) {
    j.Key("Attributes").BeginObject().Key("MessageRetentionPeriod").String(kRetentionSeconds);
    j.EndObject();
  }
  j.EndObject();
  return j.str();
}

std::string SendBody(std::string_view url, std::string_view body64, uint64_t ingest_unix_ns) {
  common::JsonWriter j;
  j.BeginObject().Key("QueueUrl").String(url).Key("MessageBody").String(body64);
  j.Key("MessageAttributes").BeginObject().Key(kIngestAttribute).BeginObject();
  j.Key("DataType").String("Number").Key("StringValue").String(std::to_string(ingest_unix_ns));
  j.EndObject().EndObject().EndObject();
  return j.str();
}

std::string ReceiveBody(std::string_view url, uint32_t max, int wait_seconds,
                        int64_t visibility_seconds) {
  common::JsonWriter j;
  j.BeginObject().Key("QueueUrl").String(url);
  j.Key("MaxNumberOfMessages").Uint(max);
  j.Key("WaitTimeSeconds").Uint(static_cast<uint64_t>(wait_seconds));
  j.Key("VisibilityTimeout").Uint(static_cast<uint64_t>(visibility_seconds));
  j.Key("MessageAttributeNames").BeginArray().String(kIngestAttribute).EndArray();
  j.EndObject();
  return j.str();
}

std::string ReceiptBody(std::string_view url, std::string_view receipt) {
  common::JsonWriter j;
  j.BeginObject().Key("QueueUrl").String(url).Key("ReceiptHandle").String(receipt).EndObject();
  return j.str();
}

std::string VisibilityBody(std::string_view url, std::string_view receipt, int64_t seconds) {
  common::JsonWriter j;
  j.BeginObject().Key("QueueUrl").String(url).Key("ReceiptHandle").String(receipt);
  j.Key("VisibilityTimeout").Uint(static_cast<uint64_t>(seconds)).EndObject();
  return j.str();
}

// One received SQS message: what sluice needs of it.
struct Received {
  std::string message_id;
  std::string receipt;
  std::optional<std::string> payload;  // nullopt: the body is not base64
  uint64_t ingest_unix_ns = 0;
};

std::vector<Received> ReceivedMessages(const JsonValue& body) {
  std::vector<Received> out;
  const JsonValue* messages = body.Find("Messages");
  if (messages == nullptr || !messages->is_array()) return out;
  for (const JsonValue& m : messages->items()) {
    auto receipt = m.FindString("ReceiptHandle");
    if (!receipt || receipt->empty()) continue;  // cannot be deleted: not ours to handle
    Received r;
    r.receipt = std::string(*receipt);
    r.message_id = std::string(m.FindString("MessageId").value_or(""));
    r.payload = Base64Decode(m.FindString("Body").value_or("!"));
    if (const JsonValue* attrs = m.Find("MessageAttributes")) {
      if (const JsonValue* ingest = attrs->Find(kIngestAttribute)) {
        r.ingest_unix_ns = ParseUint(ingest->FindString("StringValue").value_or("")).value_or(0);
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

struct SqsQueue::Letter {
  buffer::DeadLetter dl;
  std::optional<common::Uuid> id;  // the message's id; nullopt when the letter is not ours
  std::string message_id;          // SQS's
  std::string receipt;             // from the scan that found it; empty in the cache
  uint64_t added = 0;              // Target::letters_added when this instance stored it
};

struct SqsQueue::Tick {
  uv_timer_t timer;
  SqsQueue* owner;
};

class SqsQueue::Target {
 public:
  struct Lease {
    std::string message_id;
    std::string receipt;
    // From when the receive that brought the message was sent: SQS hid the message at
    // some moment before it answered, and that is the only moment it guarantees.
    common::Duration visible_until{};
    bool extending = false;
  };
  struct Ready {
    uint64_t tag;
    uint64_t ingest_unix_ns;
    std::optional<std::string> payload;
  };

  std::string name;
  std::string queue_name[2];  // [0] the target's queue, [1] its dead letters
  std::string url[2];         // "" until resolved
  bool resolving[2] = {false, false};
  uint32_t resolve_failures = 0;
  common::Duration resolve_retry_at{};
  uint32_t concurrency = 4;
  size_t max_in_hand = 0;
  bool removed = false;
  bool opened = false;  // OpenTarget() called: someone consumes, so poll

  // Received and not finished, by tag: the ones handed out and the ones in `ready`.
  std::unordered_map<uint64_t, Lease> leases;
  std::unordered_map<std::string, uint64_t> held;  // leases' tags by SQS message id
  std::deque<Ready> ready;
  uint32_t polls = 0;  // ReceiveMessage calls in flight
  uint32_t asked = 0;  // messages they may bring
  uint32_t poll_failures = 0;
  common::Duration poll_retry_at{};
  uint64_t finished = 0;
  uint64_t skipped = 0;

  std::vector<Letter> letters;  // cache: see the header
  uint64_t letters_added = 0;   // letters this instance stored: orders them against scans
  uint64_t dead_count = 0;
  std::deque<DeadOp> dead_ops;
  bool dead_op_running = false;
  common::Duration next_dead_refresh{};

  bool resolved() const { return !url[0].empty() && !url[1].empty(); }
};

class SqsQueue::TargetView final : public buffer::TargetQueue {
 public:
  TargetView(SqsQueue* queue, Target* target) : queue_(queue), target_(target) {}
  Result Next(buffer::QueuedMessage* out, common::Status*) override {
    return queue_->NextMessage(*target_, out) ? Result::kMessage : Result::kCaughtUp;
  }
  void Finish(uint64_t tag) override { queue_->FinishMessage(*target_, tag); }
  // SQS counts approximately and is shared with other instances: no local count.
  uint64_t queued_at_open() const override { return 0; }
  uint64_t progress() const override { return target_->finished; }
  uint64_t skipped() const override { return target_->skipped; }

 private:
  SqsQueue* queue_;
  Target* target_;
};

// ---- opening ----

common::Status SqsQueue::Open(uv_loop_t* loop, const common::Clock& clock, SqsOptions options,
                              buffer::QueueEvents events, std::unique_ptr<SqsQueue>* out) {
  SqsEndpoint endpoint;
  common::Status s = ParseSqsEndpoint(options.endpoint, options.region, &endpoint);
  if (!s.ok()) return s;
  if (options.credentials.access_key_id.empty() || options.credentials.secret_access_key.empty()) {
    return common::Status::InvalidArgument(
        "sqs: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  }
  if (options.visibility_timeout % seconds(1) != common::Duration::zero() ||
      options.visibility_timeout < seconds(1) ||
      Seconds(options.visibility_timeout) > kMaxVisibilitySeconds) {
    return common::Status::InvalidArgument(
        "sqs: visibility_timeout must be whole seconds, 1s..12h");
  }
  if (options.dead_letter_scan_visibility % seconds(1) != common::Duration::zero() ||
      options.dead_letter_scan_visibility < seconds(1) ||
      Seconds(options.dead_letter_scan_visibility) > kMaxVisibilitySeconds) {
    return common::Status::InvalidArgument(
        "sqs: dead_letter_scan_visibility must be whole seconds, 1s..12h");
  }
  if (options.wait_time_seconds < 1 || options.wait_time_seconds > 20 ||
      options.dead_letter_scan_wait_seconds < 0 || options.dead_letter_scan_wait_seconds > 20) {
    return common::Status::InvalidArgument(
        "sqs: wait_time_seconds must be 1..20, dead_letter_scan_wait_seconds 0..20");
  }
  if (options.failures_before_unavailable == 0 || options.max_dead_letters_scanned == 0) {
    return common::Status::InvalidArgument(
        "sqs: failures_before_unavailable and max_dead_letters_scanned must be positive");
  }
  for (const auto& t : options.targets) {
    std::string dead = options.queue_prefix + t.name + "-dead";
    if (!IsQueueName(options.queue_prefix + t.name) || !IsQueueName(dead)) {
      return common::Status::InvalidArgument(
          "sqs: \"" + dead + "\" is not a valid SQS queue name ([A-Za-z0-9_-], at most 80)");
    }
  }
  std::unique_ptr<SqsQueue> q(
      new SqsQueue(loop, clock, std::move(options), std::move(endpoint), std::move(events)));
  for (const auto& t : q->options_.targets) q->AddTarget(t.name, t.concurrency, t.max_in_hand);
  for (auto& [name, t] : q->targets_) q->Resolve(*t);
  *out = std::move(q);
  return common::Status::OK();
}

SqsQueue::SqsQueue(uv_loop_t* loop, const common::Clock& clock, SqsOptions options,
                   SqsEndpoint endpoint, buffer::QueueEvents events)
    : loop_(loop), clock_(clock), options_(std::move(options)), events_(std::move(events)) {
  client_ = std::make_unique<SqsClient>(loop_, std::move(endpoint), options_.credentials,
                                        options_.region, clock_);
  tick_ = new Tick{};
  tick_->owner = this;
  tick_->timer.data = tick_;
  uv_timer_init(loop_, &tick_->timer);
  auto interval = std::clamp<int64_t>(
      duration_cast<milliseconds>(options_.visibility_timeout / 8).count(), 50, 1000);
  uv_timer_start(
      &tick_->timer,
      [](uv_timer_t* h) {
        auto* tick = static_cast<Tick*>(h->data);
        if (tick->owner != nullptr) tick->owner->OnTick();
      },
      static_cast<uint64_t>(interval), static_cast<uint64_t>(interval));
}

SqsQueue::~SqsQueue() { Close(); }

SqsQueue::Target& SqsQueue::AddTarget(const std::string& name, uint32_t concurrency,
                                      size_t max_in_hand) {
  auto& slot = targets_[name];
  if (slot) return *slot;
  slot = std::make_unique<Target>();
  Target& t = *slot;
  t.name = name;
  t.queue_name[0] = options_.queue_prefix + name;
  t.queue_name[1] = options_.queue_prefix + name + "-dead";
  t.concurrency = std::max<uint32_t>(1, concurrency);
  t.max_in_hand = max_in_hand != 0
                      ? max_in_hand
                      : t.concurrency + std::max<size_t>(64, 4 * size_t{t.concurrency}) + 1;
  return t;
}

SqsQueue::Target* SqsQueue::FindTarget(const std::string& name) const {
  auto it = targets_.find(name);
  return it == targets_.end() ? nullptr : it->second.get();
}

bool SqsQueue::ready() const {
  for (const auto& [name, t] : targets_) {
    if (!t->removed && !t->resolved()) return false;
  }
  return true;
}

common::Duration SqsQueue::Backoff(uint32_t failures) const {
  common::Duration d = milliseconds(50) * (1u << std::min<uint32_t>(failures, 10));
  return std::min(d, options_.max_retry_backoff);
}

void SqsQueue::Resolve(Target& t) {
  for (int dead = 0; dead < 2; ++dead) {
    if (t.url[dead].empty() && !t.resolving[dead]) ResolveQueue(t, dead == 1);
  }
}

// GetQueueUrl, and CreateQueue when there is none (with the longest retention).
void SqsQueue::ResolveQueue(Target& t, bool dead) {
  int i = dead ? 1 : 0;
  t.resolving[i] = true;
  Target* tp = &t;
  auto resolved = [this, tp, i](SqsReply reply) {
    Target& t = *tp;
    t.resolving[i] = false;
    auto url = reply.ok() ? reply.body.FindString("QueueUrl") : std::nullopt;
    if (!url || url->empty()) {
      ++t.resolve_failures;
      t.resolve_retry_at = clock_.Now() + Backoff(t.resolve_failures);
      return;
    }
    t.url[i] = std::string(*url);
    if (!t.resolved()) return;
    t.resolve_failures = 0;
    Poll(t);
    t.next_dead_refresh = clock_.Now();  // the next tick fills the dead-letter cache
    if (events_.wake) events_.wake();    // appends can succeed now: let the owner pump
  };
  Call("GetQueueUrl", QueueNameBody(t.queue_name[i], false), options_.request_timeout,
       [this, tp, i, resolved](SqsReply reply) {
         Note(reply);
         if (reply.outcome != SqsReply::Outcome::kQueueMissing) {
           resolved(std::move(reply));
           return;
         }
         Call("CreateQueue", QueueNameBody(tp->queue_name[i], true), options_.request_timeout,
              [this, resolved](SqsReply created) {
                Note(created);
                resolved(std::move(created));
              });
       });
}

// ---- calls and their bookkeeping ----

void SqsQueue::Call(std::string_view action, std::string body, common::Duration timeout,
                    SqsClient::Done done) {
  if (closed_) return;
  client_->Call(action, std::move(body), timeout, std::move(done));
}

// Every answer counts for Availability(): an SQS that answers at all (even "no such
// queue", "stale receipt") is reachable.
void SqsQueue::Note(const SqsReply& reply) {
  if (reply.outcome == SqsReply::Outcome::kUnavailable) {
    ++consecutive_failures_;
    last_error_ = reply.error;
  } else {
    consecutive_failures_ = 0;
  }
}

void SqsQueue::Complete(Done done, common::Status status, uint64_t value) {
  completions_.push_back(
      [done = std::move(done), status = std::move(status), value] { done(status, value); });
  if (events_.wake) events_.wake();
}

uint64_t SqsQueue::Hold(Done done) {
  uint64_t id = next_pending_++;
  pending_.emplace(id, std::move(done));
  return id;
}

void SqsQueue::Settle(uint64_t id, common::Status status, uint64_t value) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // failed by Close() already
  Done done = std::move(it->second);
  pending_.erase(it);
  Complete(std::move(done), std::move(status), value);
}

void SqsQueue::RunCompletions() {
  while (!completions_.empty()) {
    auto batch = std::move(completions_);
    completions_.clear();
    for (auto& c : batch) c();
  }
}

common::Status SqsQueue::Availability() const {
  if (closed_) return common::Status::Unavailable("sqs: closed");
  if (consecutive_failures_ >= options_.failures_before_unavailable) {
    return common::Status::Unavailable("sqs: " + last_error_);
  }
  if (!ready()) {
    std::string why = "sqs: resolving the queue URLs";
    if (!last_error_.empty()) why += " (last error: " + last_error_ + ")";
    return common::Status::Unavailable(why);
  }
  return common::Status::OK();
}

void SqsQueue::OnTick() {
  if (closed_) return;
  common::Duration now = clock_.Now();
  for (auto& [name, tp] : targets_) {
    Target& t = *tp;
    if (t.removed) continue;
    if (!t.resolved()) {
      if (now >= t.resolve_retry_at) Resolve(t);
      continue;
    }
    Poll(t);
    Extend(t);
    if (now >= t.next_dead_refresh && !t.dead_op_running && t.dead_ops.empty()) {
      t.next_dead_refresh = now + options_.dead_letter_refresh;
      Target* tptr = &t;
      RunDeadOp(t, [this, tptr](std::function<void()> next) { RefreshDead(*tptr, next); });
    }
  }
  auto deletes = std::move(retry_deletes_);
  retry_deletes_.clear();
  for (auto& d : deletes) Delete(std::move(d.url), std::move(d.receipt), d.attempts);
  // While unavailable, polls probe; when none can run (every target holds its share),
  // this does.
  if (consecutive_failures_ >= options_.failures_before_unavailable &&
      now - last_probe_ >= options_.max_retry_backoff && !targets_.empty()) {
    last_probe_ = now;
    Call("GetQueueUrl", QueueNameBody(targets_.begin()->second->queue_name[0], false),
         options_.request_timeout, [this](SqsReply reply) { Note(reply); });
  }
}

// ---- appending ----

common::Status SqsQueue::Append(std::string payload, uint64_t ingest_unix_ns, Done done) {
  common::Status available = Availability();
  if (!available.ok()) return available;
  std::vector<std::string_view> names;
  if (!buffer::DecodeMessageTargets(payload, &names)) {
    return common::Status::InvalidArgument("sqs: the payload is not a message");
  }
  std::vector<Target*> targets;
  for (auto name : names) {
    Target* t = FindTarget(std::string(name));
    if (t == nullptr) {  // a reload is adding it: its queue is being resolved
      t = &AddTarget(std::string(name), 4, 0);
      Resolve(*t);
    }
    if (t->url[0].empty()) {
      return common::Status::Unavailable("sqs: the queue of target \"" + t->name +
                                         "\" is not resolved yet");
    }
    targets.push_back(t);
  }
  std::string body64 = Base64Encode(payload);
  if (body64.size() > options_.max_message_bytes) {
    return common::Status::Unavailable("sqs: message of " + std::to_string(body64.size()) +
                                       " bytes (base64) exceeds the SQS limit of " +
                                       std::to_string(options_.max_message_bytes));
  }
  uint64_t id = Hold(std::move(done));
  if (targets.empty()) {
    Settle(id, common::Status::OK(), 0);
    return common::Status::OK();
  }
  struct FanOut {
    size_t remaining;
    common::Status status;
  };
  auto fan_out = std::make_shared<FanOut>(FanOut{targets.size(), common::Status::OK()});
  for (Target* t : targets) {
    Call("SendMessage", SendBody(t->url[0], body64, ingest_unix_ns), options_.request_timeout,
         [this, id, fan_out, t](SqsReply reply) {
           Note(reply);
           if (reply.outcome == SqsReply::Outcome::kQueueMissing) {
             t->url[0].clear();
             Resolve(*t);
           }
           if (!reply.ok() && fan_out->status.ok()) fan_out->status = reply.ToStatus();
           if (--fan_out->remaining == 0) Settle(id, fan_out->status, 0);
         });
  }
  return common::Status::OK();
}

common::Status SqsQueue::AppendIdempotencyKey(buffer::IdempotencyEntry, Done done) {
  if (closed_) return common::Status::Unavailable("sqs: closed");
  Complete(std::move(done), common::Status::OK(), 0);
  return common::Status::OK();
}

// ---- consuming ----

common::Status SqsQueue::OpenTarget(const std::string& target, bool,
                                    std::unique_ptr<buffer::TargetQueue>* out) {
  if (closed_) return common::Status::Unavailable("sqs: closed");
  Target* t = FindTarget(target);
  if (t == nullptr) {
    t = &AddTarget(target, 4, 0);
    Resolve(*t);
  }
  t->removed = false;
  t->opened = true;
  *out = std::make_unique<TargetView>(this, t);
  if (t->resolved()) Poll(*t);
  return common::Status::OK();
}

void SqsQueue::RemoveTarget(const std::string& target) {
  // Its unfinished messages are no longer extended: they reappear for other instances.
  if (Target* t = FindTarget(target)) {
    t->removed = true;
    t->opened = false;
  }
}

// Keeps up to `concurrency` messages received ahead of delivery and never more than
// max_in_hand unfinished, with at most one long poll per ten messages of concurrency.
void SqsQueue::Poll(Target& t) {
  uint32_t max_polls = (t.concurrency + kMaxReceive - 1) / kMaxReceive;
  while (!closed_ && t.opened && !t.removed && !t.url[0].empty() &&
         clock_.Now() >= t.poll_retry_at && t.polls < max_polls) {
    size_t in_hand = t.leases.size() + t.asked;
    size_t room = t.max_in_hand > in_hand ? t.max_in_hand - in_hand : 0;
    size_t ahead = t.ready.size() + t.asked;
    size_t want = t.concurrency > ahead ? t.concurrency - ahead : 0;
    auto n = static_cast<uint32_t>(std::min<size_t>({kMaxReceive, room, want}));
    if (n == 0) return;
    ++t.polls;
    t.asked += n;
    Target* tp = &t;
    int wait = ReceiveWaitSeconds();
    Call("ReceiveMessage", ReceiveBody(t.url[0], n, wait, Seconds(options_.visibility_timeout)),
         seconds(wait) + options_.request_timeout,
         [this, tp, n, sent = clock_.Now()](SqsReply reply) {
           OnReceived(*tp, n, sent, std::move(reply));
         });
  }
}

// A receive's wait is capped at half the visibility timeout. SQS promises only that it
// hid a message at some moment between our request and its answer, so a lease counts
// from the request (see Lease); a wait longer than half the timeout could bring a
// message with less than half of it left, or already visible again: a server may hide a
// message as soon as it takes it for the receive and answer only when the wait is over
// or the batch full (the local-aws-sqs emulator does: with a 2 s timeout and a 20 s
// wait, a message taken early came back in the same answer a second time). With the
// cap, every message arrives with at least half its timeout left, less the answer's
// transit, and the next tick (an eighth of the timeout later, a second at most) extends
// it. A 1 s timeout cannot be halved (the wait is 1 s): a copy that comes back then is a
// held message received again, which OnReceived does not hand out twice.
int SqsQueue::ReceiveWaitSeconds() const {
  auto half = static_cast<int>(Seconds(options_.visibility_timeout) / 2);
  return std::clamp(half, 1, options_.wait_time_seconds);
}

void SqsQueue::OnReceived(Target& t, uint32_t asked, common::Duration sent, SqsReply reply) {
  --t.polls;
  t.asked -= asked;
  Note(reply);
  if (!reply.ok()) {
    if (reply.outcome == SqsReply::Outcome::kQueueMissing) {
      t.url[0].clear();
      Resolve(t);
    }
    PollFailed(t);
    return;
  }
  t.poll_failures = 0;
  std::vector<Received> messages = ReceivedMessages(reply.body);
  bool fresh = false;
  for (auto& m : messages) {
    common::Duration visible_until = sent + options_.visibility_timeout;
    // A message this instance holds, received again (SQS delivers at least once; a
    // server may hand out a message whose visibility ran out during the receive): it
    // stays one delivery. The newest receipt is the one SQS takes for the delete.
    auto again = m.message_id.empty() ? t.held.end() : t.held.find(m.message_id);
    if (again != t.held.end()) {
      Target::Lease& lease = t.leases.at(again->second);
      lease.receipt = std::move(m.receipt);
      lease.visible_until = visible_until;
      continue;
    }
    uint64_t tag = next_tag_++;
    if (!m.message_id.empty()) t.held.emplace(m.message_id, tag);
    t.leases.emplace(tag, Target::Lease{m.message_id, std::move(m.receipt), visible_until});
    t.ready.push_back(Target::Ready{tag, m.ingest_unix_ns, std::move(m.payload)});
    fresh = true;
  }
  if (fresh && events_.wake) events_.wake();
  Poll(t);
}

void SqsQueue::PollFailed(Target& t) {
  ++t.poll_failures;
  t.poll_retry_at = clock_.Now() + Backoff(t.poll_failures);  // the tick polls again
}

bool SqsQueue::NextMessage(Target& t, buffer::QueuedMessage* out) {
  if (closed_) return false;
  while (!t.ready.empty()) {
    Target::Ready r = std::move(t.ready.front());
    t.ready.pop_front();
    if (r.payload) {
      out->tag = r.tag;
      out->ingest_unix_ns = r.ingest_unix_ns;
      out->payload = std::move(*r.payload);
      if (auto view = buffer::DecodeMessageView(out->payload)) {
        out->message = std::move(*view);
        return true;
      }
    }
    // Not a message sluice stored (not base64, or not a message): skipped and deleted,
    // as the disk log skips a record it cannot decode; kept, it would come back forever.
    ++t.skipped;
    FinishMessage(t, r.tag);
  }
  Poll(t);
  return false;
}

void SqsQueue::FinishMessage(Target& t, uint64_t tag) {
  if (closed_) return;
  auto it = t.leases.find(tag);
  if (it == t.leases.end()) return;
  std::string receipt = std::move(it->second.receipt);
  t.held.erase(it->second.message_id);
  t.leases.erase(it);
  ++t.finished;
  Delete(t.url[0], std::move(receipt), 0);
  Poll(t);
}

// A delete that SQS did not take is retried a few times by the tick; if it never is,
// the message comes back after its visibility timeout (at least once).
void SqsQueue::Delete(std::string url, std::string receipt, int attempts) {
  if (url.empty()) return;
  std::string body = ReceiptBody(url, receipt);
  Call("DeleteMessage", std::move(body), options_.request_timeout,
       [this, url, receipt, attempts](SqsReply reply) {
         Note(reply);
         if (reply.outcome == SqsReply::Outcome::kUnavailable && attempts + 1 < kDeleteAttempts) {
           retry_deletes_.push_back(RetryDelete{url, receipt, attempts + 1});
         }
       });
}

// Held messages whose visibility is half gone get a new full timeout, so SQS hands
// them to no one else while this instance is alive.
void SqsQueue::Extend(Target& t) {
  common::Duration now = clock_.Now();
  int64_t timeout_s = Seconds(options_.visibility_timeout);
  for (auto& [tag, lease] : t.leases) {
    if (lease.extending || lease.visible_until - now > options_.visibility_timeout / 2) continue;
    lease.extending = true;
    Target* tp = &t;
    uint64_t tag_copy = tag;
    Call("ChangeMessageVisibility", VisibilityBody(t.url[0], lease.receipt, timeout_s),
         options_.request_timeout, [this, tp, tag_copy, now](SqsReply reply) {
           Note(reply);
           auto it = tp->leases.find(tag_copy);
           if (it == tp->leases.end()) return;  // finished meanwhile
           it->second.extending = false;
           if (reply.ok()) it->second.visible_until = now + options_.visibility_timeout;
         });
  }
}

// ---- dead letters ----

void SqsQueue::RunDeadOp(Target& t, DeadOp op) {
  t.dead_ops.push_back(std::move(op));
  StartDeadOp(t);
}

void SqsQueue::StartDeadOp(Target& t) {
  if (closed_ || t.dead_op_running || t.dead_ops.empty()) return;
  t.dead_op_running = true;
  DeadOp op = std::move(t.dead_ops.front());
  t.dead_ops.pop_front();
  Target* tp = &t;
  op([this, tp] {
    tp->dead_op_running = false;
    StartDeadOp(*tp);
  });
}

// Receives the dead queue's letters (hiding each for dead_letter_scan_visibility) until
// a receive comes back empty or max_dead_letters_scanned are in hand.
void SqsQueue::ScanDead(Target& t, std::function<void(common::Status, std::vector<Letter>)> done) {
  struct Scan {
    std::vector<Letter> letters;
    std::unordered_set<std::string> seen;
    std::function<void(common::Status, std::vector<Letter>)> done;
    std::function<void()> step;
  };
  auto scan = std::make_shared<Scan>();
  scan->done = std::move(done);
  Target* tp = &t;
  std::weak_ptr<Scan> weak = scan;
  scan->step = [this, tp, weak] {
    auto scan = weak.lock();
    if (!scan) return;
    size_t room = options_.max_dead_letters_scanned - scan->letters.size();
    auto n = static_cast<uint32_t>(std::min<size_t>(kMaxReceive, room));
    Call("ReceiveMessage",
         ReceiveBody(tp->url[1], n, options_.dead_letter_scan_wait_seconds,
                     Seconds(options_.dead_letter_scan_visibility)),
         seconds(options_.dead_letter_scan_wait_seconds) + options_.request_timeout,
         [this, scan](SqsReply reply) {
           Note(reply);
           if (!reply.ok()) {
             auto done = std::move(scan->done);
             done(reply.ToStatus(), std::move(scan->letters));
             return;
           }
           std::vector<Received> got = ReceivedMessages(reply.body);
           for (auto& m : got) {
             if (!scan->seen.insert(m.message_id).second) continue;
             Letter l;
             l.message_id = std::move(m.message_id);
             l.receipt = std::move(m.receipt);
             if (m.payload) {
               if (auto dl = buffer::DecodeDeadLetterPayload(*m.payload, 0, m.ingest_unix_ns)) {
                 l.dl = std::move(*dl);
                 if (auto msg = buffer::DecodeMessageView(l.dl.payload)) l.id = msg->id;
               }
             }
             scan->letters.push_back(std::move(l));
           }
           if (got.empty() || scan->letters.size() >= options_.max_dead_letters_scanned) {
             auto done = std::move(scan->done);
             done(common::Status::OK(), std::move(scan->letters));
             return;
           }
           scan->step();
         });
  };
  // The step holds only a weak reference (no cycle); the call in flight holds the scan.
  scan->step();
}

// Makes scanned letters visible again at once (ten per call), for the next scan, here
// or on another instance; `then` runs once SQS answered them all, so the next
// operation's scan sees them.
void SqsQueue::ReleaseLetters(Target& t, std::vector<Letter> letters, std::function<void()> then) {
  std::vector<std::string> bodies;
  for (size_t i = 0; i < letters.size(); i += kMaxReceive) {
    common::JsonWriter j;
    j.BeginObject().Key("QueueUrl").String(t.url[1]).Key("Entries").BeginArray();
    size_t end = std::min(letters.size(), i + kMaxReceive);
    bool any = false;
    for (size_t k = i; k < end; ++k) {
      if (letters[k].receipt.empty()) continue;
      any = true;
      j.BeginObject().Key("Id").String(std::to_string(k)).Key("ReceiptHandle");
      j.String(letters[k].receipt).Key("VisibilityTimeout").Uint(0).EndObject();
    }
    j.EndArray().EndObject();
    if (any) bodies.push_back(j.str());
  }
  if (bodies.empty()) {
    then();
    return;
  }
  auto left = std::make_shared<size_t>(bodies.size());
  for (auto& body : bodies) {
    Call("ChangeMessageVisibilityBatch", std::move(body), options_.request_timeout,
         [this, left, then](SqsReply reply) {
           Note(reply);  // a failure only delays: the letters reappear after the scan's timeout
           if (--*left == 0) then();
         });
  }
}

void SqsQueue::RefreshDead(Target& t, std::function<void()> next) {
  Target* tp = &t;
  uint64_t started = t.letters_added;
  ScanDead(t, [this, tp, next, started](common::Status s, std::vector<Letter> letters) {
    if (s.ok()) {
      std::vector<Letter> cache;
      std::unordered_set<std::string> seen;
      for (const auto& l : letters) {
        seen.insert(l.message_id);
        if (!l.id) continue;
        Letter c = l;
        c.receipt.clear();
        cache.push_back(std::move(c));
      }
      // Stored here while the scan ran: it may have missed them.
      size_t missed = 0;
      for (auto& l : tp->letters) {
        if (l.added > started && !seen.contains(l.message_id)) {
          cache.push_back(std::move(l));
          ++missed;
        }
      }
      tp->dead_count = letters.size() + missed;
      tp->letters = std::move(cache);
    }
    bool complete = s.ok() && letters.size() < options_.max_dead_letters_scanned;
    if (complete) {
      ReleaseLetters(*tp, std::move(letters), next);
      return;
    }
    ReleaseLetters(*tp, std::move(letters), [] {});
    // More than one scan holds: ask SQS for the (approximate) total.
    common::JsonWriter j;
    j.BeginObject().Key("QueueUrl").String(tp->url[1]).Key("AttributeNames").BeginArray();
    j.String("ApproximateNumberOfMessages").String("ApproximateNumberOfMessagesNotVisible");
    j.EndArray().EndObject();
    Call("GetQueueAttributes", j.str(), options_.request_timeout, [this, tp, next](SqsReply reply) {
      Note(reply);
      if (const JsonValue* attrs = reply.ok() ? reply.body.Find("Attributes") : nullptr) {
        uint64_t total = 0;
        for (auto name : {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}) {
          total += ParseUint(attrs->FindString(name).value_or("")).value_or(0);
        }
        tp->dead_count = std::max<uint64_t>(total, tp->letters.size());
      }
      next();
    });
  });
}

common::Status SqsQueue::AppendDeadLetter(buffer::DeadLetter dl, Done done) {
  common::Status available = Availability();
  if (!available.ok()) return available;
  Target* t = FindTarget(dl.target);
  if (t == nullptr || t->url[1].empty()) {
    return common::Status::Unavailable("sqs: the dead-letter queue of \"" + dl.target +
                                       "\" is not resolved");
  }
  std::string body64 = Base64Encode(buffer::EncodeDeadLetterPayload(dl));
  if (body64.size() > options_.max_message_bytes) {
    return common::Status::Unavailable("sqs: dead letter exceeds the SQS message size limit");
  }
  uint64_t id = Hold(std::move(done));
  auto letter = std::make_shared<Letter>();
  if (auto msg = buffer::DecodeMessageView(dl.payload)) letter->id = msg->id;
  uint64_t ingest = dl.ingest_unix_ns;
  letter->dl = std::move(dl);
  Call("SendMessage", SendBody(t->url[1], body64, ingest), options_.request_timeout,
       [this, t, id, letter](SqsReply reply) {
         Note(reply);
         if (reply.ok()) {
           letter->message_id = std::string(reply.body.FindString("MessageId").value_or(""));
           letter->added = ++t->letters_added;
           if (t->letters.size() < options_.max_dead_letters_scanned) {
             t->letters.push_back(std::move(*letter));
           }
           ++t->dead_count;
         }
         Settle(id, reply.ToStatus(), 0);
       });
  return common::Status::OK();
}

uint64_t SqsQueue::DeadLetterCount(const std::string& target) const {
  Target* t = FindTarget(target);
  return t ? t->dead_count : 0;
}

common::Status SqsQueue::ListDeadLetters(const std::string& target,
                                         std::vector<buffer::DeadLetter>* out) const {
  out->clear();
  Target* t = FindTarget(target);
  if (t == nullptr) return common::Status::OK();
  for (const auto& l : t->letters) out->push_back(l.dl);
  return common::Status::OK();
}

// Not PurgeQueue: SQS empties a queue within 60 seconds of it (letters stored meanwhile
// may go too) and takes one per minute; the admin wants the letters gone when it is told
// so, and how many. So: scan, delete what was asked for (ten per call), again while a
// scan comes back full.
common::Status SqsQueue::PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                          Done done) {
  if (closed_) return common::Status::Unavailable("sqs: closed");
  Target* t = FindTarget(target);
  if (t == nullptr) return common::Status::NotFound("no such target");
  if (t->url[1].empty()) return common::Status::Unavailable("sqs: dead-letter queue not resolved");
  uint64_t pending = Hold(std::move(done));
  RunDeadOp(*t, [this, t, pending, id](std::function<void()> next) {
    struct Purge {
      uint64_t deleted = 0;
      std::function<void()> pass;
    };
    auto p = std::make_shared<Purge>();
    std::weak_ptr<Purge> weak = p;
    auto finish = [this, t, pending, id, next](const std::shared_ptr<Purge>& p, common::Status s) {
      std::erase_if(t->letters, [&](const Letter& c) { return !id || c.id == id; });
      t->dead_count -= std::min(t->dead_count, p->deleted);
      if (!id && s.ok()) t->dead_count = 0;
      Settle(pending, std::move(s), p->deleted);
      next();
    };
    p->pass = [this, t, id, weak, finish] {
      auto p = weak.lock();
      if (!p) return;
      ScanDead(*t, [this, t, id, p, finish](common::Status s, std::vector<Letter> letters) {
        bool full = letters.size() >= options_.max_dead_letters_scanned;
        std::vector<Letter> keep;
        std::vector<Letter> drop;
        for (auto& l : letters) {
          bool hit = s.ok() && (!id || l.id == id);
          (hit ? drop : keep).push_back(std::move(l));
        }
        auto left = std::make_shared<int>(2);
        auto deleted_now = std::make_shared<uint64_t>(0);
        auto both = [p, s, full, left, deleted_now, finish, id] {
          if (--*left > 0) return;
          p->deleted += *deleted_now;
          if (s.ok() && !id && full && *deleted_now > 0) {
            p->pass();
          } else {
            finish(p, s);
          }
        };
        ReleaseLetters(*t, std::move(keep), both);
        DeleteLetters(*t, std::move(drop), [deleted_now, both](uint64_t n) {
          *deleted_now = n;
          both();
        });
      });
    };
    p->pass();
  });
  return common::Status::OK();
}

// DeleteMessageBatch, ten letters a call; `then` gets how many SQS deleted.
void SqsQueue::DeleteLetters(Target& t, std::vector<Letter> letters,
                             std::function<void(uint64_t)> then) {
  std::vector<std::string> bodies;
  for (size_t i = 0; i < letters.size(); i += kMaxReceive) {
    common::JsonWriter j;
    j.BeginObject().Key("QueueUrl").String(t.url[1]).Key("Entries").BeginArray();
    for (size_t k = i; k < std::min(letters.size(), i + kMaxReceive); ++k) {
      j.BeginObject().Key("Id").String(std::to_string(k)).Key("ReceiptHandle");
      j.String(letters[k].receipt).EndObject();
    }
    j.EndArray().EndObject();
    bodies.push_back(j.str());
  }
  if (bodies.empty()) {
    then(0);
    return;
  }
  auto left = std::make_shared<size_t>(bodies.size());
  auto deleted = std::make_shared<uint64_t>(0);
  for (auto& body : bodies) {
    Call("DeleteMessageBatch", std::move(body), options_.request_timeout,
         [this, left, deleted, then](SqsReply reply) {
           Note(reply);
           const JsonValue* ok = reply.ok() ? reply.body.Find("Successful") : nullptr;
           if (ok != nullptr && ok->is_array()) *deleted += ok->items().size();
           if (--*left == 0) then(*deleted);
         });
  }
}

// Scans, then for each chosen letter: SendMessage to the target's queue, and only then
// DeleteMessage of the letter (a failure between the two leaves a duplicate, never a
// loss). One at a time: a replay is an admin action, not a hot path.
common::Status SqsQueue::ReplayDeadLetters(const std::string& target,
                                           std::optional<common::Uuid> id, Done done,
                                           size_t* queued) {
  if (closed_) return common::Status::Unavailable("sqs: closed");
  Target* t = FindTarget(target);
  if (t == nullptr) return common::Status::NotFound("no such target");
  if (!t->resolved()) return common::Status::Unavailable("sqs: queues not resolved");
  if (queued != nullptr) {  // what the cache knows; the scan decides
    *queued = static_cast<size_t>(std::count_if(
        t->letters.begin(), t->letters.end(), [&](const Letter& l) { return !id || l.id == id; }));
  }
  uint64_t pending = Hold(std::move(done));
  RunDeadOp(*t, [this, t, pending, id](std::function<void()> next) {
    ScanDead(*t, [this, t, pending, id, next](common::Status s, std::vector<Letter> letters) {
      if (!s.ok()) {
        Settle(pending, s, 0);
        ReleaseLetters(*t, std::move(letters), next);
        return;
      }
      struct Replay {
        std::vector<Letter> chosen;
        std::vector<Letter> keep;
        size_t index = 0;
        uint64_t replayed = 0;
        common::Status status;
        std::function<void()> step;
      };
      auto r = std::make_shared<Replay>();
      for (auto& l : letters) {
        bool pick = l.id.has_value() && (!id || l.id == id);
        (pick ? r->chosen : r->keep).push_back(std::move(l));
      }
      std::weak_ptr<Replay> weak = r;
      auto finish = [this, t, pending, next](const std::shared_ptr<Replay>& r) {
        t->dead_count -= std::min<uint64_t>(t->dead_count, r->replayed);
        Settle(pending, r->status, r->replayed);
        if (r->replayed > 0 && events_.wake) events_.wake();
        ReleaseLetters(*t, std::move(r->keep), next);
      };
      r->step = [this, t, weak, finish] {
        auto r = weak.lock();
        if (!r) return;
        if (r->index == r->chosen.size()) {
          finish(r);
          return;
        }
        Letter& l = r->chosen[r->index++];
        Call("SendMessage", SendBody(t->url[0], Base64Encode(l.dl.payload), l.dl.ingest_unix_ns),
             options_.request_timeout, [this, t, r, &l](SqsReply sent) {
               Note(sent);
               if (!sent.ok()) {
                 if (r->status.ok()) r->status = sent.ToStatus();
                 r->keep.push_back(std::move(l));
                 r->step();
                 return;
               }
               Call("DeleteMessage", ReceiptBody(t->url[1], l.receipt), options_.request_timeout,
                    [this, t, r, &l](SqsReply deleted) {
                      Note(deleted);
                      if (deleted.ok()) {
                        ++r->replayed;
                        std::erase_if(t->letters, [&](const Letter& c) {
                          return c.message_id == l.message_id;
                        });
                      }
                      r->step();
                    });
             });
      };
      r->step();
    });
  });
  return common::Status::OK();
}

// ---- closing ----

void SqsQueue::Close() {
  if (closed_) return;
  closed_ = true;
  if (tick_ != nullptr) {
    tick_->owner = nullptr;
    uv_timer_stop(&tick_->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_->timer),
             [](uv_handle_t* h) { delete static_cast<Tick*>(h->data); });
    tick_ = nullptr;
  }
  // No answer comes after this: what was waiting for one fails (the client retries;
  // unfinished messages reappear after their visibility timeout).
  client_->Shutdown();
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, done] : pending) {
    Complete(std::move(done), common::Status::Unavailable("sqs: closed"), 0);
  }
  RunCompletions();
  for (auto& [name, t] : targets_) {
    t->ready.clear();
    t->leases.clear();
    t->held.clear();
    t->dead_ops.clear();
  }
}

}  // namespace sluice::broker
