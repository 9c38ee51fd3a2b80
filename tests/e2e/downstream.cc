#include "tests/e2e/downstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>

namespace sluice::e2e {
namespace {

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

}  // namespace

Downstream::Downstream() : responder_([](const ReceivedRequest&) { return Reply{}; }) {}

Downstream::~Downstream() { Stop(); }

bool Downstream::Start(uint16_t port) {
  Stop();
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (wake_fd_ < 0 || listen_fd_ < 0) {
    error_ = std::string("socket/eventfd: ") + std::strerror(errno);
    Stop();
    return false;
  }
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 512) != 0) {
    error_ = "bind/listen 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno);
    Stop();
    return false;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void Downstream::Stop() {
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& conn : connections_) {
    if (conn->thread.joinable()) conn->thread.join();
  }
  connections_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = -1;
  wake_fd_ = -1;
}

void Downstream::SetResponder(Responder responder) {
  std::lock_guard<std::mutex> lock(mu_);
  responder_ = std::move(responder);
}

std::vector<ReceivedRequest> Downstream::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t Downstream::Count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_.size();
}

bool Downstream::WaitForCount(size_t n, Millis timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return arrived_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

bool Downstream::WaitFor(const std::function<bool(const std::vector<ReceivedRequest>&)>& done,
                         Millis timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return arrived_.wait_for(lock, timeout, [&] { return done(requests_); });
}

void Downstream::ReapFinished() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->finished.load()) {
      (*it)->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void Downstream::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ReapFinished();
    auto conn = std::make_unique<Connection>();
    conn->fd = fd;
    conn->id = next_connection_id_++;
    Connection* raw = conn.get();
    connections_.push_back(std::move(conn));
    raw->thread = std::thread([this, raw] { Serve(raw); });
  }
}

void Downstream::Serve(Connection* conn) {
  HttpParser parser(HttpParser::Kind::kRequest);
  std::deque<HttpMessage> pending;
  bool open = true;
  while (open) {
    pollfd fds[2] = {{conn->fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    char buf[64 * 1024];
    ssize_t n = ::recv(conn->fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bool parsed = parser.Feed(std::string_view(buf, static_cast<size_t>(n)), &pending);
    while (open && !pending.empty()) {
      open = Answer(conn, std::move(pending.front()));
      pending.pop_front();
    }
    if (open && !parsed) {
      WriteAll(conn->fd,
               "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      open = false;
    }
  }
  ::close(conn->fd);
  conn->finished = true;
}

bool Downstream::Answer(Connection* conn, HttpMessage message) {
  ReceivedRequest request;
  request.connection = conn->id;
  request.method = std::move(message.method);
  request.url = std::move(message.url);
  request.headers = std::move(message.headers);
  request.body = std::move(message.body);
  request.arrival = SteadyClock::now();
  Responder responder;
  {
    std::lock_guard<std::mutex> lock(mu_);
    request.index = next_index_++;
    responder = responder_;
  }
  Reply reply = responder(request);
  request.answered_status = reply.reset ? 0 : reply.status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
  }
  arrived_.notify_all();

  if (reply.delay.count() > 0 && !SleepUnlessStopped(reply.delay)) return false;
  if (reply.reset) {
    // close() in Serve() then sends RST instead of FIN, discarding unread input.
    linger abort{1, 0};
    ::setsockopt(conn->fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    return false;
  }
  std::string out =
      "HTTP/1.1 " + std::to_string(reply.status) + " " + ReasonPhrase(reply.status) + "\r\n";
  for (const auto& [k, v] : reply.headers) out += k + ": " + v + "\r\n";
  out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  if (!message.keep_alive) out += "Connection: close\r\n";
  out += "\r\n" + reply.body;
  return WriteAll(conn->fd, out) && message.keep_alive;
}

bool Downstream::WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool Downstream::SleepUnlessStopped(Millis ms) {
  pollfd pfd{wake_fd_, POLLIN, 0};
  Deadline deadline(ms);
  while (!deadline.Expired()) {
    int r = ::poll(&pfd, 1, deadline.RemainingMs());
    if (r > 0) return false;
  }
  return true;
}

}  // namespace sluice::e2e
