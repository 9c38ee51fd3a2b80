#include "tests/torture/strace_log.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace sluice::torture {
namespace {

constexpr std::string_view kUnfinished = " <unfinished ...>";

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Cuts the first space-separated token off `s`, and the spaces after it (strace pads
// short pids: "569   10:00:00.1 write(...").
std::string_view TakeToken(std::string_view* s) {
  size_t space = std::min(s->find(' '), s->size());
  std::string_view token = s->substr(0, space);
  size_t next = s->find_first_not_of(' ', space);
  s->remove_prefix(next == std::string_view::npos ? s->size() : next);
  return token;
}

// "name(args) = result" -> a Syscall, or nothing if it does not look like one.
std::optional<Syscall> Complete(std::string_view text, int tid, size_t started, size_t finished) {
  size_t open = text.find('(');
  size_t close = text.rfind(") = ");
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return std::nullopt;
  }
  Syscall call;
  call.tid = tid;
  call.name = text.substr(0, open);
  call.args = text.substr(open + 1, close - open - 1);
  call.result = text.substr(close + 4);
  call.started = started;
  call.finished = finished;
  return call;
}

}  // namespace

std::string Syscall::FdPath() const {
  std::string_view first = std::string_view(args).substr(0, args.find(", "));
  size_t lt = first.find('<');
  if (lt == std::string_view::npos || !IsDigits(first.substr(0, lt)) || first.back() != '>') {
    return "";
  }
  return std::string(first.substr(lt + 1, first.size() - lt - 2));
}

std::optional<std::string> Syscall::QuotedString(size_t n) const {
  size_t pos = 0;
  for (size_t seen = 0;; ++seen) {
    size_t open = args.find('"', pos);
    if (open == std::string::npos) return std::nullopt;
    size_t close = open + 1;
    while (close < args.size() && args[close] != '"') close += args[close] == '\\' ? 2 : 1;
    if (close >= args.size()) return std::nullopt;
    if (seen == n) return DecodeCString(std::string_view(args).substr(open + 1, close - open - 1));
    pos = close + 1;
  }
}

std::string DecodeCString(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    switch (c) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'v':
        out += '\v';
        break;
      case 'f':
        out += '\f';
        break;
      case 'x': {  // \xHH
        size_t len = 0;
        while (len < 2 && i + 1 + len < s.size() &&
               std::isxdigit(static_cast<unsigned char>(s[i + 1 + len]))) {
          ++len;
        }
        out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, len)), nullptr, 16));
        i += len;
        break;
      }
      default:
        if (c >= '0' && c <= '7') {  // \N, \NN, \NNN (octal)
          int value = 0;
          size_t len = 0;
          while (len < 3 && i + len < s.size() && s[i + len] >= '0' && s[i + len] <= '7') {
            value = value * 8 + (s[i + len] - '0');
            ++len;
          }
          out += static_cast<char>(value);
          i += len - 1;
        } else {
          out += c;  // \" \\ and anything else: the character itself
        }
    }
  }
  return out;
}

std::vector<Syscall> ParseStrace(std::string_view log) {
  struct Pending {
    std::string text;
    size_t started;
  };
  std::map<int, Pending> pending;  // by thread: a thread is in at most one call
  std::vector<Syscall> calls;
  size_t index = 0;
  for (size_t pos = 0; pos < log.size(); ++index) {
    size_t nl = log.find('\n', pos);
    if (nl == std::string_view::npos) nl = log.size();
    std::string_view line = log.substr(pos, nl - pos);
    pos = nl + 1;

    int tid = 0;  // "TID HH:MM:SS.uuuuuu rest"; both prefixes optional
    std::string_view rest = line;
    if (std::string_view copy = rest; IsDigits(TakeToken(&copy))) {
      tid = std::stoi(std::string(TakeToken(&rest)));
    }
    if (rest.size() > 2 && std::isdigit(static_cast<unsigned char>(rest[0])) && rest[2] == ':') {
      TakeToken(&rest);
    }
    if (rest.starts_with("+++") || rest.starts_with("---")) continue;

    std::optional<Syscall> call;
    if (rest.starts_with("<... ")) {
      size_t resumed = rest.find(" resumed>");
      auto it = pending.find(tid);
      if (resumed == std::string_view::npos || it == pending.end()) continue;
      std::string text = it->second.text + std::string(rest.substr(resumed + 9));
      call = Complete(text, tid, it->second.started, index);
      pending.erase(it);
    } else if (rest.ends_with(kUnfinished)) {
      pending[tid] = Pending{std::string(rest.substr(0, rest.size() - kUnfinished.size())), index};
    } else {
      call = Complete(rest, tid, index, index);
    }
    if (call) calls.push_back(std::move(*call));
  }
  return calls;
}

}  // namespace sluice::torture
