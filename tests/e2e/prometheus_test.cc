// Monitoring end to end: the exposition passes `promtool check metrics`, and a real
// Prometheus server (Debian's `prometheus`) scraping sluice on loopback can query
// sluice_queue_messages through its HTTP API.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "tests/e2e/child_process.h"
#include "tests/e2e/deadline.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/sluice_fixture.h"
#include "tests/e2e/temp_dir.h"

namespace sluice::e2e {
namespace {

// A loopback port that was free a moment ago (Prometheus cannot report the port it
// picked, so we pick it).
uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

class PrometheusTest : public SluiceE2eTest {
 protected:
  // Target paused by the admin API: what is posted stays queued, a stable value to query.
  void StartWithBacklog(int messages) {
    ASSERT_TRUE(StartSluice(kAppTarget));
    HttpClient admin(sluice_.admin_port());
    auto paused = admin.RoundTrip(Post("/admin/targets/app/pause", ""));
    ASSERT_TRUE(paused && paused->status == 200);
    ASSERT_EQ(PostMany(messages).size(), static_cast<size_t>(messages));
    ASSERT_TRUE(WaitForMetric(
        "sluice_queue_messages", {{"target", "app"}},
        [messages](double v) { return v == messages; }, "== backlog"));
  }
  TempDir scratch_{"sluice-prom"};
};

TEST_F(PrometheusTest, ExpositionPassesPromtoolCheckMetrics) {
  StartWithBacklog(5);
  std::string text = Metrics();
  ASSERT_FALSE(text.empty());
  std::string file = scratch_.WriteFile("metrics.txt", text);
  CommandResult r =
      RunCommand({"/bin/sh", "-c", "promtool check metrics < " + file}, scratch_.path());
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.status.code, 0) << "promtool check metrics:\n" << r.out << r.err;
  // Standard process metrics are there too.
  for (const char* name : {"process_resident_memory_bytes", "process_cpu_seconds_total",
                           "process_open_fds", "process_start_time_seconds"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + name), std::string::npos) << name;
  }
}

TEST_F(PrometheusTest, RealPrometheusScrapesTheQueueDepth) {
  StartWithBacklog(7);
  uint16_t web_port = FreePort();
  ASSERT_NE(web_port, 0);
  std::string config = scratch_.WriteFile("prometheus.yml",
                                          "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                          "scrape_configs:\n"
                                          "  - job_name: sluice\n"
                                          "    static_configs: [{targets: ['127.0.0.1:" +
                                              std::to_string(sluice_.admin_port()) + "']}]\n");
  ChildProcess prometheus;
  ASSERT_TRUE(prometheus.Spawn(
      {"/usr/bin/prometheus", "--config.file=" + config,
       "--storage.tsdb.path=" + scratch_.path() + "/tsdb",
       "--web.listen-address=127.0.0.1:" + std::to_string(web_port), "--log.level=warn"},
      scratch_.path() + "/prometheus.out", scratch_.path() + "/prometheus.err"))
      << prometheus.error();

  // Scrapes every second; allow for start-up (TSDB, first scrape) on a loaded machine.
  Deadline deadline(Millis(60'000));
  std::string last;
  bool found = false;
  while (!deadline.Expired() && !found) {
    auto r = Get(web_port, "/api/v1/query?query=sluice_queue_messages%7Btarget%3D%22app%22%7D");
    if (r && r->status == 200) {
      last = r->body;
      // {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[t,"7"]}]}}
      found = last.find("\"value\":[") != std::string::npos &&
              last.find(",\"7\"]") != std::string::npos;
    }
    if (!found) std::this_thread::sleep_for(Millis(250));
  }
  prometheus.Kill();
  EXPECT_TRUE(found) << "Prometheus never returned sluice_queue_messages = 7; last answer: "
                     << last;
}

}  // namespace
}  // namespace sluice::e2e
