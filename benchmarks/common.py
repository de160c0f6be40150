"""Shared helpers of the benchmark scripts: machine description, timing, output."""

import os
import pathlib
import platform
import time

from lsc import jsonfile
from lsc.jax_setup import cpu_ids

# where `write` puts results: benchmarks/results, or $LSC_BENCH_RESULTS (benchmarks/device.sh: one folder per run)
RESULTS_DIR = pathlib.Path(os.environ.get("LSC_BENCH_RESULTS") or pathlib.Path(__file__).parent / "results")


def machine() -> dict:
  """Where a benchmark ran: CPU (its name and, on Linux, its family and model, since one
  name covers several chips), core count, JAX platform and devices."""
  import jax
  ids = cpu_ids()
  cpu = ids.get("model name", platform.processor() or platform.machine())
  if "cpu family" in ids and "model" in ids:
    cpu += f" (family {ids['cpu family']} model {ids['model']})"
  return {"cpu": cpu, "cores": os.cpu_count(), "jax_platform": jax.default_backend(),
          "devices": [d.device_kind for d in jax.devices()], "jax": jax.__version__,
          "date": time.strftime("%Y-%m-%d")}


def best_time(fn, repeats: int) -> float:
  """Smallest wall time of `repeats` calls of fn() (which must block until done)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def write(name: str, payload: dict, table: str) -> pathlib.Path:
  """Writes results/<name>.json and results/<name>.md; returns the JSON path."""
  from lsc.distributed import on_main  # process 0 of a multi-process run writes
  RESULTS_DIR.mkdir(exist_ok=True)
  path = RESULTS_DIR / f"{name}.json"
  on_main(path.write_text, jsonfile.dumps(payload, indent=2))
  on_main((RESULTS_DIR / f"{name}.md").write_text, table + "\n")
  return path


def markdown_table(title: str, columns: list[str], rows: list[list[str]]) -> str:
  """`title`, a blank line, then a markdown table: the first column left-aligned, the
  rest right-aligned."""
  lines = [title, "", "| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)
