"""The sample-efficiency table: env steps each method needs to reach a common threshold,
from finished pipeline runs.

  python -m experiments.sample_efficiency runs/se-mountain_car runs/se-reacher [--tag cpu]

Per task of each run's results.json, with F_m the final return of method m (mean over
seeds, fresh evaluation keys):
  threshold = min_m F_m + 0.9 * (max_m F_m - min_m F_m)
a point 90 % of the way from the worst to the best method's final return, so it is
sound with negative returns.  A seed's steps-to-threshold is the env-step count of the
first point of its curve at or above the threshold (PGPE: the centre's return on that
generation's episodes; PPO / SAC: the protocol's evaluations), or `never`.  Reported:
the mean and 95 % confidence interval (Student t) over the seeds that reached it, how
many did, and the fastest method (most seeds reaching, then the lowest mean).  The
latent method is reported twice: as run, and with the dataset's collection steps (probe
rollouts and the evaluation of every dataset policy, charged in full to each task; not
the random members evaluated only for comparison) added to its steps.  Methods whose
mean steps tie are all named.  Writes experiments/results/sample_efficiency[_<tag>].{md,json},
a bar chart .png beside them, and each run's summary.md and curves_<task>.png into the
folder of the same name.
"""

import argparse
import json
import math
import pathlib
import shutil
import sys

import numpy as np

RESULTS = pathlib.Path(__file__).parent / "results"
FRACTION = 0.9
LATENT = "latent_pgpe"
FINE_TUNING_ENVS = ("mountain_car", "reacher")  # the paper's 8 fine-tuning tasks; the rest: locomotion


def threshold(finals: dict[str, list[float]]) -> float:
  """min + FRACTION * (max - min) over the methods' mean final returns."""
  means = [float(np.mean(v)) for v in finals.values()]
  return min(means) + FRACTION * (max(means) - min(means))


def steps_to_threshold(env_steps, returns, level: float) -> list[float | None]:
  """Per seed: the env steps of the first curve point with return >= level, or None.
  env_steps and returns: (S, G) nested lists (None marks generations never run)."""
  out = []
  for steps, values in zip(env_steps, returns):
    hit = [s for s, r in zip(steps, values) if r is not None and s is not None and r >= level]
    out.append(float(hit[0]) if hit else None)
  return out


def mean_ci(values: list[float]) -> tuple[float, float]:
  """(mean, half-width of the 95 % Student-t interval); half-width NaN for one value."""
  from scipy import stats
  x = np.asarray(values, np.float64)
  if len(x) < 2:
    return float(x.mean()), math.nan
  return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def summarise(results: dict) -> list[dict]:
  """One row per task of a pipeline's results.json."""
  rows = []
  by_stage = results.get("dataset_env_steps_by_stage") or {}
  # what the latent method's inputs cost: probe rollouts and evaluating the dataset (the
  # random members evaluated only to compare with are not charged); older runs: everything
  charge = int(by_stage["probe"] + by_stage["kept"]) if by_stage else int(results.get("dataset_env_steps", 0))
  env = results["config"]["collect"]["env"]["name"]
  for task, per_method in results["curves"].items():
    finals = {m: o["final_returns"] for m, o in per_method.items()}
    level = threshold(finals)
    methods = {}
    for method, outcome in per_method.items():
      hits = steps_to_threshold(outcome["env_steps"], outcome["returns"], level)
      reached = [h for h in hits if h is not None]
      methods[method] = {"final_mean": float(np.mean(finals[method])), "steps": hits, "reached": len(reached),
                         "seeds": len(hits), **dict(zip(("mean", "ci95"), mean_ci(reached) if reached else (None, None)))}
    if LATENT in methods and methods[LATENT]["reached"]:
      charged = [h + charge for h in methods[LATENT]["steps"] if h is not None]
      methods[LATENT]["charged_mean"], methods[LATENT]["charged_ci95"] = mean_ci(charged)
    rows.append({"env": env, "task": task, "threshold": level, "collection_steps": charge, "methods": methods,
                 "fastest": fastest(methods, charged=False), "fastest_charged": fastest(methods, charged=True)})
  return rows


def fastest(methods: dict, charged: bool) -> str | None:
  """The method whose seeds reached the threshold most often, ties by the lowest mean
  steps (the latent method's charged mean when `charged`); None if none reached it."""
  def key(item):
    name, m = item
    mean = m.get("charged_mean") if charged and name == LATENT else m["mean"]
    return (-m["reached"] / m["seeds"], mean)
  candidates = [(n, m) for n, m in methods.items() if m["reached"]]
  if not candidates:
    return None
  best = min(key(c) for c in candidates)
  return " = ".join(n for n, m in candidates if key((n, m)) == best)


def _cell(mean, ci, reached, seeds) -> str:
  if mean is None:
    return f"never (0/{seeds})"
  ci_text = "" if ci is None or math.isnan(ci) else f" ± {ci / 1e3:,.0f}k"
  return f"{mean / 1e3:,.0f}k{ci_text} ({reached}/{seeds})"


def markdown(rows: list[dict], command: str) -> str:
  methods = sorted({m for r in rows for m in r["methods"]}, key=lambda m: (m != LATENT, m))
  lines = [f"Env steps to reach min + {FRACTION} (max - min) of the methods' mean final returns, mean ± 95 % CI "
           f"over the seeds that reached it (reached / seeds). `{command}`", "",
           "| env | task | threshold | " + " | ".join(methods) + f" | {LATENT} + collection | fastest | "
           "fastest, collection charged |", "|---|---|---:|" + "---:|" * (len(methods) + 1) + "---|---|"]
  for r in rows:
    cells = [_cell(r["methods"][m]["mean"], r["methods"][m]["ci95"], r["methods"][m]["reached"],
                   r["methods"][m]["seeds"]) if m in r["methods"] else "" for m in methods]
    lat = r["methods"].get(LATENT, {})
    charged = (_cell(lat.get("charged_mean"), lat.get("charged_ci95"), lat.get("reached"), lat.get("seeds"))
               if lat else "")
    lines.append(f"| {r['env']} | {r['task']} | {r['threshold']:.2f} | " + " | ".join(cells)
                 + f" | {charged} | {r['fastest'] or '-'} | {r['fastest_charged'] or '-'} |")
  lines.append("")
  for group, members in (("fine-tuning (mountain_car, reacher)", [r for r in rows if r["env"] in FINE_TUNING_ENVS]),
                         ("locomotion", [r for r in rows if r["env"] not in FINE_TUNING_ENVS])):
    if members:
      lines.append(f"- {group} tasks: " + first_counts(members))
  lines += ["",
            "Final returns (mean over seeds, fresh evaluation keys):", "",
            "| env | task | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
  for r in rows:
    lines.append(f"| {r['env']} | {r['task']} | " + " | ".join(
        f"{r['methods'][m]['final_mean']:.2f}" if m in r["methods"] else "" for m in methods) + " |")
  return "\n".join(lines) + "\n"


def first_counts(rows: list[dict]) -> str:
  """How often the latent method is first, tied first, and first with collection charged."""
  first = sum(r["fastest"] == LATENT for r in rows)
  first_charged = sum(r["fastest_charged"] == LATENT for r in rows)
  tied = sum(LATENT in (r["fastest"] or "").split(" = ") and r["fastest"] != LATENT for r in rows)
  return (f"{LATENT} reaches the threshold first on {first} of {len(rows)}, ties for first on {tied} "
          f"({first_charged} of {len(rows)} first with the collection steps charged).")


def plot(rows: list[dict], path: pathlib.Path) -> None:
  """Grouped bars of steps-to-threshold per task and method (hatched: never reached)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  methods = sorted({m for r in rows for m in r["methods"]}, key=lambda m: (m != LATENT, m))
  width = 0.8 / len(methods)
  fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4))
  top = max((m["mean"] for r in rows for m in r["methods"].values() if m["mean"]), default=1.0)
  for j, method in enumerate(methods):
    for i, r in enumerate(rows):
      m = r["methods"].get(method)
      if m is None:
        continue
      x = i + (j - (len(methods) - 1) / 2) * width
      if m["mean"] is None:
        ax.bar(x, top * 1.2, width, color="none", edgecolor=f"C{j}", hatch="//")
      else:
        ax.bar(x, m["mean"], width, color=f"C{j}", label=method if i == 0 else None,
               yerr=None if m["ci95"] is None or math.isnan(m["ci95"]) else m["ci95"], capsize=2)
  ax.set_xticks(range(len(rows)), [f"{r['env']}\n{r['task']}" for r in rows], fontsize=8)
  ax.set_ylabel("env steps to threshold")
  ax.set_title(f"sample efficiency (hatched: threshold never reached)")
  handles, labels = ax.get_legend_handles_labels()
  ax.legend(handles, labels, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", help="pipeline output directories (each with results.json)")
  p.add_argument("--tag", default="", help="suffix of the results files")
  p.add_argument("--results", default=str(RESULTS))
  args = p.parse_args(argv)
  rows, results = [], []
  for run in args.runs:
    path = pathlib.Path(run) / "results.json"
    if not path.exists():
      print(f"sample_efficiency: error: {path} does not exist (run the pipeline first)", file=sys.stderr)
      return 2
    results.append(json.loads(path.read_text()))
    rows += summarise(results[-1])
  command = "python -m experiments.sample_efficiency " + " ".join(argv if argv is not None else sys.argv[1:])
  text = markdown(rows, command)
  out = pathlib.Path(args.results)
  out.mkdir(parents=True, exist_ok=True)
  stem = out / ("sample_efficiency" + (f"_{args.tag}" if args.tag else ""))
  stem.with_suffix(".json").write_text(json.dumps({"command": command, "fraction": FRACTION, "rows": rows}, indent=1))
  stem.with_suffix(".md").write_text(text)
  plot(rows, stem.with_suffix(".png"))
  stem.mkdir(exist_ok=True)  # beside the table: every run's summary and per-task curves
  for run, result in zip(args.runs, results):
    env = result["config"]["collect"]["env"]["name"]
    shutil.copy(pathlib.Path(run) / "summary.md", stem / f"summary_{env}.md")
    for curves in pathlib.Path(run).glob("curves_*.png"):
      shutil.copy(curves, stem / f"{env}_{curves.name}")
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
