// Route matching and retry classification on a loaded Config.

#include <gtest/gtest.h>

#include "config/config.h"
#include "tests/config/config_test_util.h"

namespace sluice::config {
namespace {

class RouteMatchTest : public ::testing::Test {
 protected:
  RouteMatchTest()
      : config_(MustLoad(R"(
targets:
  orders: {url: 'http://h:1'}
  audit: {url: 'http://h:2'}
  app: {url: 'http://h:3'}
routes:
  - name: order-writes
    match: {path_prefix: /orders, methods: [POST, put]}
    queue: [orders, audit]
  - name: order-reads
    match: {path_prefix: /orders}
    forward: orders
  - name: health
    match: {path_prefix: /health, methods: GET}
    forward: app
)")) {}

  // The name of the route that takes the request, or "(none)".
  std::string RouteFor(std::string_view method, std::string_view path) const {
    const Route* route = config_.MatchRoute(method, path);
    return route == nullptr ? "(none)" : route->name;
  }

  Config config_;
};

TEST_F(RouteMatchTest, PrefixAndMethod) {
  EXPECT_EQ(RouteFor("POST", "/orders"), "order-writes");
  EXPECT_EQ(RouteFor("PUT", "/orders/42"), "order-writes");  // methods are upper-cased
  EXPECT_EQ(RouteFor("GET", "/orders/42"), "order-reads");
  EXPECT_EQ(RouteFor("GET", "/health"), "health");
}

TEST_F(RouteMatchTest, FirstMatchWins) {
  // Both order routes take a POST to /orders; the first one listed gets it.
  EXPECT_EQ(RouteFor("POST", "/orders/1"), "order-writes");
  EXPECT_TRUE(config_.routes[1].Matches("POST", "/orders/1"));
}

TEST_F(RouteMatchTest, NoMatch) {
  EXPECT_EQ(RouteFor("GET", "/"), "(none)");
  EXPECT_EQ(RouteFor("POST", "/health"), "(none)");  // wrong method
  EXPECT_EQ(RouteFor("GET", "/order"), "(none)");    // shorter than the prefix
  EXPECT_EQ(RouteFor("GET", "orders"), "(none)");
  EXPECT_EQ(RouteFor("GET", ""), "(none)");
}

TEST_F(RouteMatchTest, PrefixIsAPlainStringPrefix) {
  // Like Envoy's "prefix": no path-segment logic.
  EXPECT_EQ(RouteFor("GET", "/orders-archive"), "order-reads");
  EXPECT_EQ(RouteFor("GET", "/healthz"), "health");
}

TEST_F(RouteMatchTest, QueryIsNotPartOfThePath) {
  EXPECT_EQ(RouteFor("GET", "/orders?x=1"), "order-reads");
  Route route;
  route.path_prefix = "/a/b";
  EXPECT_FALSE(route.Matches("GET", "/a?/b"));
  EXPECT_TRUE(route.Matches("GET", "/a/b?c"));
}

TEST_F(RouteMatchTest, MethodsAreCaseSensitiveOnTheWire) {
  // HTTP methods are case-sensitive; the config upper-cases what it lists.
  EXPECT_EQ(RouteFor("post", "/orders"), "order-reads");
}

TEST(RouteTest, DefaultRouteTakesEverything) {
  Config config = MustLoad("targets: {app: {url: 'http://h:1'}}");
  const Route* route = config.MatchRoute("DELETE", "/any/path");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->name, "default");
  EXPECT_NE(config.MatchRoute("GET", "/"), nullptr);
}

TEST(RouteTest, FindTarget) {
  Config config = MustLoad("targets: {a: {url: 'http://h:1'}, b: {url: 'http://h:2'}}");
  ASSERT_NE(config.FindTarget("b"), nullptr);
  EXPECT_EQ(config.FindTarget("b")->parsed_url.port, 2);
  EXPECT_EQ(config.FindTarget("c"), nullptr);
  EXPECT_EQ(config.FindTarget(""), nullptr);
}

TEST(RetryPolicyTest, DefaultRetriesTheDocumentedStatuses) {
  RetryPolicy retry;
  for (int status : {408, 425, 429, 500, 502, 503, 504}) {
    EXPECT_TRUE(retry.RetriesStatus(status)) << status;
  }
  for (int status : {200, 202, 400, 404, 409, 413, 501, 505, 0, -1}) {
    EXPECT_FALSE(retry.RetriesStatus(status)) << status;
  }
}

TEST(RetryPolicyTest, RetryOnReplacesTheDefaults) {
  Config config = MustLoad(R"(
targets:
  a:
    url: http://h:1
    retry: {retry_on: [409, 503, 409]}
  b:
    url: http://h:1
    retry: {retry_on: []}
)");
  const RetryPolicy& a = config.targets[0].retry;
  EXPECT_TRUE(a.RetriesStatus(409));
  EXPECT_TRUE(a.RetriesStatus(503));
  EXPECT_FALSE(a.RetriesStatus(429));
  EXPECT_EQ(a.on_status, (std::vector<int>{409, 503}));  // duplicates dropped
  EXPECT_FALSE(a.on_connect_failure);
  EXPECT_FALSE(a.on_timeout);
  const RetryPolicy& b = config.targets[1].retry;
  EXPECT_TRUE(b.on_status.empty());
  EXPECT_FALSE(b.RetriesStatus(503));
  EXPECT_FALSE(b.on_connect_failure);
  EXPECT_FALSE(b.on_timeout);
}

}  // namespace
}  // namespace sluice::config
