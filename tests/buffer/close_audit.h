#pragma once

namespace sluice::buffer::test {

// Counts close(2) calls in this process that fail with EBADF while an audit is in scope.
// Closing a descriptor that is not open means an earlier close already released the
// number, which another thread may have been given since: a double close. The test binary
// interposes close() to see every call, including those inside buffer/.
class CloseAudit {
 public:
  CloseAudit();
  ~CloseAudit();
  CloseAudit(const CloseAudit&) = delete;
  CloseAudit& operator=(const CloseAudit&) = delete;

  int bad_closes() const;
};

// Called by the interposed close() with its result and errno.
void NoteClose(long result, int err);

}  // namespace sluice::buffer::test
