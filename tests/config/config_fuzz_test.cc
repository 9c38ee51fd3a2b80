// LoadString must answer every input with a Config or errors, never crash or throw.
// Deterministic: a fixed seed and a bounded number of variants of a valid file.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "config/config.h"
#include "tests/config/config_test_util.h"

namespace sluice::config {
namespace {

constexpr std::string_view kSeedFile = R"(listen: "[::1]:8080"
admin: {listen: 127.0.0.1:0, token: "${TOKEN:-t}"}
buffer:
  dir: /tmp/x
  max_bytes: 1GiB
  segment_bytes: 4KiB
  fsync: interval
  fsync_interval: 5ms
  kafka: {brokers: "127.0.0.1:9092", topic: sluice}
limits: {max_body_bytes: 1MiB, max_connections: 10, read_timeout: 1s}
shutdown_timeout: 5s
idempotency: {window: 0}
targets:
  orders: &t
    url: http://127.0.0.1:9000/api/
    rate: 120/m
    burst: 5
    concurrency: {adaptive: true, min: 2, max: 32}
    ordering: none
    retry:
      max_attempts: 3
      initial_backoff: 50ms
      retry_on: [timeout, 503, connect-failure]
      respect_retry_after: false
    max_age: 1h
  audit: *t
routes:
  - name: writes
    match:
      path_prefix: /orders
      methods: [post, PUT]
    queue: [orders, audit]
  - match: { path_prefix: / }
    forward: orders
)";

// Characters that mean something to YAML, our units or ${} expansion.
constexpr std::string_view kInteresting = ":-[]{}&*!|>'\"#%@`, ?$\n\t\\/0123456789.";

class Mutator {
 public:
  explicit Mutator(uint32_t seed) : rng_(seed) {}

  std::string Mutate(std::string text) {
    int rounds = 1 + static_cast<int>(Below(4));
    for (int i = 0; i < rounds; ++i) MutateOnce(&text);
    return text;
  }

 private:
  // std::*_distribution differ between standard libraries; the raw engine does not.
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

  char RandomChar() {
    if (Below(4) == 0) return static_cast<char>(Below(256));
    return kInteresting[Below(kInteresting.size())];
  }

  void MutateOnce(std::string* text) {
    size_t pos = Below(text->size() + 1);
    switch (Below(7)) {
      case 0:  // truncate
        text->resize(pos);
        break;
      case 1:  // delete a range
        text->erase(pos, Below(16));
        break;
      case 2:  // insert a character
        text->insert(pos, 1, RandomChar());
        break;
      case 3:  // replace a character
        if (pos < text->size()) (*text)[pos] = RandomChar();
        break;
      case 4: {  // duplicate a slice somewhere else
        std::string slice = text->substr(pos, Below(40));
        text->insert(Below(text->size() + 1), slice);
        break;
      }
      case 5: {  // shift the indentation of a line
        size_t line_start = text->rfind('\n', pos == 0 ? 0 : pos - 1);
        line_start = line_start == std::string::npos ? 0 : line_start + 1;
        if (Below(2) == 0) {
          text->insert(line_start, 1 + Below(3), ' ');
        } else if (line_start < text->size() && (*text)[line_start] == ' ') {
          text->erase(line_start, 1);
        }
        break;
      }
      case 6: {  // swap a key's value with a type it does not expect
        static constexpr std::string_view kValues[] = {
            "[]", "{}", "~", "\"\"", "-1", "99999999999999999999999", "*t", "&a x"};
        size_t colon = text->find(": ", pos);
        if (colon == std::string::npos) break;
        size_t end = text->find('\n', colon);
        text->replace(colon + 2, end == std::string::npos ? std::string::npos : end - colon - 2,
                      kValues[Below(std::size(kValues))]);
        break;
      }
    }
  }

  std::mt19937 rng_;
};

// "FILE:LINE:COL: path: message" with 1-based numbers, on one line. (Checked by hand:
// libstdc++'s std::regex recurses per character and overflows the stack on long lines.)
bool IsWellFormedError(std::string_view line) {
  constexpr std::string_view kFile = "fuzz.yaml:";
  if (!line.starts_with(kFile)) return false;
  line.remove_prefix(kFile.size());
  for (char separator : {':', ':'}) {
    size_t digits = 0;
    while (digits < line.size() && line[digits] >= '0' && line[digits] <= '9') ++digits;
    if (digits == 0 || line[0] == '0' || digits == line.size() || line[digits] != separator) {
      return false;
    }
    line.remove_prefix(digits + 1);
  }
  if (!line.starts_with(" ")) return false;
  size_t path_end = line.find(": ", 1);
  if (path_end == std::string_view::npos || path_end + 2 == line.size()) return false;
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

void ExpectWellFormed(const LoadResult& result, const std::string& input) {
  ASSERT_EQ(result.ok(), result.errors.empty()) << input;
  for (const std::string& error : result.errors) {
    ASSERT_TRUE(IsWellFormedError(error)) << error << "\nfrom input:\n" << input;
  }
  if (result.ok()) {
    ASSERT_FALSE(result.config->targets.empty()) << input;
    ASSERT_FALSE(result.config->routes.empty()) << input;
  }
}

TEST(ConfigFuzz, ErrorShapeChecker) {
  EXPECT_TRUE(IsWellFormedError("fuzz.yaml:1:2: a.b: message"));
  EXPECT_FALSE(IsWellFormedError("fuzz.yaml:0:2: a.b: message"));
  EXPECT_FALSE(IsWellFormedError("fuzz.yaml:1: a.b: message"));
  EXPECT_FALSE(IsWellFormedError("fuzz.yaml:1:2: message"));
  EXPECT_FALSE(IsWellFormedError("fuzz.yaml:1:2: a.b: two\nlines"));
}

TEST(ConfigFuzz, SeedFileIsValid) { MustLoad(kSeedFile); }

TEST(ConfigFuzz, MutatedFilesNeverCrash) {
  constexpr int kVariants = 4000;
  Mutator mutator(/*seed=*/20240611);
  FakeEnv env;
  int loaded = 0;
  for (int i = 0; i < kVariants; ++i) {
    std::string input = mutator.Mutate(std::string(kSeedFile));
    LoadResult result = LoadString(input, "fuzz.yaml", env.Lookup());
    ExpectWellFormed(result, input);
    if (HasFatalFailure()) return;
    loaded += result.ok() ? 1 : 0;
  }
  // Some mutations (in comments, in strings) keep the file valid; most do not.
  EXPECT_GT(loaded, 0);
  EXPECT_LT(loaded, kVariants);
}

TEST(ConfigFuzz, EveryTruncationNeverCrashes) {
  for (size_t n = 0; n <= kSeedFile.size(); ++n) {
    std::string input(kSeedFile.substr(0, n));
    ExpectWellFormed(LoadString(input, "fuzz.yaml", FakeEnv().Lookup()), input);
    if (HasFatalFailure()) return;
  }
}

TEST(ConfigFuzz, HostileShapes) {
  const std::string inputs[] = {
      std::string(5000, '['),
      std::string(5000, '{'),
      "targets: " + std::string(3000, '[') + std::string(3000, ']'),
      "targets: &t {a: *t}\n",         // a cycle
      "targets: {a: &u {url: *u}}\n",  // a cycle where a scalar is expected
      "routes: &r [*r]\ntargets: {a: {url: 'http://h:1'}}\n",
      std::string("targets: {a: {url: 'http://h:1\0'}}\n", 34),
      "\xef\xbb\xbftargets: {a: {url: 'http://h:1'}}\n",  // UTF-8 BOM
      "targets: {a: {url: '" + std::string(100000, 'x') + "'}}\n",
      "targets: !!binary aGVsbG8=\n",
      "targets: {a: {url: http://h:1, rate: !!float 1/s}}\n",
      "%YAML 1.2\n---\ntargets: {a: {url: 'http://h:1'}}\n...\n",
      "? \n: \n",
      "\t",
      "\x00",
      "\xff\xfe",
  };
  for (const std::string& input : inputs) {
    ExpectWellFormed(LoadString(input, "fuzz.yaml", FakeEnv().Lookup()), input);
  }
}

}  // namespace
}  // namespace sluice::config
