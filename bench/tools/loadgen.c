// loadgen: a small HTTP/1.1 keep-alive POST load generator for the sluice benchmarks.
//
//   loadgen -p PORT [-H 127.0.0.1] [-P /path] [-c CONNECTIONS] [-b BODY_BYTES]
//           (-n COUNT | -d SECONDS) [-r RATE] [-q PIPELINE]
//
// -r RATE > 0  open loop: request i is due at start + i/RATE and goes out on the first
//              connection with room (-q requests in flight each). A request that waits for
//              a connection is late; its latency counts from when it was due, so a slow
//              server is not hidden (no coordinated omission).
// -r 0         closed loop: as fast as the connections allow (default; used to pre-fill).
// -n COUNT     stop after COUNT responses; -d SECONDS: stop issuing after SECONDS.
//
// Prints one line of key=value pairs on stdout:
//   sent completed ok non2xx errors elapsed_s rps p50_ms p99_ms max_ms
// Exit 0 when every request got a 2xx, 1 otherwise, 2 on usage or connect errors.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kMaxPipeline = 256 };

struct conn {
  int fd;
  char *rbuf;  // received, not yet parsed
  size_t rlen, rcap;
  char *wbuf;  // requests not yet written
  size_t wlen, wcap;
  int outstanding;             // requests sent (or queued to send) without a response
  double due[kMaxPipeline];    // ring: when each outstanding request was due
  int head;
  int want_out;                // EPOLLOUT registered
};

static const char *host = "127.0.0.1", *path = "/bench";
static int port, nconns = 64, body_bytes = 1024, pipeline = 1;
static long long count;
static double duration, rate;
static struct sockaddr_in addr;
static int ep;
static char *request;
static size_t request_len;
static struct conn *conns;
static long long sent, completed, ok, non2xx, errors;
static double *lat;
static size_t nlat, lat_cap;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : 4096;
  while (c < need) c *= 2;
  *buf = realloc(*buf, c + 1);
  if (!*buf) die("realloc");
  *cap = c;
}

static void watch(struct conn *c, int out) {
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl");
  c->want_out = out;
}

static void open_conn(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
  if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0) die("fcntl");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
  c->rlen = c->wlen = 0;
  c->outstanding = c->head = c->want_out = 0;
}

// The server closed or reset: what was in flight is lost to us; count it and reconnect.
static void reopen_conn(struct conn *c) {
  errors += c->outstanding;
  completed += c->outstanding;
  close(c->fd);
  open_conn(c);
}

static void flush_conn(struct conn *c) {
  while (c->wlen > 0) {
    ssize_t n = write(c->fd, c->wbuf, c->wlen);
    if (n < 0) {
      if (errno == EAGAIN) break;
      if (errno == EINTR) continue;
      reopen_conn(c);
      return;
    }
    memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
    c->wlen -= (size_t)n;
  }
  if ((c->wlen > 0) != c->want_out) watch(c, c->wlen > 0);
}

static void send_request(struct conn *c, double due) {
  grow(&c->wbuf, &c->wcap, c->wlen + request_len);
  memcpy(c->wbuf + c->wlen, request, request_len);
  c->wlen += request_len;
  c->due[(c->head + c->outstanding) % kMaxPipeline] = due;
  c->outstanding++;
  sent++;
  flush_conn(c);
}

static void record_latency(double seconds) {
  if (nlat == lat_cap) {
    lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
    lat = realloc(lat, lat_cap * sizeof *lat);
    if (!lat) die("realloc");
  }
  lat[nlat++] = seconds;
}

// Parses every complete response in c->rbuf (Content-Length framed, as sluice and nginx
// answer). Returns 0, or -1 when the server asked to close.
static int parse_responses(struct conn *c) {
  int must_close = 0;
  size_t off = 0;
  for (;;) {
    char *start = c->rbuf + off;
    size_t avail = c->rlen - off;
    char *end = memmem(start, avail, "\r\n\r\n", 4);
    if (!end) break;
    size_t hdr_len = (size_t)(end - start) + 4;
    char saved = start[hdr_len];
    start[hdr_len] = '\0';
    long content_length = 0;
    char *cl = strcasestr(start, "\r\ncontent-length:");
    if (cl) content_length = strtol(cl + 17, NULL, 10);
    int close_after = strcasestr(start, "\r\nconnection: close") != NULL;
    int status = avail > 12 ? atoi(start + 9) : 0;
    start[hdr_len] = saved;
    if (avail < hdr_len + (size_t)content_length) break;
    off += hdr_len + (size_t)content_length;
    if (c->outstanding == 0) {  // a response we did not ask for
      errors++;
      continue;
    }
    double due = c->due[c->head];
    c->head = (c->head + 1) % kMaxPipeline;
    c->outstanding--;
    completed++;
    if (status >= 200 && status < 300) {
      ok++;
    } else {
      non2xx++;
    }
    record_latency(now() - due);
    if (close_after) {
      must_close = 1;
      break;
    }
  }
  memmove(c->rbuf, c->rbuf + off, c->rlen - off);
  c->rlen -= off;
  return must_close ? -1 : 0;
}

static void read_conn(struct conn *c) {
  for (;;) {
    grow(&c->rbuf, &c->rcap, c->rlen + 65536);
    ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n > 0) {
      c->rlen += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    parse_responses(c);
    reopen_conn(c);  // EOF or error
    return;
  }
  if (parse_responses(c) != 0) reopen_conn(c);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile(double p) {
  if (nlat == 0) return 0;
  size_t i = (size_t)(p * (double)(nlat - 1) + 0.5);
  return lat[i] * 1e3;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen -p PORT [-H HOST] [-P PATH] [-c CONNS] [-b BODY_BYTES] "
          "(-n COUNT | -d SECONDS) [-r RATE] [-q PIPELINE]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int opt;
  while ((opt = getopt(argc, argv, "p:H:P:c:b:n:d:r:q:")) != -1) {
    switch (opt) {
      case 'p': port = atoi(optarg); break;
      case 'H': host = optarg; break;
      case 'P': path = optarg; break;
      case 'c': nconns = atoi(optarg); break;
      case 'b': body_bytes = atoi(optarg); break;
      case 'n': count = atoll(optarg); break;
      case 'd': duration = atof(optarg); break;
      case 'r': rate = atof(optarg); break;
      case 'q': pipeline = atoi(optarg); break;
      default: usage();
    }
  }
  if (port <= 0 || nconns <= 0 || body_bytes < 10 || pipeline < 1 || pipeline > kMaxPipeline ||
      (count <= 0) == (duration <= 0) || rate < 0)
    usage();

  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage();

  // {"pad":"xxxx"} padded to exactly body_bytes.
  char head[512];
  int head_len = snprintf(head, sizeof head,
                          "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n",
                          path, host, port, body_bytes);
  request_len = (size_t)head_len + (size_t)body_bytes;
  request = malloc(request_len);
  memcpy(request, head, (size_t)head_len);
  char *body = request + head_len;
  memset(body, 'x', (size_t)body_bytes);
  memcpy(body, "{\"pad\":\"", 8);
  memcpy(body + body_bytes - 2, "\"}", 2);

  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  conns = calloc((size_t)nconns, sizeof *conns);
  for (int i = 0; i < nconns; i++) open_conn(&conns[i]);

  // What is planned: COUNT requests, or RATE * SECONDS when paced, or open-ended.
  long long planned = count > 0 ? count : rate > 0 ? (long long)(rate * duration + 0.5) : -1;
  double start = now(), last_response = start, grace_until = 0;
  int next_conn = 0;
  struct epoll_event events[256];
  for (;;) {
    double t = now();
    int issuing = planned >= 0 ? sent < planned : t - start < duration;
    if (!issuing && completed >= sent) break;
    if (!issuing && grace_until == 0) grace_until = t + 10;  // wait this long for stragglers
    if (!issuing && t > grace_until) {
      errors += sent - completed;
      break;
    }
    int room = 1;
    while (issuing && room) {
      double due = t;
      if (rate > 0) {
        due = start + (double)sent / rate;
        if (due > t) break;
      }
      room = 0;
      for (int k = 0; k < nconns; k++) {
        struct conn *c = &conns[(next_conn + k) % nconns];
        if (c->outstanding < pipeline) {
          next_conn = (int)((c - conns) + 1) % nconns;
          send_request(c, due);
          room = 1;
          break;
        }
      }
      issuing = planned >= 0 ? sent < planned : t - start < duration;
    }
    int timeout_ms = 100;
    if (issuing && rate > 0 && room) {
      double next_due = start + (double)sent / rate;
      double wait = next_due - now();
      timeout_ms = wait <= 0 ? 0 : (int)(wait * 1e3) + 1;
      if (timeout_ms > 100) timeout_ms = 100;
    }
    int n = epoll_wait(ep, events, 256, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        long long before = completed;
        read_conn(c);
        if (completed != before) last_response = now();
      }
      if (events[i].events & EPOLLOUT) flush_conn(c);
    }
  }

  double elapsed = last_response - start;
  qsort(lat, nlat, sizeof *lat, cmp_double);
  printf(
      "sent=%lld completed=%lld ok=%lld non2xx=%lld errors=%lld elapsed_s=%.3f rps=%.1f "
      "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
      sent, completed, ok, non2xx, errors, elapsed, elapsed > 0 ? (double)completed / elapsed : 0,
      percentile(0.50), percentile(0.99), nlat ? lat[nlat - 1] * 1e3 : 0);
  return ok == sent ? 0 : 1;
}
