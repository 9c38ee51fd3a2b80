#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace sluice::config {

// A fixed environment for ${VAR} expansion, so tests do not depend on the real one.
class FakeEnv {
 public:
  void Set(const std::string& name, const std::string& value) { vars_[name] = value; }
  EnvLookup Lookup() const {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = vars_.find(name);
      if (it == vars_.end()) return std::nullopt;
      return it->second;
    };
  }

 private:
  std::map<std::string, std::string> vars_;
};

// Loads `yaml` as "sluice.yaml"; fails the test (and returns a default Config) when
// the file does not load.
inline Config MustLoad(std::string_view yaml, const FakeEnv& env = FakeEnv()) {
  LoadResult result = LoadString(yaml, "sluice.yaml", env.Lookup());
  EXPECT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  return result.config.value_or(Config());
}

// The errors from loading `yaml` as "sluice.yaml"; empty when it loads.
inline std::vector<std::string> LoadErrors(std::string_view yaml, const FakeEnv& env = FakeEnv()) {
  LoadResult result = LoadString(yaml, "sluice.yaml", env.Lookup());
  EXPECT_EQ(result.ok(), result.errors.empty());
  return result.errors;
}

}  // namespace sluice::config
