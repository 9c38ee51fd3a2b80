#include "config/yaml_reader.h"

#include <charconv>
#include <limits>

#include "config/address.h"

namespace sluice::config {
namespace {

std::string ChildPath(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string path = parent;
  path += '.';
  path += key;
  return path;
}

YAML::Mark ValueMark(const YAML::Node& value, const YAML::Mark& fallback) {
  // yaml-cpp puts an empty value ("key:" with nothing after it) on the next token's
  // position, which is misleading; point at the key instead.
  if (value.IsNull() || value.Mark().is_null()) return fallback;
  return value.Mark();
}

}  // namespace

std::string DescribeNode(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

const Field* Mapping::Find(std::string_view key) const {
  for (const auto& [name, field] : entries_) {
    if (name == key) return &field;
  }
  return nullptr;
}

Field YamlReader::Root(const YAML::Node& document) {
  YAML::Mark start;  // line 0, column 0
  return Field{document, ValueMark(document, start), start, ""};
}

void YamlReader::Error(const Field& field, std::string_view message) const {
  errors_->Add(field.mark, field.path.empty() ? "(root)" : field.path, message);
}

void YamlReader::ErrorAtKey(const Field& field, std::string_view message) const {
  errors_->Add(field.key_mark, field.path.empty() ? "(root)" : field.path, message);
}

std::optional<Mapping> YamlReader::ReadMapping(
    const Field& field, std::initializer_list<std::string_view> known) const {
  return ReadMappingImpl(field, /*closed=*/true, known);
}

std::optional<Mapping> YamlReader::ReadOpenMapping(const Field& field) const {
  return ReadMappingImpl(field, /*closed=*/false, {});
}

std::optional<Mapping> YamlReader::ReadMappingImpl(
    const Field& field, bool closed, std::initializer_list<std::string_view> known) const {
  if (field.node.IsNull()) return Mapping();
  if (!field.node.IsMap()) {
    Error(field, "expected a mapping, got " + DescribeNode(field.node));
    return std::nullopt;
  }
  Mapping mapping;
  for (const auto& entry : field.node) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    YAML::Mark key_mark = key.Mark().is_null() ? field.mark : key.Mark();
    if (!key.IsScalar()) {
      errors_->Add(key_mark, field.path.empty() ? "(root)" : field.path,
                   "expected a name as key, got " + DescribeNode(key));
      continue;
    }
    const std::string& name = key.Scalar();
    Field child{value, ValueMark(value, key_mark), key_mark, ChildPath(field.path, name)};
    if (const Field* first = mapping.Find(name)) {
      ErrorAtKey(child, "duplicate key (first given at line " +
                            std::to_string(first->key_mark.line + 1) + ")");
      continue;
    }
    if (closed) {
      bool is_known = false;
      for (std::string_view k : known) is_known = is_known || k == name;
      if (!is_known) {
        ErrorAtKey(child, name == "<<" ? "unknown key (YAML merge keys are not supported)"
                                       : "unknown key");
        continue;
      }
    }
    mapping.entries_.emplace_back(name, std::move(child));
  }
  return mapping;
}

std::optional<std::vector<Field>> YamlReader::ReadSequence(const Field& field) const {
  if (!field.node.IsSequence()) {
    Error(field, "expected a list, got " + DescribeNode(field.node));
    return std::nullopt;
  }
  std::vector<Field> items;
  size_t index = 0;
  for (const YAML::Node& item : field.node) {
    YAML::Mark mark = ValueMark(item, field.mark);
    items.push_back(Field{item, mark, mark, field.path + "[" + std::to_string(index++) + "]"});
  }
  return items;
}

std::optional<std::vector<Field>> YamlReader::ReadOneOrMany(const Field& field) const {
  if (field.node.IsSequence()) return ReadSequence(field);
  if (field.node.IsMap()) {
    Error(field, "expected a value or a list of values, got a mapping");
    return std::nullopt;
  }
  return std::vector<Field>{field};
}

std::optional<std::string> YamlReader::ReadScalar(const Field* field, std::string_view what) const {
  if (field == nullptr) return std::nullopt;
  if (!field->node.IsScalar()) {
    Error(*field, "expected " + std::string(what) + ", got " + DescribeNode(field->node));
    return std::nullopt;
  }
  std::string value;
  std::string error;
  if (!ExpandEnv(field->node.Scalar(), env_, &value, &error)) {
    Error(*field, error);
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> YamlReader::ReadString(const Field* field) const {
  return ReadScalar(field, "a string");
}

std::optional<std::string> YamlReader::ReadNonEmptyString(const Field* field) const {
  std::optional<std::string> text = ReadScalar(field, "a non-empty string");
  if (text && text->empty()) {
    Error(*field, "expected a non-empty string, got \"\"");
    return std::nullopt;
  }
  return text;
}

std::optional<bool> YamlReader::ReadBool(const Field* field) const {
  std::optional<std::string> text = ReadScalar(field, "true or false");
  if (!text) return std::nullopt;
  std::string lower;
  for (char c : *text) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "true" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "no" || lower == "off") return false;
  Error(*field, "expected true or false, got " + Quote(*text));
  return std::nullopt;
}

std::optional<uint64_t> YamlReader::ReadInteger(const Field* field, uint64_t min,
                                                uint64_t max) const {
  // Bounds that are just the type's limit would only clutter the message.
  std::string what = max >= std::numeric_limits<uint32_t>::max()
                         ? "an integer >= " + std::to_string(min)
                         : "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  std::optional<std::string> text = ReadScalar(field, what);
  if (!text) return std::nullopt;
  uint64_t value = 0;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, value);
  bool digits_only = !text->empty() && text->find_first_not_of("0123456789") == std::string::npos;
  if (!digits_only || ec != std::errc() || ptr != end || value < min || value > max) {
    bool too_big = digits_only && (ec == std::errc::result_out_of_range || value > max);
    if (too_big) what = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
    Error(*field, "expected " + what + ", got " + Quote(*text));
    return std::nullopt;
  }
  return value;
}

std::optional<uint64_t> YamlReader::ReadSize(const Field* field) const {
  constexpr std::string_view kWhat = "a size like \"64MiB\"";
  std::optional<std::string> text = ReadScalar(field, kWhat);
  if (!text) return std::nullopt;
  std::optional<uint64_t> size = common::ParseSize(*text);
  if (!size) Error(*field, "expected " + std::string(kWhat) + ", got " + Quote(*text));
  return size;
}

std::optional<common::Duration> YamlReader::ReadDuration(const Field* field) const {
  constexpr std::string_view kWhat = "a duration like \"30s\"";
  std::optional<std::string> text = ReadScalar(field, kWhat);
  if (!text) return std::nullopt;
  std::optional<common::Duration> duration = common::ParseDuration(*text);
  if (!duration) Error(*field, "expected " + std::string(kWhat) + ", got " + Quote(*text));
  return duration;
}

std::optional<common::Duration> YamlReader::ReadPositiveDuration(const Field* field) const {
  std::optional<common::Duration> duration = ReadDuration(field);
  if (duration && duration->count() == 0) {
    Error(*field, "must be greater than 0");
    return std::nullopt;
  }
  return duration;
}

std::optional<common::Rate> YamlReader::ReadRate(const Field* field) const {
  constexpr std::string_view kWhat = "a rate like \"100/s\"";
  std::optional<std::string> text = ReadScalar(field, kWhat);
  if (!text) return std::nullopt;
  std::optional<common::Rate> rate = common::ParseRate(*text);
  if (!rate) Error(*field, "expected " + std::string(kWhat) + ", got " + Quote(*text));
  return rate;
}

std::optional<HostPort> YamlReader::ReadHostPort(const Field* field) const {
  std::optional<std::string> text = ReadScalar(field, "host:port like \"127.0.0.1:8080\"");
  if (!text) return std::nullopt;
  HostPort address;
  std::string error;
  if (!ParseHostPort(*text, &address, &error)) {
    Error(*field, error);
    return std::nullopt;
  }
  return address;
}

}  // namespace sluice::config
