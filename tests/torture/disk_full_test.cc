// A real full disk under load: buffer.dir on a 64 MiB ext4 loop mount, max_bytes far
// above it, the target down. sluice must answer 503 (never 202 for what it did not
// store), stay alive, survive kill -9 and a restart on the full disk, resume 202s by
// itself once space returns, and leave only segments that parse in seg/.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "buffer/segment.h"
#include "tests/torture/load_generator.h"
#include "tests/torture/loop_mount.h"
#include "tests/torture/torture_fixture.h"

namespace sluice::torture {
namespace {

constexpr uint64_t kFileSystemBytes = 64ull << 20;
constexpr size_t kBallastBytes = 8u << 20;

constexpr const char* kTarget = R"(
targets:
  app:
    url: http://127.0.0.1:@DOWNSTREAM_PORT@
    rate: unlimited
    concurrency: 8
    timeout: 2s
    retry: {max_attempts: 0, initial_backoff: 100ms, max_backoff: 1s}
)";

// Why each file in `seg_dir` is not a well-formed segment (empty: all are). A segment is
// named by its first sequence, has a valid header naming the same sequence, and holds
// whole records with contiguous sequences, then either the zeros or end of the file (the
// active one) or a footer that agrees with them and nothing after it (a sealed one).
std::vector<std::string> MalformedSegments(const std::string& seg_dir, size_t* segments) {
  std::vector<std::string> problems;
  *segments = 0;
  for (const auto& entry : std::filesystem::directory_iterator(seg_dir)) {
    std::string name = entry.path().filename().string();
    ++*segments;
    std::optional<uint64_t> first = buffer::ParseSegmentFileName(name);
    if (!first) {
      problems.push_back(name + ": not a segment name");
      continue;
    }
    int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      problems.push_back(name + ": cannot open");
      continue;
    }
    uint64_t size = static_cast<uint64_t>(std::filesystem::file_size(entry.path()));
    char header[buffer::kSegmentHeaderSize] = {};
    if (::pread(fd, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) ||
        buffer::DecodeSegmentHeader(header) != first) {
      problems.push_back(name + ": missing or bad segment header (" + std::to_string(size) +
                         " bytes)");
      ::close(fd);
      continue;
    }
    buffer::SegmentScanner scanner(fd, size, buffer::kSegmentHeaderSize);
    buffer::RecordHeader record;
    buffer::SegmentFooter footer;
    std::string payload;
    common::Status io;
    uint64_t expected = *first;
    using Result = buffer::SegmentScanner::Result;
    Result result;
    while ((result = scanner.Next(&record, &payload, &io, &footer)) == Result::kRecord) {
      if (record.seq != expected) {
        problems.push_back(name + ": record " + std::to_string(record.seq) + " where " +
                           std::to_string(expected) + " was due");
        break;
      }
      ++expected;
    }
    if (result == Result::kSealed) {
      if (footer.first_seq != *first || footer.end_seq != expected) {
        problems.push_back(name + ": footer says [" + std::to_string(footer.first_seq) + ", " +
                           std::to_string(footer.end_seq) + "), records say [" +
                           std::to_string(*first) + ", " + std::to_string(expected) + ")");
      }
      result = scanner.Next(&record, &payload, &io);
      if (result != Result::kEnd) problems.push_back(name + ": data after the footer");
    } else if (result != Result::kEnd && result != Result::kRecord) {
      problems.push_back(name + ": damaged or cut record at offset " +
                         std::to_string(scanner.offset()) + " (" + io.ToString() + ")");
    }
    ::close(fd);
  }
  return problems;
}

// Writes `bytes` of real data (not a hole) and syncs it.
bool WriteBallast(const std::string& path, size_t bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::string chunk(1 << 20, 'B');
  bool ok = true;
  for (size_t done = 0; ok && done < bytes; done += chunk.size()) {
    ok = ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size());
  }
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

class DiskFull : public TortureTest {
 protected:
  void SetUp() override {
    TortureTest::SetUp();
    if (HasFatalFailure()) return;
    if (!fs_.Mount(kFileSystemBytes)) GTEST_SKIP() << "disk-full torture skipped: " << fs_.why();
  }
  void TearDown() override {
    TortureTest::TearDown();  // kills sluice: nothing holds the mount any more
    if (HasFailure() && fs_.mounted()) {
      fs_.Keep();
      std::printf("[ torture  ] kept the file system image %s (mount -o loop to inspect)\n",
                  fs_.image().c_str());
    }
    fs_.Unmount();
  }

  std::string BufferDir() const { return fs_.path() + "/buf"; }
  std::string SegDir() const { return BufferDir() + "/seg"; }

  void ExpectOnlyWellFormedSegments(const char* when) {
    size_t segments = 0;
    std::vector<std::string> problems = MalformedSegments(SegDir(), &segments);
    std::string listed;
    for (const std::string& p : problems) listed += "\n    " + p;
    EXPECT_TRUE(problems.empty()) << when << ": orphan or malformed files in seg/:" << listed;
    Report(std::string("segments_") + when, static_cast<double>(segments));
  }

  LoopMount fs_;
};

TEST_F(DiskFull, AnswersServiceUnavailableStaysUpAndRecoversWhenSpaceReturns) {
  const std::string ballast = fs_.path() + "/ballast";
  ASSERT_TRUE(WriteBallast(ballast, kBallastBytes)) << "cannot write " << ballast;
  // The target is down for the whole fill: connected to while nothing listens.
  downstream_.Stop();
  ASSERT_TRUE(downstream_.Start(PickPortBelowEphemeralRange())) << downstream_.error();
  downstream_.Stop();
  downstream_.SetResponder(tracker_.Wrap([](const ReceivedRequest&) { return e2e::Reply{}; }));
  buffer_options_ = ", segment_bytes: 1MiB, max_bytes: 1GiB";  // max_bytes > the disk
  ASSERT_TRUE(StartWith(FixedPortConfig(kTarget, BufferDir())));

  LoadOptions load_options;
  load_options.clients = 4;
  load_options.min_body = 8 << 10;
  load_options.max_body = 16 << 10;
  load_options.tag = "diskfull";
  LoadGenerator load(ingest_port_, load_options);
  load.Start();

  // Full: 503s instead of 202s, for a while (hundreds of failed segment rolls).
  SteadyClock::time_point fill_start = SteadyClock::now();
  ASSERT_TRUE(WaitFor([&] { return load.CountStatus(503) >= 200; }, Millis(90'000)))
      << "no 503 while filling a " << (kFileSystemBytes >> 20) << " MiB disk ("
      << load.CountStatus(202) << " acknowledged, " << fs_.FreeBytes() << " bytes free)";
  Report("seconds_to_fill", std::chrono::duration<double>(SteadyClock::now() - fill_start).count());
  Report("acknowledged_before_full", static_cast<double>(load.CountStatus(202)));
  Report("free_bytes_when_full", static_cast<double>(fs_.FreeBytes()));

  // While full: every answer says so properly, and health stays up.
  {
    e2e::HttpClient probe(ingest_port_);
    for (int i = 0; i < 5; ++i) {
      std::optional<e2e::HttpMessage> answer =
          probe.RoundTrip(e2e::Post("/probe/" + std::to_string(i), std::string(16 << 10, 'p')));
      ASSERT_TRUE(answer) << probe.error();
      EXPECT_EQ(answer->status, 503) << "a request while the disk is full: " << answer->body;
      EXPECT_TRUE(answer->Header("Retry-After")) << "503 without Retry-After";
      EXPECT_NE(answer->body.find("queue_full"), std::string::npos) << answer->body;
    }
    std::optional<e2e::HttpMessage> livez = e2e::Get(admin_port_, "/livez");
    ASSERT_TRUE(livez) << "/livez did not answer while the disk is full";
    EXPECT_EQ(livez->status, 200);
    std::optional<e2e::HttpMessage> readyz = e2e::Get(admin_port_, "/readyz");
    Report("readyz_while_full", readyz ? std::to_string(readyz->status) : "no answer");
  }

  // Killed while full, and started again on the full disk: it must come up (recovery
  // needs no space) and go on refusing politely.
  sluice_.Kill9();
  ASSERT_TRUE(RestartSluice()) << "restart on a full disk";
  const size_t refused_before_restart = load.CountStatus(503);
  EXPECT_TRUE(
      WaitFor([&] { return load.CountStatus(503) >= refused_before_restart + 50; }, Millis(30'000)))
      << "no 503s after the restart on a full disk";

  // Space returns: 202s resume without help.
  const size_t acked_at_free = load.CountStatus(202);
  ASSERT_EQ(::unlink(ballast.c_str()), 0);
  SteadyClock::time_point freed = SteadyClock::now();
  EXPECT_TRUE(WaitFor([&] { return load.CountStatus(202) > acked_at_free + 10; }, Millis(30'000)))
      << "no 202 after freeing " << (kBallastBytes >> 20) << " MiB";
  Report("seconds_until_202_resumed",
         std::chrono::duration<double>(SteadyClock::now() - freed).count());
  load.Stop();

  std::vector<Outcome> outcomes = load.Outcomes();
  std::map<std::string, std::string> acked = load.Acknowledged();
  std::set<std::string> sent = load.SentBodies();
  std::set<std::string> refused;  // answered 503: never stored, so never to be delivered
  std::map<int, size_t> statuses;
  for (const Outcome& o : outcomes) {
    ++statuses[o.status];
    if (o.status == 503) refused.insert(o.body);
  }
  for (const auto& [status, n] : statuses) {
    Report("answers_" + std::to_string(status), static_cast<double>(n));
    // 0: no answer, around the kill.
    EXPECT_TRUE(status == 202 || status == 503 || status == 0)
        << n << " requests answered " << status;
  }

  // Stop cleanly while the disk is still (nearly) full: nothing but segments in seg/.
  std::optional<e2e::ExitStatus> stopped = sluice_.Terminate();
  ASSERT_TRUE(stopped) << "SIGTERM did not stop sluice";
  EXPECT_EQ(stopped->code, 0) << stopped->ToString();
  ExpectOnlyWellFormedSegments("after_full");

  // The target comes back; everything acknowledged is delivered, nothing refused is.
  ASSERT_TRUE(downstream_.StartAgain()) << downstream_.error();
  ASSERT_TRUE(RestartSluice());
  EXPECT_TRUE(WaitFor([&] { return tracker_.AllDelivered(acked); }, Millis(90'000)))
      << tracker_.CountDelivered(acked) << " of " << acked.size() << " delivered";
  DeliveryAudit audit = Audit(downstream_.Requests(), acked, sent);
  Report("acknowledged_ids_checked", static_cast<double>(acked.size()));
  Report("duplicates", static_cast<double>(audit.duplicates));
  EXPECT_TRUE(audit.lost.empty() && audit.unknown.empty() && audit.wrong_id.empty())
      << audit.Describe();
  size_t refused_delivered = 0;
  for (const ReceivedRequest& r : downstream_.Requests())
    refused_delivered += refused.count(r.body);
  Report("refused_but_delivered", static_cast<double>(refused_delivered));
  EXPECT_EQ(refused_delivered, 0u) << "bodies answered 503 (not stored) reached the target";

  stopped = sluice_.Terminate();
  ASSERT_TRUE(stopped) << "SIGTERM did not stop sluice";
  EXPECT_EQ(stopped->code, 0) << stopped->ToString();
  ExpectOnlyWellFormedSegments("after_drain");
}

}  // namespace
}  // namespace sluice::torture
