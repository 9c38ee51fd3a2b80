#!/usr/bin/env python3
"""capacity_downstream: an HTTP/1.1 keep-alive downstream whose capacity changes over time.

  capacity_downstream.py PORT T0_EPOCH OUT_TSV [SECONDS] [PHASES]

A token bucket admits requests: PHASES is "rate:until_s,..." (default "200:20,50:40,200:60",
i.e. 200/s for t in [0,20), 50/s for [20,40), 200/s from 40 s on), t counted from T0_EPOCH
(wall clock, seconds). The bucket holds 0.1 s of tokens (at least 1). An admitted request
sleeps 20 ms, then gets 200; one beyond capacity gets 503 at once (no Retry-After).
Responses are counted per whole second since T0; after SECONDS (default 60) + 1 s the
counts for seconds [0, SECONDS) are written to OUT_TSV ("t_s ok_200 rej_503") and the
process exits (also on SIGTERM). Listens on 127.0.0.1 only.
"""
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, t0, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 60
phases = [(float(r), float(u)) for r, u in
          (p.split(":") for p in (sys.argv[5] if len(sys.argv) > 5 else "200:20,50:40,200:60").split(","))]

lock = threading.Lock()
ok = [0] * seconds
rej = [0] * seconds
tokens, last = 0.0, None


def rate_at(t):
    for r, until in phases:
        if t < until:
            return r
    return phases[-1][0]


def admit():
    global tokens, last
    now = time.time()
    t = now - t0
    with lock:
        r = rate_at(t)
        cap = max(1.0, r * 0.1)
        if last is None:
            tokens = cap
        else:
            tokens = min(cap, tokens + (now - last) * r)
        last = now
        if tokens >= 1.0:
            tokens -= 1.0
            return True
        return False


def count(arr):
    s = int(time.time() - t0)
    if 0 <= s < seconds:
        with lock:
            arr[s] += 1


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if admit():
            time.sleep(0.020)
            code = 200
        else:
            code = 503
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
        count(ok if code == 200 else rej)

    do_POST = do_PUT = do_GET = handle_any


def dump(*_):
    with open(out, "w") as f:
        f.write("t_s\tok_200\trej_503\n")
        for i in range(seconds):
            f.write(f"{i}\t{ok[i]}\t{rej[i]}\n")
    sys.stdout.flush()
    import os
    os._exit(0)


class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


srv = S(("127.0.0.1", port), H)
signal.signal(signal.SIGTERM, dump)
threading.Timer(max(0.0, t0 + seconds + 1 - time.time()), dump).start()
srv.serve_forever()
