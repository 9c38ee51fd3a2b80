#include "broker/event_fd.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace sluice::broker {

EventFd::EventFd() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0) {
    // Only at start-up and only when the process is out of descriptors: nothing to run on.
    std::perror("eventfd");
    std::abort();
  }
}

EventFd::~EventFd() { close(fd_); }

void EventFd::Signal() {
  uint64_t one = 1;
  // EAGAIN (the counter is saturated) still leaves the fd readable: nothing to do.
  [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof one);
}

void EventFd::Drain() {
  uint64_t value;
  [[maybe_unused]] ssize_t n = read(fd_, &value, sizeof value);
}

bool WaitReadable(int socket_fd, EventFd& wake, common::Duration timeout) {
  pollfd fds[2];
  fds[0].fd = wake.fd();
  fds[0].events = POLLIN;
  fds[0].revents = 0;
  fds[1].fd = socket_fd;
  fds[1].events = POLLIN;
  fds[1].revents = 0;
  int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
  if (ms < 0) ms = 0;
  int n = poll(fds, socket_fd >= 0 ? 2 : 1, ms);
  if (n <= 0) return false;  // timeout, or EINTR: the caller loops anyway
  if (fds[0].revents != 0) wake.Drain();
  return socket_fd >= 0 && fds[1].revents != 0;
}

}  // namespace sluice::broker
