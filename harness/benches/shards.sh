#!/usr/bin/env bash
# Sharded load against one local nginx (the shared bench's nginx.conf, pinned to CPU 0; the
# shards share the other cores): 1, 2 and 4 shards of one plan, each set merged with
# `leakgate merge`. Prints, per shard count and mode (max throughput, a fixed rate), the total
# rate and p99 of the merged run beside the sum of the shards' own counts, and the merge's time:
# the merge adds no requests, loses none, and costs a fraction of a second.
#
#   bash harness/benches/shards.sh               # 10 s runs, fixed rate 20 000 req/s
#   SECS=5 RATE=10000 SHARDS="1 2" bash harness/benches/shards.sh
#
# Loopback only; installs nginx from Debian when it is missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
conf=${NGINX_CONF:-$repo/../shared/bench/nginx.conf}
[ -f "$conf" ] || { echo "nginx.conf not found at $conf (set NGINX_CONF)" >&2; exit 64; }
SECS=${SECS:-10}
RATE=${RATE:-20000}
SHARDS=${SHARDS:-"1 2 4"}
CONNS=${CONNS:-64}
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx; }
cargo build --release --locked -p leakgate --manifest-path "$repo/Cargo.toml" >&2
bin=${CARGO_TARGET_DIR:-$repo/target}/release/leakgate

work=$(mktemp -d /tmp/leakgate-shards.XXXXXX)
mkdir -p "$work/nginx/html" "$work/nginx/logs" "$work/nginx/tmp"
taskset -c 0 nginx -p "$work/nginx/" -c "$conf" >"$work/nginx/logs/stdout" 2>&1 &
nginx_pid=$!
trap 'kill -QUIT $nginx_pid 2>/dev/null || true; wait $nginx_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fsS -o /dev/null http://127.0.0.1:18080/small && break; sleep 0.1; done
url=http://127.0.0.1:18080/small
gen_cpus=1-$(( $(nproc) - 1 ))
[ "$(nproc)" -gt 1 ] || gen_cpus=0

# field FILE KEY: a number from a run's summary.json (dotted path).
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split('.'): d=d[k]
print(d)" "$1" "$2"; }

printf '%-7s %-6s %12s %12s %12s %10s %9s\n' shards mode "merged req/s" "merged p99" "sum of shards" "merged n" "merge s"
for n in $SHARDS; do
  for mode in max rate; do
    dir=$work/$n-$mode
    start=$(( $(date +%s) + 2 ))
    rate=(); [ "$mode" = rate ] && rate=(--rate "$RATE")
    pids=()
    for i in $(seq 0 $((n - 1))); do
      taskset -c "$gen_cpus" "$bin" run "$url" -c $(( CONNS / n )) -d "${SECS}s" "${rate[@]}" \
        --shard "$i/$n" --start-at "$start" --no-progress -q --results-dir "$dir/shard-$i" \
        >/dev/null 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    sum=0
    for i in $(seq 0 $((n - 1))); do
      s=$(ls -d "$dir/shard-$i"/*/ | head -n1)
      sum=$(( sum + $(field "$s/summary.json" load.completed) ))
    done
    if [ "$n" -gt 1 ]; then
      t0=$(date +%s.%N)
      "$bin" merge "$dir"/shard-*/*/ --out "$dir/merged" >/dev/null 2>&1 || true
      took=$(echo "$(date +%s.%N) - $t0" | bc)
      m=$dir/merged
    else
      took=0; m=$(ls -d "$dir/shard-0"/*/ | head -n1)
    fi
    printf '%-7s %-6s %12.0f %10.3f ms %12s %10s %9.2f\n' "$n" "$mode" \
      "$(field "$m/summary.json" load.completed_rate)" "$(field "$m/summary.json" load.corrected.p99)" \
      "$sum" "$(field "$m/summary.json" load.completed)" "$took"
  done
done
echo "(nginx on CPU 0, shards on CPUs $gen_cpus; $(nproc) CPUs; folders in $work)"
