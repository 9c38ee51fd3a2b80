#!/bin/sh
# Behaviour of the app container's preStop hook, wait-for-drain.sh, taken from the
# ConfigMap in deploy/kubernetes/configmap.yaml and run the way the kubelet runs it
# (/bin/sh SCRIPT). sluice's /metrics is a file read through curl's file:// URLs, so
# the test can change the queue depth while the script polls.
#
# With the sluice binary as second argument it also polls a real sluice, so that the
# parsing is proven against the actual exposition, not only the one written here.
#
#   wait_for_drain_test.sh REPO_ROOT [SLUICE_BIN]
set -eu

root=${1:?usage: wait_for_drain_test.sh REPO_ROOT [SLUICE_BIN]}
sluice=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
sluice_pid=""
cleanup() {
  if [ -n "$sluice_pid" ]; then kill "$sluice_pid" 2>/dev/null || true; wait "$sluice_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
"${PYTHON3:-python3}" "$here/deploy_checks.py" configmap-key "$root" wait-for-drain.sh >"$tmp/wait-for-drain.sh"
command -v curl >/dev/null || { echo "curl is needed (scripts/install-deps installs it)" >&2; exit 1; }

passed=0
failed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1" >&2; sed 's/^/    /' "$tmp/log" >&2; failed=$((failed + 1)); }

metrics() {  # metrics FILE DEPTH_A DEPTH_B: an exposition with two targets
  cat >"$1.new" <<METRICS
# HELP sluice_queue_messages Messages not yet delivered or dead-lettered.
# TYPE sluice_queue_messages gauge
sluice_queue_messages{target="a"} $2
sluice_queue_messages{target="b"} $3
# TYPE sluice_queue_oldest_message_age_seconds gauge
sluice_queue_oldest_message_age_seconds{target="a"} 12
METRICS
  mv "$1.new" "$1"
}

# run SECONDS_AT_LEAST SECONDS_AT_MOST [VAR=value...]: runs the script with the given
# environment, in the background; wait_run then checks how long it took.
run() {
  env "$@" /bin/sh "$tmp/wait-for-drain.sh" >"$tmp/log" 2>&1 &
  pid=$!
  started=$(date +%s)
}
wait_run() {  # wait_run MIN MAX NAME PATTERN
  wait "$pid" || true
  took=$(( $(date +%s) - started ))
  if [ "$took" -lt "$1" ] || [ "$took" -gt "$2" ]; then
    fail "$3: took ${took}s, expected $1..$2s"
  elif ! grep -q "$4" "$tmp/log"; then
    fail "$3: log does not say \"$4\""
  else
    pass "$3 (${took}s)"
  fi
}

m="$tmp/metrics"
url="file://$m"

# 1. Waits while anything is queued (summed over targets), returns once it is empty.
metrics "$m" 0 4
run SLUICE_METRICS_URL="$url" SLUICE_DRAIN_TIMEOUT=30 SLUICE_DRAIN_MIN_WAIT=0 SLUICE_DRAIN_STABLE_POLLS=2
sleep 3
metrics "$m" 0 0
wait_run 4 10 "waits for the queue to empty" "drained"

# 2. Gives up at the deadline when the queue never empties (and exits 0 regardless).
metrics "$m" 7 0
run SLUICE_METRICS_URL="$url" SLUICE_DRAIN_TIMEOUT=3 SLUICE_DRAIN_MIN_WAIT=0
wait_run 3 6 "bounded by SLUICE_DRAIN_TIMEOUT" "gave up after .*7 messages"

# 3. An empty queue does not count before min_wait (endpoints still propagating).
metrics "$m" 0 0
run SLUICE_METRICS_URL="$url" SLUICE_DRAIN_TIMEOUT=30 SLUICE_DRAIN_MIN_WAIT=3 SLUICE_DRAIN_STABLE_POLLS=1
wait_run 3 6 "waits min_wait even when already empty" "drained"

# 4. sluice unreachable, or no sluice_queue_messages in the answer: unknown is not
#    empty, so it keeps trying until the deadline.
run SLUICE_METRICS_URL="file://$tmp/missing" SLUICE_DRAIN_TIMEOUT=3 SLUICE_DRAIN_MIN_WAIT=0 SLUICE_DRAIN_STABLE_POLLS=1
wait_run 3 6 "unreachable metrics: waits for the deadline" "unknown number"
echo 'process_open_fds 9' >"$tmp/other"
run SLUICE_METRICS_URL="file://$tmp/other" SLUICE_DRAIN_TIMEOUT=3 SLUICE_DRAIN_MIN_WAIT=0 SLUICE_DRAIN_STABLE_POLLS=1
wait_run 3 6 "no queue series: waits for the deadline" "unknown number"

# 5. No curl and no wget in the app image: sleeps the whole timeout instead.
mkdir "$tmp/bin"
for tool in awk date sleep; do ln -s "$(command -v $tool)" "$tmp/bin/$tool"; done
metrics "$m" 0 0
run PATH="$tmp/bin" SLUICE_METRICS_URL="$url" SLUICE_DRAIN_TIMEOUT=2 SLUICE_DRAIN_MIN_WAIT=0
wait_run 2 4 "without curl/wget: sleeps SLUICE_DRAIN_TIMEOUT" "neither curl nor wget"

# 6. Against a real sluice: an empty queue reads as drained; two requests that cannot be
#    delivered (the target port is closed) keep it waiting until the deadline.
if [ -n "$sluice" ]; then
  cat >"$tmp/sluice.yaml" <<CONFIG
listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
buffer:
  dir: $tmp/buffer
  fsync: never
targets:
  app:
    url: http://127.0.0.1:1
    rate: 50/s
CONFIG
  "$sluice" --config "$tmp/sluice.yaml" 2>"$tmp/sluice.log" &
  sluice_pid=$!
  # The chosen ports are logged as {"msg":"listening","listener":"admin","addr":"..."}.
  admin="" ingest=""
  for _ in $(seq 50); do
    admin=$(sed -n 's/.*"listener":"admin","addr":"\([^"]*\)".*/\1/p' "$tmp/sluice.log")
    ingest=$(sed -n 's/.*"listener":"ingest","addr":"\([^"]*\)".*/\1/p' "$tmp/sluice.log")
    [ -n "$admin" ] && [ -n "$ingest" ] && break
    sleep 0.1
  done
  if [ -z "$admin" ]; then
    echo "FAIL: sluice did not start:" >&2; cat "$tmp/sluice.log" >&2; failed=$((failed + 1))
  else
    run SLUICE_METRICS_URL="http://$admin/metrics" SLUICE_DRAIN_TIMEOUT=10 SLUICE_DRAIN_MIN_WAIT=0 SLUICE_DRAIN_STABLE_POLLS=1
    wait_run 0 3 "real sluice, empty queue: drained" "drained"
    curl -fsS -o /dev/null -X POST "http://$ingest/orders" -d one
    curl -fsS -o /dev/null -X POST "http://$ingest/orders" -d two
    run SLUICE_METRICS_URL="http://$admin/metrics" SLUICE_DRAIN_TIMEOUT=3 SLUICE_DRAIN_MIN_WAIT=0 SLUICE_DRAIN_STABLE_POLLS=1
    wait_run 3 6 "real sluice, 2 undeliverable: waits for the deadline" "still has 2 messages"
  fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
