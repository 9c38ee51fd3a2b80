#include "aws/credentials.h"

#include <cstdlib>
#include <string_view>

namespace sluice::aws {
namespace {

// Unset and empty are the same to us: an empty key can only produce a rejected request.
std::string_view Variable(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string_view() : std::string_view(value);
}

}  // namespace

common::Status Credentials::FromEnvironment(Credentials* out) {
  std::string_view key_id = Variable("AWS_ACCESS_KEY_ID");
  std::string_view secret = Variable("AWS_SECRET_ACCESS_KEY");
  if (key_id.empty()) {
    return common::Status::NotFound(
        "AWS_ACCESS_KEY_ID is not set (AWS credentials come from AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN)");
  }
  if (secret.empty()) {
    return common::Status::NotFound(
        "AWS_SECRET_ACCESS_KEY is not set (AWS_ACCESS_KEY_ID is set; both are required)");
  }
  out->access_key_id = key_id;
  out->secret_access_key = secret;
  out->session_token = Variable("AWS_SESSION_TOKEN");
  return common::Status::OK();
}

}  // namespace sluice::aws
