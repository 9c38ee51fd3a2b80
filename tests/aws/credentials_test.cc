#include "aws/credentials.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

namespace sluice::aws {
namespace {

// Sets (or unsets) one environment variable for the scope of a test, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class CredentialsFromEnvironment : public testing::Test {
 protected:
  void Set(std::optional<std::string> key_id, std::optional<std::string> secret,
           std::optional<std::string> token) {
    key_id_.emplace("AWS_ACCESS_KEY_ID", key_id);
    secret_.emplace("AWS_SECRET_ACCESS_KEY", secret);
    token_.emplace("AWS_SESSION_TOKEN", token);
  }

  std::optional<ScopedEnv> key_id_;
  std::optional<ScopedEnv> secret_;
  std::optional<ScopedEnv> token_;
  Credentials out_{"untouched", "untouched", "untouched"};
};

TEST_F(CredentialsFromEnvironment, KeyPairWithoutToken) {
  Set("AKIDEXAMPLE", "secret", std::nullopt);
  ASSERT_TRUE(Credentials::FromEnvironment(&out_).ok());
  EXPECT_EQ(out_.access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(out_.secret_access_key, "secret");
  EXPECT_EQ(out_.session_token, "");
}

TEST_F(CredentialsFromEnvironment, KeyPairWithToken) {
  Set("ASIAEXAMPLE", "secret", "token/with+odd=chars");
  ASSERT_TRUE(Credentials::FromEnvironment(&out_).ok());
  EXPECT_EQ(out_.access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(out_.session_token, "token/with+odd=chars");
}

TEST_F(CredentialsFromEnvironment, MissingKeyIdNamesIt) {
  Set(std::nullopt, "secret", "token");
  common::Status s = Credentials::FromEnvironment(&out_);
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_NE(s.ToString().find("AWS_ACCESS_KEY_ID is not set"), std::string::npos) << s.ToString();
  EXPECT_EQ(out_.access_key_id, "untouched");
}

TEST_F(CredentialsFromEnvironment, MissingSecretNamesIt) {
  Set("AKIDEXAMPLE", std::nullopt, std::nullopt);
  common::Status s = Credentials::FromEnvironment(&out_);
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_NE(s.ToString().find("AWS_SECRET_ACCESS_KEY is not set"), std::string::npos)
      << s.ToString();
  EXPECT_EQ(out_.secret_access_key, "untouched");
}

TEST_F(CredentialsFromEnvironment, EmptyCountsAsMissing) {
  Set("", "secret", std::nullopt);
  EXPECT_TRUE(Credentials::FromEnvironment(&out_).IsNotFound());
  Set("AKIDEXAMPLE", "", std::nullopt);
  EXPECT_TRUE(Credentials::FromEnvironment(&out_).IsNotFound());
}

}  // namespace
}  // namespace sluice::aws
