// The schema walk: turns a parsed YAML document into a Config, reporting every problem
// it finds (see YamlReader) rather than stopping at the first one.

#include "config/config.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <sstream>

#include "config/address.h"
#include "config/env_expand.h"
#include "config/error_list.h"
#include "config/yaml_reader.h"

namespace sluice::config {
namespace {

constexpr uint64_t kMinSegmentBytes = 4 << 10;
constexpr uint64_t kUint32Max = std::numeric_limits<uint32_t>::max();

template <typename T, typename U>
void Set(T* out, const std::optional<U>& value) {
  if (value) *out = static_cast<T>(*value);
}

std::string FormatSize(uint64_t bytes) {
  if (bytes != 0 && bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes != 0 && bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes != 0 && bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes);
}

bool IsTargetName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

// RFC 9110 "token".
bool IsToken(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::string ToUpper(std::string text) {
  for (char& c : text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return text;
}

class ConfigParser {
 public:
  explicit ConfigParser(const YamlReader& reader) : r_(reader) {}

  void Parse(const Field& root, Config* config);

 private:
  void ParseAdmin(const Field& field, AdminConfig* admin);
  void ParseBuffer(const Field& field, BufferConfig* buffer);
  void ParseRabbitMq(const Field& field, RabbitMqConfig* out);
  void ParseKafka(const Field& field, KafkaConfig* out);
  void ParseSqs(const Field& field, SqsConfig* out);
  // A queue, topic or group name (part): sets *out when valid, reports it otherwise.
  void ReadBrokerName(const Field* field, bool allow_empty, bool dots, std::string* out);
  void ParseLimits(const Field& field, Limits* limits);
  void ParseIdempotency(const Field& field, Duration* window);
  void ParseTargets(const Field* field, const Field& root, std::vector<Target>* targets);
  void ParseTarget(const Field& field, Target* target);
  void ParseConcurrency(const Field& field, Concurrency* concurrency);
  void ParseRetry(const Field& field, RetryPolicy* retry);
  void ParseRetryOn(const Field& field, RetryPolicy* retry);
  void ParseRoutes(const Field& field, const Config& config, std::vector<Route>* routes);
  void ParseRoute(size_t index, const Field& field, const Config& config, Route* route);
  void ParseMatch(const Field& field, Route* route);
  // Reads a target reference; reports names that are not among `config.targets`.
  std::optional<std::string> ReadTargetName(const Field& field, const Config& config);

  const YamlReader& r_;
  std::optional<Field> admin_listen_;  // for the listener clash check
};

void ConfigParser::Parse(const Field& root, Config* config) {
  std::optional<Mapping> top =
      r_.ReadMapping(root, {"listen", "admin", "buffer", "limits", "shutdown_timeout",
                            "idempotency", "targets", "routes"});
  if (!top) return;
  Set(&config->listen, r_.ReadHostPort(top->Find("listen")));
  if (const Field* f = top->Find("admin")) ParseAdmin(*f, &config->admin);
  if (const Field* f = top->Find("buffer")) ParseBuffer(*f, &config->buffer);
  if (const Field* f = top->Find("limits")) ParseLimits(*f, &config->limits);
  Set(&config->shutdown_timeout, r_.ReadDuration(top->Find("shutdown_timeout")));
  if (const Field* f = top->Find("idempotency")) {
    ParseIdempotency(*f, &config->idempotency_window);
  }
  ParseTargets(top->Find("targets"), root, &config->targets);

  const Field* routes = top->Find("routes");
  if (routes != nullptr && !routes->node.IsNull()) {
    ParseRoutes(*routes, *config, &config->routes);
  } else {
    Route route;
    route.name = "default";
    for (const Target& target : config->targets) route.queue.push_back(target.name);
    config->routes.push_back(std::move(route));
  }

  // Two listeners on one fixed address cannot both bind.
  if (config->listen.port != 0 && config->listen == config->admin.listen) {
    std::string address = config->listen.host + ":" + std::to_string(config->listen.port);
    if (admin_listen_) {
      r_.Error(*admin_listen_, "must differ from listen (" + address + ")");
    } else if (const Field* f = top->Find("listen")) {
      r_.Error(*f, "must differ from admin.listen (" + address + ")");
    }
  }
}

void ConfigParser::ParseAdmin(const Field& field, AdminConfig* admin) {
  std::optional<Mapping> m = r_.ReadMapping(field, {"listen", "token"});
  if (!m) return;
  if (const Field* f = m->Find("listen")) {
    admin_listen_ = *f;
    Set(&admin->listen, r_.ReadHostPort(f));
  }
  Set(&admin->token, r_.ReadString(m->Find("token")));
}

void ConfigParser::ParseBuffer(const Field& field, BufferConfig* buffer) {
  std::optional<Mapping> m =
      r_.ReadMapping(field, {"kind", "dir", "max_bytes", "segment_bytes", "fsync", "fsync_interval",
                             "rabbitmq", "kafka", "sqs"});
  if (!m) return;
  const Field* kind_field = m->Find("kind");
  std::optional<std::string> kind = r_.ReadChoice<std::string>(
      kind_field, {{"disk", "disk"}, {"rabbitmq", "rabbitmq"}, {"kafka", "kafka"}, {"sqs", "sqs"}});
  Set(&buffer->kind, kind);
  Set(&buffer->dir, r_.ReadNonEmptyString(m->Find("dir")));

  const Field* max_field = m->Find("max_bytes");
  const Field* segment_field = m->Find("segment_bytes");
  std::optional<uint64_t> max_bytes = r_.ReadSize(max_field);
  std::optional<uint64_t> segment_bytes = r_.ReadSize(segment_field);
  if (segment_bytes && *segment_bytes < kMinSegmentBytes) {
    r_.Error(*segment_field, "must be at least " + FormatSize(kMinSegmentBytes) + ", got " +
                                 FormatSize(*segment_bytes));
    segment_bytes.reset();
  }
  Set(&buffer->max_bytes, max_bytes);
  Set(&buffer->segment_bytes, segment_bytes);
  if ((max_bytes || segment_bytes) && buffer->max_bytes < buffer->segment_bytes) {
    if (max_bytes) {
      r_.Error(*max_field, "must be at least buffer.segment_bytes (" +
                               FormatSize(buffer->segment_bytes) + "), got " +
                               FormatSize(buffer->max_bytes));
    } else {
      r_.Error(*segment_field, "must not exceed buffer.max_bytes (" +
                                   FormatSize(buffer->max_bytes) + "), got " +
                                   FormatSize(buffer->segment_bytes));
    }
  }

  Set(&buffer->fsync,
      r_.ReadChoice<FsyncMode>(m->Find("fsync"), {{"batch", FsyncMode::kBatch},
                                                  {"interval", FsyncMode::kInterval},
                                                  {"never", FsyncMode::kNever}}));
  Set(&buffer->fsync_interval, r_.ReadPositiveDuration(m->Find("fsync_interval")));

  // Every broker block is checked, whichever kind is in use: a typo in one is caught
  // before someone switches to it.
  if (const Field* f = m->Find("rabbitmq")) ParseRabbitMq(*f, &buffer->rabbitmq);
  if (const Field* f = m->Find("kafka")) ParseKafka(*f, &buffer->kafka);
  if (const Field* f = m->Find("sqs")) ParseSqs(*f, &buffer->sqs);
}

namespace {
// Names a broker accepts for queues, topics and groups: letters, digits, '.', '_', '-'.
bool IsBrokerName(std::string_view name, bool dots) {
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (dots && c == '.');
    if (!ok) return false;
  }
  return true;
}
}  // namespace

void ConfigParser::ReadBrokerName(const Field* field, bool allow_empty, bool dots,
                                  std::string* out) {
  std::optional<std::string> name =
      allow_empty ? r_.ReadString(field) : r_.ReadNonEmptyString(field);
  if (!name) return;
  if (!IsBrokerName(*name, dots)) {
    r_.Error(*field, std::string("expected letters, digits, ") + (dots ? "'.', " : "") +
                         "'_' or '-', got \"" + *name + "\"");
    return;
  }
  *out = *name;
}

void ConfigParser::ParseRabbitMq(const Field& field, RabbitMqConfig* out) {
  std::optional<Mapping> m = r_.ReadMapping(field, {"url", "exchange", "queue_prefix"});
  if (!m) return;
  if (const Field* f = m->Find("url")) {
    std::optional<std::string> url = r_.ReadNonEmptyString(f);
    if (url && url->rfind("amqp://", 0) != 0) {
      r_.Error(*f,
               "expected a URL like amqp://user:password@host:5672/vhost, got \"" + *url + "\"");
    } else if (url) {
      out->url = *url;
    }
  }
  ReadBrokerName(m->Find("exchange"), /*allow_empty=*/false, /*dots=*/true, &out->exchange);
  ReadBrokerName(m->Find("queue_prefix"), /*allow_empty=*/true, /*dots=*/true, &out->queue_prefix);
}

void ConfigParser::ParseKafka(const Field& field, KafkaConfig* out) {
  std::optional<Mapping> m = r_.ReadMapping(field, {"brokers", "topic", "group_prefix"});
  if (!m) return;
  if (const Field* f = m->Find("brokers")) {
    std::optional<std::string> brokers = r_.ReadNonEmptyString(f);
    if (brokers) {
      // host:port[,host:port...]: each entry needs a port.
      bool ok = true;
      size_t start = 0;
      while (start <= brokers->size()) {
        size_t end = brokers->find(',', start);
        if (end == std::string::npos) end = brokers->size();
        std::string_view entry = std::string_view(*brokers).substr(start, end - start);
        size_t colon = entry.rfind(':');
        if (entry.empty() || colon == std::string_view::npos || colon == 0 ||
            colon + 1 == entry.size()) {
          ok = false;
        }
        start = end + 1;
      }
      if (!ok) {
        r_.Error(*f, "expected host:port[,host:port...], got \"" + *brokers + "\"");
      } else {
        out->brokers = *brokers;
      }
    }
  }
  ReadBrokerName(m->Find("topic"), /*allow_empty=*/false, /*dots=*/true, &out->topic);
  ReadBrokerName(m->Find("group_prefix"), /*allow_empty=*/true, /*dots=*/true, &out->group_prefix);
}

void ConfigParser::ParseSqs(const Field& field, SqsConfig* out) {
  std::optional<Mapping> m =
      r_.ReadMapping(field, {"region", "endpoint", "queue_prefix", "visibility_timeout"});
  if (!m) return;
  ReadBrokerName(m->Find("region"), /*allow_empty=*/false, /*dots=*/false, &out->region);
  if (const Field* f = m->Find("endpoint")) {
    std::optional<std::string> endpoint = r_.ReadString(f);
    if (endpoint && !endpoint->empty() && endpoint->rfind("http://", 0) != 0 &&
        endpoint->rfind("https://", 0) != 0) {
      r_.Error(*f, "expected \"\" or a URL like https://sqs.us-east-1.amazonaws.com, got \"" +
                       *endpoint + "\"");
    } else if (endpoint) {
      out->endpoint = *endpoint;
    }
  }
  // SQS queue names: letters, digits, '_' and '-' (no dots outside FIFO suffixes).
  ReadBrokerName(m->Find("queue_prefix"), /*allow_empty=*/true, /*dots=*/false, &out->queue_prefix);
  // SQS takes whole seconds up to 12 h.
  if (const Field* f = m->Find("visibility_timeout")) {
    std::optional<Duration> v = r_.ReadPositiveDuration(f);
    if (v && (*v < 1s || *v > 12h || *v % 1s != Duration::zero())) {
      r_.Error(*f, "must be whole seconds from 1s to 12h");
    } else if (v) {
      out->visibility_timeout = *v;
    }
  }
}

void ConfigParser::ParseLimits(const Field& field, Limits* limits) {
  std::optional<Mapping> m = r_.ReadMapping(
      field, {"max_body_bytes", "max_header_bytes", "max_connections", "read_timeout"});
  if (!m) return;
  Set(&limits->max_body_bytes, r_.ReadSize(m->Find("max_body_bytes")));
  const Field* header_field = m->Find("max_header_bytes");
  std::optional<uint64_t> header_bytes = r_.ReadSize(header_field);
  if (header_bytes && *header_bytes == 0) {
    r_.Error(*header_field, "must be greater than 0");
    header_bytes.reset();
  }
  Set(&limits->max_header_bytes, header_bytes);
  Set(&limits->max_connections, r_.ReadInteger(m->Find("max_connections"), 1, kUint32Max));
  Set(&limits->read_timeout, r_.ReadPositiveDuration(m->Find("read_timeout")));
}

void ConfigParser::ParseIdempotency(const Field& field, Duration* window) {
  std::optional<Mapping> m = r_.ReadMapping(field, {"window"});
  if (!m) return;
  Set(window, r_.ReadDuration(m->Find("window")));  // 0 turns deduplication off
}

void ConfigParser::ParseTargets(const Field* field, const Field& root,
                                std::vector<Target>* targets) {
  if (field == nullptr) {
    r_.Error(Field{root.node, root.mark, root.key_mark, "targets"},
             "missing; at least one target is required");
    return;
  }
  std::optional<Mapping> m = r_.ReadOpenMapping(*field);
  if (!m) return;
  if (m->entries().empty()) {
    r_.Error(*field, "at least one target is required");
    return;
  }
  for (const auto& [name, target_field] : m->entries()) {
    if (!IsTargetName(name)) {
      r_.ErrorAtKey(target_field, "a target name may only contain a-z, 0-9, \"_\" and \"-\"");
    }
    Target target;
    target.name = name;
    ParseTarget(target_field, &target);
    targets->push_back(std::move(target));
  }
}

void ConfigParser::ParseTarget(const Field& field, Target* target) {
  std::optional<Mapping> m = r_.ReadMapping(
      field, {"url", "rate", "burst", "concurrency", "timeout", "ordering", "retry", "max_age"});
  if (!m) return;
  const Field* url_field = m->Find("url");
  if (url_field == nullptr) {
    r_.ErrorAtKey(field, "missing required key \"url\"");
  } else if (std::optional<std::string> url =
                 r_.ReadScalar(url_field, "a URL like \"http://127.0.0.1:9000\"")) {
    std::string error;
    if (ParseHttpUrl(*url, &target->parsed_url, &error)) {
      target->url = *url;
    } else {
      r_.Error(*url_field, error);
    }
  }
  Set(&target->rate, r_.ReadRate(m->Find("rate")));
  Set(&target->burst, r_.ReadInteger(m->Find("burst"), 1, kUint32Max));
  if (const Field* f = m->Find("concurrency")) ParseConcurrency(*f, &target->concurrency);
  Set(&target->timeout, r_.ReadPositiveDuration(m->Find("timeout")));
  Set(&target->ordering, r_.ReadChoice<Ordering>(m->Find("ordering"), {{"none", Ordering::kNone},
                                                                       {"fifo", Ordering::kFifo}}));
  if (const Field* f = m->Find("retry")) ParseRetry(*f, &target->retry);
  Set(&target->max_age, r_.ReadPositiveDuration(m->Find("max_age")));

  if (target->ordering == Ordering::kFifo) {
    // Head-of-line delivery: one message in flight, whatever concurrency says.
    target->concurrency = Concurrency{.adaptive = false, .limit = 1, .min = 1, .max = 1};
  }
}

void ConfigParser::ParseConcurrency(const Field& field, Concurrency* concurrency) {
  if (!field.node.IsMap()) {
    std::optional<uint64_t> limit = r_.ReadInteger(&field, 1, kUint32Max);
    if (limit) {
      *concurrency = Concurrency{.adaptive = false, .limit = static_cast<uint32_t>(*limit)};
    }
    return;
  }
  // The mapping form exists for the adaptive limit only, so "adaptive: true" may be left out.
  std::optional<Mapping> m = r_.ReadMapping(field, {"adaptive", "min", "max"});
  if (!m) return;
  const Field* adaptive_field = m->Find("adaptive");
  std::optional<bool> adaptive = r_.ReadBool(adaptive_field);
  if (adaptive && !*adaptive) {
    r_.Error(*adaptive_field, "a fixed limit is written as a number, like \"concurrency: 4\"");
  }
  Concurrency result{.adaptive = true};
  const Field* min_field = m->Find("min");
  std::optional<uint64_t> min = r_.ReadInteger(min_field, 1, kUint32Max);
  std::optional<uint64_t> max = r_.ReadInteger(m->Find("max"), 1, kUint32Max);
  Set(&result.min, min);
  Set(&result.max, max);
  if (result.min > result.max) {
    const Field* where = min ? min_field : m->Find("max");
    r_.Error(*where, "concurrency.min (" + std::to_string(result.min) +
                         ") must not exceed concurrency.max (" + std::to_string(result.max) + ")");
    return;
  }
  result.limit = result.max;
  *concurrency = result;
}

void ConfigParser::ParseRetry(const Field& field, RetryPolicy* retry) {
  std::optional<Mapping> m = r_.ReadMapping(
      field, {"max_attempts", "initial_backoff", "max_backoff", "retry_on", "respect_retry_after"});
  if (!m) return;
  Set(&retry->max_attempts, r_.ReadInteger(m->Find("max_attempts"), 0, kUint32Max));
  const Field* initial_field = m->Find("initial_backoff");
  const Field* max_field = m->Find("max_backoff");
  std::optional<Duration> initial = r_.ReadPositiveDuration(initial_field);
  std::optional<Duration> max = r_.ReadPositiveDuration(max_field);
  Set(&retry->initial_backoff, initial);
  Set(&retry->max_backoff, max);
  if ((initial || max) && retry->initial_backoff > retry->max_backoff) {
    if (initial) {
      r_.Error(*initial_field, "must not exceed retry.max_backoff");
    } else {
      r_.Error(*max_field, "must not be less than retry.initial_backoff");
    }
  }
  if (const Field* f = m->Find("retry_on")) ParseRetryOn(*f, retry);
  Set(&retry->respect_retry_after, r_.ReadBool(m->Find("respect_retry_after")));
}

void ConfigParser::ParseRetryOn(const Field& field, RetryPolicy* retry) {
  std::optional<std::vector<Field>> items = r_.ReadOneOrMany(field);
  if (!items) return;
  constexpr std::string_view kWhat =
      "\"connect-failure\", \"timeout\" or an HTTP status from 100 to 599";
  RetryPolicy parsed = *retry;
  parsed.on_connect_failure = false;
  parsed.on_timeout = false;
  parsed.on_status.clear();
  bool ok = true;
  for (const Field& item : *items) {
    std::optional<std::string> text = r_.ReadScalar(&item, kWhat);
    if (!text) {
      ok = false;
      continue;
    }
    if (*text == "connect-failure") {
      parsed.on_connect_failure = true;
    } else if (*text == "timeout") {
      parsed.on_timeout = true;
    } else if (text->size() == 3 && text->find_first_not_of("0123456789") == std::string::npos &&
               (*text)[0] >= '1' && (*text)[0] <= '5') {
      int status = std::stoi(*text);
      if (!parsed.RetriesStatus(status)) parsed.on_status.push_back(status);
    } else {
      r_.Error(item, "expected " + std::string(kWhat) + ", got " + Quote(*text));
      ok = false;
    }
  }
  if (ok) *retry = std::move(parsed);
}

void ConfigParser::ParseRoutes(const Field& field, const Config& config,
                               std::vector<Route>* routes) {
  std::optional<std::vector<Field>> items = r_.ReadSequence(field);
  if (!items) return;
  if (items->empty()) {
    r_.Error(field, "expected at least one route (leave routes out for the default route)");
    return;
  }
  for (size_t i = 0; i < items->size(); ++i) {
    Route route;
    ParseRoute(i, (*items)[i], config, &route);
    for (size_t j = 0; j < routes->size(); ++j) {
      if ((*routes)[j].name == route.name) {
        r_.Error((*items)[i], "duplicate route name " + Quote(route.name) + " (also routes[" +
                                  std::to_string(j) + "])");
        break;
      }
    }
    routes->push_back(std::move(route));
  }
}

void ConfigParser::ParseRoute(size_t index, const Field& field, const Config& config,
                              Route* route) {
  route->name = "route" + std::to_string(index + 1);
  if (field.node.IsNull()) {
    r_.Error(field, "expected a mapping, got nothing");
    return;
  }
  std::optional<Mapping> m = r_.ReadMapping(field, {"name", "match", "queue", "forward"});
  if (!m) return;
  Set(&route->name, r_.ReadNonEmptyString(m->Find("name")));
  if (const Field* f = m->Find("match")) ParseMatch(*f, route);

  const Field* queue = m->Find("queue");
  const Field* forward = m->Find("forward");
  if (queue != nullptr && forward != nullptr) {
    r_.Error(field, "set either queue or forward, not both");
  } else if (queue == nullptr && forward == nullptr) {
    r_.Error(field, "needs either queue (fan-out to targets) or forward (pass-through)");
  }
  if (queue != nullptr) {
    std::optional<std::vector<Field>> items = r_.ReadOneOrMany(*queue);
    if (items && items->empty()) r_.Error(*queue, "expected at least one target");
    for (const Field& item : items.value_or(std::vector<Field>())) {
      std::optional<std::string> name = ReadTargetName(item, config);
      if (!name) continue;
      if (std::find(route->queue.begin(), route->queue.end(), *name) != route->queue.end()) {
        r_.Error(item, "target " + Quote(*name) + " is listed twice");
        continue;
      }
      route->queue.push_back(*name);
    }
  }
  if (forward != nullptr) Set(&route->forward, ReadTargetName(*forward, config));
}

void ConfigParser::ParseMatch(const Field& field, Route* route) {
  std::optional<Mapping> m = r_.ReadMapping(field, {"path_prefix", "methods"});
  if (!m) return;
  const Field* prefix_field = m->Find("path_prefix");
  std::optional<std::string> prefix = r_.ReadScalar(prefix_field, "a path like \"/orders\"");
  if (prefix && !prefix->starts_with("/")) {
    r_.Error(*prefix_field, "expected a path starting with \"/\", got " + Quote(*prefix));
  } else {
    Set(&route->path_prefix, prefix);
  }
  const Field* methods_field = m->Find("methods");
  if (methods_field == nullptr) return;
  std::optional<std::vector<Field>> items = r_.ReadOneOrMany(*methods_field);
  if (!items) return;
  if (items->empty()) {
    r_.Error(*methods_field, "expected at least one method (leave methods out to match any)");
  }
  for (const Field& item : *items) {
    std::optional<std::string> method = r_.ReadScalar(&item, "an HTTP method like \"POST\"");
    if (!method) continue;
    if (!IsToken(*method)) {
      r_.Error(item, "expected an HTTP method like \"POST\", got " + Quote(*method));
      continue;
    }
    std::string upper = ToUpper(*method);
    if (std::find(route->methods.begin(), route->methods.end(), upper) == route->methods.end()) {
      route->methods.push_back(std::move(upper));
    }
  }
}

std::optional<std::string> ConfigParser::ReadTargetName(const Field& field, const Config& config) {
  std::optional<std::string> name = r_.ReadScalar(&field, "a target name");
  if (!name) return std::nullopt;
  if (config.FindTarget(*name) != nullptr) return name;
  std::string known;
  for (const Target& target : config.targets) known += (known.empty() ? "" : ", ") + target.name;
  r_.Error(field, "unknown target " + Quote(*name) +
                      (known.empty() ? std::string() : " (targets: " + known + ")"));
  return std::nullopt;
}

// Counts documents (up to two) with the event parser instead of YAML::LoadAll, which
// loops forever allocating on some inputs in yaml-cpp 0.7 (e.g. a file that is just
// ","; yaml-cpp issue 1040): --check and a SIGHUP reload must never hang.
struct DocumentCount {
  int documents = 0;
  YAML::Mark second;   // the first node of the second document
  bool stuck = false;  // the parser stopped making progress (the 0.7 bug)
};

class DocumentCounter final : public YAML::EventHandler {
 public:
  explicit DocumentCounter(DocumentCount* count) : count_(count) {}
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (count_->documents > 0 && mark.pos <= last_start_) count_->stuck = true;
    last_start_ = mark.pos;
    ++count_->documents;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}

 private:
  void Node(const YAML::Mark& mark) {
    if (count_->documents == 2 && !seen_second_) {
      count_->second = mark;
      seen_second_ = true;
    }
  }
  DocumentCount* count_;
  int last_start_ = -1;
  bool seen_second_ = false;
};

// Counts documents with the event parser instead of YAML::LoadAll, which loops forever
// allocating on some inputs in yaml-cpp 0.7 (e.g. a file that is just ","; yaml-cpp
// issue 1040): --check and a SIGHUP reload must never hang.
DocumentCount CountDocuments(std::string_view yaml) {
  constexpr int kEnough = 64;  // past this the exact number does not matter
  DocumentCount count;
  std::istringstream in{std::string(yaml)};
  YAML::Parser parser(in);
  DocumentCounter counter(&count);
  while (count.documents < kEnough && !count.stuck && parser.HandleNextDocument(counter)) {
  }
  return count;
}

LoadResult Load(std::string_view yaml, const std::string& file, const EnvLookup& env) {
  ErrorList errors(file);
  Config config;
  config.file = file;
  // yaml-cpp reports syntax errors, and could report misuse, by exception; nothing may
  // escape a config load (it also runs on reload, inside the event loop).
  try {
    DocumentCount count = CountDocuments(yaml);
    if (count.stuck) {
      errors.Add(YAML::Mark(), "yaml", "not a YAML document sluice can read");
    } else if (count.documents > 1) {
      errors.Add(count.second, "yaml",
                 "expected one document, found " + std::to_string(count.documents));
    } else {
      YAML::Node document = count.documents == 0 ? YAML::Node() : YAML::Load(std::string(yaml));
      if (!document.IsDefined() || document.IsNull()) {
        errors.Add(YAML::Mark(), "(root)",
                   "the file is empty; expected a mapping with at least \"targets\"");
      } else {
        YamlReader reader(&errors, env);
        ConfigParser(reader).Parse(YamlReader::Root(document), &config);
      }
    }
  } catch (const YAML::Exception& e) {
    errors.Add(e.mark, "yaml", e.msg);
  } catch (const std::exception& e) {
    errors.Add(YAML::Mark(), "yaml", e.what());
  }
  LoadResult result;
  if (errors.empty()) {
    result.config = std::move(config);
  } else {
    result.errors = errors.Lines();
  }
  return result;
}

}  // namespace

bool RetryPolicy::RetriesStatus(int status) const {
  return std::find(on_status.begin(), on_status.end(), status) != on_status.end();
}

bool Route::Matches(std::string_view method, std::string_view path) const {
  if (!methods.empty() && std::find(methods.begin(), methods.end(), method) == methods.end()) {
    return false;
  }
  path = path.substr(0, path.find('?'));  // the query is not part of the path
  return path.starts_with(path_prefix);
}

const Target* Config::FindTarget(std::string_view name) const {
  for (const Target& target : targets) {
    if (target.name == name) return &target;
  }
  return nullptr;
}

const Route* Config::MatchRoute(std::string_view method, std::string_view path) const {
  for (const Route& route : routes) {
    if (route.Matches(method, path)) return &route;
  }
  return nullptr;
}

LoadResult LoadString(std::string_view yaml, const std::string& file) {
  return Load(yaml, file, ProcessEnv);
}

LoadResult LoadString(std::string_view yaml, const std::string& file, const EnvLookup& env) {
  return Load(yaml, file, env);
}

LoadResult LoadFile(const std::string& path) {
  std::string contents;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  int err = 0;
  if (fd < 0) {
    err = errno;
  } else {
    char buf[16384];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n > 0) {
        contents.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else if (errno != EINTR) {
        err = errno;
        break;
      }
    }
    ::close(fd);
  }
  if (err != 0) {
    ErrorList errors(path);
    errors.AddWithoutPosition(std::string("cannot read: ") + std::strerror(err));
    LoadResult result;
    result.errors = errors.Lines();
    return result;
  }
  return LoadString(contents, path);
}

}  // namespace sluice::config
