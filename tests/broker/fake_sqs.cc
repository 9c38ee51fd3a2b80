#include "tests/broker/fake_sqs.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace sluice::broker::testing {

FakeSqs::FakeSqs(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::listen(listen_fd_, 64);
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { Accept(); });
}

FakeSqs::~FakeSqs() {
  stop_ = true;
  accept_thread_.join();
  std::vector<std::thread> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections = std::move(connections_);
  }
  for (auto& t : connections) t.join();
  ::close(listen_fd_);
}

void FakeSqs::SetHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handler_ = std::move(handler);
}

std::vector<std::pair<std::string, std::string>> FakeSqs::calls() {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

size_t FakeSqs::Count(const std::string& action) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& c : calls_) n += c.first == action;
  return n;
}

void FakeSqs::Accept() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    connections_.emplace_back([this, fd] { Serve(fd); });
  }
}

// Reads requests (Content-Length bodies only: what sluice sends) and answers each.
void FakeSqs::Serve(int fd) {
  std::string buffer;
  char chunk[16384];
  while (!stop_) {
    size_t head_end = buffer.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      std::string head = buffer.substr(0, head_end);
      size_t length = 0;
      std::string action;
      size_t pos = 0;
      while ((pos = head.find("\r\n", pos)) != std::string::npos) {
        pos += 2;
        size_t eol = head.find("\r\n", pos);
        std::string line =
            head.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
        size_t colon = line.find(": ");
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::string value = line.substr(colon + 2);
        if (strcasecmp(name.c_str(), "Content-Length") == 0) length = std::stoul(value);
        if (strcasecmp(name.c_str(), "X-Amz-Target") == 0 && value.rfind("AmazonSQS.", 0) == 0) {
          action = value.substr(10);
        }
      }
      if (buffer.size() >= head_end + 4 + length) {
        std::string body = buffer.substr(head_end + 4, length);
        buffer.erase(0, head_end + 4 + length);
        Handler handler;
        {
          std::lock_guard<std::mutex> lock(mu_);
          calls_.emplace_back(action, body);
          handler = handler_;
        }
        Answer a = handler(action, body);
        for (int waited = 0; waited < a.delay_ms && !stop_; waited += 10) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::string response = "HTTP/1.1 " + std::to_string(a.status) +
                               " X\r\nContent-Type: application/x-amz-json-1.0\r\n"
                               "Content-Length: " +
                               std::to_string(a.body.size()) + "\r\n\r\n" + a.body;
        if (::write(fd, response.data(), response.size()) < 0) break;
        continue;
      }
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
}

}  // namespace sluice::broker::testing
