#!/usr/bin/env bash
# The GPU checks of one round in one call (device time is scarce): environment, the Kou grid end
# to end, W1/W2 (and the Kou grid's breakdown) by matmul precision with W2's memory traffic, the
# report's large-d and full-size sweeps, then the Gram engine's W3. Each step runs under a time
# limit within BUDGET seconds in all; the sweeps resume if the script is run again on the same
# machine. Logs, JSON and a tarball of the sweeps' results go under $OUT.
#   OUT=results/gpu BUDGET=570 [STEPS="kou regime"] bash benchmarks/gpu_round.sh
# (the device tool returns at most 8 files: everything is also in logs.tgz and results.tgz)
set -uo pipefail
OUT=${OUT:-results/gpu}
BUDGET=${BUDGET:-570}
mkdir -p "$OUT" results
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
START=$(date +%s)
log() { echo "=== $(date +%T) $*" | tee -a "$OUT/steps.log"; }
step() {  # step SECONDS NAME COMMAND...: at most SECONDS, and never past the budget
  local limit=$1 name=$2; shift 2
  local left=$((BUDGET - 15 - ($(date +%s) - START)))
  ((left < limit)) && limit=$left
  if ((limit < 10)); then log "$name: skipped (budget spent)"; return; fi
  log "$name (limit ${limit} s): $*"
  local t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  log "$name: exit $rc after $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
  tail -n 25 "$OUT/$name.log"
}
STEPS=${STEPS:-info kou bench bench_tf32 bench_bf16 regime claims gram}
want() { [[ " $STEPS " == *" $1 "* ]]; }
want info && step 60 info python -m jaxprune.cli info
want info && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/info.log" 2>&1
want kou && step 120 kou python sweeps/kou2023_heatmap.py --out results/kou2023_heatmap
want bench && step 150 bench python benchmarks/bench.py --no-torch --only W1,W2,Kou --kou-dims 100 \
  --json "$OUT/bench-float32.json"
want bench_tf32 && step 60 bench_tf32 python benchmarks/bench.py --no-torch --only W1,W2 \
  --precision tensorfloat32 --json "$OUT/bench-tf32.json"
want bench_bf16 && step 60 bench_bf16 python benchmarks/bench.py --no-torch --only W1,W2 \
  --precision bfloat16 --json "$OUT/bench-bf16.json"
want regime && step 300 regime python sweeps/theory_regime.py --out results/theory_regime
want claims && step 300 claims python sweeps/paper_claims.py --seeds 32 --out results/paper_claims
want gram && step 60 gram python benchmarks/gram.py --full --repeats 2 --json "$OUT/gram.json" \
  --plot "$OUT/gram_d_scan.png"
ls results | tee -a "$OUT/steps.log"
tar czf "$OUT/results.tgz" $(ls -d results/kou2023_heatmap results/theory_regime \
  results/paper_claims 2>/dev/null)
tar czf "$OUT/logs.tgz" -C "$OUT" $(cd "$OUT" && ls *.log *.json *.png 2>/dev/null)
ls -la "$OUT"
