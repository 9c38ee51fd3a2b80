#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/deadline.h"

namespace sluice::e2e {

// How a child ended, as waitpid(2) reports it.
struct ExitStatus {
  int code = -1;   // exit code if it exited, else -1
  int signal = 0;  // terminating signal if killed, else 0
  std::string ToString() const;
};

// A child process with stdin from /dev/null and stdout/stderr appended to files (they may
// be the same file). The child gets SIGKILL if the test binary dies (PR_SET_PDEATHSIG), and
// the destructor kills it, so a failing test never leaves an orphan behind.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // argv[0] is the executable path. False (see error()) if fork or exec fails.
  bool Spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
             const std::string& stderr_path);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  void Signal(int sig);
  // Reaps the child if it has exited; returns its status then.
  std::optional<ExitStatus> Poll();
  // Waits for exit until the deadline; nullopt if it is still running.
  std::optional<ExitStatus> Wait(const Deadline& deadline);
  // SIGKILL and reap.
  ExitStatus Kill();

  const std::string& error() const { return error_; }

 private:
  pid_t pid_ = -1;
  std::string error_;
};

struct CommandResult {
  ExitStatus status;
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs a command to completion (killed after `timeout`), capturing stdout and stderr via
// files in `scratch_dir`.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         Millis timeout = Millis(10'000));

}  // namespace sluice::e2e
