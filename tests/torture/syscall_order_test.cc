// The durability order, read from the kernel's side: sluice runs under strace, and the
// trace must show (1) every 202 written to the client only after an fdatasync of the
// segment that the request's record was written to, and (2) every segment unlinked only
// once every cursor is durably past it (cursor slot written, then fdatasync'ed).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "tests/e2e/child_process.h"
#include "tests/torture/durability_order.h"
#include "tests/torture/strace_log.h"
#include "tests/torture/torture_fixture.h"

namespace sluice::torture {
namespace {

constexpr int kRequests = 300;

constexpr const char* kTarget = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 4
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
)";

constexpr const char* kTraced =
    "pwritev,pwritev2,pwrite64,write,writev,sendto,sendmsg,fdatasync,fsync,"
    "ftruncate,unlink,unlinkat,rename,renameat,renameat2";

std::string Token(int k) {
  char token[32];
  std::snprintf(token, sizeof token, "strace-req-%04d", k);
  return token;
}

class SyscallOrder : public TortureTest {
 protected:
  void SetUp() override {
    TortureTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* dir : {"/usr/bin", "/bin", "/usr/local/bin"}) {
      std::string path = std::string(dir) + "/strace";
      if (::access(path.c_str(), X_OK) == 0) strace_ = path;
    }
    if (strace_.empty()) GTEST_SKIP() << "strace is not installed (apt-get install strace)";
    e2e::CommandResult probe =
        e2e::RunCommand({strace_, "-o", "/dev/null", "/bin/true"}, work_.path());
    if (probe.status.code != 0) {
      GTEST_SKIP() << "strace cannot trace here (ptrace not permitted?): " << probe.err;
    }
    // sluice runs through $SLUICE_BINARY (the harness's override): a script that records
    // its pid and execs strace, which runs the real binary.
    real_ = e2e::SluiceBinaryPath();
    ASSERT_FALSE(real_.empty()) << "sluice binary not found";
    const char* old = std::getenv("SLUICE_BINARY");
    if (old != nullptr) saved_binary_ = old;
    std::string wrapper =
        work_.WriteFile("sluice-under-strace",
                        "#!/bin/sh\necho $$ > " + work_.path() + "/strace.pid\nexec " + strace_ +
                            " -f -tt --decode-fds=path,socket -s 1024 -e trace=" + kTraced +
                            " -o " + TracePath() + " " + real_ + " \"$@\"\n");
    ASSERT_EQ(::chmod(wrapper.c_str(), 0755), 0);
    ::setenv("SLUICE_BINARY", wrapper.c_str(), 1);
  }

  void TearDown() override {
    // If strace died first, the traced sluice would live on, detached: end it too.
    if (pid_t traced = TracedPid(); traced > 0) ::kill(traced, SIGKILL);
    TortureTest::TearDown();
    if (saved_binary_) {
      ::setenv("SLUICE_BINARY", saved_binary_->c_str(), 1);
    } else {
      ::unsetenv("SLUICE_BINARY");
    }
    if (HasFailure()) {
      work_.Keep();
      std::printf("[ torture  ] kept the trace %s\n", TracePath().c_str());
    }
  }

  std::string TracePath() const { return work_.path() + "/sluice.strace"; }

  // The traced sluice: the child of strace, whose pid the wrapper wrote down; -1 when it
  // is gone (a recycled pid running something else does not count).
  pid_t TracedPid() const {
    int strace_pid = std::atoi(e2e::ReadFile(work_.path() + "/strace.pid").c_str());
    if (strace_pid <= 0) return -1;
    std::string children = e2e::ReadFile("/proc/" + std::to_string(strace_pid) + "/task/" +
                                         std::to_string(strace_pid) + "/children");
    pid_t child = children.empty() ? -1 : std::atoi(children.c_str());
    if (child <= 0) return -1;
    std::error_code exe_error, real_error;
    auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(child) + "/exe", exe_error);
    auto real = std::filesystem::canonical(real_, real_error);
    return !exe_error && !real_error && exe == real ? child : -1;
  }

  e2e::TempDir work_{"sluice-torture-strace"};
  std::string strace_;
  std::string real_;  // the sluice binary that strace runs
  std::optional<std::string> saved_binary_;
};

TEST_F(SyscallOrder, AckAfterSegmentSyncAndCutOrUnlinkAfterCursorSync) {
  downstream_.SetResponder(tracker_.Wrap([](const ReceivedRequest&) { return e2e::Reply{}; }));
  buffer_options_ = ", segment_bytes: 4KiB";  // a few records each: segments roll and go
  ASSERT_TRUE(StartSluice(kTarget));

  // One connection, one request at a time: the k-th 202 on the wire answers request k.
  std::map<std::string, std::string> acked;
  e2e::HttpClient client(sluice_.ingest_port());
  for (int k = 0; k < kRequests; ++k) {
    // ~600-byte records: six or so to a 4 KiB segment.
    e2e::Request request = e2e::Post("/" + Token(k), "{\"token\":\"" + Token(k) + "\",\"pad\":\"" +
                                                         std::string(400, 'p') + "\"}");
    std::optional<e2e::HttpMessage> answer = client.RoundTrip(request);
    ASSERT_TRUE(answer) << Token(k) << ": " << client.error();
    ASSERT_EQ(answer->status, 202) << Token(k) << ": " << answer->body;
    acked[request.body] = answer->Header("Sluice-Message-Id").value_or("");
  }
  client.Close();
  ASSERT_TRUE(WaitFor([&] { return tracker_.AllDelivered(acked); }, Millis(30'000)));
  // Delivered and cursors synced (every 100 ms): the old segments are unlinked.
  ASSERT_TRUE(WaitForMetric(
      "sluice_buffer_segments", {}, [](double v) { return v <= 2; }, "<= 2", Millis(15'000)));

  // Stop sluice itself (strace ignores SIGTERM while it runs a program) and let strace
  // finish the trace when its program exits.
  pid_t traced = TracedPid();
  ASSERT_GT(traced, 0) << "cannot find the traced sluice process";
  ASSERT_EQ(::kill(traced, SIGTERM), 0);
  std::optional<e2e::ExitStatus> status = sluice_.Terminate(Millis(30'000));
  ASSERT_TRUE(status) << "strace did not exit after sluice was told to stop";
  EXPECT_EQ(status->code, 0) << "strace reports sluice's exit: " << status->ToString();

  const std::vector<Syscall> calls = ParseStrace(e2e::ReadFile(TracePath()));
  ASSERT_GT(calls.size(), static_cast<size_t>(kRequests)) << "empty trace " << TracePath();

  std::vector<std::string> tokens;
  for (int k = 0; k < kRequests; ++k) tokens.push_back(Token(k));
  OrderCheck acks = CheckAcksFollowSegmentSync(
      calls, tokens, "127.0.0.1:" + std::to_string(sluice_.ingest_port()) + "->");
  OrderCheck unlinks = CheckUnlinksFollowCursorSync(calls);
  OrderCheck cuts = CheckCutsFollowCursorSync(calls);
  Report("acks_checked", static_cast<double>(acks.checked));
  Report("segment_unlinks_checked", static_cast<double>(unlinks.checked));
  Report("segment_cuts_checked", static_cast<double>(cuts.checked));
  Report("trace_syscalls", static_cast<double>(calls.size()));
  EXPECT_TRUE(acks.findings.empty())
      << "202 before its record was durable (trace " << TracePath() << "):\n"
      << acks.findings.Summary();
  EXPECT_TRUE(unlinks.findings.empty())
      << "segment unlinked too early (trace " << TracePath() << "):\n"
      << unlinks.findings.Summary();
  EXPECT_TRUE(cuts.findings.empty()) << "segment cut too early (trace " << TracePath() << "):\n"
                                     << cuts.findings.Summary();
  EXPECT_GE(unlinks.checked, 20u) << "too few segments reclaimed to check the unlink order";
  EXPECT_GE(cuts.checked, 20u) << "too few reclaimed segments cut to check the cut order";
}

}  // namespace
}  // namespace sluice::torture
