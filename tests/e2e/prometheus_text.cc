#include "tests/e2e/prometheus_text.h"

#include <cstdlib>
#include <string>

namespace sluice::e2e {
namespace {

// Parses `{k="v",...}` starting at text[pos] == '{'; returns the index after '}' or npos.
size_t ParseLabels(std::string_view line, size_t pos, std::map<std::string, std::string>* out) {
  ++pos;
  while (pos < line.size() && line[pos] != '}') {
    size_t eq = line.find('=', pos);
    if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
      return std::string_view::npos;
    }
    std::string key(line.substr(pos, eq - pos));
    std::string value;
    size_t i = eq + 2;
    for (; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        ++i;
        value += line[i] == 'n' ? '\n' : line[i];
      } else {
        value += line[i];
      }
    }
    if (i >= line.size()) return std::string_view::npos;
    (*out)[key] = value;
    pos = i + 1;
    if (pos < line.size() && line[pos] == ',') ++pos;
  }
  return pos < line.size() ? pos + 1 : std::string_view::npos;
}

}  // namespace

std::vector<Sample> ParseSamples(std::string_view text) {
  std::vector<Sample> samples;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos) continue;
    s.name = std::string(line.substr(0, name_end));
    size_t pos = name_end;
    if (line[pos] == '{') {
      pos = ParseLabels(line, pos, &s.labels);
      if (pos == std::string_view::npos) continue;
    }
    while (pos < line.size() && line[pos] == ' ') ++pos;
    std::string value(line.substr(pos, line.find(' ', pos) - pos));
    if (value.empty()) continue;
    char* end = nullptr;
    s.value = std::strtod(value.c_str(), &end);  // also parses +Inf, NaN
    if (end == value.c_str()) continue;
    samples.push_back(std::move(s));
  }
  return samples;
}

std::optional<double> SumSamples(std::string_view text, std::string_view name,
                                 const std::map<std::string, std::string>& labels) {
  std::optional<double> sum;
  for (const Sample& s : ParseSamples(text)) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) sum = sum.value_or(0) + s.value;
  }
  return sum;
}

}  // namespace sluice::e2e
