#include "config/env_expand.h"

#include <gtest/gtest.h>

#include "tests/config/config_test_util.h"

namespace sluice::config {
namespace {

class EnvExpandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.Set("HOST", "db.local");
    env_.Set("PORT", "5432");
    env_.Set("EMPTY", "");
    env_.Set("DOLLARS", "$${X}");  // values are not expanded again
  }

  // The expansion of `text`, or "error: <message>".
  std::string Expand(std::string_view text) {
    std::string out;
    std::string error;
    if (!ExpandEnv(text, env_.Lookup(), &out, &error)) return "error: " + error;
    return out;
  }

  FakeEnv env_;
};

TEST_F(EnvExpandTest, PlainTextIsUnchanged) {
  EXPECT_EQ(Expand(""), "");
  EXPECT_EQ(Expand("http://h:1/x"), "http://h:1/x");
  EXPECT_EQ(Expand("cost: 5$"), "cost: 5$");  // a lone "$" stays
  EXPECT_EQ(Expand("$HOST"), "$HOST");        // only the braced form expands
  EXPECT_EQ(Expand("a}b{c"), "a}b{c");
}

TEST_F(EnvExpandTest, Variable) {
  EXPECT_EQ(Expand("${HOST}"), "db.local");
  EXPECT_EQ(Expand("http://${HOST}:${PORT}/"), "http://db.local:5432/");
  EXPECT_EQ(Expand("[${EMPTY}]"), "[]");
  EXPECT_EQ(Expand("${DOLLARS}"), "$${X}");
  EXPECT_EQ(Expand("${MISSING}"), "error: environment variable \"MISSING\" is not set");
}

TEST_F(EnvExpandTest, Default) {
  EXPECT_EQ(Expand("${HOST:-x}"), "db.local");
  EXPECT_EQ(Expand("${MISSING:-127.0.0.1:80}"), "127.0.0.1:80");
  EXPECT_EQ(Expand("${EMPTY:-fallback}"), "fallback");  // empty counts as unset
  EXPECT_EQ(Expand("${MISSING:-}"), "");
  EXPECT_EQ(Expand("${MISSING:-${PORT}"), "${PORT");  // the default is not expanded
}

TEST_F(EnvExpandTest, Required) {
  EXPECT_EQ(Expand("${PORT:?need a port}"), "5432");
  EXPECT_EQ(Expand("${MISSING:?set MISSING to the db url}"),
            "error: environment variable \"MISSING\" is not set: set MISSING to the db url");
  EXPECT_EQ(Expand("${EMPTY:?must not be empty}"),
            "error: environment variable \"EMPTY\" is not set: must not be empty");
  EXPECT_EQ(Expand("${MISSING:?}"), "error: environment variable \"MISSING\" is not set");
}

TEST_F(EnvExpandTest, DoubleDollarIsALiteralDollar) {
  EXPECT_EQ(Expand("$$"), "$");
  EXPECT_EQ(Expand("$${HOST}"), "${HOST}");
  EXPECT_EQ(Expand("a$$$$b"), "a$$b");
  EXPECT_EQ(Expand("$$$${HOST}"), "$${HOST}");
  EXPECT_EQ(Expand("$$${HOST}"), "$db.local");
}

TEST_F(EnvExpandTest, MalformedReferences) {
  const std::string unterminated = "error: unterminated \"${\" (write \"$$\" for a literal \"$\")";
  EXPECT_EQ(Expand("${"), unterminated);
  EXPECT_EQ(Expand("${HOST"), unterminated);
  EXPECT_EQ(Expand("x ${HOST} ${PORT"), unterminated);
  const std::string expected_forms = ": expected ${NAME}, ${NAME:-default} or ${NAME:?message}";
  EXPECT_EQ(Expand("${}"), "error: invalid reference \"${}\"" + expected_forms);
  EXPECT_EQ(Expand("${1ABC}"), "error: invalid reference \"${1ABC}\"" + expected_forms);
  EXPECT_EQ(Expand("${A-B}"), "error: invalid reference \"${A-B}\"" + expected_forms);
  EXPECT_EQ(Expand("${HOST:=x}"), "error: invalid reference \"${HOST:=x}\"" + expected_forms);
  EXPECT_EQ(Expand("${HOST:}"), "error: invalid reference \"${HOST:}\"" + expected_forms);
}

TEST(ProcessEnvTest, ReadsTheEnvironment) {
  ASSERT_EQ(::setenv("SLUICE_ENV_EXPAND_TEST", "v", 1), 0);
  EXPECT_EQ(ProcessEnv("SLUICE_ENV_EXPAND_TEST"), "v");
  ::unsetenv("SLUICE_ENV_EXPAND_TEST");
  EXPECT_EQ(ProcessEnv("SLUICE_ENV_EXPAND_TEST"), std::nullopt);
}

}  // namespace
}  // namespace sluice::config
