#pragma once

#include <yaml-cpp/mark.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::config {

// `text` in double quotes, with quotes, backslashes and control characters escaped;
// beyond 200 bytes it is cut and followed by "...".
std::string Quote(std::string_view text);

// The problems found in one configuration file. Each is kept with its position so that
// the report can list them in document order, whatever order the checks ran in.
class ErrorList {
 public:
  explicit ErrorList(std::string file) : file_(std::move(file)) {}

  // `mark` is yaml-cpp's 0-based position; a null mark is reported as line 1, column 1.
  void Add(const YAML::Mark& mark, std::string_view path, std::string_view message);
  // A problem with no position in the document (e.g. the file cannot be read):
  // "FILE: message".
  void AddWithoutPosition(std::string_view message);

  bool empty() const { return entries_.empty(); }
  // "FILE:LINE:COL: key.path: message" lines (1-based), sorted by position; problems at
  // the same position keep the order they were found in.
  std::vector<std::string> Lines() const;

 private:
  struct Entry {
    int line;  // 1-based; 0 for AddWithoutPosition
    int column;
    std::string text;
  };
  std::string file_;
  std::vector<Entry> entries_;
};

}  // namespace sluice::config
