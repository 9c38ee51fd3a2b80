#include "tests/e2e/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "tests/e2e/temp_dir.h"

namespace sluice::e2e {

std::string ExitStatus::ToString() const {
  if (signal != 0) return "killed by signal " + std::to_string(signal);
  return "exit code " + std::to_string(code);
}

namespace {

ExitStatus Decode(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) s.code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) s.signal = WTERMSIG(wstatus);
  return s;
}

}  // namespace

ChildProcess::~ChildProcess() {
  if (running()) Kill();
}

bool ChildProcess::Spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
                         const std::string& stderr_path) {
  if (running()) {
    error_ = "already running";
    return false;
  }
  // Everything the child needs is prepared before fork: after it, only async-signal-safe
  // calls are allowed (the test binary has threads).
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out_fd = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int err_fd = stderr_path == stdout_path
                   ? out_fd
                   : ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_pipe[2];  // closed by exec on success; carries errno on failure
  if (out_fd < 0 || err_fd < 0 || null_fd < 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    error_ = std::string("open/pipe: ") + std::strerror(errno);
    return false;
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execv(args[0], args.data());
    int e = errno;
    (void)!::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(exec_pipe[1]);
  ::close(null_fd);
  ::close(out_fd);
  if (err_fd != out_fd) ::close(err_fd);
  if (pid < 0) {
    error_ = std::string("fork: ") + std::strerror(errno);
    ::close(exec_pipe[0]);
    return false;
  }
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  pid_ = pid;
  if (n > 0) {
    Wait(Deadline(Millis(5'000)));
    error_ = "exec " + argv[0] + ": " + std::strerror(child_errno);
    return false;
  }
  return true;
}

void ChildProcess::Signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<ExitStatus> ChildProcess::Poll() {
  if (!running()) return std::nullopt;
  int wstatus = 0;
  pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return Decode(wstatus);
  }
  return std::nullopt;
}

std::optional<ExitStatus> ChildProcess::Wait(const Deadline& deadline) {
  for (;;) {
    if (std::optional<ExitStatus> s = Poll()) return s;
    if (!running() || deadline.Expired()) return std::nullopt;
    std::this_thread::sleep_for(Millis(5));  // waitpid has no timeout; poll it
  }
}

ExitStatus ChildProcess::Kill() {
  if (!running()) return ExitStatus{};
  ::kill(pid_, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return Decode(wstatus);
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         Millis timeout) {
  static std::atomic<int> counter{0};
  std::string stem = scratch_dir + "/cmd-" + std::to_string(counter++);
  std::string out_path = stem + ".out";
  std::string err_path = stem + ".err";
  CommandResult result;
  ChildProcess child;
  if (!child.Spawn(argv, out_path, err_path)) {
    result.err = child.error();
    return result;
  }
  std::optional<ExitStatus> status = child.Wait(Deadline(timeout));
  if (!status) {
    result.timed_out = true;
    status = child.Kill();
  }
  result.status = *status;
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

}  // namespace sluice::e2e
