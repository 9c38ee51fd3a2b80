// sluice: a load-levelling sidecar. See README.md and ../shared/docs/INTERFACE.md.
#include <cstdio>
#include <cstring>
#include <string>

#include "config/config.h"
#include "proxy/logging.h"
#include "proxy/proxy.h"
#include "proxy/version.h"

namespace {

constexpr const char* kUsage =
    "usage: sluice [--config FILE] [--check] [--log-level debug|info|warn|error]\n"
    "       sluice --version | --help\n"
    "\n"
    "  --config FILE   configuration file (default ./sluice.yaml)\n"
    "  --check         validate the configuration and exit (0 valid, 2 invalid)\n"
    "  --log-level L   log verbosity on stderr (default info)\n";

int Usage(const char* problem) {
  std::fprintf(stderr, "sluice: %s\n%s", problem, kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice;
  std::string config_path = "./sluice.yaml";
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("sluice %s\n", proxy::kVersion);
      return 0;
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--config" || arg == "-c") {
      const char* v = value("--config");
      if (v == nullptr) return Usage("--config needs a file");
      config_path = v;
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (arg == "--log-level") {
      const char* v = value("--log-level");
      proxy::logging::Level level;
      if (v == nullptr || !proxy::logging::ParseLevel(v, &level)) {
        return Usage("--log-level needs one of debug, info, warn, error");
      }
      proxy::logging::SetLevel(level);
    } else {
      return Usage(("unknown argument: " + arg).c_str());
    }
  }

  config::LoadResult loaded = config::LoadFile(config_path);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.c_str());
    return 2;
  }
  if (check) {
    std::printf("%s: OK\n", config_path.c_str());
    return 0;
  }
  proxy::Proxy sidecar(std::move(*loaded.config));
  return sidecar.Run();
}
