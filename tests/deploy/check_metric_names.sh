#!/bin/sh
# Every metric and label name that the deploy kit queries must be one sluice exports.
#
#   check_metric_names.sh REPO_ROOT [INTERFACE_MD]
#
# Names are looked for in the dashboard, the alert rules, their unit tests and the
# Kubernetes drain script (all of which break silently on a typo: a query for a metric
# that does not exist is just empty). Each must be declared both in metrics/metrics.cc
# (what the binary exports) and in the metric table of INTERFACE.md (the contract), when
# that file is present. Histograms also allow their _bucket, _sum and _count series.
set -eu

root=${1:?usage: check_metric_names.sh REPO_ROOT [INTERFACE_MD]}
interface=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

used_files="
  $root/deploy/grafana/sluice-dashboard.json
  $root/deploy/prometheus/alerts.yaml
  $root/tests/deploy/alerts_test.yaml
  $root/deploy/kubernetes/configmap.yaml
"

# --- declared names ---------------------------------------------------------------------
# metrics.cc: `.Name("x")` after BuildCounter()/BuildGauge()/BuildHistogram(); the builder
# can be a few lines above, so remember the last one seen.
awk '
  /BuildHistogram\(\)/ { kind = "histogram" }
  /BuildCounter\(\)|BuildGauge\(\)/ { kind = "other" }
  match($0, /\.Name\("[a-z_:][a-z0-9_:]*"\)/) {
    name = substr($0, RSTART + 7, RLENGTH - 9)
    print name
    if (kind == "histogram") { print name "_bucket"; print name "_sum"; print name "_count" }
  }' "$root/metrics/metrics.cc" | sort -u >"$tmp/code"
[ -s "$tmp/code" ] || { echo "no metric names found in metrics/metrics.cc" >&2; exit 1; }

# INTERFACE.md: the rows of the table under "## Metrics": | `name{labels}` | type | ...
# A row may name several metrics (`a` / `b`, or a list of process_* names).
if [ -n "$interface" ] && [ -f "$interface" ]; then
  sed -n '/^## Metrics/,/^## /p' "$interface" | grep '^| `' >"$tmp/rows"
  while IFS= read -r row; do
    type=$(printf '%s\n' "$row" | awk -F'|' '{ gsub(/ /, "", $3); print $3 }')
    printf '%s\n' "$row" | awk -F'|' '{ print $2 }' | grep -oE '`[a-z_:][a-z0-9_:]*' | tr -d '`' |
      while IFS= read -r name; do
        echo "$name"
        if [ "$type" = histogram ]; then echo "${name}_bucket"; echo "${name}_sum"; echo "${name}_count"; fi
      done
    # Labels: the {a,b} of each name in the first column.
    printf '%s\n' "$row" | awk -F'|' '{ print $2 }' | grep -oE '\{[a-z_,]+\}' | tr -d '{}' | tr ',' '\n' >>"$tmp/labels"
  done <"$tmp/rows" | sort -u >"$tmp/interface"
  [ -s "$tmp/interface" ] || { echo "no metric table found in $interface" >&2; exit 1; }
else
  echo "note: INTERFACE.md not found (${interface:-not given}); checking against metrics/metrics.cc only" >&2
  : >"$tmp/interface"
fi

# --- used names --------------------------------------------------------------------------
fail=0
for f in $used_files; do
  [ -f "$f" ] || { echo "missing: $f" >&2; fail=1; continue; }
  grep -oE '\b(sluice|process)_[a-z0-9_]+' "$f" | sort -u >"$tmp/used"
  while IFS= read -r name; do
    if ! grep -qx "$name" "$tmp/code"; then
      echo "${f#$root/}: $name: not exported by metrics/metrics.cc" >&2; fail=1
    fi
    if [ -s "$tmp/interface" ] && ! grep -qx "$name" "$tmp/interface"; then
      echo "${f#$root/}: $name: not in INTERFACE.md's metric table" >&2; fail=1
    fi
  done <"$tmp/used"
done

# --- used labels ---------------------------------------------------------------------
# Label names in `by (...)`, selectors `{x="..."}`/`{x=~"..."}`, templates
# (quotes escaped in JSON), `$labels.x`, legends `{{x}}` and exp_labels must be a label of some sluice metric (from
# INTERFACE.md), one Prometheus adds (job, instance, le) or one the Kubernetes scrape
# job adds (namespace, pod). alertname/severity are the alerts' own.
if [ -s "$tmp/interface" ]; then
  { sort -u "$tmp/labels"; printf '%s\n' job instance le namespace pod severity alertname; } |
    sort -u >"$tmp/allowed"
  for f in $root/deploy/grafana/sluice-dashboard.json $root/deploy/prometheus/alerts.yaml \
           $root/tests/deploy/alerts_test.yaml; do
    {
      grep -oE '\b(by|without) \([a-z_, ]*\)' "$f" | sed 's/.*(//; s/)//' | tr ',' '\n'
      grep -oE '[{,] *[a-z_]+ *[!=]~?\\?"' "$f" | sed 's/^[{,] *//; s/ *[!=].*//'
      grep -oE '\$labels\.[a-z_]+' "$f" | sed 's/.*\.//'
      grep -oE '\{\{ *[a-z_]+ *\}\}' "$f" | tr -d '{} '
    } | tr -d ' ' | grep -v '^$' | sort -u >"$tmp/used_labels"
    # exp_labels keys in the unit tests.
    if [ "${f##*/}" = alerts_test.yaml ]; then
      sed -n '/exp_labels:/,/exp_annotations:/p' "$f" | grep -oE '^ +[a-z_]+:' | tr -d ' :' |
        grep -vx 'exp_labels\|exp_annotations' >>"$tmp/used_labels" || true
      sort -u -o "$tmp/used_labels" "$tmp/used_labels"
    fi
    while IFS= read -r label; do
      if ! grep -qx "$label" "$tmp/allowed"; then
        echo "${f#$root/}: label \"$label\" is not a label of any sluice metric" >&2; fail=1
      fi
    done <"$tmp/used_labels"
  done
fi

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "metric and label names: OK"
