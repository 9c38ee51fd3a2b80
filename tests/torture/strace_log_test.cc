// The strace log parser and the durability-order checks on canned lines (as strace 6
// prints them with -f -tt -yy).
#include "tests/torture/strace_log.h"

#include <gtest/gtest.h>

#include "tests/torture/durability_order.h"

namespace sluice::torture {
namespace {

TEST(StraceLog, JoinsUnfinishedAndResumedCallsOfOneThread) {
  const char* log =
      "100 10:00:00.000001 pwritev(7</b/seg/00000000000000000001.log>, [{iov_base=\"\\1\\2x\", "
      "iov_len=3}], 1, 32) = 3\n"
      "100 10:00:00.000002 fdatasync(7</b/seg/00000000000000000001.log> <unfinished ...>\n"
      "101   10:00:00.000003 write(1</t/sluice.log>, \"{\\\"msg\\\":\\\"x\\\"}\\n\", 14) = 14\n"
      "100 10:00:00.000004 <... fdatasync resumed>) = 0\n"
      "101 10:00:00.000005 writev(9<TCP:[127.0.0.1:8080->127.0.0.1:40000]>, "
      "[{iov_base=\"HTTP/1.1 202 Accepted\\r\\n\"..., iov_len=200}], 1) = 200\n"
      "101 10:00:00.000006 --- SIGTERM {si_signo=SIGTERM} ---\n"
      "100 10:00:00.000007 unlink(\"/b/seg/00000000000000000001.log\") = 0\n"
      "100 10:00:00.000008 fdatasync(8</b/cursors/app.cur>) = -1 EIO (Input/output error)\n"
      "100 10:00:00.000009 +++ exited with 0 +++\n";
  std::vector<Syscall> calls = ParseStrace(log);
  ASSERT_EQ(calls.size(), 6u);

  EXPECT_EQ(calls[0].name, "pwritev");
  EXPECT_EQ(calls[0].FdPath(), "/b/seg/00000000000000000001.log");
  EXPECT_EQ(calls[0].QuotedString(), std::string("\1\2x"));

  EXPECT_EQ(calls[1].name, "write");  // returned before the fdatasync resumed
  EXPECT_EQ(calls[1].tid, 101);       // a short pid is padded
  EXPECT_EQ(calls[1].QuotedString(), std::string("{\"msg\":\"x\"}\n"));

  const Syscall& sync = calls[2];
  EXPECT_EQ(sync.name, "fdatasync");
  EXPECT_EQ(sync.tid, 100);
  EXPECT_EQ(sync.started, 1u);
  EXPECT_EQ(sync.finished, 3u);
  EXPECT_TRUE(sync.Succeeded());

  EXPECT_EQ(calls[3].FdPath(), "TCP:[127.0.0.1:8080->127.0.0.1:40000]");
  EXPECT_TRUE(calls[3].QuotedString()->starts_with("HTTP/1.1 202"));
  EXPECT_EQ(calls[4].QuotedString(), std::string("/b/seg/00000000000000000001.log"));
  EXPECT_EQ(calls[4].FdPath(), "");
  EXPECT_FALSE(calls[5].Succeeded());
}

TEST(StraceLog, DecodesOctalAndHexEscapes) {
  EXPECT_EQ(DecodeCString("\\0\\0\\1\\377"), std::string("\0\0\1\377", 4));
  EXPECT_EQ(DecodeCString("\\x41\\x0aZ"), "A\nZ");
  EXPECT_EQ(DecodeCString("a\\\\b\\\"c\\t"), "a\\b\"c\t");
  // Octal stops after three digits: "\1234" is \123 then '4'.
  EXPECT_EQ(DecodeCString("\\1234"), "S4");
}

// A request's record is written and synced (seg/ too), then answered; a cursor slot
// (next_seq 3) is written and synced, then the segment holding sequences 1..2 goes.
// `fault` reorders one step.
std::string Trace(const std::string& fault) {
  std::string seg = "7</b/seg/00000000000000000001.log>";
  std::string next_seg = "9</b/seg/00000000000000000003.log>";
  std::string cur = "8</b/cursors/app.cur>";
  std::string record =
      "1 10:00:00.1 pwritev(" + seg + ", [{iov_base=\"req-0000\", iov_len=8}], 1, 32) = 8\n";
  std::string sync = "1 10:00:00.2 fdatasync(" + seg + ") = 0\n";
  std::string dir_sync = "1 10:00:00.2 fsync(6</b/seg>) = 0\n";
  std::string ack =
      "2 10:00:00.3 write(5<TCP:[127.0.0.1:80->127.0.0.1:4000]>, \"HTTP/1.1 202 Accepted\", 21) = "
      "21\n";
  std::string roll =
      "1 10:00:00.4 pwritev(" + next_seg + ", [{iov_base=\"SLUICESG\", iov_len=8}], 1, 0) = 8\n";
  std::string slot = "1 10:00:00.5 pwritev(" + cur +
                     ", [{iov_base=\"\\1\\0\\0\\0\\0\\0\\0\\0\\3\\0\\0\\0\\0\\0\\0\\0\", "
                     "iov_len=16}], 1, 32) = 16\n";
  std::string cursor_sync = "1 10:00:00.6 fdatasync(" + cur + ") = 0\n";
  std::string unlink = "1 10:00:00.7 unlink(\"/b/seg/00000000000000000001.log\") = 0\n";
  // Reclaim cuts the segment (written to byte 40) before its unlink.
  std::string cut = "3 10:00:00.65 ftruncate(" + seg + ", 16) = 0\n";
  // Sealing drops the space after the last record: no cut of anything written.
  std::string seal = "1 10:00:00.25 ftruncate(" + seg + ", 40) = 0\n";
  if (fault == "cut before cursor sync")
    return record + sync + seal + dir_sync + ack + roll + slot + cut + cursor_sync + unlink;
  if (fault == "ack before sync")
    return record + ack + sync + dir_sync + roll + slot + cursor_sync + unlink;
  if (fault == "ack before dir sync")
    return record + sync + ack + dir_sync + roll + slot + cursor_sync + unlink;
  if (fault == "unlink before cursor sync")
    return record + sync + dir_sync + ack + roll + slot + unlink + cursor_sync;
  return record + sync + seal + dir_sync + ack + roll + slot + cursor_sync + cut + unlink;
}

TEST(DurabilityOrder, AcceptsTheRightOrder) {
  std::vector<Syscall> calls = ParseStrace(Trace(""));
  OrderCheck acks = CheckAcksFollowSegmentSync(calls, {"req-0000"}, "127.0.0.1:80->");
  EXPECT_EQ(acks.checked, 1u);
  EXPECT_TRUE(acks.findings.empty()) << acks.findings.Summary();
  OrderCheck unlinks = CheckUnlinksFollowCursorSync(calls);
  EXPECT_EQ(unlinks.checked, 1u);
  EXPECT_TRUE(unlinks.findings.empty()) << unlinks.findings.Summary();
  OrderCheck cuts = CheckCutsFollowCursorSync(calls);
  EXPECT_EQ(cuts.checked, 1u);  // the reclaim's cut, not the seal's
  EXPECT_TRUE(cuts.findings.empty()) << cuts.findings.Summary();
}

TEST(DurabilityOrder, FlagsAnAckBeforeTheSegmentSync) {
  OrderCheck acks =
      CheckAcksFollowSegmentSync(ParseStrace(Trace("ack before sync")), {"req-0000"}, ":80->");
  EXPECT_NE(acks.findings.Summary().find("no fdatasync of the segment"), std::string::npos)
      << acks.findings.Summary();
}

TEST(DurabilityOrder, FlagsAnAckBeforeTheDirectorySync) {
  OrderCheck acks =
      CheckAcksFollowSegmentSync(ParseStrace(Trace("ack before dir sync")), {"req-0000"}, ":80->");
  EXPECT_NE(acks.findings.Summary().find("before seg/ was fsync'ed"), std::string::npos)
      << acks.findings.Summary();
}

TEST(DurabilityOrder, FlagsAnUnlinkBeforeTheCursorSync) {
  OrderCheck unlinks =
      CheckUnlinksFollowCursorSync(ParseStrace(Trace("unlink before cursor sync")));
  EXPECT_NE(unlinks.findings.Summary().find("before a cursor was durably past it"),
            std::string::npos)
      << unlinks.findings.Summary();
}

TEST(DurabilityOrder, FlagsACutBeforeTheCursorSync) {
  OrderCheck cuts = CheckCutsFollowCursorSync(ParseStrace(Trace("cut before cursor sync")));
  EXPECT_EQ(cuts.checked, 1u);
  EXPECT_NE(cuts.findings.Summary().find("cut a segment before a cursor was durably past it"),
            std::string::npos)
      << cuts.findings.Summary();
}

}  // namespace
}  // namespace sluice::torture
