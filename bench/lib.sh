# shellcheck shell=bash
# bench/lib.sh: helpers shared by the benchmark scripts. Source it, don't run it.
#
# A script calls `bench_init NAME` first: that makes a temp dir ($work) and a trap that
# stops every process started through these helpers and removes the dir (KEEP=1 keeps it).
# Timings are never asserted: a script reports rows (`row ...`) and exits 0 unless the
# setup itself broke.
#
# Environment (all optional):
#   SLUICE      sluice binary               (default build/proxy/sluice)
#   LOADGEN     bench/tools/loadgen binary  (default: compiled into $BUILD_DIR/bench/)
#   NGINX, WRK  reference server and load generator
#   BENCH_ROWS  file the rows are appended to (tab-separated; bench/run sets it)
#   KEEP=1      keep the temp dir (configs, logs, buffer, access logs)

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
SLUICE=${SLUICE:-$repo/${BUILD_DIR:-build}/proxy/sluice}
LOADGEN=${LOADGEN:-$repo/${BUILD_DIR:-build}/bench/loadgen}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-wrk}

bench_init() {
  bench_name=$1
  work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-$1-XXXXXX")
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  [[ -x $SLUICE ]] || die "sluice binary not found at $SLUICE (make build, or set SLUICE)"
  build_loadgen
}

bench_cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}

die() {
  echo "${bench_name:-bench}: $*" >&2
  exit 1
}
log() { echo "[$bench_name] $*" >&2; }

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL. Only for our own children.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || { forget_pid "$pid"; return 0; }
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

# forget_pid PID: drop a reaped PID from the cleanup list (its number may be reused).
forget_pid() {
  local p keep=()
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# loadgen is compiled on first use: one C file, no dependencies beyond libc.
build_loadgen() {
  local src=$bench_dir/tools/loadgen.c
  if [[ ! -x $LOADGEN || $src -nt $LOADGEN ]]; then
    mkdir -p "$(dirname "$LOADGEN")"
    cc -O2 -Wall -Wextra -o "$LOADGEN" "$src" || die "cannot compile $src"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds; 1 on timeout.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic (awk), e.g. calc "$a / $b".
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
fmt() { awk -v v="$2" "BEGIN { printf \"$1\", v }"; }  # fmt FORMAT VALUE

# row FIGURE VALUE REFERENCE RATIO_OR_TARGET MET: one line of the results table.
row() {
  local line
  line=$(printf '%s\t%s\t%s\t%s\t%s' "$@")
  echo "[$bench_name] ${line//$'\t'/ | }" >&2
  [[ -n ${BENCH_ROWS:-} ]] && echo "$line" >>"$BENCH_ROWS"
  return 0
}
# yes_no CONDITION_AWK_EXPR: "yes" or "no", e.g. yes_no "$ratio >= 0.8".
yes_no() { awk "BEGIN { print ($1) ? \"yes\" : \"no\" }"; }

# --- nginx ----------------------------------------------------------------------------------
# start_nginx NAME DIRECTIVE [ACCESS_LOG]: one worker serving `location / { DIRECTIVE }` on a
# free port. With ACCESS_LOG, each request is logged as "<$msec> <Sluice-Message-Id>".
# Sets nginx_port and nginx_pid (the master; its one child is the worker).
start_nginx() {
  local dir=$work/nginx-$1 access="access_log off;"
  mkdir -p "$dir"
  nginx_port=$(free_port)
  if [[ -n ${3:-} ]]; then
    access="log_format arrivals '\$msec \$http_sluice_message_id';
  access_log $3 arrivals buffer=256k flush=1s;"
  fi
  cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  $access
  keepalive_requests 1000000;
  client_body_buffer_size 64k;
  client_body_temp_path $dir/body;
  server {
    listen 127.0.0.1:$nginx_port backlog=4096;
    location / { $2 }
  }
}
CONF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
  nginx_pid=$!
  pids+=("$nginx_pid")
  wait_until 10 port_open "$nginx_port" || { cat "$dir/error.log" >&2; die "nginx did not start"; }
}

# stop_nginx PID: graceful stop (SIGQUIT), which also flushes buffered access logs.
stop_nginx() {
  kill -QUIT "$1" 2>/dev/null || true
  wait_until 10 eval "! kill -0 $1" || true
  stop_pid "$1"
}

# cpu_ticks PID: user + system clock ticks of PID and its children (nginx master + worker).
cpu_ticks() {
  local p total=0
  for p in "$1" $(pgrep -P "$1"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
# shellcheck disable=SC2034 # used by the scripts that source this
clk_tck=$(getconf CLK_TCK)

# --- sluice ---------------------------------------------------------------------------------
# A script picks ports, writes its config (see sluice_config), then start_sluice.
# sluice_config FILE TARGET_URL FSYNC TARGET_YAML: one target "app" with the given
# settings (indented YAML lines) on $ingest_port/$admin_port with buffer $work/buf.
sluice_config() {
  cat >"$1" <<CONF
listen: 127.0.0.1:$ingest_port
admin: {listen: 127.0.0.1:$admin_port}
buffer:
  dir: $work/buf
  fsync: $3
  max_bytes: 8GiB${SEGMENT_BYTES:+
  segment_bytes: $SEGMENT_BYTES}
limits:
  max_connections: 10000
shutdown_timeout: 2s
targets:
  app:
    url: $2
$4
CONF
}

pick_sluice_ports() { ingest_port=$(free_port) admin_port=$(free_port); }

ready() { curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/readyz"; }

# start_sluice CONFIG: starts sluice (log in $work/sluice.log, appended across restarts) and
# waits until /readyz answers 200. Sets sluice_pid.
start_sluice() {
  "$SLUICE" --config "$1" >>"$work/sluice.log" 2>&1 &
  sluice_pid=$!
  pids+=("$sluice_pid")
  wait_until 60 ready || { tail -20 "$work/sluice.log" >&2; die "sluice did not become ready"; }
}

admin_post() { curl -fsS -o /dev/null -X POST "http://127.0.0.1:$admin_port$1"; }

# metric NAME [LABEL_SUBSTRING]: the sum of NAME's samples (whose labels contain the
# substring), e.g. metric sluice_http_requests_total 'code="202"'.
metric() {
  curl -fsS "http://127.0.0.1:$admin_port/metrics" | awk -v n="$1" -v f="${2:-}" '
    $1 == n || index($1, n "{") == 1 { if (f == "" || index($1, f)) s += $2 }
    END { printf "%.6f\n", s }'
}
queued() { metric sluice_queue_messages | awk '{printf "%d", $1}'; }

# wait_queue VALUE TIMEOUT [INTERVAL]: poll (every 20 ms) until sluice_queue_messages == VALUE.
wait_queue() {
  local deadline=$((SECONDS + $2))
  until [[ $(queued) == "$1" ]]; do
    ((SECONDS < deadline)) || return 1
    sleep "${3:-0.02}"
  done
}

# fill COUNT BODY_BYTES: COUNT POSTs as fast as sluice takes them (64 connections,
# pipelined 8 deep). Fails unless every one was answered 2xx.
fill() {
  local out
  out=$("$LOADGEN" -p "$ingest_port" -n "$1" -b "$2" -c 64 -q 8) || die "fill failed: $out"
  log "filled: $out"
}

# kv KEY "k=v k=v ...": the value of KEY in a loadgen summary line.
kv() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'; }
