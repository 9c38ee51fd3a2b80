#pragma once

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>

#include "tests/e2e/child_process.h"
#include "tests/e2e/deadline.h"
#include "tests/e2e/temp_dir.h"

namespace sluice::e2e {

// Path of the sluice binary under test: $SLUICE_BINARY if set, else the build's target
// (compiled in as SLUICE_BINARY); empty if neither exists.
std::string SluiceBinaryPath();

// The real sluice binary, run from a private temp dir holding its config (sluice.yaml),
// its log (sluice.log: stdout and stderr of every run, appended) and, by convention, its
// buffer (BufferDir()). The destructor kills a running process; the directory is removed
// unless KeepFiles() was called.
class SluiceProcess {
 public:
  SluiceProcess();
  ~SluiceProcess();
  SluiceProcess(const SluiceProcess&) = delete;
  SluiceProcess& operator=(const SluiceProcess&) = delete;

  const std::string& dir() const { return dir_.path(); }
  std::string BufferDir() const { return dir() + "/buf"; }
  std::string ConfigPath() const { return dir() + "/sluice.yaml"; }
  std::string LogPath() const { return dir() + "/sluice.log"; }

  void WriteConfig(const std::string& yaml);
  // Starts `sluice --config sluice.yaml`, learns both ports from the "listening" log lines
  // and waits for GET /readyz to answer 200. False (see error(), which includes the log)
  // if that does not happen within `timeout` or the process exits.
  bool Start(Millis timeout = Millis(10'000));
  // Start() again with the same config and buffer dir (the process must be stopped).
  bool Restart(Millis timeout = Millis(10'000)) { return Start(timeout); }
  // SIGHUP: re-read the config file.
  void Reload() { child_.Signal(SIGHUP); }
  // SIGKILL: no chance to sync anything.
  void Kill9();
  // SIGTERM and wait for exit; nullopt (and SIGKILL) if it outlives the timeout.
  std::optional<ExitStatus> Terminate(Millis timeout = Millis(25'000));
  bool running() const { return child_.running(); }
  // The status of a process that exited on its own (not through Kill9/Terminate); reaps it.
  // Stays set until the next Start().
  std::optional<ExitStatus> UnexpectedExit();

  uint16_t ingest_port() const { return ingest_port_; }
  uint16_t admin_port() const { return admin_port_; }

  // Everything logged so far, all runs.
  std::string Log() const { return ReadFile(LogPath()); }
  // The last `lines` lines of the log.
  std::string LogTail(size_t lines = 60) const;
  void KeepFiles() { dir_.Keep(); }
  const std::string& error() const { return error_; }

 private:
  TempDir dir_;
  ChildProcess child_;
  std::optional<ExitStatus> unexpected_exit_;
  uint16_t ingest_port_ = 0;
  uint16_t admin_port_ = 0;
  std::string error_;
};

}  // namespace sluice::e2e
