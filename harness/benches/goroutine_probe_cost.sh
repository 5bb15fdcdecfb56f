#!/usr/bin/env bash
# What leakgate's goroutine probe costs the target it measures: bytes allocated in a Go target
# holding N goroutines during a minute of sampling with no load, read from the target's own
# TotalAlloc (/debug/vars) before and after, with its GC count and pause time.
#
#   idle     nothing probes the target (its own background allocation)
#   before   the old probe: GET /debug/pprof/goroutine?debug=1 every tick
#   index    leakgate watch, goroutine_url only: the count from /debug/pprof/ each tick, the
#            debug=2 dump at the start and every goroutine_profile_every (60 s)
#   expvar   leakgate watch, goroutine_url and expvar_url: the count from expvar's goroutines
#            (read with memstats anyway), the dumps as in `index`
#
# "before" is the request the old probe sent each tick, sent by curl: what the target does
# for it does not depend on the client. The other modes run leakgate itself.
#
#   harness/benches/goroutine_probe_cost.sh [GOROUTINES] [SECONDS] [INTERVAL_S]
#     defaults: 100000 goroutines, 60 s per mode, a tick each 1 s
#   LEAKGATE=path/to/leakgate overrides the binary (default: cargo build, target/debug).
set -euo pipefail
n=${1:-100000}
secs=${2:-60}
tick=${3:-1}
repo=$(cd "$(dirname "$0")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
bash "$repo/targets/go/build.sh" leaktarget 2>/dev/null
if [ -z "${LEAKGATE:-}" ]; then
  cargo build -q -p leakgate --manifest-path "$repo/Cargo.toml"
  LEAKGATE=$target_dir/debug/leakgate
fi
work=$(mktemp -d /tmp/goroutine-probe-cost.XXXXXX)
target_pid=
cleanup() {
  [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"${LEAKTARGET:-$repo/target/go/leaktarget}" -listen 127.0.0.1:0 -admin-listen 127.0.0.1:0 \
  -leak leaked-goroutines > "$work/target.out" 2>&1 &
target_pid=$!
until grep -q '^listening ' "$work/target.out"; do
  kill -0 "$target_pid" || { cat "$work/target.out" >&2; exit 1; }
  sleep 0.1
done
http=$(sed -n 's/^listening http=\([^ ]*\) admin=.*/\1/p' "$work/target.out")
admin=$(sed -n 's/.* admin=\([^ ]*\)$/\1/p' "$work/target.out")

# N leaked watchers: one per /watch (curl's URL globbing, one connection).
curl -s -o /dev/null "http://$http/watch?[1-$n]"
vars() { curl -s "http://$admin/debug/vars"; }
have=$(vars | jq .goroutines)
[ "$have" -ge "$n" ] || { echo "only $have goroutines after $n /watch" >&2; exit 1; }

cat > "$work/probe.toml" <<TOML
name = "goroutine-probe-cost"
[target]
base_url = "http://$http"
[probes]
interval = "${tick}s"
process = false
cgroup = false
goroutine_url = "http://$admin/debug/pprof/goroutine"
goroutine_profile_every = "60s"
TOML

# Runs one mode for $secs seconds; prints its row.
measure() {
  local mode=$1 requests=0 dumps=0
  local a b
  a=$(vars | jq -c '[.memstats.TotalAlloc, .memstats.NumGC, .memstats.PauseTotalNs]')
  case $mode in
    idle) sleep "$secs" ;;
    before)
      local end=$((SECONDS + secs)) next
      next=$(date +%s.%N)
      while [ "$SECONDS" -lt "$end" ]; do
        curl -s -o /dev/null "http://$admin/debug/pprof/goroutine?debug=1"
        requests=$((requests + 1))
        next=$(echo "$next + $tick" | bc)
        sleep "$(echo "d = $next - $(date +%s.%N); if (d > 0) d else 0" | bc)"
      done ;;
    index|expvar)
      local extra=()
      [ "$mode" = expvar ] && extra=(--set "probes.expvar_url=http://$admin/debug/vars")
      "$LEAKGATE" watch "$work/probe.toml" --pid "$target_pid" --duration "${secs}s" \
        --no-progress -q --results-dir "$work/$mode" "${extra[@]}" > "$work/$mode.log" 2>&1 || true
      local folder
      folder=$(ls -d "$work/$mode"/*/ | head -1)
      requests=$(grep -c '"signals"' "$folder/samples.ndjson" || true)
      dumps=$(grep -c '"goroutine_dump"' "$folder/samples.ndjson" || true)
      grep -q '"goroutines":' "$folder/samples.ndjson" || { echo "$mode: no goroutines signal" >&2; cat "$work/$mode.log" >&2; exit 1; } ;;
  esac
  b=$(vars | jq -c '[.memstats.TotalAlloc, .memstats.NumGC, .memstats.PauseTotalNs]')
  jq -rn --argjson a "$a" --argjson b "$b" --arg mode "$mode" --arg req "$requests" \
    --arg dumps "$dumps" --argjson secs "$secs" '
    (($b[0] - $a[0]) * 60 / $secs) as $bytes |
    "\($mode)\t\($req)\t\($dumps)\t\(($bytes / 1048576 * 10 | round) / 10)\t\(($b[1] - $a[1]) * 60 / $secs | round)\t\((($b[2] - $a[2]) / 1e6 * 60 / $secs * 10 | round) / 10)"'
}

printf 'goroutine probe cost: %s goroutines, %s s per mode, a tick each %s s (per minute)\n' \
  "$(vars | jq .goroutines)" "$secs" "$tick"
{
  printf 'mode\tticks\tdumps\tMiB allocated/min\tGCs/min\tGC pause ms/min\n'
  for mode in idle before index expvar; do measure "$mode"; done
} | column -t -s $'\t'
