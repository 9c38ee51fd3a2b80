#include "tests/e2e/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::e2e {
namespace {

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

HttpClient::HttpClient(uint16_t port, Millis timeout) : port_(port), timeout_(timeout) {}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool HttpClient::Connect() {
  Close();
  peer_closed_ = false;
  responses_.clear();
  parser_ = std::make_unique<HttpParser>(HttpParser::Kind::kResponse);
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = Errno("socket");
    return false;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr = Loopback(port_);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error_ = Errno(("connect 127.0.0.1:" + std::to_string(port_)).c_str());
    Close();
    return false;
  }
  return true;
}

bool HttpClient::SendRaw(std::string_view bytes) {
  if (fd_ < 0 && !Connect()) return false;
  Deadline deadline(timeout_);
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd_, POLLOUT, 0};
      if (::poll(&pfd, 1, deadline.RemainingMs()) == 0) {
        error_ = "send: timed out";
        return false;
      }
      continue;
    }
    error_ = Errno("send");
    return false;
  }
  return true;
}

bool HttpClient::Send(const Request& request) {
  return SendRaw(request.Serialize("127.0.0.1:" + std::to_string(port_)));
}

bool HttpClient::ReadSome(const Deadline& deadline) {
  pollfd pfd{fd_, POLLIN, 0};
  int ready = ::poll(&pfd, 1, deadline.RemainingMs());
  if (ready < 0 && errno == EINTR) return true;
  if (ready == 0) {
    error_ = "read: timed out after " + std::to_string(timeout_.count()) + " ms";
    return false;
  }
  char buf[64 * 1024];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n < 0 && errno == EINTR) return true;
  if (n < 0 && errno != ECONNRESET) {
    error_ = Errno("recv");
    return false;
  }
  if (n <= 0) {
    peer_closed_ = true;
    parser_->Finish(&responses_);  // completes a close-delimited body; error kept in parser
    Close();
    return true;
  }
  if (!parser_->Feed(std::string_view(buf, static_cast<size_t>(n)), &responses_)) {
    error_ = "bad response: " + parser_->error();
    return false;
  }
  return true;
}

std::optional<HttpMessage> HttpClient::ReadResponse() {
  Deadline deadline(timeout_);
  while (responses_.empty()) {
    if (peer_closed_ || fd_ < 0) {
      error_ = "connection closed before a complete response";
      if (parser_ && !parser_->error().empty()) error_ += " (" + parser_->error() + ")";
      return std::nullopt;
    }
    if (!ReadSome(deadline)) return std::nullopt;
  }
  HttpMessage response = std::move(responses_.front());
  responses_.pop_front();
  return response;
}

std::optional<HttpMessage> HttpClient::RoundTrip(const Request& request) {
  if (!Send(request)) return std::nullopt;
  return ReadResponse();
}

std::vector<HttpMessage> HttpClient::Pipeline(const std::vector<Request>& requests) {
  std::string bytes;
  std::string host = "127.0.0.1:" + std::to_string(port_);
  for (const Request& r : requests) bytes += r.Serialize(host);
  if (!SendRaw(bytes)) return {};
  std::vector<HttpMessage> responses;
  for (size_t i = 0; i < requests.size(); ++i) {
    std::optional<HttpMessage> r = ReadResponse();
    if (!r) {
      error_ = "pipelined response " + std::to_string(i + 1) + "/" +
               std::to_string(requests.size()) + ": " + error_;
      return {};
    }
    responses.push_back(std::move(*r));
  }
  return responses;
}

bool HttpClient::WaitForClose() {
  Deadline deadline(timeout_);
  while (!peer_closed_) {
    if (fd_ < 0) return true;
    if (!ReadSome(deadline)) return false;
  }
  return true;
}

std::optional<HttpMessage> Get(uint16_t port, const std::string& path, Millis timeout) {
  HttpClient client(port, timeout);
  Request request;
  request.method = "GET";
  request.target = path;
  return client.RoundTrip(request);
}

uint16_t PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  uint16_t port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  if (fd >= 0) ::close(fd);
  return port;
}

bool PortAcceptsConnections(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr = Loopback(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace sluice::e2e
