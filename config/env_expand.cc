#include "config/env_expand.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "config/error_list.h"

namespace sluice::config {
namespace {

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

bool IsValidName(std::string_view name) {
  if (name.empty() || !IsNameStart(name.front())) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

bool ExpandEnv(std::string_view text, const EnvLookup& lookup, std::string* out,
               std::string* error) {
  std::string result;
  result.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '$' || i + 1 == text.size() || (text[i + 1] != '$' && text[i + 1] != '{')) {
      result.push_back(c);
      ++i;
      continue;
    }
    if (text[i + 1] == '$') {
      result.push_back('$');
      i += 2;
      continue;
    }
    // "${...}"
    size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      *error = "unterminated \"${\" (write \"$$\" for a literal \"$\")";
      return false;
    }
    std::string_view body = text.substr(i + 2, close - (i + 2));
    std::string_view name = body;
    std::string_view op;
    std::string_view arg;
    if (size_t colon = body.find(':'); colon != std::string_view::npos) {
      name = body.substr(0, colon);
      op = body.substr(colon, 2);
      arg = body.substr(std::min(body.size(), colon + 2));
    }
    if (!IsValidName(name) || (!op.empty() && op != ":-" && op != ":?")) {
      *error = "invalid reference " + Quote("${" + std::string(body) + "}") +
               ": expected ${NAME}, ${NAME:-default} or ${NAME:?message}";
      return false;
    }
    std::optional<std::string> value = lookup(std::string(name));
    if (op.empty()) {
      if (!value) {
        *error = "environment variable \"" + std::string(name) + "\" is not set";
        return false;
      }
      result += *value;
    } else if (op == ":-") {
      result += (value && !value->empty()) ? std::string_view(*value) : arg;
    } else {  // ":?"
      if (!value || value->empty()) {
        *error = "environment variable \"" + std::string(name) + "\" is not set";
        if (!arg.empty()) *error += ": " + std::string(arg);
        return false;
      }
      result += *value;
    }
    i = close + 1;
  }
  *out = std::move(result);
  return true;
}

}  // namespace sluice::config
