#pragma once

#include <string_view>

namespace sluice::proxy {

// Tells systemd about our state (Type=notify units) by writing `state` ("READY=1",
// "STOPPING=1", "STATUS=...") as one datagram to $NOTIFY_SOCKET, as sd_notify(3) does,
// without linking libsystemd. Does nothing when NOTIFY_SOCKET is unset; false on error.
bool NotifySystemd(std::string_view state);

}  // namespace sluice::proxy
