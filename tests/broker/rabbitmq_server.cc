#include "tests/broker/rabbitmq_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "broker/amqp_connection.h"

extern char** environ;

namespace sluice::broker::test {
namespace {

// The Debian package's server script, run directly: /usr/sbin/rabbitmq-server is a wrapper
// that switches to the rabbitmq user, which only root may do.
constexpr const char* kServerScript = "/usr/lib/rabbitmq/bin/rabbitmq-server";
constexpr const char* kCtlScript = "/usr/lib/rabbitmq/bin/rabbitmqctl";
constexpr const char* kEpmd = "/usr/bin/epmd";

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Forks and execs argv with the environment `env` (KEY=VALUE), stdout and stderr appended
// to `log`. The child dies with the thread that started it (PR_SET_PDEATHSIG).
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out);
  close(in);
  return pid;
}

std::vector<std::string> ChildEnvironment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    // Nothing of a developer's own RabbitMQ or Erlang set-up may leak in.
    if (key.rfind("RABBITMQ_", 0) == 0 || key.rfind("ERL_", 0) == 0 || key == "HOME" ||
        key == "NOTIFY_SOCKET") {
      continue;
    }
    env.push_back(kv);
  }
  for (const auto& [k, v] : overrides) env.push_back(k + "=" + v);
  return env;
}

void Reap(pid_t* pid) {
  if (*pid <= 0) return;
  kill(*pid, SIGKILL);
  int status;
  waitpid(*pid, &status, 0);
  *pid = -1;
}

std::string Tail(const std::string& path, size_t bytes) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace

RabbitMqServer::RabbitMqServer() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-rabbitmq-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  dir_ = buf.data();
  node_ = "sluice-test-" + std::to_string(getpid()) + "@localhost";
  port_ = FreePort();
  dist_port_ = FreePort();
  epmd_port_ = FreePort();
  WriteConfig();
}

RabbitMqServer::~RabbitMqServer() {
  Kill();
  Reap(&epmd_pid_);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RabbitMqServer::url() const {
  return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "/";
}

void RabbitMqServer::WriteConfig() {
  std::ofstream conf(dir_ + "/rabbitmq.conf");
  conf << "listeners.tcp.1 = 127.0.0.1:" << port_
       << "\n"
       // A nearly full /tmp must not block publishers (the default limit is 50MB free).
       << "disk_free_limit.absolute = 1MB\n"
       << "log.console = false\n"
       << "log.file.level = warning\n";
  std::ofstream plugins(dir_ + "/enabled_plugins");
  plugins << "[].\n";
}

void RabbitMqServer::StartEpmd() {
  if (epmd_pid_ > 0) return;
  // Our own epmd on our own port, in the foreground: it is ours to kill, and it does not
  // touch a system epmd on 4369.
  epmd_pid_ = Spawn({kEpmd, "-port", std::to_string(epmd_port_), "-address", "127.0.0.1"},
                    ChildEnvironment({{"HOME", dir_}}), dir_ + "/epmd.log");
}

std::vector<std::string> RabbitMqServer::Environment() const {
  std::map<std::string, std::string> env = {
      {"HOME", dir_},  // the Erlang cookie goes here
      {"ERL_EPMD_PORT", std::to_string(epmd_port_)},
      {"RABBITMQ_NODENAME", node_},
      {"RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1"},
      {"RABBITMQ_NODE_PORT", std::to_string(port_)},
      {"RABBITMQ_DIST_PORT", std::to_string(dist_port_)},
      {"RABBITMQ_CONFIG_FILE", dir_ + "/rabbitmq.conf"},
      {"RABBITMQ_ADVANCED_CONFIG_FILE", dir_ + "/advanced.config"},
      {"RABBITMQ_CONF_ENV_FILE", dir_ + "/rabbitmq-env.conf"},
      {"RABBITMQ_ENABLED_PLUGINS_FILE", dir_ + "/enabled_plugins"},
      {"RABBITMQ_MNESIA_BASE", dir_ + "/mnesia"},
      {"RABBITMQ_LOG_BASE", dir_ + "/log"},
      {"RABBITMQ_PID_FILE", dir_ + "/rabbitmq.pid"},
      // The script then execs the VM instead of running it as its own child, so the pid
      // we hold (and PR_SET_PDEATHSIG) is the broker's; -noinput keeps stdin out of it.
      {"RABBITMQ_ALLOW_INPUT", "1"},
      {"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-noinput"},
  };
  return ChildEnvironment(env);
}

bool RabbitMqServer::Ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kCtlScript, "-n", node_};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = Spawn(argv, Environment(), dir_ + "/ctl.log");
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  std::fprintf(stderr, "rabbitmqctl failed; log tail:\n%s\n",
               Tail(dir_ + "/ctl.log", 2000).c_str());
  return false;
}

bool RabbitMqServer::Start(std::chrono::seconds limit) {
  if (access(kServerScript, X_OK) != 0 || access(kEpmd, X_OK) != 0) {
    std::fprintf(stderr, "%s or %s missing: run scripts/install-deps (rabbitmq-server)\n",
                 kServerScript, kEpmd);
    return false;
  }
  StartEpmd();
  broker_pid_ = Spawn({kServerScript}, Environment(), dir_ + "/server.log");

  AmqpEndpoint endpoint;
  if (!ParseAmqpUrl(url(), &endpoint).ok()) return false;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(broker_pid_, &status, WNOHANG) == broker_pid_) {
      broker_pid_ = -1;
      std::fprintf(stderr, "rabbitmq-server exited at start; log tail:\n%s\n",
                   Tail(dir_ + "/server.log", 4000).c_str());
      return false;
    }
    AmqpConnection probe;
    if (probe.Open(endpoint, std::chrono::seconds(2), std::chrono::seconds(0)).ok()) return true;
    // Polling the port: the broker offers no notification a test could wait on.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "rabbitmq-server not up within %lld s; log tail:\n%s\n",
               static_cast<long long>(limit.count()), Tail(dir_ + "/server.log", 4000).c_str());
  Kill();
  return false;
}

void RabbitMqServer::Kill() { Reap(&broker_pid_); }

}  // namespace sluice::broker::test
