#include "broker/kafka_queue.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <set>
#include <unordered_map>
#include <vector>

#include "broker/partition_progress.h"
#include "buffer/message.h"

namespace sluice::broker {

using common::Status;

namespace {

constexpr char kIngestHeader[] = "sluice-ingest-ns";
constexpr char kSeqHeader[] = "sluice-seq";
// The poller's longest sleep when no queue reports anything: bounds how late a commit
// or a broker probe runs.
constexpr auto kPollTick = std::chrono::milliseconds(50);
constexpr auto kProbeInterval = std::chrono::seconds(1);
constexpr int kProbeTimeoutMs = 200;
// Records served per client and poller round before the others get their turn.
constexpr size_t kServeBudget = 512;

using Properties = std::vector<std::pair<std::string, std::string>>;

int Millis(common::Duration d) {
  return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

void PutU64(uint64_t v, char out[8]) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t HeaderU64(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      size != 8) {
    return 0;
  }
  const auto* b = static_cast<const unsigned char*>(value);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

std::string KeyOf(const common::Uuid& id) {
  return std::string(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
}

// A new client of `type` with `props` (then `extra`) and the callbacks `setup` installs.
Status NewClient(rd_kafka_type_t type, const Properties& props, const Properties& extra,
                 void* opaque, void (*setup)(rd_kafka_conf_t*), rd_kafka_t** out) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto* list : {&props, &extra}) {
    for (const auto& [name, value] : *list) {
      if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return Status::InvalidArgument(std::string("kafka: ") + err);
      }
    }
  }
  rd_kafka_conf_set_opaque(conf, opaque);
  if (setup != nullptr) setup(conf);
  *out = rd_kafka_new(type, conf, err, sizeof err);  // owns conf on success
  if (*out == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::InvalidArgument(std::string("kafka: ") + err);
  }
  return Status::OK();
}

std::string EscapeRegex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::strchr(".^$*+?()[]{}|\\", c) != nullptr) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

// One multi-part operation's callback: it runs once every part ended.
struct KafkaQueue::Operation {
  Done done;
  size_t remaining = 1;
  Status status;
  uint64_t value = 0;
};

// What a delivery report continues with: handed to librdkafka as the message opaque.
struct KafkaQueue::Delivery {
  enum class Kind {
    kMessage,    // Append: ends the operation with the offset
    kLetter,     // AppendDeadLetter: enters the view, ends the operation
    kTombstone,  // purge or the end of a replay: leaves the view, counts one
    kReplayed,   // a letter's message stored again: its tombstone follows
  };
  Kind kind;
  std::shared_ptr<Operation> op;
  std::string value;  // the record's value, alive until the report (no copy)
  std::string target;
  common::Uuid id;
  buffer::DeadLetter letter;
};

// One target: its consumer group member and the messages it handed out.
class KafkaQueue::Target {
 public:
  Target(KafkaQueue& queue, std::string name) : queue_(queue), name_(std::move(name)) {}

  Status Start(bool added);

  // --- owner thread ---
  buffer::TargetQueue::Result Next(buffer::QueuedMessage* out);
  void Finish(uint64_t tag);
  uint64_t finished() const { return finished_.load(std::memory_order_relaxed); }
  uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }
  uint64_t refetched() const { return refetched_.load(std::memory_order_relaxed); }
  rd_kafka_t* consumer() const { return consumer_; }
  const std::string& name() const { return name_; }
  bool removed() const { return removed_.load(); }
  void MarkRemoved() { removed_ = true; }
  size_t assigned() {
    std::lock_guard lock(mu_);
    return static_cast<size_t>(std::count_if(partitions_.begin(), partitions_.end(),
                                             [](const auto& e) { return !e.second.revoked; }));
  }

  // --- poller thread (and the owner once the poller stopped) ---
  // Serves up to kServeBudget records; true when the budget ran out. *arrived: a
  // message for this target was handed over.
  bool Serve(bool* arrived);
  // Commits every partition's safe offset that moved (sync: waits for the broker).
  void Commit(bool sync);
  void ApplyBackpressure();
  // Commits, leaves the group, destroys the consumer. Idempotent.
  void CloseConsumer();

 private:
  struct Partition {
    uint64_t generation = 0;
    PartitionProgress progress;
    int64_t committed = -1;  // last commit sent; -1: none (or it failed: send again)
    bool revoked = false;    // revoked, not yet known whether it is assigned again
  };
  struct Handed {  // a message fetched and not finished (ready or handed out)
    int32_t partition;
    uint64_t generation;
    int64_t offset;
  };
  struct Ready {
    uint64_t tag;
    uint64_t ingest_unix_ns;
    std::string payload;
    int32_t partition;
  };

  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque);
  static void OnCommitted(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* offsets, void* opaque);
  void Assign(rd_kafka_topic_partition_list_t* parts);
  void Revoke(rd_kafka_topic_partition_list_t* parts);
  void DropRevokedLocked();  // REQUIRES: mu_ held
  bool Accept(const rd_kafka_message_t* m);

  KafkaQueue& queue_;
  const std::string name_;
  rd_kafka_t* consumer_ = nullptr;  // poller thread once started
  rd_kafka_queue_t* consumer_q_ = nullptr;
  bool paused_ = false;                  // poller thread
  std::set<int32_t> paused_partitions_;  // poller thread: paused by ApplyBackpressure
  std::atomic<bool> removed_{false};
  std::atomic<uint64_t> finished_{0};
  std::atomic<uint64_t> skipped_{0};
  std::atomic<uint64_t> refetched_{0};

  std::mutex mu_;
  std::map<int32_t, Partition> partitions_;      // assigned now
  std::unordered_map<uint64_t, Handed> handed_;  // by tag
  std::deque<Ready> ready_;
  uint64_t next_tag_ = 1;
  uint64_t generation_ = 0;
};

// What the proxy holds: forwards to the queue's Target, which outlives it.
class KafkaQueue::TargetHandle final : public buffer::TargetQueue {
 public:
  explicit TargetHandle(std::shared_ptr<Target> t) : target_(std::move(t)) {}
  Result Next(buffer::QueuedMessage* out, Status*) override { return target_->Next(out); }
  void Finish(uint64_t tag) override { target_->Finish(tag); }
  // Kafka knows a group's lag, not how much of it is addressed to this target.
  uint64_t queued_at_open() const override { return 0; }
  // Messages finished (delivered, dead-lettered, undecodable) since open.
  uint64_t progress() const override { return target_->finished(); }
  uint64_t skipped() const override { return target_->skipped(); }

 private:
  std::shared_ptr<Target> target_;
};

// --- Target ---

Status KafkaQueue::Target::Start(bool added) {
  const KafkaOptions& o = queue_.options_;
  Properties props = {
      {"bootstrap.servers", o.brokers},      {"group.id", o.group_prefix + name_},
      {"client.id", "sluice-" + name_},      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"}, {"auto.offset.reset", added ? "latest" : "earliest"},
      {"enable.partition.eof", "false"},     {"queued.max.messages.kbytes", "16384"},
      {"fetch.max.bytes", "8388608"},
  };
  Status s = NewClient(
      RD_KAFKA_CONSUMER, props, o.client_properties, this,
      [](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_rebalance_cb(conf, &Target::OnRebalance);
        rd_kafka_conf_set_offset_commit_cb(conf, &Target::OnCommitted);
      },
      &consumer_);
  if (!s.ok()) return s;
  rd_kafka_poll_set_consumer(consumer_);
  consumer_q_ = rd_kafka_queue_get_consumer(consumer_);
  rd_kafka_queue_cb_event_enable(
      consumer_q_, [](rd_kafka_t*, void* q) { static_cast<KafkaQueue*>(q)->Poke(); }, &queue_);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, o.topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    CloseConsumer();
    return Status::InvalidArgument(std::string("kafka: subscribe: ") + rd_kafka_err2str(err));
  }
  return Status::OK();
}

void KafkaQueue::Target::OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* t = static_cast<Target*>(opaque);
  // Cooperative assignors (partition.assignment.strategy=cooperative-sticky) move only the
  // partitions that change owner: a revoked one is gone for good.
  bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    t->Assign(parts);
    if (cooperative) {
      rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, parts);
      if (e != nullptr) rd_kafka_error_destroy(e);
    } else {
      rd_kafka_assign(rk, parts);
    }
    // Not paused here even while the target is: see ApplyBackpressure.
    for (int i = 0; i < parts->cnt; ++i) t->paused_partitions_.erase(parts->elems[i].partition);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    t->Revoke(parts);
    if (cooperative) {
      {
        std::lock_guard lock(t->mu_);
        t->DropRevokedLocked();
      }
      rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts);
      if (e != nullptr) rd_kafka_error_destroy(e);
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  } else {  // an assignment error: start over from the committed offsets
    rd_kafka_assign(rk, nullptr);
    std::lock_guard lock(t->mu_);
    for (auto& [id, p] : t->partitions_) p.revoked = true;
    t->DropRevokedLocked();
  }
}

// Eager rebalancing revokes every partition and then assigns them again, most often to
// the same member. A partition that comes back keeps its state: fetching resumes after
// the last message seen and the messages in flight stay valid, so a rebalance redelivers
// only what moves to another member.
void KafkaQueue::Target::Assign(rd_kafka_topic_partition_list_t* parts) {
  std::lock_guard lock(mu_);
  for (int i = 0; i < parts->cnt; ++i) {
    int32_t id = parts->elems[i].partition;
    auto it = partitions_.find(id);
    if (it != partitions_.end() && it->second.revoked) {
      it->second.revoked = false;
      if (it->second.progress.next() >= 0) parts->elems[i].offset = it->second.progress.next();
      continue;
    }
    Partition& p = partitions_[id];
    p = Partition{};
    p.generation = ++generation_;
  }
  DropRevokedLocked();
}

void KafkaQueue::Target::DropRevokedLocked() {
  // Their next owners read them from the committed offset. Messages handed out stay in
  // handed_ until finished; their Finish finds no partition and is ignored.
  std::erase_if(partitions_, [](const auto& entry) { return entry.second.revoked; });
  std::erase_if(ready_, [&](const Ready& r) {
    if (partitions_.count(r.partition) != 0) return false;
    handed_.erase(r.tag);
    return true;
  });
}

void KafkaQueue::Target::Revoke(rd_kafka_topic_partition_list_t* parts) {
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(parts->cnt);
  {
    std::lock_guard lock(mu_);
    for (int i = 0; i < parts->cnt; ++i) {
      int32_t id = parts->elems[i].partition;
      auto it = partitions_.find(id);
      if (it == partitions_.end()) continue;
      int64_t point = it->second.progress.CommitPoint();
      if (point >= 0 && point != it->second.committed) {
        rd_kafka_topic_partition_list_add(offsets, queue_.options_.topic.c_str(), id)->offset =
            point;
        it->second.committed = point;
      }
      it->second.revoked = true;  // until Assign says whether it comes back
    }
  }
  if (offsets->cnt > 0 && rd_kafka_commit(consumer_, offsets, 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::lock_guard lock(mu_);
    for (int i = 0; i < offsets->cnt; ++i) {
      auto it = partitions_.find(offsets->elems[i].partition);
      if (it != partitions_.end()) it->second.committed = -1;  // send again if it comes back
    }
  }
  rd_kafka_topic_partition_list_destroy(offsets);
}

void KafkaQueue::Target::OnCommitted(rd_kafka_t*, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || offsets == nullptr) return;
  auto* t = static_cast<Target*>(opaque);
  std::lock_guard lock(t->mu_);
  for (int i = 0; i < offsets->cnt; ++i) {
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && offsets->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      continue;
    }
    auto it = t->partitions_.find(offsets->elems[i].partition);
    if (it != t->partitions_.end()) it->second.committed = -1;  // send again
  }
}

bool KafkaQueue::Target::Accept(const rd_kafka_message_t* m) {
  std::string_view payload(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
  std::vector<std::string_view> targets;
  bool decoded = buffer::DecodeMessageTargets(payload, &targets);
  bool mine = decoded && std::find(targets.begin(), targets.end(), name_) != targets.end();
  std::lock_guard lock(mu_);
  auto it = partitions_.find(m->partition);
  // Revoked meanwhile: whoever owns it next (maybe this member again) reads it.
  if (it == partitions_.end() || it->second.revoked) return false;
  // Already seen under this assignment: librdkafka rewound its fetch position (see
  // ApplyBackpressure). Handing it out again would deliver it twice and move the
  // commit back.
  if (m->offset < it->second.progress.next()) {
    refetched_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  it->second.progress.Seen(m->offset, mine);
  if (!decoded) skipped_.fetch_add(1, std::memory_order_relaxed);
  if (!mine) return false;
  uint64_t tag = next_tag_++;
  handed_.emplace(tag, Handed{m->partition, it->second.generation, m->offset});
  ready_.push_back(Ready{tag, HeaderU64(m, kIngestHeader), std::string(payload), m->partition});
  return true;
}

bool KafkaQueue::Target::Serve(bool* arrived) {
  if (consumer_ == nullptr) return false;
  for (size_t i = 0; i < kServeBudget; ++i) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, 0);
    if (m == nullptr) return false;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && Accept(m)) *arrived = true;
    // Errors (a broker down, a topic not yet there) are logged by librdkafka, which
    // recovers by itself; fetching resumes from the last position.
    rd_kafka_message_destroy(m);
  }
  return true;
}

void KafkaQueue::Target::Commit(bool sync) {
  if (consumer_ == nullptr) return;
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(4);
  {
    std::lock_guard lock(mu_);
    for (auto& [id, p] : partitions_) {
      int64_t point = p.progress.CommitPoint();
      if (p.revoked || point < 0 || point == p.committed) continue;
      rd_kafka_topic_partition_list_add(offsets, queue_.options_.topic.c_str(), id)->offset = point;
      p.committed = point;
    }
  }
  if (offsets->cnt > 0) rd_kafka_commit(consumer_, offsets, sync ? 0 : 1);
  rd_kafka_topic_partition_list_destroy(offsets);
}

// A partition is paused only once it has handed the application a message under its
// assignment (rd_kafka_position is valid). librdkafka 2.0.2 mishandles a partition
// paused while it still looks up where to start (auto.offset.reset, no committed
// offset): the look-up is retried by a timer that fires after the resume and moves
// the fetch position back to the reset point, redelivering the partition from the
// beginning ("earliest") or skipping what arrived meanwhile ("latest"). Such a
// partition keeps fetching until its first message, so the unfinished count may pass
// the limit by one fetch per partition.
void KafkaQueue::Target::ApplyBackpressure() {
  if (consumer_ == nullptr) return;
  size_t unfinished;
  std::vector<int32_t> assigned;
  {
    std::lock_guard lock(mu_);
    unfinished = handed_.size();
    for (const auto& [id, p] : partitions_) {
      if (!p.revoked) assigned.push_back(id);
    }
  }
  size_t limit = std::max<size_t>(queue_.options_.max_unfinished, 1);
  const char* topic = queue_.options_.topic.c_str();
  if (paused_ && unfinished <= limit / 2) {
    // Every assigned partition too: resuming one that is not paused does nothing.
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(
        static_cast<int>(assigned.size() + paused_partitions_.size()));
    for (int32_t id : assigned) rd_kafka_topic_partition_list_add(parts, topic, id);
    for (int32_t id : paused_partitions_) rd_kafka_topic_partition_list_add(parts, topic, id);
    rd_kafka_resume_partitions(consumer_, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    paused_partitions_.clear();
    paused_ = false;
    return;
  }
  if (!paused_ && unfinished < limit) return;
  paused_ = true;
  rd_kafka_topic_partition_list_t* parts =
      rd_kafka_topic_partition_list_new(static_cast<int>(assigned.size()));
  for (int32_t id : assigned) {
    if (paused_partitions_.count(id) == 0) rd_kafka_topic_partition_list_add(parts, topic, id);
  }
  if (parts->cnt > 0 && rd_kafka_position(consumer_, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_topic_partition_list_t* fetching = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; ++i) {
      if (parts->elems[i].offset < 0) continue;  // no message yet: maybe still looking up
      rd_kafka_topic_partition_list_add(fetching, topic, parts->elems[i].partition);
      paused_partitions_.insert(parts->elems[i].partition);
    }
    if (fetching->cnt > 0) rd_kafka_pause_partitions(consumer_, fetching);
    rd_kafka_topic_partition_list_destroy(fetching);
  }
  rd_kafka_topic_partition_list_destroy(parts);
}

void KafkaQueue::Target::CloseConsumer() {
  if (consumer_ == nullptr) return;
  Commit(/*sync=*/true);
  rd_kafka_queue_cb_event_enable(consumer_q_, nullptr, nullptr);
  rd_kafka_consumer_close(consumer_);  // revokes: Revoke commits what moved since
  rd_kafka_queue_destroy(consumer_q_);
  rd_kafka_destroy(consumer_);
  consumer_ = nullptr;
  consumer_q_ = nullptr;
  std::lock_guard lock(mu_);
  for (const Ready& r : ready_) handed_.erase(r.tag);
  ready_.clear();
}

buffer::TargetQueue::Result KafkaQueue::Target::Next(buffer::QueuedMessage* out) {
  for (;;) {
    Ready r;
    {
      std::lock_guard lock(mu_);
      if (ready_.empty()) return buffer::TargetQueue::Result::kCaughtUp;
      r = std::move(ready_.front());
      ready_.pop_front();
    }
    out->tag = r.tag;
    out->ingest_unix_ns = r.ingest_unix_ns;
    out->payload = std::move(r.payload);
    auto view = buffer::DecodeMessageView(out->payload);  // views into out->payload
    if (view) {
      out->message = std::move(*view);
      return buffer::TargetQueue::Result::kMessage;
    }
    skipped_.fetch_add(1, std::memory_order_relaxed);
    Finish(r.tag);
  }
}

void KafkaQueue::Target::Finish(uint64_t tag) {
  std::lock_guard lock(mu_);
  auto it = handed_.find(tag);
  if (it == handed_.end()) return;
  Handed h = it->second;
  handed_.erase(it);
  finished_.fetch_add(1, std::memory_order_relaxed);
  auto p = partitions_.find(h.partition);
  // The partition went to another member (and maybe came back since, under a new
  // generation): its owner then read the message again and commits it.
  if (p == partitions_.end() || p->second.generation != h.generation) return;
  p->second.progress.Finish(h.offset);
}

// --- KafkaQueue ---

KafkaQueue::KafkaQueue(KafkaOptions options, buffer::QueueEvents events)
    : options_(std::move(options)), events_(std::move(events)) {}

KafkaQueue::~KafkaQueue() { Close(); }

Status KafkaQueue::Open(KafkaOptions options, buffer::QueueEvents events,
                        std::unique_ptr<KafkaQueue>* out) {
  std::unique_ptr<KafkaQueue> q(new KafkaQueue(std::move(options), std::move(events)));
  Status s = q->Start();
  if (!s.ok()) {
    q->Close();
    return s;
  }
  *out = std::move(q);
  return Status::OK();
}

Status KafkaQueue::Start() {
  Properties props = {
      {"bootstrap.servers", options_.brokers},
      {"client.id", "sluice"},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"message.timeout.ms", std::to_string(std::max(Millis(options_.delivery_timeout), 1))},
      {"linger.ms", "1"},
  };
  props.insert(props.end(), options_.client_properties.begin(), options_.client_properties.end());
  Status s = NewClient(
      RD_KAFKA_PRODUCER, props, options_.producer_properties, this,
      [](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* q) {
          static_cast<KafkaQueue*>(q)->OnDelivery(m);
        });
        rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t*, int err, const char* reason, void* q) {
          static_cast<KafkaQueue*>(q)->OnProducerError(err, reason);
        });
      },
      &producer_);
  if (!s.ok()) return s;
  rd_kafka_queue_t* main_q = rd_kafka_queue_get_main(producer_);
  rd_kafka_queue_cb_event_enable(
      main_q, [](rd_kafka_t*, void* q) { static_cast<KafkaQueue*>(q)->Poke(); }, this);
  rd_kafka_queue_destroy(main_q);  // the event trigger stays with the queue
  admin_q_ = rd_kafka_queue_new(producer_);
  rd_kafka_queue_cb_event_enable(
      admin_q_, [](rd_kafka_t*, void* q) { static_cast<KafkaQueue*>(q)->Poke(); }, this);
  s = StartDeadReader();
  if (!s.ok()) return s;
  poller_ = std::thread([this] { PollLoop(); });
  return Status::OK();
}

// Tails every target's dead-letter topic from its beginning (a group of its own per
// instance, never committed, so each instance reads everything).
Status KafkaQueue::StartDeadReader() {
  std::random_device rd;
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%08x%08x", rd(), rd());
  Properties props = {
      {"bootstrap.servers", options_.brokers},
      {"group.id", options_.group_prefix + "dead-reader-" + suffix},
      {"client.id", "sluice-dead-reader"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"topic.metadata.refresh.interval.ms", "5000"},
      {"queued.max.messages.kbytes", "4096"},
      {"fetch.max.bytes", "4194304"},
  };
  Status s =
      NewClient(RD_KAFKA_CONSUMER, props, options_.client_properties, this, nullptr, &dead_reader_);
  if (!s.ok()) return s;
  rd_kafka_poll_set_consumer(dead_reader_);
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(dead_reader_);
  rd_kafka_queue_cb_event_enable(
      q, [](rd_kafka_t*, void* self) { static_cast<KafkaQueue*>(self)->Poke(); }, this);
  rd_kafka_queue_destroy(q);
  std::string pattern = "^" + EscapeRegex(options_.topic + ".dead.") + ".+";
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, pattern.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(dead_reader_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::InvalidArgument(std::string("kafka: subscribe: ") + rd_kafka_err2str(err));
  }
  return Status::OK();
}

void KafkaQueue::CreateDeadTopic(const std::string& target) {
  char err[512];
  std::string topic = DeadTopic(target);
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(
      topic.c_str(), std::max(options_.dead_letter_partitions, 1), -1, err, sizeof err);
  if (nt == nullptr) {
    std::fprintf(stderr, "sluice: kafka: dead-letter topic %s: %s\n", topic.c_str(), err);
    return;
  }
  rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
  rd_kafka_AdminOptions_t* admin =
      rd_kafka_AdminOptions_new(producer_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(admin, 10000, err, sizeof err);
  rd_kafka_CreateTopics(producer_, &nt, 1, admin, admin_q_);
  rd_kafka_AdminOptions_destroy(admin);
  rd_kafka_NewTopic_destroy(nt);
}

void KafkaQueue::ServeAdminResults() {
  while (rd_kafka_event_t* ev = rd_kafka_queue_poll(admin_q_, 0)) {
    const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** topics =
        result != nullptr ? rd_kafka_CreateTopics_result_topics(result, &n) : nullptr;
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "sluice: kafka: creating dead-letter topics: %s\n",
                   rd_kafka_event_error_string(ev));
    }
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t err = rd_kafka_topic_result_error(topics[i]);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        continue;
      }
      // Not fatal: the first letter auto-creates the topic (uncompacted: letters then
      // expire with the topic's retention). Operators may create it themselves.
      std::fprintf(stderr, "sluice: kafka: creating dead-letter topic %s: %s\n",
                   rd_kafka_topic_result_name(topics[i]), rd_kafka_err2str(err));
    }
    rd_kafka_event_destroy(ev);
  }
}

std::string KafkaQueue::DeadTopic(const std::string& target) const {
  return options_.topic + ".dead." + target;
}

Status KafkaQueue::Produce(const std::string& topic, const std::string& key,
                           const std::string* value, uint64_t ingest_unix_ns, uint64_t seq,
                           Delivery* d) {
  rd_kafka_headers_t* headers = rd_kafka_headers_new(2);
  char buf[8];
  PutU64(ingest_unix_ns, buf);
  rd_kafka_header_add(headers, kIngestHeader, -1, buf, sizeof buf);
  if (seq != 0) {
    PutU64(seq, buf);
    rd_kafka_header_add(headers, kSeqHeader, -1, buf, sizeof buf);
  }
  // No copy: the value lives in the Delivery until its report. The vtype array form,
  // not rd_kafka_producev: its argument macros are GNU statement expressions, which a
  // -Wpedantic clang build refuses.
  rd_kafka_vu_t args[5];
  args[0].vtype = RD_KAFKA_VTYPE_TOPIC;
  args[0].u.cstr = topic.c_str();
  args[1].vtype = RD_KAFKA_VTYPE_KEY;
  args[1].u.mem.ptr = key.empty() ? nullptr : const_cast<char*>(key.data());
  args[1].u.mem.size = key.size();
  args[2].vtype = RD_KAFKA_VTYPE_VALUE;
  args[2].u.mem.ptr = value ? const_cast<char*>(value->data()) : nullptr;
  args[2].u.mem.size = value ? value->size() : 0;
  args[3].vtype = RD_KAFKA_VTYPE_HEADERS;
  args[3].u.headers = headers;
  args[4].vtype = RD_KAFKA_VTYPE_OPAQUE;
  args[4].u.ptr = d;
  rd_kafka_error_t* error = rd_kafka_produceva(producer_, args, 5);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (error != nullptr) {
    err = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
  }
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
  rd_kafka_headers_destroy(headers);
  delete d;
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return Status::Busy("kafka: producer queue full");
  return StatusOfDelivery(err);
}

Status KafkaQueue::StatusOfDelivery(int err) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
  char reason[512];
  if (rd_kafka_fatal_error(producer_, reason, sizeof reason) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Status fatal = Status::IoError(std::string("kafka: fatal producer error: ") + reason);
    std::lock_guard lock(mu_);
    if (fatal_.ok()) fatal_ = fatal;
    return fatal_;
  }
  return Status::Unavailable(std::string("kafka: not stored: ") +
                             rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err)));
}

void KafkaQueue::EndPart(Operation& op, const Status& s, uint64_t value) {
  {
    std::lock_guard lock(mu_);
    if (!s.ok() && op.status.ok()) op.status = s;
    if (s.ok()) op.value += value;
    if (--op.remaining > 0) return;
    completions_.push_back(Completion{std::move(op.done), op.status, op.value});
  }
  if (events_.wake) events_.wake();
}

void KafkaQueue::PushCompletion(Completion c) {
  {
    std::lock_guard lock(mu_);
    completions_.push_back(std::move(c));
  }
  if (events_.wake) events_.wake();
}

void KafkaQueue::OnDelivery(const rd_kafka_message_t* m) {
  std::unique_ptr<Delivery> d(static_cast<Delivery*>(m->_private));
  Status s = StatusOfDelivery(m->err);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    brokers_down_ = false;  // a broker just stored something
  }
  switch (d->kind) {
    case Delivery::Kind::kMessage:
      EndPart(*d->op, s, s.ok() ? static_cast<uint64_t>(m->offset) : 0);
      break;
    case Delivery::Kind::kLetter:
    case Delivery::Kind::kTombstone:
      if (s.ok()) {
        std::lock_guard lock(mu_);
        std::optional<buffer::DeadLetter> letter;
        if (d->kind == Delivery::Kind::kLetter) letter = std::move(d->letter);
        dead_[d->target].Apply(d->id, m->partition, m->offset, std::move(letter));
      }
      EndPart(*d->op, s, 1);
      break;
    case Delivery::Kind::kReplayed: {
      if (!s.ok()) {  // the letter stays: replaying it again is safe (at least once)
        EndPart(*d->op, s, 0);
        break;
      }
      auto* tomb = new Delivery{Delivery::Kind::kTombstone, d->op, {}, d->target, d->id, {}};
      Status ts = Produce(DeadTopic(d->target), KeyOf(d->id), nullptr, 0, 0, tomb);
      if (!ts.ok()) EndPart(*d->op, ts, 0);
      break;
    }
  }
}

void KafkaQueue::OnProducerError(int err, const char* reason) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(producer_, why, sizeof why);
    std::lock_guard lock(mu_);
    if (fatal_.ok()) fatal_ = Status::IoError(std::string("kafka: fatal producer error: ") + why);
  } else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    std::lock_guard lock(mu_);
    brokers_down_ = true;
  }
  (void)reason;  // librdkafka logs it
}

void KafkaQueue::OnDeadRecord(const rd_kafka_message_t* m) {
  std::string prefix = options_.topic + ".dead.";
  std::string topic = rd_kafka_topic_name(m->rkt);
  if (topic.compare(0, prefix.size(), prefix) != 0 || m->key_len != 16) return;
  std::string target = topic.substr(prefix.size());
  common::Uuid id;
  std::memcpy(id.bytes.data(), m->key, 16);
  std::optional<buffer::DeadLetter> letter;
  if (m->payload != nullptr) {
    letter = buffer::DecodeDeadLetterPayload(
        std::string_view(static_cast<const char*>(m->payload), m->len), HeaderU64(m, kSeqHeader),
        HeaderU64(m, kIngestHeader));
    if (!letter) return;  // not ours to understand; it stays unlisted
    letter->target = target;
  }
  std::lock_guard lock(mu_);
  dead_[target].Apply(id, m->partition, m->offset, std::move(letter));
}

void KafkaQueue::Poke() {
  {
    std::lock_guard lock(poke_mu_);
    poked_ = true;
  }
  poke_cv_.notify_one();
}

void KafkaQueue::ProbeBrokers() {
  const struct rd_kafka_metadata* md = nullptr;
  if (rd_kafka_metadata(producer_, 0, nullptr, &md, kProbeTimeoutMs) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return;
  }
  rd_kafka_metadata_destroy(md);
  std::lock_guard lock(mu_);
  brokers_down_ = false;
}

void KafkaQueue::PollLoop() {
  using Clock = std::chrono::steady_clock;
  auto next_commit = Clock::now() + options_.commit_interval;
  auto next_probe = Clock::now();
  for (;;) {
    {
      std::unique_lock lock(poke_mu_);
      poke_cv_.wait_for(lock, kPollTick, [this] { return poked_ || stopping_; });
      if (stopping_) return;
      poked_ = false;
    }
    rd_kafka_poll(producer_, 0);  // delivery reports, errors
    ServeAdminResults();
    std::vector<std::shared_ptr<Target>> targets;
    bool down;
    {
      std::lock_guard lock(mu_);
      targets = targets_;
      down = brokers_down_;
    }
    bool more = false;
    bool arrived = false;
    for (auto& t : targets) {
      if (t->removed()) {
        t->CloseConsumer();
        continue;
      }
      more |= t->Serve(&arrived);
      t->ApplyBackpressure();
    }
    for (size_t i = 0; i < kServeBudget; ++i) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(dead_reader_, 0);
      if (m == nullptr) break;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) OnDeadRecord(m);
      rd_kafka_message_destroy(m);
      if (i + 1 == kServeBudget) more = true;
    }
    auto now = Clock::now();
    if (now >= next_commit) {
      for (auto& t : targets) t->Commit(/*sync=*/false);
      next_commit = now + options_.commit_interval;
    }
    if (down && now >= next_probe) {
      ProbeBrokers();
      next_probe = now + kProbeInterval;
    }
    if (arrived && events_.wake) events_.wake();
    if (more) Poke();
  }
}

Status KafkaQueue::Append(std::string payload, uint64_t ingest_unix_ns, Done done) {
  {
    std::lock_guard lock(mu_);
    if (closing_) return Status::Unavailable("kafka: closing");
    if (!fatal_.ok()) return fatal_;
    if (brokers_down_) return Status::Unavailable("kafka: no broker reachable");
  }
  auto op = std::make_shared<Operation>();
  op->done = std::move(done);
  auto* d = new Delivery{Delivery::Kind::kMessage, op, std::move(payload), {}, {}, {}};
  return Produce(options_.topic, {}, &d->value, ingest_unix_ns, 0, d);
}

void KafkaQueue::RunCompletions() {
  std::vector<Completion> ready;
  {
    std::lock_guard lock(mu_);
    ready.swap(completions_);
  }
  for (auto& c : ready) {
    if (c.done) c.done(c.status, c.value);
  }
}

Status KafkaQueue::AppendIdempotencyKey(buffer::IdempotencyEntry, Done done) {
  PushCompletion(Completion{std::move(done), Status::OK(), 0});
  return Status::OK();
}

Status KafkaQueue::OpenTarget(const std::string& target, bool added,
                              std::unique_ptr<buffer::TargetQueue>* out) {
  {
    std::lock_guard lock(mu_);
    if (closing_) return Status::Unavailable("kafka: closing");
    for (const auto& t : targets_) {
      if (t->name() == target && !t->removed()) {
        return Status::InvalidArgument("kafka: target already open: " + target);
      }
    }
  }
  auto t = std::make_shared<Target>(*this, target);
  Status s = t->Start(added);
  if (!s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    targets_.push_back(t);
    dead_.try_emplace(target);
  }
  if (options_.create_dead_letter_topics) CreateDeadTopic(target);
  *out = std::make_unique<TargetHandle>(t);
  Poke();
  return Status::OK();
}

void KafkaQueue::RemoveTarget(const std::string& target) {
  {
    std::lock_guard lock(mu_);
    for (const auto& t : targets_) {
      if (t->name() == target) t->MarkRemoved();  // the poller leaves the group
    }
  }
  Poke();
}

Status KafkaQueue::AppendDeadLetter(buffer::DeadLetter dl, Done done) {
  auto view = buffer::DecodeMessageView(dl.payload);
  if (!view) return Status::InvalidArgument("kafka: dead letter payload is not a message");
  {
    std::lock_guard lock(mu_);
    if (closing_) return Status::Unavailable("kafka: closing");
    if (!fatal_.ok()) return fatal_;
  }
  auto op = std::make_shared<Operation>();
  op->done = std::move(done);
  std::string topic = DeadTopic(dl.target);
  uint64_t ingest = dl.ingest_unix_ns;
  uint64_t seq = dl.seq;
  auto* d = new Delivery{Delivery::Kind::kLetter,
                         op,
                         buffer::EncodeDeadLetterPayload(dl),
                         dl.target,
                         view->id,
                         std::move(dl)};
  return Produce(topic, KeyOf(d->id), &d->value, ingest, seq, d);
}

uint64_t KafkaQueue::DeadLetterCount(const std::string& target) const {
  std::lock_guard lock(mu_);
  auto it = dead_.find(target);
  return it == dead_.end() ? 0 : it->second.count();
}

Status KafkaQueue::ListDeadLetters(const std::string& target,
                                   std::vector<buffer::DeadLetter>* out) const {
  std::lock_guard lock(mu_);
  auto it = dead_.find(target);
  if (it == dead_.end()) return Status::NotFound("no dead letters for " + target);
  *out = it->second.List();
  return Status::OK();
}

Status KafkaQueue::PurgeDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                    Done done) {
  std::vector<common::Uuid> ids;
  {
    std::lock_guard lock(mu_);
    if (closing_) return Status::Unavailable("kafka: closing");
    if (!fatal_.ok()) return fatal_;
    auto it = dead_.find(target);
    if (it == dead_.end()) return Status::NotFound("no dead letters for " + target);
    if (!id) {
      ids = it->second.Ids();
    } else if (it->second.Find(*id) != nullptr) {
      ids.push_back(*id);
    }
  }
  if (ids.empty()) {
    PushCompletion(Completion{std::move(done), Status::OK(), 0});
    return Status::OK();
  }
  auto op = std::make_shared<Operation>();
  op->done = std::move(done);
  op->remaining = ids.size();
  std::string topic = DeadTopic(target);
  for (const auto& letter_id : ids) {
    auto* d = new Delivery{Delivery::Kind::kTombstone, op, {}, target, letter_id, {}};
    Status s = Produce(topic, KeyOf(letter_id), nullptr, 0, 0, d);
    if (!s.ok()) EndPart(*op, s, 0);
  }
  return Status::OK();
}

Status KafkaQueue::ReplayDeadLetters(const std::string& target, std::optional<common::Uuid> id,
                                     Done done, size_t* queued) {
  std::vector<buffer::DeadLetter> letters;
  {
    std::lock_guard lock(mu_);
    if (closing_) return Status::Unavailable("kafka: closing");
    if (!fatal_.ok()) return fatal_;
    auto it = dead_.find(target);
    if (it != dead_.end()) {
      if (!id) {
        letters = it->second.List();
      } else if (const auto* l = it->second.Find(*id)) {
        letters.push_back(*l);
      }
    }
  }
  std::vector<std::pair<common::Uuid, std::string>> messages;  // id, re-addressed payload
  for (const auto& letter : letters) {
    auto message = buffer::DecodeMessage(letter.payload);
    if (!message) continue;
    message->targets = {target};
    messages.emplace_back(message->id, buffer::EncodeMessage(*message));
  }
  if (messages.empty()) {
    return Status::NotFound(id ? "no dead letter with that id" : "no dead letters");
  }
  auto op = std::make_shared<Operation>();
  op->done = std::move(done);
  op->remaining = messages.size();
  uint64_t now_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  for (auto& [message_id, payload] : messages) {
    auto* d =
        new Delivery{Delivery::Kind::kReplayed, op, std::move(payload), target, message_id, {}};
    Status s = Produce(options_.topic, {}, &d->value, now_ns, 0, d);
    if (s.ok() && queued != nullptr) ++*queued;
    if (!s.ok()) EndPart(*op, s, 0);
  }
  return Status::OK();
}

std::shared_ptr<KafkaQueue::Target> KafkaQueue::FindTarget(const std::string& target) const {
  std::lock_guard lock(mu_);
  for (const auto& t : targets_) {
    if (t->name() == target && !t->removed()) return t;
  }
  return nullptr;
}

uint64_t KafkaQueue::RefetchedMessages(const std::string& target) const {
  auto t = FindTarget(target);
  return t ? t->refetched() : 0;
}

rd_kafka_s* KafkaQueue::consumer_for_testing(const std::string& target) const {
  auto t = FindTarget(target);
  return t ? t->consumer() : nullptr;
}

size_t KafkaQueue::AssignedPartitions(const std::string& target) const {
  auto t = FindTarget(target);
  return t ? t->assigned() : 0;
}

Status KafkaQueue::fatal_error() const {
  std::lock_guard lock(mu_);
  return fatal_;
}

Status KafkaQueue::Availability() const {
  std::lock_guard lock(mu_);
  if (!fatal_.ok()) return fatal_;
  if (closing_) return Status::Unavailable("kafka: closing");
  if (brokers_down_) return Status::Unavailable("kafka: no broker reachable");
  return Status::OK();
}

void KafkaQueue::Close() {
  if (closed_) return;
  closed_ = true;
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  {
    std::lock_guard lock(poke_mu_);
    stopping_ = true;
  }
  poke_cv_.notify_one();
  if (poller_.joinable()) poller_.join();
  // The poller is gone: this thread owns every client now.
  std::vector<std::shared_ptr<Target>> targets;
  {
    std::lock_guard lock(mu_);
    targets = targets_;
  }
  for (auto& t : targets) t->CloseConsumer();
  if (dead_reader_ != nullptr) {
    rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(dead_reader_);
    rd_kafka_queue_cb_event_enable(q, nullptr, nullptr);
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(dead_reader_);
    rd_kafka_destroy(dead_reader_);
    dead_reader_ = nullptr;
  }
  if (admin_q_ != nullptr) {
    rd_kafka_queue_cb_event_enable(admin_q_, nullptr, nullptr);
    ServeAdminResults();
    rd_kafka_queue_destroy(admin_q_);
    admin_q_ = nullptr;
  }
  if (producer_ != nullptr) {
    rd_kafka_queue_t* q = rd_kafka_queue_get_main(producer_);
    rd_kafka_queue_cb_event_enable(q, nullptr, nullptr);
    rd_kafka_queue_destroy(q);
    // Serves delivery reports; a replay's tombstones are produced from them and flushed
    // in the same call.
    rd_kafka_flush(producer_, std::max(Millis(options_.close_timeout), 0));
    if (rd_kafka_outq_len(producer_) > 0) {
      // What is left fails (Unavailable): its clients get 503, nothing is acknowledged.
      rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(producer_, 1000);
    }
    rd_kafka_destroy(producer_);
    producer_ = nullptr;
  }
  RunCompletions();
}

}  // namespace sluice::broker
