#pragma once

#include <uv.h>

#include <memory>

#include "buffer/queue.h"
#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"

namespace sluice::proxy {

// The one place that knows every backend: opens the queue `buffer.kind` names, with its
// connection block, for config.targets. A backend that talks HTTP (SQS) runs on `loop`;
// "loop" and "clock" must outlive the queue.
common::Status OpenQueue(const config::Config& config, uv_loop_t* loop, const common::Clock& clock,
                         const buffer::QueueEvents& events, std::unique_ptr<buffer::Queue>* out);

// What a reload may change in the buffer block without a restart.
buffer::QueueTunables TunablesOf(const config::BufferConfig& buffer);

}  // namespace sluice::proxy
