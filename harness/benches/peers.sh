#!/usr/bin/env bash
# Benchmark leakgate side by side with wrk and oha against one local nginx (loopback only),
# using the shared peers script next to this repository (../shared/bench/peers.sh).
#
#   bash harness/benches/peers.sh            # small + 64k + rate 5000, then rate 20000
#   TOOLS="wrk oha" REPEATS=1 bash harness/benches/peers.sh
#
# Installs missing peers from the registries (Debian: nginx, wrk; crates.io: oha). Prints the
# peers script's tables; raw outputs stay in its results folder.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
peers=${PEERS_SH:-$repo/../shared/bench/peers.sh}
[ -f "$peers" ] || { echo "peers script not found at $peers (set PEERS_SH)" >&2; exit 64; }

need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx)
command -v wrk >/dev/null || need_apt+=(wrk)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
command -v oha >/dev/null || cargo install oha --locked

cargo build --release --locked -p leakgate --manifest-path "$repo/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$repo/target}/release/leakgate
out=$(mktemp -d /tmp/leakgate-bench.XXXXXX)
export HARNESS_NAME=leakgate
export HARNESS_CMD="$bin run {url} -c {conns} -d {duration}s --no-progress -q --results-dir $out"
export HARNESS_RATE_CMD="$bin run {url} -c {conns} -d {duration}s --rate {rate} --no-progress -q --results-dir $out"
export TOOLS=${TOOLS:-"wrk oha"}

bash "$peers"
# The high fixed rate: leakgate and oha (wrk has no rate mode).
RATE=${HIGH_RATE:-20000} TESTS=rate TOOLS="oha" bash "$peers"
