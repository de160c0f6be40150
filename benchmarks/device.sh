#!/usr/bin/env bash
# One GPU session's measurements (issue 16), every result as JSON + markdown (and each
# step's log) under one folder.  On an H200 (2026-12-04, benchmarks/results/device_h200/):
# rollout_warp 149 s, rollout_mjx 118 s, pipeline 141 s; the novelty steps are limited to
# 360 + 160 s (not yet run in this form).  Two calls of under 10 minutes: e.g.
# STEPS="novelty novelty_wide", then STEPS="rollout_warp rollout_mjx pipeline".
#   rollout_warp  halfcheetah and hopper on MuJoCo Warp (backend mjx_warp), N = 8,192 to 65,536
#   rollout_mjx   halfcheetah on MJX's JAX implementation (backend mjx), N = 32,768
#   novelty       exact kNN novelty of 10^6 descriptors of 256 numbers, three tile sizes
#   novelty_wide  the same of 1,536 numbers, the largest tiles (each one call, compile included)
#   pipeline      the `paper` Mountain Car preset on one task (height) with the three PGPE methods
# Rollouts run 200-step episodes (throughput is per step; compile time is reported apart).
#
#   benchmarks/device.sh [OUT]                   # every step; OUT: default $OUT or runs/device
#   benchmarks/device.sh OUT smoke               # the same steps at toy sizes: checks the script on a CPU
#   STEPS="novelty novelty_wide" benchmarks/device.sh OUT   # some steps (e.g. to split device calls)
#   ARCHIVE=FILE.tgz benchmarks/device.sh OUT    # also packs OUT's files under 2 MB into FILE.tgz
#
# Each step runs under its own timeout, so one that overruns leaves the others' results
# (and its log, which prints every measurement as it is made).  A bare machine gets the
# package with `pip install -e .`; rollout_warp needs warp-lang (pip install -e '.[warp]',
# ~150 MB): where it is neither installed nor installable that step is skipped and
# steps.txt says so.  A machine without network needs the packages carried:
# benchmarks/device_pack.sh packs them and shows the two calls.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-runs/device}}
MODE=${2:-full}
ALL_STEPS="rollout_warp rollout_mjx novelty novelty_wide pipeline"
STEPS=${STEPS:-$ALL_STEPS}
for name in $STEPS; do
  [[ " $ALL_STEPS " == *" $name "* ]] || { echo "unknown step $name; steps: $ALL_STEPS (space-separated)"; exit 2; }
done
mkdir -p "$OUT"
export LSC_BENCH_RESULTS="$OUT" PYTHONUNBUFFERED=1
PY=${PY:-python}
if ! $PY -c "import lsc, brax, evosax" 2>/dev/null; then  # a bare machine: the package and its pins
  $PY -m pip install -q -e . > "$OUT/install.log" 2>&1 || { echo "install failed: $OUT/install.log"; exit 1; }
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"; } > "$OUT/card.txt"
$PY -c "import jax; print(jax.__version__, jax.devices())" >> "$OUT/card.txt" 2>&1
if [[ " $STEPS " == *" rollout_warp "* ]] && ! $PY -c "import warp" 2>/dev/null \
    && ! $PY -m pip install -q --retries 1 --timeout 10 -e '.[warp]' > "$OUT/install_warp.log" 2>&1; then
  STEPS=${STEPS/rollout_warp/}
  echo "rollout_warp: skipped, warp-lang not installed (see install_warp.log)" | tee -a "$OUT/steps.txt"
fi

if [ "$MODE" = smoke ]; then
  WARP="--envs halfcheetah --sizes 64 --brax-steps 50 --mjx-max-n 64"
  MJX="--envs halfcheetah --backends mjx --sizes 8 --brax-steps 20 --mjx-max-n 8"
  NOVELTY="--sizes 20000 --dims 256 --blocks 512:4096,64:1024 --timeout 60"
  NOVELTY_WIDE="--sizes 20000 --dims 1536 --blocks 64:1024 --timeout 60"
  PIPELINE="--preset smoke"
else
  WARP="--envs halfcheetah,hopper --sizes 8192,32768,65536 --brax-steps 200"
  MJX="--envs halfcheetah --backends mjx --sizes 32768 --brax-steps 200"
  NOVELTY="--sizes 1000000 --dims 256 --blocks 512:4096,2048:16384,4096:32768 --timeout 120"
  NOVELTY_WIDE="--sizes 1000000 --dims 1536 --blocks 4096:32768 --timeout 150"
  PIPELINE="--preset paper --tasks height"
fi
step() {  # name, timeout (s), command...
  local name=$1 limit=$2; shift 2
  [[ " $STEPS " == *" $name "* ]] || return 0
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $?, $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
}
step rollout_warp 200 $PY -m benchmarks.rollout $WARP --backends mjx_warp --gym-steps 0 --repeats 1 --tag warp
step rollout_mjx 160 $PY -m benchmarks.rollout $MJX --gym-steps 0 --repeats 1 --tag mjx
step novelty 360 $PY -m benchmarks.novelty $NOVELTY --methods lsc --calls 1 --tag d256
step novelty_wide 160 $PY -m benchmarks.novelty $NOVELTY_WIDE --methods lsc --calls 1 --tag d1536
step pipeline 180 $PY -m experiments.mountain_car $PIPELINE --methods latent_pgpe,latent_then_param,param_pgpe \
  --out "$OUT/mountain_car-paper"
[[ " $STEPS " != *" pipeline "* ]] || cp "$OUT"/mountain_car-paper/summary.md "$OUT/pipeline_summary.md" 2>/dev/null
if [ -n "${ARCHIVE:-}" ]; then  # e.g. where only a few files come back from the machine
  (cd "$(dirname "$OUT")" && find "$(basename "$OUT")" -type f -size -2M | tar czf "$ARCHIVE" -T -)
fi
ls "$OUT"
