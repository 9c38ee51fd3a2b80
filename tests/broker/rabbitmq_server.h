#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace sluice::broker::test {

// A real rabbitmq-server (the Debian package) run as a child of the test binary on
// loopback: its own free AMQP, distribution and epmd ports, node name, and data, log and
// config files under a temp dir, so it collides with nothing (a system broker, another
// test binary) and is the same for root and non-root. Children get PR_SET_PDEATHSIG, so a
// test binary that dies takes its broker with it.
class RabbitMqServer {
 public:
  RabbitMqServer();
  ~RabbitMqServer();  // kills the broker and epmd, removes the temp dir
  RabbitMqServer(const RabbitMqServer&) = delete;
  RabbitMqServer& operator=(const RabbitMqServer&) = delete;

  // Starts the broker (and epmd, the first time) and waits until an AMQP login succeeds,
  // up to `limit`. False (and the log's tail on stderr) when it does not come up.
  bool Start(std::chrono::seconds limit = std::chrono::seconds(90));
  // SIGKILL: a crash, not a clean stop. Quorum queues keep what they confirmed.
  void Kill();
  bool running() const { return broker_pid_ > 0; }

  // Runs `rabbitmqctl -n NODE args...` against this broker; true when it exits 0.
  bool Ctl(const std::vector<std::string>& args);

  int port() const { return port_; }
  // amqp://guest:guest@127.0.0.1:PORT/
  std::string url() const;

 private:
  void WriteConfig();
  void StartEpmd();
  std::vector<std::string> Environment() const;

  std::string dir_;
  std::string node_;
  int port_ = 0;
  int dist_port_ = 0;
  int epmd_port_ = 0;
  pid_t epmd_pid_ = -1;
  pid_t broker_pid_ = -1;
};

// The broker every test in the binary shares (started once, by the first test using it).
RabbitMqServer& SharedServer();

}  // namespace sluice::broker::test
