#!/usr/bin/env bash
# Rebuilds the stored run folders that harness/tests/reports.rs reads: three real 25 s runs of
# the shipped rest-target on loopback, kept without their heap profiles.
#
#   clean  rest-cache-fixed                      exit 0
#   leaky  quickstart (unbounded cache)          exit 1 on rss_bytes and cache_entries
#   slow   rest-cache-fixed, target --delay 5ms  exit 0 on its own; p99 regressed against clean
#
#   bash harness/tests/data/runs/regen.sh             # after a change to summary.json or samples
#   bash harness/tests/data/runs/regen.sh slow leaky  # only those runs
#   bash harness/tests/data/runs/regen.sh reports     # after a change to a report's rendering only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
cargo build --release --locked -p leakgate -p leakgate-targets --manifest-path "$repo/Cargo.toml"
lg=$repo/target/release/leakgate

if [ "${1:-}" = reports ]; then
  for run in clean leaky slow; do "$lg" report "$here/$run" > /dev/null; done
  exit 0
fi

work=$(mktemp -d /tmp/leakgate-fixtures.XXXXXX)
trap 'rm -rf "$work"' EXIT
record() { # name scenario expected-exit [--set ...]
  local name=$1 scenario=$2 expected=$3; shift 3
  local code=0
  (cd "$repo" && "$lg" run "scenarios/$scenario.toml" --no-progress -q --results-dir "$work/$name" "$@") || code=$?
  [ "$code" = "$expected" ] || { echo "$name: exit $code, expected $expected" >&2; exit 1; }
  rm -rf "${here:?}/$name"
  mv "$work/$name"/*/ "$here/$name"
  rm -f "$here/$name"/*.pb.gz
}
runs=("$@"); [ ${#runs[@]} -gt 0 ] || runs=(clean leaky slow)
for run in "${runs[@]}"; do
  case $run in
    clean) record clean rest-cache-fixed 0 ;;
    leaky) record leaky quickstart 1 ;;
    # Arguments 7 and 8 of rest-cache-fixed's command are `--leak-bytes 1024` (the default).
    slow) record slow rest-cache-fixed 0 --set target.command.7=--delay --set target.command.8=5ms ;;
    *) echo "unknown run $run (clean, leaky, slow, reports)" >&2; exit 64 ;;
  esac
done
# Reports are rebuilt after the move so their folder names are the fixtures' own.
for run in clean leaky slow; do "$lg" report "$here/$run" > /dev/null; done
ls -l "$here"/*/
