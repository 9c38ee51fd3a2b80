#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/units.h"
#include "config/config.h"
#include "config/env_expand.h"
#include "config/error_list.h"

namespace sluice::config {

// A node of the document with what is needed to report a problem with it.
struct Field {
  YAML::Node node;
  YAML::Mark mark;      // the value's position, or its key's when the value is empty
  YAML::Mark key_mark;  // the key's position (the value's for list items and the root)
  std::string path;     // "targets.orders.rate", "routes[0].queue[1]"; "(root)" for the root
};

// The entries of a mapping, in document order, keys unique.
class Mapping {
 public:
  // nullptr when the key is absent.
  const Field* Find(std::string_view key) const;
  const std::vector<std::pair<std::string, Field>>& entries() const { return entries_; }

 private:
  friend class YamlReader;
  std::vector<std::pair<std::string, Field>> entries_;
};

// Reads typed values out of a parsed document. Every problem goes to the ErrorList and
// the read returns nullopt, so that callers keep the default and go on to the next key.
// Scalars are read through ExpandEnv. Functions taking `const Field*` return nullopt
// without an error when the field is absent (nullptr).
class YamlReader {
 public:
  // "*errors" must outlive this reader.
  YamlReader(ErrorList* errors, EnvLookup env) : errors_(errors), env_(std::move(env)) {}

  static Field Root(const YAML::Node& document);

  void Error(const Field& field, std::string_view message) const;
  void ErrorAtKey(const Field& field, std::string_view message) const;

  // A mapping whose keys must be among `known` (unknown keys are reported at the key).
  // An empty value counts as an empty mapping. Duplicate keys are reported.
  std::optional<Mapping> ReadMapping(const Field& field,
                                     std::initializer_list<std::string_view> known) const;
  // A mapping with any (string) keys, e.g. targets by name.
  std::optional<Mapping> ReadOpenMapping(const Field& field) const;
  // A list; items get paths "path[0]", "path[1]", ...
  std::optional<std::vector<Field>> ReadSequence(const Field& field) const;
  // A single value or a list of them (`queue: a` or `queue: [a, b]`).
  std::optional<std::vector<Field>> ReadOneOrMany(const Field& field) const;

  // `what` names the expected value in messages: "expected <what>, got ...".
  std::optional<std::string> ReadScalar(const Field* field, std::string_view what) const;
  std::optional<std::string> ReadString(const Field* field) const;
  std::optional<std::string> ReadNonEmptyString(const Field* field) const;
  std::optional<bool> ReadBool(const Field* field) const;
  std::optional<uint64_t> ReadInteger(const Field* field, uint64_t min, uint64_t max) const;
  std::optional<uint64_t> ReadSize(const Field* field) const;
  std::optional<common::Duration> ReadDuration(const Field* field) const;
  // A duration > 0.
  std::optional<common::Duration> ReadPositiveDuration(const Field* field) const;
  std::optional<common::Rate> ReadRate(const Field* field) const;
  std::optional<HostPort> ReadHostPort(const Field* field) const;
  // One of `choices`, compared exactly.
  template <typename T>
  std::optional<T> ReadChoice(const Field* field,
                              std::initializer_list<std::pair<std::string_view, T>> choices) const;

 private:
  std::optional<Mapping> ReadMappingImpl(const Field& field, bool closed,
                                         std::initializer_list<std::string_view> known) const;

  ErrorList* errors_;
  EnvLookup env_;
};

// Describes a node for "got ..." in messages: "a list", "a mapping", "nothing".
std::string DescribeNode(const YAML::Node& node);
template <typename T>
std::optional<T> YamlReader::ReadChoice(
    const Field* field, std::initializer_list<std::pair<std::string_view, T>> choices) const {
  std::string what = "one of";
  for (const auto& choice : choices) {
    what += what.size() == 6 ? " " : ", ";
    what += choice.first;
  }
  std::optional<std::string> text = ReadScalar(field, what);
  if (!text) return std::nullopt;
  for (const auto& choice : choices) {
    if (*text == choice.first) return choice.second;
  }
  Error(*field, "expected " + what + ", got " + Quote(*text));
  return std::nullopt;
}

}  // namespace sluice::config
