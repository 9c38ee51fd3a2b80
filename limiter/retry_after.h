#pragma once

#include <optional>
#include <string_view>

#include "common/clock.h"

namespace sluice::limiter {

// Parses a Retry-After field value (RFC 9110 section 10.2.3) into how long to wait from
// `unix_now` (wall-clock time since the Unix epoch, Clock::UnixNow()).
//
// Accepted, with optional leading and trailing spaces/tabs:
//   delay-seconds   "120"                              -> 120 s
//   IMF-fixdate     "Sun, 06 Nov 1994 08:49:37 GMT"
//   RFC 850         "Sunday, 06-Nov-94 08:49:37 GMT"   two-digit year: the year in the
//                   current century, or the century before if that would be more than 50
//                   years in the future (RFC 9110 section 5.6.7)
//   asctime         "Sun Nov  6 08:49:37 1994"
// Dates are case-sensitive, in GMT, and must exist on the calendar (no Feb 30, no 24:00);
// the day name must be a valid name but is not checked against the date. A date at or
// before `unix_now` yields zero.
//
// nullopt for anything else: empty, signs, fractions, units, other zones, invalid dates,
// or a delay that does not fit in a Duration (about 292 years).
std::optional<common::Duration> ParseRetryAfter(std::string_view value, common::Duration unix_now);

}  // namespace sluice::limiter
