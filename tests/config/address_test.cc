#include "config/address.h"

#include <gtest/gtest.h>

namespace sluice::config {
namespace {

// "host|port" or "error: <message>".
std::string HostPortOf(std::string_view text) {
  HostPort hp;
  std::string error;
  if (!ParseHostPort(text, &hp, &error)) return "error: " + error;
  return hp.host + "|" + std::to_string(hp.port);
}

// "host|port|base" or "error: <message>".
std::string UrlOf(std::string_view text) {
  Url url;
  std::string error;
  if (!ParseHttpUrl(text, &url, &error)) return "error: " + error;
  return url.host + "|" + std::to_string(url.port) + "|" + url.base_path;
}

TEST(ParseHostPort, Valid) {
  EXPECT_EQ(HostPortOf("127.0.0.1:8080"), "127.0.0.1|8080");
  EXPECT_EQ(HostPortOf("0.0.0.0:0"), "0.0.0.0|0");  // port 0: pick a free port
  EXPECT_EQ(HostPortOf("localhost:65535"), "localhost|65535");
  EXPECT_EQ(HostPortOf("[::1]:8080"), "::1|8080");
  EXPECT_EQ(HostPortOf("[::]:1"), "::|1");
  EXPECT_EQ(HostPortOf("[::ffff:127.0.0.1]:9"), "::ffff:127.0.0.1|9");
}

TEST(ParseHostPort, Invalid) {
  const std::string p = "error: expected host:port like \"127.0.0.1:8080\", got ";
  EXPECT_EQ(HostPortOf(""), p + "\"\" (the host is missing)");
  EXPECT_EQ(HostPortOf(":8080"), p + "\":8080\" (the host is missing)");
  EXPECT_EQ(HostPortOf("localhost"), p + "\"localhost\" (the port is missing)");
  EXPECT_EQ(HostPortOf("localhost:"), p + "\"localhost:\" (the port must be a number from 0 to "
                                          "65535)");
  EXPECT_EQ(HostPortOf("h:65536"), p + "\"h:65536\" (the port must be a number from 0 to 65535)");
  EXPECT_EQ(HostPortOf("h:-1"), p + "\"h:-1\" (the port must be a number from 0 to 65535)");
  EXPECT_EQ(HostPortOf("h:+1"), p + "\"h:+1\" (the port must be a number from 0 to 65535)");
  EXPECT_EQ(HostPortOf("h:99999999999999999999"),
            p + "\"h:99999999999999999999\" (the port must be a number from 0 to 65535)");
  EXPECT_EQ(HostPortOf("::1:80"), p + "\"::1:80\" (an IPv6 address needs brackets, like "
                                      "\"[::1]:8080\")");
  EXPECT_EQ(HostPortOf("[::1:80"), p + "\"[::1:80\" (missing \"]\" after the IPv6 address)");
  EXPECT_EQ(HostPortOf("[::1]80"), p + "\"[::1]80\" (expected \":\" after \"]\")");
  EXPECT_EQ(HostPortOf("[]:80"), p + "\"[]:80\" (\"[...]\" must hold an IPv6 address)");
  EXPECT_EQ(HostPortOf("[host]:80"), p + "\"[host]:80\" (\"[...]\" must hold an IPv6 address)");
  EXPECT_EQ(HostPortOf("[::g]:80"), p + "\"[::g]:80\" (\"::g\" is not an IPv6 address)");
  EXPECT_EQ(HostPortOf("my host:80"), p + "\"my host:80\" (\"my host\" is not a valid host name)");
}

TEST(ParseHttpUrl, Valid) {
  EXPECT_EQ(UrlOf("http://127.0.0.1:9000"), "127.0.0.1|9000|");
  EXPECT_EQ(UrlOf("http://app"), "app|80|");
  EXPECT_EQ(UrlOf("http://app/"), "app|80|");
  EXPECT_EQ(UrlOf("http://app:8080/v1/"), "app|8080|/v1");
  EXPECT_EQ(UrlOf("http://app:8080/v1//"), "app|8080|/v1");
  EXPECT_EQ(UrlOf("http://app:8080/a/b"), "app|8080|/a/b");
  EXPECT_EQ(UrlOf("http://[::1]:9000/x"), "::1|9000|/x");
  EXPECT_EQ(UrlOf("http://[::1]"), "::1|80|");
}

TEST(ParseHttpUrl, Invalid) {
  const std::string p = "error: expected a URL like \"http://127.0.0.1:9000\", got ";
  EXPECT_EQ(UrlOf(""), p + "\"\" (it must start with \"http://\")");
  EXPECT_EQ(UrlOf("HTTP://app"), p + "\"HTTP://app\" (it must start with \"http://\")");
  EXPECT_EQ(UrlOf("https://app"), p + "\"https://app\" (https is not supported)");
  EXPECT_EQ(UrlOf("http://"), p + "\"http://\" (the host is missing)");
  EXPECT_EQ(UrlOf("http://:80"), p + "\"http://:80\" (the host is missing)");
  EXPECT_EQ(UrlOf("http://app:0"), p + "\"http://app:0\" (the port must be a number from 1 to "
                                       "65535)");
  EXPECT_EQ(UrlOf("http://app:"), p + "\"http://app:\" (the port must be a number from 1 to "
                                      "65535)");
  EXPECT_EQ(UrlOf("http://app:http"), p + "\"http://app:http\" (the port must be a number from "
                                          "1 to 65535)");
  EXPECT_EQ(UrlOf("http://u:p@app"), p + "\"http://u:p@app\" (no user info allowed)");
  EXPECT_EQ(UrlOf("http://app/?q=1"), p + "\"http://app/?q=1\" (no query or fragment allowed)");
  EXPECT_EQ(UrlOf("http://app/#f"), p + "\"http://app/#f\" (no query or fragment allowed)");
  EXPECT_EQ(UrlOf("http://app/a b"),
            p + "\"http://app/a b\" (the path contains a space or control character)");
  EXPECT_EQ(UrlOf("http://::1/"), p + "\"http://::1/\" (an IPv6 address needs brackets, like "
                                      "\"[::1]:8080\")");
}

}  // namespace
}  // namespace sluice::config
