#!/usr/bin/env bash
# gRPC benchmark: leakgate against h2load posting the same length-prefixed gRPC frame to the
# reference grpc-target (loopback only; target on CPU 0, generator on CPU 1).
#
#   bash harness/benches/grpc.sh            # max throughput 10 s each, then 5 000 calls/s for 30 s
#   STREAMS=8 bash harness/benches/grpc.sh  # multiplexed: h2load -m 8, leakgate's own client, 8 streams per connection
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client; }
[ -x /usr/bin/time ] || apt-get install -y -qq time
cargo build --release --locked -p leakgate -p leakgate-targets --manifest-path "$repo/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d /tmp/leakgate-grpc-bench.XXXXXX)
conns=${CONNS:-50}; streams=${STREAMS:-1}; secs=${DURATION:-10}; rate=${RATE:-5000}; rate_secs=${RATE_DURATION:-30}

taskset -c 0 "$bin/grpc-target" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 > "$work/target.out" &
target=$!
trap 'kill $target 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^listening grpc=' "$work/target.out" && break; sleep 0.1; done
addr=$(sed -n 's/^listening grpc=//p' "$work/target.out")

# GetRequest{key: "k"}: field 1, length 1, "k"; behind the 5-byte gRPC prefix.
printf '\x00\x00\x00\x00\x03\x0a\x01k' > "$work/frame.bin"
scenario() { # $1 = rate value
  cat > "$work/bench.toml" <<EOT
[load]
protocol = "grpc"
base_url = "http://$addr"
connections = $conns
streams_per_connection = $streams
[load.grpc]
protos = ["$repo/targets/proto/leakgate/target/v1/target.proto"]
import_paths = ["$repo/targets/proto"]
[[load.phases]]
duration = "${2}s"
rate = $1
[[load.requests]]
path = "leakgate.target.v1.Target/Get"
body = '{"key": "k"}'
[gates.latency]
error_rate = 0.01
EOT
}
measure() { # name command...
  local name=$1; shift
  /usr/bin/time -f "$name cpu_s=%U+%S rss_kb=%M" taskset -c 1 "$@" > "$work/$name.out" 2> "$work/$name.err" || true
  tail -n 1 "$work/$name.err"
}

h2=(h2load -c "$conns" -m "$streams" -d "$work/frame.bin" -H 'content-type: application/grpc' -H 'te: trailers')
echo "== max throughput, $secs s, $conns connections, $streams stream(s) each"
measure h2load-max "${h2[@]}" -D "$secs" "http://$addr/leakgate.target.v1.Target/Get"
grep -E "^finished in|requests:" "$work/h2load-max.out" || true
scenario '"max"' "$secs"
measure leakgate-max "$bin/leakgate" run "$work/bench.toml" --no-progress -q --results-dir "$work/results"
grep -E "^rps=" "$work/leakgate-max.out" || true

echo "== fixed $rate calls/s for $rate_secs s"
measure h2load-rate "${h2[@]}" -D "$rate_secs" --rps $(( (rate + conns - 1) / conns )) "http://$addr/leakgate.target.v1.Target/Get"
grep -E "^finished in|requests:" "$work/h2load-rate.out" || true
scenario "$rate" "$rate_secs"
measure leakgate-rate "$bin/leakgate" run "$work/bench.toml" --no-progress -q --results-dir "$work/results"
grep -E "^rps=|planned|status" "$work/leakgate-rate.out" || true
echo "raw outputs in $work"
