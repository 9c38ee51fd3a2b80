#pragma once

#include <cstdint>
#include <string>

#include "tests/e2e/child_process.h"

namespace sluice::broker::testing {

// The local-aws-sqs emulator (tests/broker/sqs_emulator/serve.js) as a child process on
// 127.0.0.1. Its queues live in its memory: a restart starts empty.
class SqsEmulator {
 public:
  ~SqsEmulator() { Stop(); }
  // Starts it on `port` (0: a free one) and waits until it listens. False with *error
  // (node or the npm package missing, no "listening" line within the deadline).
  bool Start(uint16_t port, std::string* error);
  // SIGKILL: answers stop at once, like a crashed or unreachable service.
  void Stop();
  bool running() const { return child_.running(); }
  uint16_t port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // For a failing test's output: whether the child still runs (or how it ended), and
  // the end of its log.
  std::string Describe();
  // The log of this process's n-th start (0-based), in gtest's TempDir.
  static std::string LogPathOfStart(int n);

 private:
  e2e::ChildProcess child_;
  uint16_t port_ = 0;
  std::string log_path_;
};

// The emulator every test in the binary shares, started by the first call (a gtest
// Environment stops it at the end); a failed start fails the calling test.
SqsEmulator& SharedEmulator();

}  // namespace sluice::broker::testing
