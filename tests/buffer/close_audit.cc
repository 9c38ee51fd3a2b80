#include "tests/buffer/close_audit.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace sluice::buffer::test {
namespace {
std::atomic<bool> armed{false};
std::atomic<int> bad_closes_seen{0};
}  // namespace

void NoteClose(long result, int err) {
  if (result != 0 && err == EBADF && armed.load()) bad_closes_seen.fetch_add(1);
}

CloseAudit::CloseAudit() {
  bad_closes_seen.store(0);
  armed.store(true);
}

CloseAudit::~CloseAudit() { armed.store(false); }

int CloseAudit::bad_closes() const { return bad_closes_seen.load(); }

}  // namespace sluice::buffer::test

// Takes the place of libc's close() for the whole test binary; behaves exactly like it.
extern "C" int close(int fd) {
  long result = ::syscall(SYS_close, fd);
  sluice::buffer::test::NoteClose(result, errno);
  return static_cast<int>(result);
}
