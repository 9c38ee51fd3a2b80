#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "buffer/log.h"
#include "buffer/log_reader.h"
#include "common/status.h"
#include "tests/buffer/scratch_dir.h"

namespace sluice::buffer::test {

// Payload for sequence `seq`: `len` bytes that are never zero and differ between
// sequences, so a damaged, misplaced or zero-filled payload never reads as the original.
std::string PayloadFor(uint64_t seq, size_t len);

// Bytes of the footer sealing a segment that holds no message (the payloads above are
// not messages: the footer counts them for no target).
size_t EmptyFooterSize();

// One record as a LogReader returned it.
struct ReadRecord {
  uint64_t seq;
  std::string payload;
  bool operator==(const ReadRecord&) const = default;
};
void PrintTo(const ReadRecord& r, std::ostream* os);

// One finished append as its callback reported it.
struct Completion {
  common::Status status;
  uint64_t seq;
};

// Owns a scratch directory, the options, the Log under test and the verbs the cases are
// written in. The fixture is the Log's owner thread: it calls Append/RunCompletions, and
// waits for the writer through the `wake` option with a deadline, never by sleeping.
class LogFixture : public testing::Test {
 protected:
  static constexpr std::chrono::seconds kDeadline{30};

  LogFixture();
  ~LogFixture() override;

  // Opens options_.dir. On failure the status is kept in open_status_ and false returned.
  [[nodiscard]] bool Open(RecoveryReport* report = nullptr);
  // Closes and forgets the log (a no-op when none is open).
  void Close();
  [[nodiscard]] bool Reopen(RecoveryReport* report = nullptr);

  // Queues one record; its completion is recorded in completions_.
  common::Status Append(std::string payload);
  // Appends one record and waits for it; returns its sequence, 0 when anything failed.
  uint64_t Write(std::string payload);
  // Appends all, then waits for all; returns their sequences (0 for failures).
  std::vector<uint64_t> WriteAll(const std::vector<std::string>& payloads);
  // Waits until every accepted append has completed.
  [[nodiscard]] bool WaitForCompletions();
  // Runs completions until `done()` holds or the deadline passes. Wakes on the log's
  // `wake` signal, and polls every few milliseconds for conditions nothing signals
  // (segment reclaim runs on the writer's own timer).
  [[nodiscard]] bool RunUntil(const std::function<bool()>& done);

  // Every record readable from `from`, in order, until the reader is caught up.
  std::vector<ReadRecord> ReadAll(uint64_t from, uint64_t* skipped = nullptr);

  std::string SegmentPath(uint64_t first_seq) const;

  // What the default `wake` option calls: counts the signal and wakes RunUntil.
  void Wake();

  ScratchDir scratch_;
  LogOptions options_;
  common::Status open_status_;
  std::vector<Completion> completions_;
  size_t accepted_ = 0;

 private:
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  uint64_t wakes_ = 0;

 protected:
  std::unique_ptr<Log> log_;  // last: destroyed before what its callbacks touch
};

}  // namespace sluice::buffer::test
