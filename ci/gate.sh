#!/usr/bin/env bash
# Pre-merge leak gate: build leakgate, run one scenario, keep its run folder (summary.json,
# samples.ndjson, junit.xml, summary.md, report.html, target logs), exit with its code.
#
#   ci/gate.sh scenarios/rest-bounded-cache.toml [extra leakgate run flags...]
#
# Environment:
#   RESULTS_DIR    parent of the run folder (default results)
#   BASELINE_RUN   a stored run folder of the same scenario (e.g. the main branch's artifact):
#                  when set, `leakgate compare` also gates p99 and slopes against it
#   P99_TOLERANCE  allowed p99 rise for the compare (default 10%)
#   SLOPE_TOLERANCE  allowed rise of a slope already over its limit on the baseline (default 10%)
#   GITHUB_STEP_SUMMARY  (GitHub Actions) gets summary.md and the comparison appended
# The exit code is leakgate's (0 pass, 1 gate failed or regressed, 2 inconclusive, 3 target died,
# 4 driver fell behind, 64/65 usage or input error). The run folder's path is written to
# $RESULTS_DIR/latest so later CI steps can find junit.xml.
set -uo pipefail
cd "$(dirname "$0")/.."

scenario=${1:?usage: ci/gate.sh SCENARIO.toml [leakgate run flags...]}
shift
results=${RESULTS_DIR:-results}
mkdir -p "$results"

cargo build --release --locked -p leakgate -p leakgate-targets || exit 64
lg=./target/release/leakgate
$lg run "$scenario" --results-dir "$results" --no-progress "$@"
code=$?

run_dir=$(ls -1dt "$results"/*/ 2>/dev/null | head -n 1)
run_dir=${run_dir%/}
echo "run folder: ${run_dir:-none}"
[ -n "$run_dir" ] && echo "$run_dir" > "$results/latest"
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
if [ -n "$run_dir" ] && [ -f "$run_dir/summary.md" ]; then
  cat "$run_dir/summary.md" >> "$summary"
else
  printf '### leakgate: %s\nexit code %s, no reports written\n' "$scenario" "$code" >> "$summary"
fi

if [ -n "${BASELINE_RUN:-}" ] && [ -n "$run_dir" ]; then
  if [ -f "$BASELINE_RUN/summary.json" ]; then
    $lg compare "$BASELINE_RUN" "$run_dir" --p99-tolerance "${P99_TOLERANCE:-10%}" \
      --slope-tolerance "${SLOPE_TOLERANCE:-10%}" | tee "$run_dir/compare.md"
    cmp=${PIPESTATUS[0]}
    cat "$run_dir/compare.md" >> "$summary"
    # A regression fails a run that passed on its own; a worse own result keeps its code.
    if [ "$code" = 0 ] && [ "$cmp" != 0 ]; then code=$cmp; fi
  else
    echo "BASELINE_RUN=$BASELINE_RUN has no summary.json; compare skipped" >&2
  fi
fi
exit "$code"
