#pragma once

#include "common/clock.h"

namespace sluice::broker {

// A Linux eventfd that wakes a broker thread out of poll(2): the owner hands the thread
// work, then Signal()s. Signal() may be called from any thread.
class EventFd {
 public:
  EventFd();
  ~EventFd();
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;

  void Signal();
  // Clears the signal (after the thread woke up).
  void Drain();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits until `socket_fd` is readable, `wake` is signalled, or `timeout` passed.
// socket_fd < 0: waits on `wake` alone. Returns whether the socket is readable (an
// error or hang-up counts as readable: the next read reports it). Drains `wake`.
bool WaitReadable(int socket_fd, EventFd& wake, common::Duration timeout);

}  // namespace sluice::broker
