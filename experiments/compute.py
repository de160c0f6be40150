"""What a race's runs cost in wall-clock time, read from their own timings: per run, the
shared stages (dataset, autoencoder) and every method's search per task; with --sweeps,
every tuning sweep's searches.

  python -m experiments.compute experiments/results/race_runs/amd_epyc_f25m1/epyc-race-hopper*.json \
      [--sweeps experiments/results/sweep_hopper_td3_race.json ...] --tag hopper_amd_epyc_f25m1

Each RUN is a pipeline output directory, its results.json or a race record (they keep
their timings).  A stage's time is the one recorded when it was computed, also where a
later run reused it.  A stage resumed after a kill recorded only its last process's
time: it is marked `>=` (runs made before lsc recorded resumption cannot say so).  The
times are as the runs met them, on the device each names, often beside another job on
the same cores.  A sweep is read from its cells' searches as recorded (`search_s`; sweeps
made before 2026-12-08 lack it and are refused).  Writes
experiments/results/compute[_TAG].{md,json}.
"""

import argparse
import json
import pathlib
import shlex
import sys

from lsc import comparison as cmp
from lsc import jsonfile
from lsc.store import search_stage

ROOT = pathlib.Path(__file__).parent.parent
RESULTS = ROOT / "experiments" / "results"
SHARED = ("dataset", "autoencoder")


def run_costs(run: dict, source: str) -> dict:
  """One run's costs from its timings: {env, device, source, seeds, budget, shared: {stage:
  cost}, searches: {label: {task: cost}}}, each cost {seconds, resumed}."""
  timings, search = run["timings"], run["config"]["search"]
  recorded, resumed = timings["recorded_s"], set(timings.get("resumed", []))
  cost = lambda stage: {"seconds": recorded[stage], "resumed": stage in resumed}
  start = search.get("latent_start", "mean")
  searches = {}
  for task, per_method in run["curves"].items():
    for method in per_method:
      searches.setdefault(cmp.label_of(method, start), {})[task] = cost(search_stage(task, method))
  return {"env": run["config"]["collect"]["env"]["name"], "device": run.get("device"), "source": source,
          "seeds": search["seeds"], "budget": search["budget"],
          "shared": {stage: cost(stage) for stage in SHARED if stage in recorded}, "searches": searches}


def totals(runs: list[dict]) -> list[dict]:
  """Per (env, label), over every run: seconds summed over its tasks, the seed-tasks they
  ran, and whether any stage was resumed; a (env, label, task) met again (a recompute in
  another run) is counted once, the first."""
  seen, out = set(), {}
  for run in runs:
    for label, per in run["searches"].items():
      row = out.setdefault((run["env"], label), {"env": run["env"], "label": label, "seconds": 0.0,
                                                 "seed_tasks": 0, "resumed": False})
      for task, cost in per.items():
        if (run["env"], label, task) not in seen:
          seen.add((run["env"], label, task))
          row["seconds"] += cost["seconds"]
          row["seed_tasks"] += run["seeds"]
          row["resumed"] |= cost["resumed"]
  return list(out.values())


def sweep_costs(sweep: dict, source: str) -> dict:
  """A sweep's cost: its command, seeds per cell and, per cell, its searches' seconds per
  task and the tasks resumed after a kill; ValueError for a sweep without them."""
  rows = sweep["rows"]
  if any("search_s" not in row for row in rows):
    raise ValueError(f"{source} records no search_s per cell (made before sweeps recorded their searches' times)")
  return {"source": source, "command": sweep["command"], "seeds": rows[0]["seeds"],
          "cells": {row["cell"]: {t: {"seconds": s, "resumed": t in row["resumed"]} for t, s in row["search_s"].items()}
                    for row in rows}}


def _hours(seconds: float) -> str:
  return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _per(seconds: float) -> str:
  return f"{seconds:,.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def markdown(result: dict) -> str:
  """The costs as markdown: every label's time over its runs, then per run its shared
  stages and every label's search time per task, its sum and its time per seed and task,
  then per sweep its cells' search times per task."""
  lines = ["# What the race cost", "", f"`{result['command']}`", "",
           "Wall-clock seconds as each run recorded them (a reused stage: the time it took when computed); "
           "`>=`: a stage resumed after a kill, whose time is only its last process's.", "",
           "## Every label, over its runs", "", "| env | label | seed-tasks | sum | per seed and task |",
           "|---|---|---:|---:|---:|"]
  for row in result["totals"]:
    cut = ">= " if row["resumed"] else ""
    lines.append(f"| {row['env']} | {row['label']} | {row['seed_tasks']} | {cut}{_hours(row['seconds'])} | "
                 f"{cut}{_per(row['seconds'] / row['seed_tasks'])} |")
  lines.append("")
  mark = lambda cost: (">= " if cost["resumed"] else "") + f"{cost['seconds']:,.0f}"
  for run in result["runs"]:
    lines += [f"## {run['env']}: `{run['source']}`", "", f"{run['device']}; {run['seeds']} seeds x "
              f"{run['budget']:,} env steps per task.", ""]
    if run["shared"]:
      lines += ["Shared stages (s): " + ", ".join(f"{k} {mark(v)}" for k, v in run["shared"].items()), ""]
    tasks = list(dict.fromkeys(t for per in run["searches"].values() for t in per))
    lines += ["| label | " + " | ".join(tasks) + " | sum | per seed and task |",
              "|---|" + "---:|" * (len(tasks) + 2)]
    for label, per in run["searches"].items():
      total = sum(c["seconds"] for c in per.values())
      cut = ">= " if any(c["resumed"] for c in per.values()) else ""
      lines.append(f"| {label} | " + " | ".join(mark(per[t]) if t in per else "" for t in tasks)
                   + f" | {cut}{_hours(total)} | {cut}{_per(total / (len(per) * run['seeds']))} |")
    lines.append("")
  for sweep in result["sweeps"]:
    total = sum(c["seconds"] for cell in sweep["cells"].values() for c in cell.values())
    cut = ">= " if any(c["resumed"] for cell in sweep["cells"].values() for c in cell.values()) else ""
    tasks = list(next(iter(sweep["cells"].values())))
    lines += [f"## Sweep `{sweep['source']}`", "", f"`{sweep['command']}`: {sweep['seeds']} seeds per cell; "
              f"its searches {cut}{_hours(total)}.", "", "| cell | " + " | ".join(tasks) + " |",
              "|---|" + "---:|" * len(tasks)]
    lines += [f"| {name} | " + " | ".join(mark(c) for c in cell.values()) + " |" for name, cell in sweep["cells"].items()]
    lines.append("")
  return "\n".join(lines)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", metavar="RUN", help="pipeline output directories, results.json files or race records")
  p.add_argument("--sweeps", nargs="*", default=[], metavar="SWEEP", help="experiments.sweep JSON files")
  p.add_argument("--tag", default="", help="suffix of the results files")
  p.add_argument("--results", default=str(RESULTS), help="folder of the results files")
  args = p.parse_args(argv)
  try:
    runs = [run_costs(cmp.load_run(run), run) for run in args.runs]
    sweeps = [sweep_costs(json.loads(pathlib.Path(s).read_text()), s) for s in args.sweeps]
    result = {"command": "python -m experiments.compute " + shlex.join(argv), "totals": totals(runs), "runs": runs,
              "sweeps": sweeps}
  except (FileNotFoundError, KeyError, ValueError) as error:
    print(f"compute: error: {type(error).__name__}: {error}", file=sys.stderr)
    return 2
  stem = pathlib.Path(args.results) / ("compute" + (f"_{args.tag}" if args.tag else ""))
  stem.parent.mkdir(parents=True, exist_ok=True)
  text = markdown(result)
  stem.with_suffix(".json").write_text(jsonfile.dumps(result, indent=1))
  stem.with_suffix(".md").write_text(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
