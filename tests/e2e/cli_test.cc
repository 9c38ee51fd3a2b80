// The command line (INTERFACE.md, "Command line"): --check, config error lines, exit codes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/child_process.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/sluice_process.h"
#include "tests/e2e/temp_dir.h"

namespace sluice::e2e {
namespace {

// Holds 127.0.0.1:<port> in LISTEN state for as long as it lives.
class PortHolder {
 public:
  PortHolder() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::listen(fd_, 1) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~PortHolder() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = SluiceBinaryPath();
    if (binary_.empty())
      GTEST_FAIL() << "sluice binary not found: build `sluice` or set SLUICE_BINARY";
  }
  void TearDown() override {
    if (HasFailure()) dir_.Keep();
  }

  // Writes `yaml` as sluice.yaml (line 1 is the first line of `yaml`) and returns its path.
  std::string WriteConfig(const std::string& yaml) { return dir_.WriteFile("sluice.yaml", yaml); }

  CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), binary_);
    return RunCommand(args, dir_.path(), Millis(10'000));
  }

  // The lines of `text` that look like config errors for `file`.
  static std::vector<std::string> ErrorLines(const std::string& text, const std::string& file) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with(file + ":")) lines.push_back(line);
    }
    return lines;
  }

  std::string binary_;
  TempDir dir_{"sluice-cli"};
};

std::string ValidConfig(uint16_t listen, uint16_t admin) {
  return "listen: 127.0.0.1:" + std::to_string(listen) +
         "\n"
         "admin: {listen: 127.0.0.1:" +
         std::to_string(admin) +
         "}\n"
         "buffer: {dir: ./buf, fsync: batch}\n"
         "targets:\n"
         "  app:\n"
         "    url: http://127.0.0.1:9\n"
         "    rate: 100/s\n";
}

TEST_F(CliTest, CheckOnValidConfigPrintsOkAndExits0) {
  std::string file = WriteConfig(ValidConfig(PickFreePort(), PickFreePort()));
  CommandResult r = Run({"--config", file, "--check"});
  EXPECT_EQ(r.status.code, 0) << r.status.ToString() << "\n" << r.out << r.err;
  EXPECT_NE((r.out + r.err).find(file + ": OK"), std::string::npos) << r.out << r.err;
}

TEST_F(CliTest, CheckOpensNoListenerEvenWhenThePortIsTaken) {
  PortHolder ingest, admin;
  std::string file = WriteConfig(ValidConfig(ingest.port(), admin.port()));
  CommandResult r = Run({"--config", file, "--check"});
  EXPECT_EQ(r.status.code, 0) << "--check must not bind the listen address\n" << r.out << r.err;
}

TEST_F(CliTest, CheckReportsUnknownKeyWithLineAndColumn) {
  uint16_t port = PickFreePort();
  std::string file = WriteConfig(ValidConfig(port, PickFreePort()) + "    colour: blue\n");
  CommandResult r = Run({"--config", file, "--check"});
  EXPECT_EQ(r.status.code, 2) << r.status.ToString();
  std::vector<std::string> lines = ErrorLines(r.err, file);
  ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
  // Line 8, column 5: the key.
  EXPECT_TRUE(
      std::regex_search(lines[0], std::regex("^" + file + R"(:8:5: targets\.app\.colour: .+)")))
      << lines[0];
  EXPECT_FALSE(PortAcceptsConnections(port));
}

TEST_F(CliTest, CheckReportsBadRateAtTheValue) {
  std::string yaml = ValidConfig(PickFreePort(), PickFreePort());
  yaml.replace(yaml.find("rate: 100/s"), 11, "rate: fast");
  std::string file = WriteConfig(yaml);
  CommandResult r = Run({"--config", file, "--check"});
  EXPECT_EQ(r.status.code, 2) << r.status.ToString();
  std::vector<std::string> lines = ErrorLines(r.err, file);
  ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
  // `    rate: fast` is line 7; the value starts at column 11 (INTERFACE.md's own example).
  EXPECT_TRUE(
      std::regex_search(lines[0], std::regex("^" + file + R"(:7:11: targets\.app\.rate: .*fast)")))
      << lines[0];
}

TEST_F(CliTest, CheckReportsEveryProblemOnItsOwnLine) {
  std::string yaml = ValidConfig(PickFreePort(), PickFreePort());
  yaml.replace(yaml.find("rate: 100/s"), 11, "rate: fast");
  std::string file = WriteConfig("bogus_top_level: 1\n" + yaml);
  CommandResult r = Run({"--config", file, "--check"});
  EXPECT_EQ(r.status.code, 2) << r.status.ToString();
  std::vector<std::string> lines = ErrorLines(r.err, file);
  ASSERT_EQ(lines.size(), 2u) << "stderr:\n" << r.err;
  for (const std::string& line : lines) {
    EXPECT_TRUE(std::regex_search(line, std::regex("^" + file + R"(:\d+:\d+: \S+: .+)"))) << line;
  }
}

TEST_F(CliTest, StartWithBadConfigExits2WithoutListening) {
  uint16_t port = PickFreePort();
  std::string yaml = ValidConfig(port, PickFreePort());
  yaml.replace(yaml.find("rate: 100/s"), 11, "rate: fast");
  std::string file = WriteConfig(yaml);
  CommandResult r = Run({"--config", file});
  EXPECT_EQ(r.status.code, 2) << r.status.ToString();
  EXPECT_EQ(ErrorLines(r.err, file).size(), 1u) << "stderr:\n" << r.err;
  EXPECT_FALSE(PortAcceptsConnections(port));
}

TEST_F(CliTest, VersionExits0) {
  CommandResult r = Run({"--version"});
  EXPECT_EQ(r.status.code, 0) << r.status.ToString();
  EXPECT_TRUE(std::regex_search(r.out + r.err, std::regex(R"(\d+\.\d+)"))) << r.out << r.err;
}

TEST_F(CliTest, HelpExits0AndMentionsConfig) {
  CommandResult r = Run({"--help"});
  EXPECT_EQ(r.status.code, 0) << r.status.ToString();
  EXPECT_NE((r.out + r.err).find("--config"), std::string::npos) << r.out << r.err;
}

TEST_F(CliTest, UnknownFlagIsAUsageErrorExit2) {
  CommandResult r = Run({"--no-such-flag"});
  EXPECT_EQ(r.status.code, 2) << r.status.ToString() << "\n" << r.out << r.err;
}

}  // namespace
}  // namespace sluice::e2e
