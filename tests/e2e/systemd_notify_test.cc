// Type=notify: READY=1 once recovery is done and both listeners are up, STOPPING=1 when
// the drain starts (deploy/systemd/sluice.service depends on both).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/e2e/http_client.h"
#include "tests/e2e/sluice_process.h"
#include "tests/e2e/temp_dir.h"

namespace sluice::e2e {
namespace {

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);  // inherited by the sluice child
  }
  ~NotifySocket() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  // Datagrams received until one contains `want` (or 10 s pass), concatenated.
  std::string ReadUntil(const std::string& want) {
    std::string all;
    for (int i = 0; i < 100 && all.find(want) == std::string::npos; ++i) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) all.append(buf, static_cast<size_t>(n)).append("|");
    }
    return all;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

TEST(SystemdNotifyTest, ReadyAfterListenersAndStoppingOnDrain) {
  SluiceProcess sluice;
  NotifySocket notify(sluice.dir() + "/notify.sock");
  ASSERT_TRUE(notify.bound());
  sluice.WriteConfig(
      "listen: 127.0.0.1:0\n"
      "admin: {listen: 127.0.0.1:0}\n"
      "buffer: {dir: " +
      sluice.BufferDir() +
      "}\n"
      "targets:\n  app: {url: 'http://127.0.0.1:9', rate: 1/s}\n");
  ASSERT_TRUE(sluice.Start()) << sluice.error() << sluice.LogTail();
  std::string ready = notify.ReadUntil("READY=1");
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  // READY=1 comes after the listeners: the ingest port answers by now.
  std::optional<HttpMessage> live = Get(sluice.admin_port(), "/livez");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);

  auto exit = sluice.Terminate();
  ASSERT_TRUE(exit);
  std::string stopping = notify.ReadUntil("STOPPING=1");
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping;
}

}  // namespace
}  // namespace sluice::e2e
