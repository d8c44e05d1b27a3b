#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other, and prints a table of
# executions and crashes per target. Usage: fuzz/run.sh [seconds per target] [target...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). The fuzz targets need nightly-only
# compiler flags (sanitizers, coverage); RUSTC_BOOTSTRAP=1 lets the stable toolchain take
# them. The corpus grows in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>); a crash
# leaves its input in fuzz/artifacts/<target>/ and makes the script exit 1.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

cargo fuzz build >/dev/null

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
printf '%-16s %8s %14s %10s %8s\n' target seconds executions exec/s crashes
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  before=$(find "artifacts/$target" -type f | wc -l)
  status=0
  # -timeout: one input taking 10 s is a hang, and counts as a crash.
  cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    >"$logs/$target.log" 2>&1 || status=$?
  runs=$(awk -F: '/stat::number_of_executed_units/ {gsub(/ /, "", $NF); print $NF}' "$logs/$target.log" | tail -1)
  rate=$(awk -F: '/stat::average_exec_per_sec/ {gsub(/ /, "", $NF); print $NF}' "$logs/$target.log" | tail -1)
  after=$(find "artifacts/$target" -type f | wc -l)
  crashes=$((after - before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  printf '%-16s %8s %14s %10s %8s\n' "$target" "$seconds" "${runs:-?}" "${rate:-?}" "$crashes"
  if [ "$crashes" -ne 0 ]; then
    failed=1
    echo "--- $target: last lines of its log (inputs in fuzz/artifacts/$target/)"
    tail -n 40 "$logs/$target.log"
  fi
done
exit "$failed"
