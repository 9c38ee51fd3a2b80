#include "tests/e2e/sluice_process.h"

#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <regex>
#include <thread>

#include "tests/e2e/http_client.h"

#ifndef SLUICE_BINARY
#define SLUICE_BINARY ""
#endif

namespace sluice::e2e {

std::string SluiceBinaryPath() {
  const char* env = std::getenv("SLUICE_BINARY");
  std::string path = (env != nullptr && *env != '\0') ? env : SLUICE_BINARY;
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return "";
  return path;
}

SluiceProcess::SluiceProcess() : dir_("sluice-e2e") {}

SluiceProcess::~SluiceProcess() {
  if (child_.running()) child_.Kill();
}

void SluiceProcess::WriteConfig(const std::string& yaml) { dir_.WriteFile("sluice.yaml", yaml); }

std::string SluiceProcess::LogTail(size_t lines) const {
  std::string log = Log();
  size_t pos = log.size();
  for (size_t seen = 0; pos > 0 && seen <= lines;) {
    --pos;
    if (log[pos] == '\n') ++seen;
  }
  return log.substr(pos == 0 ? 0 : pos + 1);
}

std::optional<ExitStatus> SluiceProcess::UnexpectedExit() {
  if (!unexpected_exit_) unexpected_exit_ = child_.Poll();
  return unexpected_exit_;
}

bool SluiceProcess::Start(Millis timeout) {
  error_.clear();
  unexpected_exit_.reset();
  ingest_port_ = admin_port_ = 0;
  std::string binary = SluiceBinaryPath();
  if (binary.empty()) {
    error_ = "sluice binary not found (build target `sluice`, or set SLUICE_BINARY)";
    return false;
  }
  // Only log lines written by this run count: remember where it starts.
  size_t log_start = Log().size();
  if (!child_.Spawn({binary, "--config", ConfigPath()}, LogPath(), LogPath())) {
    error_ = child_.error();
    return false;
  }
  static const std::regex kListening(
      R"re("msg":"listening","listener":"(ingest|admin)","addr":"[^"]*:([0-9]+)")re");
  Deadline deadline(timeout);
  auto fail = [&](const std::string& why) {
    error_ = why + "\n--- sluice log (" + LogPath() + ") ---\n" + LogTail(80);
    child_.Kill();
    return false;
  };
  while (ingest_port_ == 0 || admin_port_ == 0) {
    if (std::optional<ExitStatus> exited = child_.Poll()) {
      child_.Kill();
      error_ = "sluice exited during start-up (" + exited->ToString() + ")\n--- sluice log (" +
               LogPath() + ") ---\n" + LogTail(80);
      return false;
    }
    if (deadline.Expired()) return fail("no \"listening\" log lines for ingest and admin");
    std::string log = Log().substr(log_start);
    for (std::sregex_iterator it(log.begin(), log.end(), kListening), end; it != end; ++it) {
      uint16_t port = static_cast<uint16_t>(std::stoi((*it)[2].str()));
      ((*it)[1].str() == "ingest" ? ingest_port_ : admin_port_) = port;
    }
    if (ingest_port_ == 0 || admin_port_ == 0) std::this_thread::sleep_for(Millis(5));
  }
  for (;;) {
    if (std::optional<ExitStatus> exited = child_.Poll()) {
      return fail("sluice exited before /readyz answered 200 (" + exited->ToString() + ")");
    }
    std::optional<HttpMessage> ready = Get(admin_port_, "/readyz", Millis(1'000));
    if (ready && ready->status == 200) return true;
    if (deadline.Expired()) {
      return fail("GET /readyz did not answer 200 in time (last: " +
                  (ready ? std::to_string(ready->status) : std::string("no answer")) + ")");
    }
    std::this_thread::sleep_for(Millis(10));
  }
}

void SluiceProcess::Kill9() { child_.Kill(); }

std::optional<ExitStatus> SluiceProcess::Terminate(Millis timeout) {
  child_.Signal(SIGTERM);
  std::optional<ExitStatus> status = child_.Wait(Deadline(timeout));
  if (!status && child_.running()) child_.Kill();
  return status;
}

}  // namespace sluice::e2e
