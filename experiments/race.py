"""The fair race: env steps each method needs to reach a threshold fixed before the runs,
with every env step it depends on charged, and rliable's statistics.

  python -m experiments.race runs/race-mountain_car runs/race-mountain_car-mean [--tag TAG] [--reps N]
  python -m experiments.race --freeze-thresholds experiments/results/sample_efficiency_all.json
  python -m experiments.race --keep runs/race-mountain_car     # its record, to commit

A race can be built from committed records (experiments/results/race_runs/*.json, written
by --keep) of runs done on one machine in several sessions.

Each RUN is a pipeline output directory or its results.json; runs of one env are merged
(`lsc.comparison.Table.from_runs`: one budget, seeds, grid and evaluation), so methods
and latent starts can be run apart.  Thresholds are read from --thresholds
(experiments/thresholds.json, frozen once from an earlier committed table by
--freeze-thresholds), never from the runs.  The rules (steps, charges, first, statistics)
are `lsc.comparison.RULES` (with `CANDIDATES_RULE` where a spread start is raced:
`lsc.comparison.rules`), written above the tables.  Writes
experiments/results/race[_TAG].{md,json}, race[_TAG]_profile.png (performance profiles
per task group) and race[_TAG]/curves_<env>_<task>.png (IQM learning curves, 95 % bands).
"""

import argparse
import json
import pathlib
import shlex
import sys

import numpy as np

from lsc import comparison as cmp
from lsc import jsonfile
from lsc.plots import pyplot

ROOT = pathlib.Path(__file__).parent.parent
RESULTS = ROOT / "experiments" / "results"
THRESHOLDS = ROOT / "experiments" / "thresholds.json"
# a label's line by its start's suffix (none: solid); ":" and "-." are the threshold's and the start's
DASHES = {"mean": "--", "spread": (0, (6, 2)), "spread_descriptors": (0, (4, 1.5, 1, 1.5, 1, 1.5))}
RECORDS = RESULTS / "race_runs"  # committed records of reported runs (--keep), so a race outlives runs/
PROFILE_TAUS = (0.5, 0.9, 1.0)  # the profile's points shown in the markdown (the JSON has all of TAUS)
GROUPS = ("fine-tuning", "locomotion")


def task_stats(table: cmp.Table, thresholds: dict, env: str, task: str, reps: int) -> dict:
  """One task's race and statistics: per label its per-seed steps, median [95 % CI] per
  accounting, final-return IQM [CI] and IQM learning curve (3, P)."""
  entries = table.on(env, task)
  low, high, fraction = cmp.threshold_of(thresholds, env, task)
  race = cmp.race_task(entries, low, high, fraction)
  methods = {}
  for label, e in entries.items():
    own = race["own"][label]
    ci = cmp.median_ci(own, reps)  # a charge shifts every resample's median alike
    methods[label] = {
        "method": e.method, "source": e.source, "start": e.start, "charges": dict(e.charges),
        "reached": int(np.isfinite(own).sum()), "seeds": len(own),
        "steps": {a: race["steps"][a][label] for a in cmp.ACCOUNTINGS},
        "median": {a: float(np.median(race["steps"][a][label])) for a in cmp.ACCOUNTINGS},
        "median_ci": {a: [b + e.charges[a] for b in ci] for a in cmp.ACCOUNTINGS},
        "final_iqm": cmp.iqm_ci(e.final_returns, reps),
        "final_score_mean": float(np.mean(race["scores"][label])),
        "curve": cmp.curve_iqm(e.eval_returns, reps)}
  grid = next(iter(entries.values())).eval_steps
  return {"env": env, "task": task, "low": low, "high": high, "fraction": fraction, "threshold": race["level"],
          "eval_steps": grid, "first": race["first"], "start_return": table.starts.get((env, task)),
          "methods": methods}


def study(table: cmp.Table, thresholds: dict, reps: int) -> dict:
  """Every task's race, the groups' aggregates and the threshold sensitivity."""
  tasks = [task_stats(table, thresholds, env, task, reps) for env, task in table.tasks()]
  groups = {}
  for group in GROUPS:
    members, scores, left_out = cmp.group_scores(table, thresholds, group)
    if members:
      groups[group] = {"tasks": [f"{env}/{task}" for env, task in members], "included": list(scores),
                       "left_out": left_out, **cmp.aggregates(scores, reps)}
  sensitivity = cmp.sensitivity(table, thresholds)
  return {"reps": reps, "seed": cmp.SEED, "labels": table.labels(), "tasks": tasks, "groups": groups,
          "taus": cmp.TAUS, "sensitivity": [{"fraction": f, "first": c} for f, c in sensitivity.items()]}


def _steps(x: float) -> str:
  return "never" if not np.isfinite(x) else f"{x / 1e3:,.0f}k" if x >= 1e4 else f"{x / 1e3:.1f}k"


def _start(value: float | None) -> str:
  return "" if value is None else f"{value:.2f}"


def _interval(point: float, low: float, high: float, digits: int = 2) -> str:
  return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]], left: int) -> list[str]:
  """A markdown table; its first `left` columns left-aligned, the others right."""
  return ["| " + " | ".join(header) + " |", "|" + "---|" * left + "---:|" * (len(header) - left),
          *["| " + " | ".join(row) + " |" for row in rows]]


def markdown(result: dict) -> str:
  """The race as markdown: rules, charges, steps per accounting, final returns,
  aggregates, sensitivity."""
  labels, tasks, th = result["labels"], result["tasks"], result["thresholds"]
  lines = ["# The fair race", "", f"`{result['command']}`", "",
           *[f"**{name.capitalize()}**: {text}\n" for name, text in result["rules"].items()],
           f"This race: thresholds from `{result['thresholds_file']}`: {th['rule']} (`{th['source']}`); "
           f"{result['reps']} bootstrap resamples.", "",
           "## Charges", "", "Env steps added to a method's steps to threshold, per accounting.", ""]
  charged = {(t["env"], label): m for t in tasks for label, m in t["methods"].items()}
  lines += _table(["env", "label", "start", *cmp.ACCOUNTINGS],
                  [[env, label, m["start"], *(f"{m['charges'][a]:,}" for a in cmp.ACCOUNTINGS)]
                   for (env, label), m in charged.items()], 3)
  for a in cmp.ACCOUNTINGS:
    lines += ["", f"## Steps to threshold, accounting `{a}`", "",
              "Median over all seeds [95 % CI] (seeds reaching / seeds); first by the rule above.", ""]
    rows = []
    for t in tasks:
      cells = [f"{_steps(m['median'][a])} [{_steps(m['median_ci'][a][0])}, {_steps(m['median_ci'][a][1])}] "
               f"({m['reached']}/{m['seeds']})" if (m := t["methods"].get(label)) else "" for label in labels]
      rows.append([t["env"], t["task"], f"{t['threshold']:.2f}", *cells, " = ".join(t["first"][a]) or "-"])
    lines += _table(["env", "task", "threshold", *labels, "first"], rows, 2)
  lines += ["", "## Final returns", "", "IQM over seeds [95 % CI], fresh evaluation keys; the start: the best "
            "dataset policy by its collected return (the reward-chosen start) with no search, on the same keys.", ""]
  lines += _table(["env", "task", "start", *labels], [[t["env"], t["task"], _start(t.get("start_return")), *(
      _interval(*t["methods"][label]["final_iqm"]) if label in t["methods"] else "" for label in labels)]
      for t in tasks], 2)
  for group, g in result["groups"].items():
    reference = f"P({cmp.REFERENCE} > label)"
    lines += ["", f"## Normalised final scores: {group} ({len(g['tasks'])} tasks: {', '.join(g['tasks'])})", "",
              "Left out (not a runs x tasks matrix): " + ("; ".join(f"{k} ({v})" for k, v in g["left_out"].items())
                                                           or "none") + ".",
              "Performance profile: fraction of runs scoring above tau [95 % CI].", ""]
    at = [int(np.argmin(np.abs(cmp.TAUS - tau))) for tau in PROFILE_TAUS]
    rows = [[label, _interval(*g["iqm"][label]), _interval(*g["mean"][label]),
             _interval(*g["improvement"][label]) if label in g["improvement"] else "",
             *(_interval(*(p[i] for p in g["profile"][label])) for i in at)] for label in g["included"]]
    lines += _table(["label", "IQM [CI]", "mean [CI]", reference, *(f"tau {tau}" for tau in PROFILE_TAUS)], rows, 1)
  latent = list(result["sensitivity"][0]["first"]) if result["sensitivity"] else []
  lines += ["", "## Threshold sensitivity", "",
            f"Tasks (of {len(tasks)}) each dataset-reading label is first on, accounting `none`, ties counted for "
            f"each tied label, at threshold low + fraction (high - low).", ""]
  lines += _table(["fraction", *latent], [[f"{s['fraction']:.1f}", *(str(s["first"][k]) for k in latent)]
                                          for s in result["sensitivity"]], 1)
  return "\n".join(lines) + "\n"


def plot_profiles(result: dict, path: pathlib.Path) -> None:
  """The performance profiles of each group, 95 % bands; a label's style as in every plot."""
  plt = pyplot()
  groups = result["groups"]
  fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(5.6 * max(len(groups), 1), 4.0), squeeze=False)
  for ax, (group, g) in zip(axes[0], groups.items()):
    for label in g["included"]:
      band(ax, cmp.TAUS, g["profile"][label], *style(label, result["labels"]), label)
    ax.set(xlabel="normalised final score tau", ylabel="fraction of runs scoring above tau",
           title=f"{group} ({len(g['tasks'])} tasks)")
  save(fig, axes[0], path)


def style(label: str, labels: list[str]) -> tuple:
  """(colour, line style) of `label` in every plot: one colour per method (tab10, or tab20
  beyond 10 methods, so no two share one), solid for its reward-chosen or only start,
  one dash pattern per other start (DASHES; never the threshold's or start line's)."""
  methods = list(dict.fromkeys(name.split("@")[0] for name in labels))
  colours = pyplot().get_cmap("tab10" if len(methods) <= 10 else "tab20")
  suffix = label.partition("@")[2]
  return colours(methods.index(label.split("@")[0]) % colours.N), DASHES.get(suffix, "-" if not suffix else "--")


def band(ax, x, curve, color, linestyle: str, label: str) -> None:
  """A line with its 95 % band: curve = (point, low, high), each like x."""
  point, low, high = curve
  ax.plot(x, point, color=color, linestyle=linestyle, label=label)
  ax.fill_between(x, low, high, color=color, alpha=0.12, linewidth=0)


def save(fig, axes, path) -> None:
  """Grids and legends (beside each axes: many methods would cover the curves) on
  `axes`, then `fig` written to `path` and closed."""
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
  fig.tight_layout()
  fig.savefig(path, dpi=110, bbox_inches="tight")
  pyplot().close(fig)


def plot_curves(task: dict, labels: list[str], path: pathlib.Path) -> None:
  """One task's IQM learning curves (own env steps, nothing charged), 95 % bands, the
  threshold dotted, the reward-chosen start's return dash-dotted (where recorded); a
  label's style (`style`) as in every plot."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  ax.xaxis.set_major_formatter(plt.matplotlib.ticker.EngFormatter())  # 250k, 1M
  for label, m in task["methods"].items():
    band(ax, task["eval_steps"], m["curve"], *style(label, labels), f"{label} ({m['seeds']} seeds)")
  ax.axhline(task["threshold"], color="0.3", linestyle=":", linewidth=1.2, label="threshold")
  if task.get("start_return") is not None:
    ax.axhline(task["start_return"], color="0.5", linestyle="-.", linewidth=1.0,
               label="the reward-chosen start, no search (final keys)")
  ax.set(xlabel="env steps (own; no collection charged)", ylabel="return (IQM over seeds)",
         title=f"{task['env']} / {task['task']}")
  save(fig, [ax], path)


def keep(runs: list[str], records: pathlib.Path = RECORDS) -> None:
  """Writes each pipeline run's race record (`lsc.comparison.race_record`) to
  `records`/<its folder's name>.json: a race can then be built from committed records of
  runs made apart (each record holds its run's settings; RACE.md the command beside it)."""
  records.mkdir(parents=True, exist_ok=True)
  for run in runs:
    path = pathlib.Path(run)
    folder = path.parent if path.suffix == ".json" and not path.is_dir() else path  # as load_run reads it
    out = records / f"{folder.name}.json"
    out.write_text(jsonfile.dumps(cmp.race_record(cmp.load_run(run)), indent=None) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({out.stat().st_size / 1e3:,.0f} kB)")


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="*", metavar="RUN", help="pipeline output directories or results.json files")
  p.add_argument("--tag", default="", help="suffix of the results files")
  p.add_argument("--thresholds", default=str(THRESHOLDS), help="the frozen thresholds file")
  p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples of every interval")
  p.add_argument("--results", default=str(RESULTS), help="folder of the results files")
  p.add_argument("--freeze-thresholds", metavar="TABLE", help="write --thresholds from an earlier "
                 "experiments.sample_efficiency JSON table, then stop")
  p.add_argument("--keep", action="store_true", help="write each RUN's record (its results less the training "
                 "curves) to <--results>/race_runs/<RUN's folder name>.json, to commit, then stop")
  args = p.parse_args(argv)
  command = "python -m experiments.race " + shlex.join(argv)
  try:
    if args.freeze_thresholds:
      old = json.loads(pathlib.Path(args.freeze_thresholds).read_text())
      frozen = cmp.freeze_thresholds(old, f"{command} (that table: {old['command']})")
      pathlib.Path(args.thresholds).write_text(json.dumps(frozen, indent=1) + "\n")
      print(f"wrote {args.thresholds}: {len(frozen['tasks'])} tasks")
      return 0
    if not args.runs:
      p.error("name at least one RUN (or --freeze-thresholds TABLE)")
    if args.keep:
      keep(args.runs, pathlib.Path(args.results) / RECORDS.name)
      return 0
    if args.reps < 1:
      raise ValueError(f"--reps must be at least 1, got {args.reps}")
    table, thresholds = cmp.Table.from_runs(args.runs), cmp.read_thresholds(args.thresholds)
    shown = pathlib.Path(args.thresholds).resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown  # as committed, where it is
    result = {"command": command, "rules": cmp.rules(e.start for e in table.entries.values()),
              "thresholds_file": str(shown), "thresholds": thresholds,
              "never": "null in steps, median and median_ci: the threshold was never reached",
              **study(table, thresholds, args.reps)}
  except (FileNotFoundError, ValueError) as error:
    print(f"race: error: {error}", file=sys.stderr)
    return 2
  out = pathlib.Path(args.results)
  stem = out / ("race" + (f"_{args.tag}" if args.tag else ""))
  stem.mkdir(parents=True, exist_ok=True)
  text = markdown(result)
  stem.with_suffix(".json").write_text(jsonfile.dumps(result, indent=1))
  stem.with_suffix(".md").write_text(text)
  plot_profiles(result, stem.parent / f"{stem.name}_profile.png")
  for stale in stem.glob("curves_*.png"):  # an earlier race of this tag, maybe of other tasks
    stale.unlink()
  for task in result["tasks"]:
    plot_curves(task, result["labels"], stem / f"curves_{task['env']}_{task['task']}.png")
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
