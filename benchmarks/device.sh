#!/usr/bin/env bash
# One GPU session's measurements (issue 16), in under 10 minutes on one GPU, every result
# as JSON + markdown under one folder:
#   rollout     halfcheetah and hopper on MJX, JAX and Warp implementations (backends mjx,
#               mjx_warp), at N = 8,192 and 32,768 (1,000-step episodes)
#   novelty     exact kNN novelty of 10^6 descriptors of 256 and of 1,536 numbers
#   pipeline    the `paper` Mountain Car preset on one task (height) with the three PGPE methods
#
#   benchmarks/device.sh [OUT]          # OUT: default $OUT (the device tool's) or runs/device
#   benchmarks/device.sh OUT smoke      # the same steps at toy sizes: checks the script on a CPU
#
# Each step runs under its own timeout, so one that overruns leaves the others' results.
# Warp is measured where warp-lang is installed or installable (pip install -e '.[warp]';
# a lent machine without network needs it preinstalled: the package is ~390 MB);
# otherwise the rollout step measures mjx alone and says so in steps.txt.  Warp first,
# one timed repeat: at N = 32,768 an mjx halfcheetah run alone takes ~2 min on an H200.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-runs/device}}
MODE=${2:-full}
mkdir -p "$OUT"
export LSC_BENCH_RESULTS="$OUT"
PY=${PY:-python}
if ! $PY -c "import lsc, brax, evosax" 2>/dev/null; then  # a bare machine: the package and its pins
  $PY -m pip install -q -e . > "$OUT/install.log" 2>&1 || { echo "install failed: $OUT/install.log"; exit 1; }
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"; } > "$OUT/card.txt"
$PY -c "import jax; print(jax.__version__, jax.devices())" >> "$OUT/card.txt" 2>&1
BACKENDS=mjx_warp,mjx
if ! $PY -c "import warp" 2>/dev/null && ! $PY -m pip install -q --retries 1 --timeout 10 -e '.[warp]' > "$OUT/install_warp.log" 2>&1; then
  BACKENDS=mjx
  echo "warp-lang not installed (see install_warp.log): rollout measures mjx only" | tee -a "$OUT/steps.txt"
fi

if [ "$MODE" = smoke ]; then
  ROLLOUT="--envs halfcheetah --backends spring,${BACKENDS%,mjx} --sizes 64 --brax-steps 50 --mjx-max-n 64"
  NOVELTY="--sizes 20000 --dims 256"
  PIPELINE="--preset smoke"
else
  ROLLOUT="--envs halfcheetah,hopper --backends $BACKENDS --sizes 8192,32768 --brax-steps 1000"
  NOVELTY="--sizes 1000000 --dims 256,1536"
  PIPELINE="--preset paper --tasks height"
fi
step() {  # name, timeout (s), command...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $?, $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
}
step rollout 230 $PY -m benchmarks.rollout $ROLLOUT --gym-steps 0 --repeats 1
step novelty 150 $PY -m benchmarks.novelty $NOVELTY --methods lsc --timeout 140
step pipeline 200 $PY -m experiments.mountain_car $PIPELINE --methods latent_pgpe,latent_then_param,param_pgpe \
  --out "$OUT/mountain_car-paper"
cp "$OUT"/mountain_car-paper/summary.md "$OUT/pipeline_summary.md" 2>/dev/null
ls "$OUT"
