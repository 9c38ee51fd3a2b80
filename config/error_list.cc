#include "config/error_list.h"

#include <algorithm>
#include <cstdio>

namespace sluice::config {
namespace {

// One problem, one line: keys and values may hold control characters (even newlines).
void AppendPrintable(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      *out += "\\x";
      *out += kHex[byte >> 4];
      *out += kHex[byte & 0xf];
    } else {
      *out += c;
    }
  }
}

}  // namespace

std::string Quote(std::string_view text) {
  // A whole 100 KB value helps nobody find the mistake.
  constexpr size_t kMaxShown = 200;
  bool cut = text.size() > kMaxShown;
  if (cut) text = text.substr(0, kMaxShown);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  out += cut ? "\"..." : "\"";
  return out;
}

void ErrorList::Add(const YAML::Mark& mark, std::string_view path, std::string_view message) {
  int line = mark.is_null() ? 1 : mark.line + 1;
  int column = mark.is_null() ? 1 : mark.column + 1;
  std::string text = file_ + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  AppendPrintable(path, &text);
  text += ": ";
  AppendPrintable(message, &text);
  entries_.push_back({line, column, std::move(text)});
}

void ErrorList::AddWithoutPosition(std::string_view message) {
  std::string text = file_ + ": ";
  AppendPrintable(message, &text);
  entries_.push_back({0, 0, std::move(text)});
}

std::vector<std::string> ErrorList::Lines() const {
  std::vector<Entry> sorted = entries_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  std::vector<std::string> lines;
  lines.reserve(sorted.size());
  for (Entry& e : sorted) lines.push_back(std::move(e.text));
  return lines;
}

}  // namespace sluice::config
