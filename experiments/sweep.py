"""Tuning sweeps on selection seeds: every PGPE method tuned the same way.

  python -m experiments.sweep halfcheetah --method latent_pgpe \
      --grid methods.latent_pgpe.std_init=0.1,0.3,1.0 --grid methods.latent_pgpe.lr=0.03,0.1,0.3,1.0 \
      --from runs/halfcheetah-cpu
  python -m experiments.sweep halfcheetah --method latent_cmaes --grid methods.latent_cmaes.std_init=0.1,0.3,1.0

Each cell of the grid (the product of the `--grid KEY=V1,V2,...` settings) is the env's
pipeline (`--preset`, default cpu, then `--set`) run for `--method` alone with those
settings, on the SELECTION seeds: search seeds from SELECTION_SEED and final evaluation
keys from SELECTION_EVAL_SEED, which no reported table uses (they use seeds 0, 1, ...
and evaluation seed 2,000,003), so choosing the best cell does not favour the method
on the numbers it is then reported with.  The dataset and autoencoder are reward-free
and shared: every cell's run directory (OUT/<method>/<cell>) starts from a copy of the
first finished cell's (or --from RUN's, when its settings match) and the pipeline
reuses them.  Resumable: a finished cell is reused.

Per task, a cell scores the mean final return over seeds; the best cell is the one of
lowest mean rank over the tasks (a rank does not depend on a task's reward scale).
Writes experiments/results/sweep_<env>_<method>[_<tag>].{md,json}.

The sweeps committed before methods had their own settings name the PGPE settings by
their old keys (`search.latent_std_init`, ...: `LEGACY_KEYS`); the commands they record
still run, and name their cells as they did.

With few seeds the best mean can be one lucky seed.  A second stage reruns the best
cells of earlier sweeps on fresh selection seeds, so their score does not carry the
luck that chose them:

  python -m experiments.sweep halfcheetah --method latent_pgpe --top 3 \
      --cells-from sweep_halfcheetah_latent_pgpe --seed 1002 --set search.seeds=4 --tag confirm --from RUN
"""

import argparse
import itertools
import json
import pathlib
import shutil
import sys
import time

import numpy as np

from experiments.presets import RESULTS
from lsc import jsonfile
from lsc.jax_setup import release_executables
from lsc.keys import SELECTION_EVAL_SEED, SELECTION_SEED
from lsc.validate import integer

SHARED = ("dataset", "autoencoder")  # the reward-free stages every cell reuses
# the settings' keys before each method had its own (`methods.<name>.*`), in the commands
# and cells of the committed sweeps
LEGACY_KEYS = {"search.latent_std_init": "methods.latent_pgpe.std_init", "search.latent_lr": "methods.latent_pgpe.lr",
               "search.param_std_init": "methods.param_pgpe.std_init", "search.param_lr": "methods.param_pgpe.lr",
               "search.latent_fraction": "methods.latent_then_param.fraction"}


def setting(key: str) -> str:
  """The settings key a grid key names (a legacy key's new name)."""
  return LEGACY_KEYS.get(key, key)


def parse_grid(items: list[str]) -> dict[str, list]:
  """["search.lr=0.1,0.3", ...] -> {"search.lr": [0.1, 0.3], ...} (values parsed as YAML)."""
  import yaml
  grid = {}
  for item in items:
    key, sep, values = item.partition("=")
    if not sep or not key or not values:
      raise ValueError(f"--grid: expected KEY=V1,V2,... (e.g. methods.latent_pgpe.lr=0.03,0.1), got {item!r}")
    if key in grid:
      raise ValueError(f"--grid: {key} given twice")
    grid[key] = [yaml.safe_load(v) for v in values.split(",")]
  if not grid:
    raise ValueError("name at least one --grid KEY=V1,V2,...")
  return grid


def cell_name(cell: dict) -> str:
  return ",".join(f"{key.removeprefix('search.').removeprefix('methods.')}={value}" for key, value in cell.items())


def check_grid(grid: list[str], config, method: str) -> None:
  """ValueError for a search.* or methods.* key that `method`'s runs do not read (its
  cells would all be the same run)."""
  from lsc.pipeline import run_settings
  from lsc.methods import get_method
  own = {method, *getattr(get_method(method), "phases", ())}  # a sequence reads its phases' settings
  read = [f"search.{k}" for k in run_settings(config.search, method)]
  unread = [key for key in grid if (setting(key).startswith("search.") and setting(key) not in read)
            or (setting(key).startswith("methods.") and setting(key).split(".")[1] not in own)]
  if unread:
    raise ValueError(f"--grid {', '.join(unread)}: {method} does not read it; it reads {', '.join(read)} and "
                     f"methods.{{{', '.join(sorted(own))}}}.*")


def seed_from(source: pathlib.Path, target: pathlib.Path) -> None:
  """Copies the shared stages of run directory `source` into a new `target` (the
  pipeline reuses them where their settings match and recomputes them otherwise)."""
  if target.exists() or not source.is_dir():
    return
  target.mkdir(parents=True)
  for stage in SHARED:
    if (source / stage).is_dir():
      shutil.copytree(source / stage, target / stage)


def rank_cells(rows: list[dict]) -> dict[str, float]:
  """{cell: mean rank over tasks} (1 = best; ties share the mean rank) of a sweep's
  rows, each {"cell", "tasks": {task: {"mean": mean final return}}}."""
  from scipy.stats import rankdata
  scores = {row["cell"]: {t: v["mean"] for t, v in row["tasks"].items()} for row in rows}
  cells = list(scores)
  tasks = list(next(iter(scores.values())))
  ranks = np.stack([rankdata([-scores[c][t] for c in cells]) for t in tasks])  # (T, cells)
  return dict(zip(cells, ranks.mean(axis=0).tolist()))


def top_cells(stems: list[str], k: int) -> list[dict]:
  """The settings of the `k` cells of lowest mean rank over the rows of the earlier
  sweeps' results `stems` (RESULTS/<stem>.json, ranked together; a cell in several
  files counts once)."""
  rows = {}
  for stem in stems:
    path = RESULTS / f"{stem}.json"
    if not path.is_file():
      raise ValueError(f"--cells-from {stem}: no {path}")
    for row in json.loads(path.read_text())["rows"]:
      rows.setdefault(row["cell"], row)
  if not 1 <= k <= len(rows):
    raise ValueError(f"--top must be in [1, {len(rows)}] (the cells of --cells-from), got {k}")
  ranks = rank_cells(list(rows.values()))
  return [rows[cell]["settings"] for cell in sorted(ranks, key=ranks.get)[:k]]


def best_cells(ranks: dict[str, float]) -> list[str]:
  """The cells of lowest mean rank, in sweep order: one when a cell wins, several when
  they tie (then the first is only the tie-break)."""
  lowest = min(ranks.values())
  return [cell for cell in ranks if ranks[cell] == lowest]


def markdown(env: str, method: str, grid: list[str], rows: list[dict], ranks: dict, command: str, seed: int) -> str:
  tasks = list(rows[0]["tasks"])
  tied = best_cells(ranks)
  best = tied[0]
  lines = [f"Sweep of {method} on {env} (`{command}`): mean final return over {rows[0]['seeds']} selection seeds "
           f"(search seeds from {seed}, evaluation seed {SELECTION_EVAL_SEED}), and the mean rank over "
           "the tasks (1 = best).", "",
           "| " + " | ".join(k.split(".")[-1] for k in grid) + " | " + " | ".join(tasks) + " | mean rank |",
           "|" + "---|" * len(grid) + "---:|" * (len(tasks) + 1)]
  for row in rows:
    mark = "**" if row["cell"] == best else ""
    lines.append("| " + " | ".join(str(row["settings"].get(k, "")) for k in grid) + " | "
                 + " | ".join(f"{mark}{row['tasks'][t]['mean']:.2f}{mark}" for t in tasks)
                 + f" | {ranks[row['cell']]:.2f} |")
  if len(tied) > 1:  # no cell wins; the first (bold, and `best` in the JSON) is only the tie-break
    lines += ["", f"No best cell: {'; '.join(tied)} tie at mean rank {ranks[best]:.2f} (the first is marked)."]
  else:
    lines += ["", f"Best: {best} (mean rank {ranks[best]:.2f})."]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(allow_abbrev=False, prog="python -m experiments.sweep",
                              description=__doc__.split("\n")[0])
  p.add_argument("env", help="mountain_car | reacher | hopper | halfcheetah")
  p.add_argument("--method", required=True)
  p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", help="a setting and its values")
  p.add_argument("--cells-from", action="append", default=[], metavar="STEM",
                 help="instead of --grid: the --top cells of earlier sweeps' results (e.g. sweep_halfcheetah_latent_pgpe)")
  p.add_argument("--top", type=integer, default=None, help="with --cells-from: how many cells (default 3)")
  p.add_argument("--seed", type=integer, default=SELECTION_SEED,
                 help=f"the first selection seed (at least {SELECTION_SEED}: the reported runs use seeds below)")
  p.add_argument("--preset", default="cpu")
  p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the preset (all cells)")
  p.add_argument("--from", dest="source", default=None,
                 help="a pipeline run directory whose dataset and autoencoder the cells start from")
  p.add_argument("--out", default=None, help="default runs/sweep-<env>")
  p.add_argument("--tag", default="", help="suffix of the results files")
  from lsc import distributed
  distributed.add_arguments(p)
  args = p.parse_args(argv)

  from lsc.validate import error_line, user_errors
  distributed.setup_command_line(p, args)
  from lsc import pipeline
  from experiments.presets import PRESETS
  from lsc.config import override
  from lsc.progress import Bars
  from lsc.store import search_stage

  try:
    if args.env not in PRESETS:
      raise ValueError(f"unknown env {args.env!r}; valid: {', '.join(PRESETS)}")
    if args.source and not pathlib.Path(args.source).is_dir():
      raise ValueError(f"--from: {args.source} is not a run directory")
    if args.seed < SELECTION_SEED:
      raise ValueError(f"--seed must be at least {SELECTION_SEED} (seeds below are the reported runs'), got {args.seed}")
    if bool(args.grid) == bool(args.cells_from):
      raise ValueError("give either --grid KEY=V1,V2,... or --cells-from STEM")
    if args.grid and args.top is not None:
      raise ValueError("--top is for --cells-from (a --grid runs every cell)")
    if args.grid:
      grid = parse_grid(args.grid)
      cells = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    else:
      cells = top_cells(args.cells_from, 3 if args.top is None else args.top)
    keys = list(dict.fromkeys(key for cell in cells for key in cell))
    base = override(PRESETS[args.env][args.preset](), args.set)
    base = override(base, {"search.methods": [args.method], "search.seed": args.seed, "eval_seed": SELECTION_EVAL_SEED})
    configs = [override(base, {setting(k): v for k, v in cell.items()}) for cell in cells]
    check_grid(keys, configs[0], args.method)
    for config in configs:
      pipeline.validate(config)  # every cell, before any work
  except user_errors() as error:
    print(f"experiments.sweep: error: {error_line(error)}", file=sys.stderr)
    return 2

  out = pathlib.Path(args.out or f"runs/sweep-{args.env}") / args.method
  source = pathlib.Path(args.source) if args.source else None
  rows = []
  for cell, config in zip(cells, configs):
    name = cell_name(cell)
    directory = out / name
    first = out / rows[0]["cell"] if rows else source
    if first is not None:
      seed_from(first, directory)
    print(f"[{len(rows) + 1}/{len(cells)}] {args.method} {name}", flush=True)
    start = time.perf_counter()
    with Bars(prefix="      ") as bars:
      results = pipeline.run(config, directory, log=lambda line: None, progress_fn=bars)
    # each cell builds its env anew, so its programs are new, and a few dozen cells in one
    # process exhausted the kernel's memory-map limit: release them before that
    release_executables()
    finals = {task: results["curves"][task][args.method]["final_returns"] for task in results["curves"]}
    # seconds: this process's; search_s: each task's search as recorded when computed (also
    # where this cell reused it), `resumed` where that is only the last process's (a kill)
    stages = {task: search_stage(task, args.method) for task in finals}
    timings = results["timings"]
    rows.append({"cell": name, "settings": cell, "seeds": config.search.seeds, "seconds": time.perf_counter() - start,
                 "search_s": {t: timings["recorded_s"][stage] for t, stage in stages.items()},
                 "resumed": [t for t, stage in stages.items() if stage in timings["resumed"]],
                 "tasks": {t: {"final_returns": f, "mean": float(np.mean(f))} for t, f in finals.items()}})
    print("      " + ", ".join(f"{t} {v['mean']:.2f}" for t, v in rows[-1]["tasks"].items())
          + f" (searches {sum(rows[-1]['search_s'].values()):.0f} s; this process {rows[-1]['seconds']:.0f} s)",
          flush=True)

  ranks = rank_cells(rows)
  command = "python -m experiments.sweep " + " ".join(argv if argv is not None else sys.argv[1:])
  text = markdown(args.env, args.method, keys, rows, ranks, command, args.seed)
  RESULTS.mkdir(exist_ok=True)
  stem = RESULTS / f"sweep_{args.env}_{args.method}{'_' + args.tag if args.tag else ''}"
  tied = best_cells(ranks)
  payload = {"command": command, "cells": cells, "seed": args.seed, "rows": rows, "ranks": ranks,
             "best": next(r["settings"] for r in rows if r["cell"] == tied[0]), "tied": tied if len(tied) > 1 else []}
  distributed.on_main(stem.with_suffix(".json").write_text, jsonfile.dumps(payload, indent=1))
  distributed.on_main(stem.with_suffix(".md").write_text, text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
