#pragma once

#include <string>

#include "common/status.h"

namespace sluice::aws {

// An AWS key pair, and the session token that comes with temporary credentials (STS,
// instance and task roles). Never logged: nothing here renders a secret as text.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  // Empty for long-term keys. When set, Sign adds and signs X-Amz-Security-Token.
  std::string session_token;

  // Reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and (optional) AWS_SESSION_TOKEN.
  // NotFound, naming the variable, when either of the first two is unset or empty; "*out"
  // is left untouched on error. Reads the process environment, which is not thread-safe
  // against setenv: call at start-up, as config loading does.
  static common::Status FromEnvironment(Credentials* out);
};

}  // namespace sluice::aws
