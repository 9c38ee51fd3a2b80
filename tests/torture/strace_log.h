#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::torture {

// One system call from an `strace -f -tt --decode-fds=path,socket` (-yy) log. With several threads
// traced, strace splits a call that another thread interrupts into "name(args <unfinished ...>" and
// "<... name resumed>rest"; the two are joined here. `started` and `finished` are the
// indexes of those lines (the same for an unsplit call), so "A returned before B was
// entered" is `a.finished < b.started`.
struct Syscall {
  int tid = 0;
  std::string name;
  std::string args;    // between the parentheses, as printed
  std::string result;  // after " = ", e.g. "0" or "-1 ENOSPC (No space left on device)"
  size_t started = 0;
  size_t finished = 0;

  // What -y printed for a descriptor first argument: "/dir/seg/0001.log", "TCP:[a->b]";
  // empty if the first argument is not an annotated descriptor.
  std::string FdPath() const;
  // The n-th (0-based) quoted string among the arguments, C escapes decoded.
  std::optional<std::string> QuotedString(size_t n = 0) const;
  bool Succeeded() const { return !result.empty() && result[0] != '-' && result[0] != '?'; }
};

// Every completed call in the log, in order of return. Signals, exits and calls that
// never returned (the process died in them) are left out.
std::vector<Syscall> ParseStrace(std::string_view log);

// Decodes strace's C-style escapes (\n \t \" \\ \xHH \NNN ...) in a quoted string's body.
std::string DecodeCString(std::string_view escaped);

}  // namespace sluice::torture
