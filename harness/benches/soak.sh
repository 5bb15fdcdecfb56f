#!/usr/bin/env bash
# Soak benchmark: leakgate drives the reference rest-target (clean mode) at a fixed rate for a
# long time, with probes, rolling evaluations, live endpoints and compaction on, and this
# script reads leakgate's own RSS and CPU from /proc as it goes (loopback only; target on
# CPU 0, leakgate on CPU 1). It prints one table: RSS at 5 min and at the end, CPU, the run
# folder's size, and the size extrapolated to 24 h.
#
#   bash harness/benches/soak.sh                       # 30 min at 5 000 req/s
#   MINUTES=10 RATE=2000 bash harness/benches/soak.sh  # shorter
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
minutes=${MINUTES:-30}; rate=${RATE:-5000}; compact=${COMPACT_AFTER:-10m}
cargo build --release --locked -p leakgate -p leakgate-targets --manifest-path "$repo/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d /tmp/leakgate-soak-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
live=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

taskset -c 0 "$bin/rest-target" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --leak none \
  > "$work/target.out" 2>&1 &
target=$!
trap 'kill $target 2>/dev/null || true; [ -n "${lg:-}" ] && kill $lg 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

cat > "$work/soak.toml" <<EOT
name = "soak-bench"
[target]
pid = $target
base_url = "http://127.0.0.1:$port"
[load]
connections = 32
[[load.phases]]
kind = "steady"
duration = "${minutes}m"
rate = $rate
[[load.requests]]
path = "/cache/{{zipf 10000 1.1}}"
[probes]
interval = "1s"
prometheus = { url = "http://127.0.0.1:$admin/metrics", metrics = ["cache_entries", "tokio_alive_tasks"] }
[gates.signals.rss_bytes]
max_slope = "64 B/request"
[gates.latency]
p99 = "500ms"
EOT

taskset -c 1 "$bin/leakgate" run "$work/soak.toml" --no-progress -q --results-dir "$work/results" \
  --evaluate-every 1m --listen "127.0.0.1:$live" --compact-after "$compact" > "$work/leakgate.out" 2>&1 &
lg=$!
tck=$(getconf CLK_TCK)
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$lg/status" 2>/dev/null || echo 0; }
cpu_s() { awk -v t="$tck" '{print ($14+$15)/t}' "/proc/$lg/stat" 2>/dev/null || echo 0; }
printf 'minute  leakgate_rss_kib  leakgate_cpu_s  folder_kib\n' | tee "$work/trace.txt"
rss5=0
for m in $(seq 1 "$minutes"); do
  sleep 60
  kill -0 $lg 2>/dev/null || break
  r=$(rss_kb); c=$(cpu_s); f=$(du -sk "$work/results" | cut -f1)
  printf '%6d  %16s  %14s  %10s\n' "$m" "$r" "$c" "$f" | tee -a "$work/trace.txt"
  [ "$m" = 5 ] && rss5=$r
  last_rss=$r; last_cpu=$c
done
wait $lg || true
folder_kib=$(du -sk "$work/results" | cut -f1)
# RSS: medians of minutes 4-6 and of the last three minutes (a single reading can land on a
# compaction's transient peak), and the peak.
read -r rss5 rss_end rss_max < <(awk 'NR>1 {r[$1]=$2; if ($2>m) m=$2; n=$1}
  function med3(a,b,c) { return (a>b ? (b>c ? b : (a>c ? c : a)) : (a>c ? a : (b>c ? c : b))) }
  END { print med3(r[4],r[5],r[6]), med3(r[n-2],r[n-1],r[n]), m }' "$work/trace.txt")
# 24 h with the default tiers (full resolution for 10 min, one record a minute to 1 h, one per
# ten minutes after), from the sizes of this run's full and merged records.
per_day=$(python3 - "$work/results" <<'PY'
import json, os, sys
root = sys.argv[1]
run = os.path.join(root, os.listdir(root)[0])
size = {"full": [], "merged": [], "other": []}
for name in sorted(os.listdir(run)):
    if not name.startswith("samples"):
        continue
    for line in open(os.path.join(run, name), "rb"):
        r = json.loads(line)
        if r["type"] in ("window", "probe"):
            size["merged" if r.get("merged", 1) > 1 else "full"].append((r["type"], len(line)))
        else:
            size["other"].append(("", len(line)))
def per(kind, t):
    v = [n for k, n in size[kind] if k == t]
    return sum(v) / len(v) if v else 0
full = per("full", "window") + per("full", "probe")          # one of each a second
merged = per("merged", "window") + per("merged", "probe")    # one of each a bucket
other = sum(n for _, n in size["other"]) / max(1, sum(1 for _ in size["other"])) * 2  # ~2 a minute
day = 600 * full + (50 + (1440 - 60) // 10) * merged + 1440 * other
print(f"{day / 2**20:.1f}")
PY
)
echo
echo "| rate | minutes | leakgate RSS, minutes 4-6 | last 3 minutes | growth | peak | CPU-s (share of a core) | run folder | 24 h, default compaction |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
awk -v r="$rate" -v m="$minutes" -v a="$rss5" -v b="$rss_end" -v p="$rss_max" -v c="$last_cpu" -v f="$folder_kib" -v d="$per_day" 'BEGIN {
  printf "| %d/s | %d | %.1f MiB | %.1f MiB | %+.2f MiB | %.1f MiB | %.1f (%.1f %%) | %.1f MiB | %s MiB |\n",
    r, m, a/1024, b/1024, (b-a)/1024, p/1024, c, c/(m*60)*100, f/1024, d }'
echo
grep -E "^(Verdict|Exit|rps=)" "$work/leakgate.out" || tail -5 "$work/leakgate.out"
echo "work folder: $work"
