"""Exact kNN novelty: lsc's blocked JAX kernel beside scikit-learn and plain NumPy.

  python -m benchmarks.novelty                     # N in {1e4, 5e4, 1e5}, D in {256, 1536}
  python -m benchmarks.novelty --sizes 1000000 --methods lsc --calls 1 --blocks 512:4096,4096:32768  # a GPU

Each (method, N, D) runs in its own process, so its peak memory (max RSS, which
includes the ~0.3-0.5 GB of an idle Python + JAX/NumPy process) is its own.  Data are
standard normal, k = 10 neighbours excluding self; every method's distances are
compared with those of the first method that finished (lsc's, as listed).  lsc's time
is its second call (the first compiles) unless --calls 1, which includes compiling
where the persistent compilation cache does not hold the program yet; --blocks runs it
with other (row, column) tile sizes, one row each.  Needs scikit-learn
(`pip install -e '.[bench]'`).  Writes benchmarks/results/novelty_<platform>[_<tag>].{json,md}.
"""

import argparse
import json
import pathlib
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


def run_one(method, n, d, calls=2):
  """Runs one method in this process; prints a JSON line with time and distances' digest.
  method "lsc" or "lsc[R:C]" (row_block R, col_block C)."""
  x = data(n, d)
  if method.startswith("lsc"):
    from lsc import enable_compilation_cache, use_cpu_cores
    use_cpu_cores()
    enable_compilation_cache()
    import jax
    from lsc.novelty import knn
    blocks = tuple(int(v) for v in method[4:-1].split(":")) if "[" in method else ()
    times = []
    for _ in range(calls):  # the last call is timed
      start = time.perf_counter()
      dist = knn(x, K, *blocks)[0]
      times.append(time.perf_counter() - start)
    seconds = times[-1]
    extra = {"calls": calls, "first_call_s": times[0], "device": jax.devices()[0].device_kind}
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


def parse_blocks(spec: str, error) -> tuple[int, int]:
  """(row_block, col_block) from "R:C", both positive integers; error(message) otherwise."""
  parts = spec.split(":")
  if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
    error(f"--blocks: {spec!r} is not ROW_BLOCK:COL_BLOCK (two positive integers)")
  return int(parts[0]), int(parts[1])


def main(argv=None):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--sizes", default="10000,50000,100000")
  p.add_argument("--dims", default="256,1536")
  p.add_argument("--methods", default=",".join(METHODS))
  p.add_argument("--timeout", type=int, default=900, help="seconds per run")
  p.add_argument("--calls", type=int, default=2, choices=(1, 2),
                 help="lsc's calls per run, the last one timed (1: compiling included, unless cached)")
  p.add_argument("--blocks", default="", help="lsc's (row_block:col_block) tiles, e.g. 512:4096,4096:32768 "
                 "(default: lsc's own)")
  p.add_argument("--tag", default="", help="suffix of the results' file name (default: none)")
  p.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.one:
    return run_one(args.one[0], int(args.one[1]), int(args.one[2]), int(args.one[3]))
  blocks = [parse_blocks(b, p.error) for b in args.blocks.split(",")] if args.blocks else []
  methods = [m for name in args.methods.split(",")
             for m in ([f"lsc[{r}:{c}]" for r, c in blocks] if name == "lsc" and blocks else [name])]

  from benchmarks.common import machine, write
  info = machine()
  rows = []
  for d in (int(v) for v in args.dims.split(",")):
    for n in (int(v) for v in args.sizes.split(",")):
      reference = None  # the first method that finished: the others' distances are compared with its
      for method in methods:
        result = pathlib.Path(f"/tmp/lsc_novelty_{method}_{n}_{d}.npy")
        result.unlink(missing_ok=True)  # never compare with an earlier run's file
        row = {"method": method, "n": n, "d": d, "seconds": None, "peak_rss_gb": None, "failed": "timeout"}
        try:
          done = subprocess.run([sys.executable, "-m", "benchmarks.novelty", "--one", method, str(n), str(d),
                                 str(args.calls)],
                                capture_output=True, text=True, timeout=args.timeout)
          if done.returncode == 0:
            row = json.loads(done.stdout.strip().splitlines()[-1])
          else:  # a crash (out of memory, a bad tile) is not a timeout: say what it printed last
            last = (done.stderr.strip().splitlines() or [""])[-1][:200].replace("|", "/")
            row["failed"] = f"exit {done.returncode}: {last}"
        except subprocess.TimeoutExpired:
          pass
        rows.append(row)
        if row["seconds"] is not None and reference is None:
          reference = method
          row["reference"] = True
        elif row["seconds"] is not None:
          ours = np.load(f"/tmp/lsc_novelty_{reference}_{n}_{d}.npy")
          row["max_abs_diff_vs_reference"] = float(np.abs(np.load(result) - ours).max())
        secs = row["failed"] if row["seconds"] is None else f"{row['seconds']:.2f} s"
        print(f"N={n:<8} D={d:<5} {method:<18} {secs}", flush=True)

  ref_time = {(r["n"], r["d"]): r["seconds"] for r in rows if r.get("reference")}
  lines = [f"Machine: {info['cpu']}, {info['cores']} cores; JAX {info['jax']} on {info['jax_platform']}; "
           f"{info['date']}. k = {K}, float32, self excluded.\n",
           "| N | D | method | seconds | time / reference | peak RSS GB | max abs diff vs reference |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    ratio = (r["seconds"] / ref_time[(r["n"], r["d"])]) if r["seconds"] and ref_time.get((r["n"], r["d"])) else None
    lines.append(f"| {r['n']:,} | {r['d']} | {r['method']}{' (' + r['algorithm'] + ')' if 'algorithm' in r else ''} | "
                 f"{r['failed'] if r['seconds'] is None else format(r['seconds'], '.2f')} | "
                 f"{'' if ratio is None else format(ratio, '.2f') + 'x'} | "
                 f"{'' if r['peak_rss_gb'] is None else format(r['peak_rss_gb'], '.2f')} | "
                 f"{'(reference)' if r.get('reference') else r.get('max_abs_diff_vs_reference', '')} |")
  table = "\n".join(lines)
  path = write(f"novelty_{info['jax_platform']}{'_' + args.tag if args.tag else ''}", {"machine": info, "rows": rows}, table)
  print("\n" + table + f"\n\nwrote {path}")


if __name__ == "__main__":
  sys.exit(main())
