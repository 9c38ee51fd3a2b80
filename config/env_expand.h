#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"  // EnvLookup

namespace sluice::config {

// The process environment (getenv).
std::optional<std::string> ProcessEnv(const std::string& name);

// Expands references in a configuration value:
//   ${NAME}            the variable's value; an error when NAME is not set (empty is fine)
//   ${NAME:-default}   the value, or `default` when NAME is unset or empty
//   ${NAME:?message}   the value; an error carrying `message` when NAME is unset or empty
//   $$                 a literal "$"
// A "$" followed by anything else is kept as is. NAME is [A-Za-z_][A-Za-z0-9_]*; the
// default and the message run to the first "}" and are not expanded themselves.
// On success stores the result in "*out" and returns true; otherwise stores a message
// (without position) in "*error" and returns false.
[[nodiscard]] bool ExpandEnv(std::string_view text, const EnvLookup& lookup, std::string* out,
                             std::string* error);

}  // namespace sluice::config
