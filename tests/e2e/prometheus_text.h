#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::e2e {

// One sample line of the Prometheus text format: name{labels} value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Every sample in an exposition; comments and malformed lines are skipped.
std::vector<Sample> ParseSamples(std::string_view text);

// Sum of the samples named `name` whose labels include all of `labels` (other labels may
// be present); nullopt if no sample matched.
std::optional<double> SumSamples(std::string_view text, std::string_view name,
                                 const std::map<std::string, std::string>& labels = {});

}  // namespace sluice::e2e
