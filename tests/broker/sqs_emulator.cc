#include "tests/broker/sqs_emulator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "tests/e2e/deadline.h"

namespace sluice::broker::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

bool SqsEmulator::Start(uint16_t port, std::string* error) {
  Stop();
  std::string node = SLUICE_TEST_NODE;
  std::string dir = SLUICE_SQS_EMULATOR_DIR;
  if (node.empty() || ::access(node.c_str(), X_OK) != 0) {
    *error = "node not found: run scripts/install-deps (Debian nodejs, npm)";
    return false;
  }
  if (::access((dir + "/node_modules/local-aws-sqs/package.json").c_str(), R_OK) != 0) {
    *error = "local-aws-sqs is not installed in " + dir + ": run scripts/install-deps";
    return false;
  }
  static int started = 0;
  log_path_ = LogPathOfStart(started++);
  // The child appends to its log, and pids are reused: a file left by an earlier test
  // binary with this pid would hold that emulator's "listening" line, naming a port
  // nobody listens on any more (CI saw every SQS test refused for 10 s).
  std::filesystem::remove(log_path_);
  if (!child_.Spawn({node, dir + "/serve.js", std::to_string(port)}, log_path_, log_path_)) {
    *error = "cannot start node: " + child_.error();
    return false;
  }
  e2e::Deadline deadline(std::chrono::seconds(20));
  while (!deadline.Expired()) {
    std::string log = ReadFile(log_path_);
    size_t at = log.find("listening ");
    if (at != std::string::npos && log.find('\n', at) != std::string::npos) {
      port_ = static_cast<uint16_t>(std::stoi(log.substr(at + 10)));
      return true;
    }
    if (auto exited = child_.Poll()) {
      *error = "the emulator exited (" + exited->ToString() + "): " + log;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  *error = "the emulator did not listen within 20s: " + ReadFile(log_path_);
  Stop();
  return false;
}

std::string SqsEmulator::LogPathOfStart(int n) {
  return ::testing::TempDir() + "/sqs-emulator-" + std::to_string(::getpid()) + "-" +
         std::to_string(n) + ".log";
}

std::string SqsEmulator::Describe() {
  std::string state = "not running";
  if (child_.running()) {
    auto exited = child_.Poll();
    state = exited ? "exited (" + exited->ToString() + ")"
                   : "running, pid " + std::to_string(child_.pid());
  }
  std::string log = ReadFile(log_path_);
  constexpr size_t kTail = 4000;
  if (log.size() > kTail) log = "..." + log.substr(log.size() - kTail);
  return "SQS emulator on " + endpoint() + ": " + state + "\n--- its log (" + log_path_ +
         ") ---\n" + log;
}

void SqsEmulator::Stop() {
  if (child_.running()) child_.Kill();
}

namespace {

// Started by the first test that needs it, stopped when the binary ends. A failed start
// fails each test that needs the emulator (not a global set-up failure, which gtest turns
// into "skipped" for every test, unit tests included, and ctest into a pass).
class EmulatorEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { emulator_.reset(); }
  SqsEmulator& emulator() {
    if (!emulator_) {
      emulator_ = std::make_unique<SqsEmulator>();
      std::string error;
      if (!emulator_->Start(0, &error)) ADD_FAILURE() << error;
    }
    return *emulator_;
  }

 private:
  std::unique_ptr<SqsEmulator> emulator_;
};

EmulatorEnvironment* const g_environment =
    static_cast<EmulatorEnvironment*>(::testing::AddGlobalTestEnvironment(new EmulatorEnvironment));

}  // namespace

SqsEmulator& SharedEmulator() { return g_environment->emulator(); }

}  // namespace sluice::broker::testing
