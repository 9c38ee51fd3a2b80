#include "buffer/dead_letter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "buffer/log.h"
#include "buffer/record.h"
#include "buffer/segment.h"
#include "tests/buffer/log_fixture.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer {
namespace {

using common::Status;
using test::PayloadFor;

DeadLetter Letter(uint64_t seq) {
  DeadLetter dl;
  dl.target = "billing";
  dl.seq = seq;
  dl.ingest_unix_ns = 1'700'000'000'000'000'000ull + seq;
  dl.dead_unix_ns = 1'700'000'123'456'789'012ull + seq;  // needs the high 32 bits
  dl.reason = seq % 2 == 0 ? "max_attempts" : "rejected";
  dl.attempts = static_cast<uint32_t>(seq % 11);
  dl.last_status = seq % 3 == 0 ? 0 : 503;
  dl.payload = PayloadFor(seq, 1 + seq % 90);
  return dl;
}

void ExpectSame(const DeadLetter& a, const DeadLetter& b) {
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.ingest_unix_ns, b.ingest_unix_ns);
  EXPECT_EQ(a.dead_unix_ns, b.dead_unix_ns);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_EQ(a.last_status, b.last_status);
  EXPECT_EQ(a.payload, b.payload);
}

std::optional<DeadLetter> RoundTrip(const DeadLetter& dl) {
  return DecodeDeadLetterPayload(EncodeDeadLetterPayload(dl), dl.seq, dl.ingest_unix_ns);
}

// --- Payload codec ---------------------------------------------------------------------

TEST(DeadLetterCodecTest, RoundTrip) {
  DeadLetter dl = Letter(42);
  auto decoded = RoundTrip(dl);
  ASSERT_TRUE(decoded.has_value());
  ExpectSame(*decoded, dl);
}

TEST(DeadLetterCodecTest, ExtremeFieldValues) {
  DeadLetter dl;
  dl.seq = UINT64_MAX;
  dl.ingest_unix_ns = UINT64_MAX;
  dl.dead_unix_ns = UINT64_MAX;
  dl.attempts = UINT32_MAX;
  dl.last_status = -1;
  dl.reason = "";
  dl.payload = std::string("\0\xff\0", 3);
  auto decoded = RoundTrip(dl);
  ASSERT_TRUE(decoded.has_value());
  ExpectSame(*decoded, dl);
  dl.last_status = INT32_MIN;
  dl.dead_unix_ns = 0;
  decoded = RoundTrip(dl);
  ASSERT_TRUE(decoded.has_value());
  ExpectSame(*decoded, dl);
}

TEST(DeadLetterCodecTest, EveryTruncationIsRejected) {
  const std::string payload = EncodeDeadLetterPayload(Letter(7));
  for (size_t n = 0; n < payload.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_FALSE(DecodeDeadLetterPayload(payload.substr(0, n), 7, 0).has_value());
  }
}

TEST(DeadLetterCodecTest, TrailingGarbageIsRejected) {
  const std::string payload = EncodeDeadLetterPayload(Letter(7));
  for (size_t extra = 1; extra <= 8; ++extra) {
    EXPECT_FALSE(DecodeDeadLetterPayload(payload + std::string(extra, 'x'), 7, 0).has_value());
  }
}

TEST(DeadLetterCodecTest, UnknownVersionIsRejected) {
  std::string payload = EncodeDeadLetterPayload(Letter(7));
  payload[0] = 2;
  EXPECT_FALSE(DecodeDeadLetterPayload(payload, 7, 0).has_value());
}

TEST(DeadLetterCodecTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(0xDEAD);
  const std::string good = EncodeDeadLetterPayload(Letter(9));
  for (int iter = 0; iter < 20000; ++iter) {
    std::string bytes;
    if (iter % 2 == 0) {
      bytes.resize(rng() % 100);
      for (auto& c : bytes) c = static_cast<char>(rng());
      if (!bytes.empty()) bytes[0] = 1;
    } else {
      bytes = good;
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    auto dl = DecodeDeadLetterPayload(bytes, 1, 2);
    if (dl) {
      EXPECT_EQ(EncodeDeadLetterPayload(*dl), bytes);  // canonical
    }
  }
}

// --- dead/<target>.log through the Log --------------------------------------------------

class DeadLetterLogTest : public test::LogFixture {
 protected:
  DeadLetterLogTest() { options_.targets = {"billing", "audit"}; }

  std::string DeadPath(const std::string& target) const {
    return options_.dir + "/dead/" + target + ".log";
  }

  Status Queue(DeadLetter dl) {
    Status s = log_->AppendDeadLetter(std::move(dl), [this](const Status& status, uint64_t seq) {
      completions_.push_back(test::Completion{status, seq});
    });
    if (s.ok()) ++accepted_;
    return s;
  }

  // Stores one dead letter and waits until it is durable.
  bool Store(const DeadLetter& dl) {
    Status s = Queue(dl);
    if (!s.ok()) {
      ADD_FAILURE() << s.ToString();
      return false;
    }
    if (!WaitForCompletions()) return false;
    const test::Completion& c = completions_.back();
    EXPECT_TRUE(c.status.ok()) << c.status.ToString();
    EXPECT_EQ(c.seq, dl.seq);
    return c.status.ok();
  }

  // Every dead letter in a target's file, decoded with the record framing.
  std::vector<DeadLetter> ReadDead(const std::string& target) {
    std::vector<DeadLetter> out;
    int fd = ::open(DeadPath(target).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return out;
    SegmentScanner scanner(fd, test::FileSize(DeadPath(target)), 0);
    RecordHeader h;
    std::string payload;
    Status io;
    while (scanner.Next(&h, &payload, &io) == SegmentScanner::Result::kRecord) {
      auto dl = DecodeDeadLetterPayload(payload, h.seq, h.ingest_unix_ns);
      EXPECT_TRUE(dl.has_value()) << "undecodable dead letter " << h.seq;
      if (dl) out.push_back(*dl);
    }
    ::close(fd);
    return out;
  }

  void ExpectLetters(const std::string& target, const std::vector<uint64_t>& seqs) {
    std::vector<DeadLetter> got = ReadDead(target);
    ASSERT_EQ(got.size(), seqs.size());
    for (size_t i = 0; i < seqs.size(); ++i) {
      SCOPED_TRACE(i);
      ExpectSame(got[i], Letter(seqs[i]));
    }
  }
};

TEST_F(DeadLetterLogTest, StoredLettersSurviveReopen) {
  ASSERT_TRUE(Open());
  EXPECT_EQ(log_->DeadLetterCount("billing"), 0u);
  EXPECT_TRUE(test::FileExists(DeadPath("billing")));
  for (uint64_t seq : {3u, 5u, 8u}) ASSERT_TRUE(Store(Letter(seq)));
  EXPECT_EQ(log_->DeadLetterCount("billing"), 3u);
  EXPECT_EQ(log_->DeadLetterCount("audit"), 0u);
  ASSERT_NO_FATAL_FAILURE(ExpectLetters("billing", {3, 5, 8}));
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(log_->DeadLetterCount("billing"), 3u);
  ASSERT_TRUE(Store(Letter(13)));
  EXPECT_EQ(log_->DeadLetterCount("billing"), 4u);
  ASSERT_NO_FATAL_FAILURE(ExpectLetters("billing", {3, 5, 8, 13}));
}

TEST_F(DeadLetterLogTest, ManyQueuedLettersAllLand) {
  ASSERT_TRUE(Open());
  std::vector<uint64_t> seqs;
  for (uint64_t seq = 1; seq <= 200; ++seq) {
    DeadLetter dl = Letter(seq);
    ASSERT_TRUE(Queue(dl).ok());
    seqs.push_back(seq);
  }
  ASSERT_TRUE(WaitForCompletions());
  for (const auto& c : completions_) EXPECT_TRUE(c.status.ok());
  EXPECT_EQ(log_->DeadLetterCount("billing"), 200u);
  ASSERT_NO_FATAL_FAILURE(ExpectLetters("billing", seqs));
}

TEST_F(DeadLetterLogTest, UnknownTargetIsNotFound) {
  ASSERT_TRUE(Open());
  DeadLetter dl = Letter(1);
  dl.target = "nobody";
  Status s = Queue(dl);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_EQ(log_->DeadLetterCount("nobody"), 0u);
}

TEST_F(DeadLetterLogTest, TornLastLetterIsCutAtOpen) {
  ASSERT_TRUE(Open());
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(Store(Letter(seq)));
  Close();
  const std::string pristine = options_.dir;
  const uint64_t full = test::FileSize(DeadPath("billing"));
  const uint64_t last = full - RecordSize(EncodeDeadLetterPayload(Letter(3)).size());
  for (uint64_t at = last; at < full; ++at) {
    SCOPED_TRACE(at);
    options_.dir = scratch_.path() + "/work";
    test::RemoveTree(options_.dir);
    test::CopyTree(pristine, options_.dir);
    test::TruncateFile(DeadPath("billing"), at);
    ASSERT_TRUE(Open());
    // The letter's payload ends before its padding: cut inside the padding it survives.
    const bool kept = at >= last + kRecordHeaderSize + EncodeDeadLetterPayload(Letter(3)).size();
    EXPECT_EQ(log_->DeadLetterCount("billing"), kept ? 3u : 2u);
    ASSERT_TRUE(Store(Letter(9)));
    Close();
    ASSERT_NO_FATAL_FAILURE(ExpectLetters(
        "billing", kept ? std::vector<uint64_t>{1, 2, 3, 9} : std::vector<uint64_t>{1, 2, 9}));
  }
  options_.dir = pristine;
}

TEST_F(DeadLetterLogTest, CursorMovedByCallbackDuringCloseIsStored) {
  // The dispatcher moves a target's cursor past a message only once its dead letter is
  // durable, from the letter's callback. When that callback runs inside Close, the
  // cursor it sets must still reach the disk.
  options_.cursor_sync_interval = std::chrono::hours(1);
  ASSERT_TRUE(Open());
  ASSERT_EQ(Write("m1"), 1u);
  ASSERT_EQ(Write("m2"), 2u);
  DeadLetter dl = Letter(1);
  Log* log = log_.get();
  ASSERT_TRUE(log_->AppendDeadLetter(dl,
                                     [log](const Status& s, uint64_t seq) {
                                       if (s.ok()) log->SetCursor("billing", seq + 1);
                                     })
                  .ok());
  log_->Close();
  ASSERT_TRUE(Reopen());
  EXPECT_EQ(log_->LoadedCursor("billing"), 2u);
  EXPECT_EQ(log_->DeadLetterCount("billing"), 1u);
}

TEST_F(DeadLetterLogTest, LetterAfterCloseIsRefusedOrCompleted) {
  ASSERT_TRUE(Open());
  log_->Close();
  bool ran = false;
  Status s = log_->AppendDeadLetter(Letter(1), [&](const Status&, uint64_t) { ran = true; });
  if (s.ok()) {
    // Accepted: then it must be stored and its callback must run; nothing is left to do
    // either once the writer is gone.
    log_->RunCompletions();
    EXPECT_TRUE(ran) << "AppendDeadLetter after Close returned OK, but the letter is never "
                        "written and its callback never runs";
  }
}

TEST_F(DeadLetterLogTest, WithoutTargetsNoDeadLetterFiles) {
  options_.targets.clear();
  ASSERT_TRUE(Open());
  EXPECT_TRUE(Queue(Letter(1)).IsNotFound());
}

}  // namespace
}  // namespace sluice::buffer
