#pragma once

// Everything a dispatcher needs to pace deliveries to one target.
#include "limiter/adaptive_concurrency.h"  // IWYU pragma: export
#include "limiter/backoff.h"               // IWYU pragma: export
#include "limiter/concurrency_limit.h"     // IWYU pragma: export
#include "limiter/retry_after.h"           // IWYU pragma: export
#include "limiter/token_bucket.h"          // IWYU pragma: export
