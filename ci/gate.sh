#!/usr/bin/env bash
# Pre-merge leak gate: build leakgate, run one scenario, keep its run folder, exit with its code.
#
#   ci/gate.sh scenarios/rest-unbounded-cache.toml [extra leakgate flags...]
#
# Environment: RESULTS_DIR (default results), and on GitHub Actions GITHUB_STEP_SUMMARY gets the
# verdict appended. The exit code is leakgate's (0 pass, 1 gate failed, 2 inconclusive,
# 3 target died, 4 driver fell behind, 64/65 usage or scenario error).
set -uo pipefail
cd "$(dirname "$0")/.."

scenario=${1:?usage: ci/gate.sh SCENARIO.toml [leakgate run flags...]}
shift
results=${RESULTS_DIR:-results}

cargo build --release --locked -p leakgate -p leakgate-targets || exit 64
./target/release/leakgate run "$scenario" --results-dir "$results" --no-progress "$@"
code=$?

run_dir=$(ls -1dt "$results"/*/ 2>/dev/null | head -n 1)
echo "run folder: ${run_dir:-none}"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -n "$run_dir" ]; then
  if [ -f "$run_dir/summary.md" ]; then
    cat "$run_dir/summary.md" >> "$GITHUB_STEP_SUMMARY"
  else
    printf '### leakgate: %s\nexit code %s, run folder `%s`\n' "$scenario" "$code" "$run_dir" >> "$GITHUB_STEP_SUMMARY"
  fi
fi
exit "$code"
