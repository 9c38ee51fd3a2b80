#pragma once

namespace sluice::buffer {

// When an append counts as stored (buffer.fsync).
enum class FsyncPolicy {
  kBatch,     // complete an append only after the fdatasync covering it (group commit)
  kInterval,  // complete after write(2); fdatasync every fsync_interval
  kNever,     // complete after write(2); the OS decides when data reaches the disk
};

}  // namespace sluice::buffer
