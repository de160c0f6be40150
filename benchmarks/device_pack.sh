#!/usr/bin/env bash
# Packs what benchmarks/device.sh needs on a GPU machine that has JAX (CUDA) but no network
# and takes at most ~64 MB per call: the pinned wheels that machine lacks (.whl, 38 MB) and
# warp-lang from this checkout's .venv without its CPU compiler, examples and tests
# (xz, ~79 MB), split in two (.wp1 travels with the wheels, .wp2 alone); it ends by
# printing the two device calls.  The machine must stay up between them: /tmp/site and
# /tmp/w.part1 are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info
for d in .whl .wp1 .wp2; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
rm -rf .whl .wp1 .wp2 && mkdir -p .whl .wp1 .wp2
pins=$(grep -iE '^(brax|mujoco|mujoco-mjx|evosax|flax|optax|chex|orbax-checkpoint|flask|flask-cors|blinker|itsdangerous|jaxopt|ml_collections|tensorboardX|trimesh|glfw|websockets|dotmap|gymnasium|Farama-Notifications)==' requirements.lock)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $pins
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
(cd "$site" && tar cf - --exclude=warp/bin/warp-clang.so --exclude=warp/examples --exclude=warp/tests \
  --exclude=__pycache__ warp warp_lang-*.dist-info) | xz -9 -T0 > /tmp/warp.tar.xz
head -c 20000000 /tmp/warp.tar.xz > .wp1/w.part1
tail -c +20000001 /tmp/warp.tar.xz > .wp2/w.part2
du -sh .whl .wp1 .wp2
cat <<'CALLS'
Call 1 (carry .whl .wp1; novelty needs no Warp):
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && cp .wp1/* /tmp/ && PYTHONPATH=/tmp/site PY=python3 STEPS="novelty novelty_wide" ARCHIVE=$OUT/d1.tgz benchmarks/device.sh /tmp/d1
Call 2 (carry .wp2):
  cat /tmp/w.part1 .wp2/w.part2 | python3 -c "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|xz').extractall('/tmp/site')" && PYTHONPATH=/tmp/site PY=python3 STEPS="rollout_warp rollout_mjx pipeline" ARCHIVE=$OUT/d2.tgz benchmarks/device.sh /tmp/d2
CALLS
