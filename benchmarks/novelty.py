"""Exact kNN novelty: lsc's blocked JAX kernel beside scikit-learn and plain NumPy.

  python -m benchmarks.novelty                     # N in {1e4, 5e4, 1e5}, D in {256, 1536}
  python -m benchmarks.novelty --sizes 1000000     # on a GPU

Each (method, N, D) runs in its own process, so its peak memory (max RSS, which
includes the ~0.3-0.5 GB of an idle Python + JAX/NumPy process) is its own.  Data are
standard normal, k = 10 neighbours excluding self; every method's distances are
compared with lsc's.  Needs scikit-learn (`pip install -e '.[bench]'`).
Writes benchmarks/results/novelty_<platform>.{json,md}.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

METHODS = ("lsc", "sklearn_brute", "sklearn_auto", "numpy")
K = 10


def data(n, d):
  return np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)


def numpy_knn(x, k, block=1024):
  """Plain NumPy brute force, blocked over rows: (N, k) distances ascending."""
  sq = (x * x).sum(1)
  out = np.empty((len(x), k), np.float32)
  for start in range(0, len(x), block):
    rows = x[start:start + block]
    d2 = sq[start:start + block, None] + sq[None] - 2.0 * rows @ x.T
    d2[np.arange(len(rows)), np.arange(start, start + len(rows))] = np.inf
    part = np.partition(d2, k, axis=1)[:, :k]
    out[start:start + block] = np.sqrt(np.maximum(np.sort(part, axis=1), 0))
  return out


def run_one(method, n, d):
  """Runs one method in this process; prints a JSON line with time and distances' digest."""
  x = data(n, d)
  if method == "lsc":
    from lsc import enable_compilation_cache, use_cpu_cores
    use_cpu_cores()
    enable_compilation_cache()
    import jax
    from lsc.novelty import knn
    start = time.perf_counter()
    jax.block_until_ready(knn(x, K))
    first = time.perf_counter() - start
    start = time.perf_counter()
    dist = np.asarray(jax.block_until_ready(knn(x, K))[0])
    seconds = time.perf_counter() - start
    extra = {"first_call_s": first, "device": jax.devices()[0].device_kind}
  elif method.startswith("sklearn"):
    from sklearn.neighbors import NearestNeighbors
    start = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=K + 1, algorithm="brute" if method == "sklearn_brute" else "auto").fit(x)
    dist, idx = nn.kneighbors(x)
    seconds = time.perf_counter() - start
    drop = idx == np.arange(n)[:, None]  # sklearn returns each point itself; drop it
    drop[~drop.any(1), -1] = True  # (or, where a duplicate displaced it, the farthest)
    dist = dist[~drop].reshape(n, K)
    extra = {"algorithm": nn._fit_method}
  else:
    start = time.perf_counter()
    dist = numpy_knn(x, K)
    seconds = time.perf_counter() - start
    extra = {}
  np.save(f"/tmp/lsc_novelty_{method}_{n}_{d}.npy", dist.astype(np.float32))
  peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KB
  print(json.dumps({"method": method, "n": n, "d": d, "seconds": seconds, "peak_rss_gb": peak_gb, **extra}))


def main(argv=None):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--sizes", default="10000,50000,100000")
  p.add_argument("--dims", default="256,1536")
  p.add_argument("--methods", default=",".join(METHODS))
  p.add_argument("--timeout", type=int, default=900, help="seconds per run")
  p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.one:
    return run_one(args.one[0], int(args.one[1]), int(args.one[2]))

  from benchmarks.common import machine, write
  info = machine()
  rows = []
  for d in (int(v) for v in args.dims.split(",")):
    for n in (int(v) for v in args.sizes.split(",")):
      for method in args.methods.split(","):
        try:
          done = subprocess.run([sys.executable, "-m", "benchmarks.novelty", "--one", method, str(n), str(d)],
                                capture_output=True, text=True, timeout=args.timeout)
          row = json.loads(done.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError):
          row = {"method": method, "n": n, "d": d, "seconds": None, "peak_rss_gb": None}
        rows.append(row)
        if row["seconds"] is not None and method != "lsc":
          ours = np.load(f"/tmp/lsc_novelty_lsc_{n}_{d}.npy")
          row["max_abs_diff_vs_lsc"] = float(np.abs(np.load(f"/tmp/lsc_novelty_{method}_{n}_{d}.npy") - ours).max())
        secs = "timeout" if row["seconds"] is None else f"{row['seconds']:.2f} s"
        print(f"N={n:<8} D={d:<5} {method:<14} {secs}", flush=True)

  lsc_time = {(r["n"], r["d"]): r["seconds"] for r in rows if r["method"] == "lsc"}
  lines = [f"Machine: {info['cpu']}, {info['cores']} cores; JAX {info['jax']} on {info['jax_platform']}; "
           f"{info['date']}. k = {K}, float32, self excluded.\n",
           "| N | D | method | seconds | time / lsc | peak RSS GB | max abs diff vs lsc |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    ratio = (r["seconds"] / lsc_time[(r["n"], r["d"])]) if r["seconds"] and lsc_time.get((r["n"], r["d"])) else None
    lines.append(f"| {r['n']:,} | {r['d']} | {r['method']}{' (' + r['algorithm'] + ')' if 'algorithm' in r else ''} | "
                 f"{'timeout' if r['seconds'] is None else format(r['seconds'], '.2f')} | "
                 f"{'' if ratio is None else format(ratio, '.2f') + 'x'} | "
                 f"{'' if r['peak_rss_gb'] is None else format(r['peak_rss_gb'], '.2f')} | "
                 f"{r.get('max_abs_diff_vs_lsc', '') if r['method'] != 'lsc' else ''} |")
  table = "\n".join(lines)
  path = write(f"novelty_{info['jax_platform']}", {"machine": info, "rows": rows}, table)
  print("\n" + table + f"\n\nwrote {path}")


if __name__ == "__main__":
  sys.exit(main())
