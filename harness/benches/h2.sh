#!/usr/bin/env bash
# HTTP/2 (h2c) REST benchmark: leakgate against h2load on the shared bench's nginx (its h2c
# port, 127.0.0.1:18443; nginx pinned to CPU 0, each generator to CPU 1), loopback only.
#
#   bash harness/benches/h2.sh                 # streams 1 and 8 per connection, 10 s runs, 3 repeats
#   STREAMS="8" SECS=5 REPEATS=1 bash harness/benches/h2.sh
#
# For each number of streams per connection (h2load -m S, leakgate --streams S) and body
# (/small: 13 bytes, /64k: 65 536 bytes) it prints the median max-throughput req/s of both and
# their ratio; then, at a fixed RATE (default 5 000 req/s), each one's median CPU seconds
# (user+sys, /usr/bin/time) and peak RSS over RATE_REPEATS (5) alternating RATE_SECS (30 s)
# runs. PARTS="rate" runs only the fixed-rate part. One stream per connection is what
# `../shared/bench/peers.sh` runs as h2load-h2c (`-m 1`); this script adds the multiplexed case.
# Installs nginx, h2load (nghttp2-client) and GNU time from Debian when missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
conf=${NGINX_CONF:-$repo/../shared/bench/nginx.conf}
[ -f "$conf" ] || { echo "nginx.conf not found at $conf (set NGINX_CONF)" >&2; exit 64; }
SECS=${SECS:-10}
REPEATS=${REPEATS:-3}
RATE=${RATE:-5000}
RATE_SECS=${RATE_SECS:-30}
RATE_REPEATS=${RATE_REPEATS:-5}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-"1 8"}
PARTS=${PARTS:-"max rate"}
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v h2load >/dev/null || need+=(nghttp2-client)
[ -x /usr/bin/time ] || need+=(time)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${need[@]}"; }
cargo build --release --locked -p leakgate --manifest-path "$repo/Cargo.toml" >&2
bin=${CARGO_TARGET_DIR:-$repo/target}/release/leakgate

work=$(mktemp -d /tmp/leakgate-h2.XXXXXX)
# nginx's workers run as nobody: mktemp's 0700 would make every file a 403.
chmod 755 "$work"
mkdir -p "$work/nginx/html" "$work/nginx/logs" "$work/nginx/tmp"
head -c 65536 /dev/zero | tr '\0' 'x' > "$work/nginx/html/64k"
PATH=$PATH:/usr/sbin taskset -c 0 nginx -p "$work/nginx/" -c "$conf" >"$work/nginx/logs/stdout" 2>&1 &
nginx_pid=$!
trap 'kill -QUIT $nginx_pid 2>/dev/null || true; wait $nginx_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fsS -o /dev/null --http2-prior-knowledge http://127.0.0.1:18443/small && break; sleep 0.1; done
base=http://127.0.0.1:18443
for path in small 64k; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --http2-prior-knowledge "$base/$path")
  [ "$code" = 200 ] || { echo "nginx answers $code for /$path, not 200: nothing to measure" >&2; exit 1; }
done

# rps_h2load OUT: requests per second from h2load's "finished in ..., N req/s" line.
rps_h2load() { sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$1"; }
# rps_leakgate OUT: the completed rate from the machine-readable last line.
rps_leakgate() { sed -n 's/^rps=\([0-9.]*\) .*/\1/p' "$1" | tail -n1; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

if [[ " $PARTS " == *" max "* ]]; then
printf '%-8s %-6s %14s %14s %8s\n' streams body "h2load req/s" "leakgate req/s" ratio
for s in $STREAMS; do
  for path in small 64k; do
    h=(); l=()
    for r in $(seq 1 "$REPEATS"); do
      taskset -c 1 h2load -t 1 -c "$CONNS" -m "$s" -D "$SECS" "$base/$path" > "$work/h2load-$s-$path-$r" 2>&1 || true
      h+=("$(rps_h2load "$work/h2load-$s-$path-$r")")
      taskset -c 1 "$bin" run "$base/$path" --http2 --streams "$s" -c "$CONNS" -d "${SECS}s" \
        --no-progress --results-dir "$work/runs" > "$work/leakgate-$s-$path-$r" 2>&1 || true
      l+=("$(rps_leakgate "$work/leakgate-$s-$path-$r")")
    done
    hm=$(printf '%s\n' "${h[@]}" | median); lm=$(printf '%s\n' "${l[@]}" | median)
    printf '%-8s %-6s %14.0f %14.0f %7.2fx\n' "$s" "$path" "$hm" "$lm" "$(echo "$lm / $hm" | bc -l)"
  done
done
fi

if [[ " $PARTS " == *" rate "* ]]; then
echo
# CPU at a fixed rate: RATE_REPEATS alternating runs of RATE_SECS each; medians of CPU seconds
# (user+sys) and peak RSS. One 10-s run per tool moved the ratio by ±15 % from run to run.
printf '%-8s %-10s %12s %12s %12s %12s\n' streams tool "req/s" "CPU s" "CPU ratio" "peak MiB"
for s in $STREAMS; do
  per_conn=$(( (RATE + CONNS - 1) / CONNS ))
  for r in $(seq 1 "$RATE_REPEATS"); do
    /usr/bin/time -f '%U %S %M' -o "$work/time-h2load-$s-$r" taskset -c 1 \
      h2load -t 1 -c "$CONNS" -m "$s" -D "$RATE_SECS" --rps "$per_conn" "$base/small" > "$work/rate-h2load-$s-$r" 2>&1 || true
    /usr/bin/time -f '%U %S %M' -o "$work/time-leakgate-$s-$r" taskset -c 1 \
      "$bin" run "$base/small" --http2 --streams "$s" -c "$CONNS" -d "${RATE_SECS}s" --rate "$RATE" \
      --no-progress --results-dir "$work/runs" > "$work/rate-leakgate-$s-$r" 2>&1 || true
  done
  all=""
  for tool in h2load leakgate; do
    cpus=$(for r in $(seq 1 "$RATE_REPEATS"); do awk '{printf "%.2f\n", $1 + $2}' "$work/time-$tool-$s-$r"; done)
    cpu=$(median <<< "$cpus")
    mib=$(for r in $(seq 1 "$RATE_REPEATS"); do awk '{print $3 / 1024}' "$work/time-$tool-$s-$r"; done | median)
    rps=$(for r in $(seq 1 "$RATE_REPEATS"); do "rps_$tool" "$work/rate-$tool-$s-$r"; done | median)
    [ "$tool" = h2load ] && hc=$cpu
    printf '%-8s %-10s %12.0f %12.2f %11.2fx %12.1f\n' "$s" "$tool" "$rps" "$cpu" "$(echo "$cpu / $hc" | bc -l)" "$mib"
    all+="$tool: $(echo $cpus)  "
  done
  printf '%-8s %-10s %s\n' "$s" "all CPU s" "$all"
done
fi
echo "(nginx $(nginx -v 2>&1 | sed 's/.*\///') on CPU 0, generators on CPU 1; $(nproc) CPUs; max: ${SECS}s runs, median of $REPEATS; rate: ${RATE_SECS}s runs, median of $RATE_REPEATS; raw outputs in $work)"
