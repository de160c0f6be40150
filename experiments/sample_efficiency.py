"""The sample-efficiency table: env steps each method needs to reach a common threshold,
from finished pipeline runs.

  python -m experiments.sample_efficiency runs/se10-mountain_car runs/se10-reacher [--tag finetune]
  python -m experiments.sample_efficiency experiments/results/sample_efficiency_all/results_mountain_car.json runs/sac-mc

Each run is a pipeline output directory or a results.json.  Runs of one env are merged
into one: they must share the collect, train and search settings, the evaluation
protocol and the package versions, and name each method on a task once; so methods can be run
apart (a session each) and tabled together.  Every env's merged results.json is written
beside the table (results_<env>.json), the input of a later merge.

Per task of each run's results.json, with F_m the final return of method m (mean over
seeds, fresh evaluation keys):
  threshold = min_m F_m + 0.9 * (max_m F_m - min_m F_m)
a point 90 % of the way from the worst to the best method's final return, so it is
sound with negative returns.  A seed's steps-to-threshold is the env-step count of the
first point of its curve at or above the threshold (PGPE: the centre's return on that
generation's episodes; RL: its evaluations after each epoch, and in runs since the
race's grid also before training, on the curve protocol's keys), or `never`.  Reported: the mean
and 95 % confidence interval (Student t) over the seeds that reached it, how many did,
and the fastest method (most seeds reaching, then the lowest mean).  Methods whose mean
steps tie are all named.

The latent methods read a dataset whose collection cost env steps (probe rollouts and
the evaluation of every dataset policy; not the random members evaluated only for
comparison).  Three accountings of that cost, each with its own fastest method:
  - `none`: not charged (the dataset is a sunk, reward-free cost);
  - `shared`: charged once per env and shared by its tasks: each task pays the
    collection divided by the number of tasks the env defines (one dataset serves them all);
  - `full`: charged in full to every task.
Also reported: each method's wall time per 10^6 env steps, per env (the runs' own
timings: compile and training, summed over tasks and seeds).  Writes
experiments/results/sample_efficiency[_<tag>].{md,json}, a bar chart .png beside them
(confidence intervals clipped to [0, budget]), and each run's summary.md and
curves_<task>.png into the folder of the same name.
"""

import argparse
import json
import math
import pathlib
import shutil
import sys

import numpy as np

from experiments.presets import RESULTS
from lsc import jsonfile

FRACTION = 0.9
ACCOUNTINGS = ("none", "shared", "full")  # collection steps charged to a latent method: see the docstring


def reads_dataset(method: str) -> bool:
  """Whether `method` searches a space learned from the dataset (pays for its collection)."""
  from lsc.methods import METHODS
  return method in METHODS and METHODS[method].reads == "autoencoder"


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


def wall_seconds(timings: dict) -> float:
  """A run's wall time from its Outcome timings: compile and training (RL: total_s,
  which includes the curve evaluations; PGPE: compile_s + search_s, which include the
  centre's evaluation every generation); the final evaluation on fresh keys excluded."""
  if "total_s" in timings:
    return float(timings["total_s"])
  return float(timings.get("compile_s", 0.0)) + float(timings.get("search_s", 0.0))


def collection_charges(results: dict) -> dict[str, int]:
  """Env steps a latent method is charged for the dataset under each accounting."""
  by_stage = results.get("dataset_env_steps_by_stage") or {}
  # probe rollouts and evaluating the dataset (not the random members evaluated only to
  # compare with); older runs: everything
  full = int(by_stage["probe"] + by_stage["kept"]) if by_stage else int(results.get("dataset_env_steps", 0))
  env = results["config"]["collect"]["env"]["name"]
  try:
    from lsc.tasks import task_names
    n_tasks = len(task_names(env))
  except ValueError:  # an env lsc does not define (hand-made results): the tasks it ran
    n_tasks = len(results["curves"])
  return {"none": 0, "shared": -(-full // n_tasks), "full": full}


def summarise(results: dict) -> list[dict]:
  """One row per task of a pipeline's results.json."""
  charges = collection_charges(results)
  env = results["config"]["collect"]["env"]["name"]
  budget = results["config"].get("search", {}).get("budget")
  rows = []
  for task, per_method in results["curves"].items():
    finals = {m: o["final_returns"] for m, o in per_method.items()}
    level = threshold(finals)
    methods = {}
    for method, outcome in per_method.items():
      hits = steps_to_threshold(outcome["env_steps"], outcome["returns"], level)
      reached = [h for h in hits if h is not None]
      m = {"final_mean": float(np.mean(finals[method])), "steps": hits, "reached": len(reached), "seeds": len(hits)}
      for accounting in ACCOUNTINGS:  # the same for a method that reads no dataset
        charge = charges[accounting] if reads_dataset(method) else 0
        mean, ci = mean_ci([h + charge for h in reached]) if reached else (None, None)
        m[accounting] = {"mean": mean, "ci95": ci}
      if "timings" in outcome:
        m["wall_s"] = wall_seconds(outcome["timings"])
        m["env_steps_charged"] = int(sum(outcome.get("final_env_steps") or [0]))
      methods[method] = m
    rows.append({"env": env, "task": task, "threshold": level, "budget": budget, "collection_steps": charges,
                 "methods": methods, "fastest": {a: fastest(methods, a) for a in ACCOUNTINGS}})
  return rows


def fastest(methods: dict, accounting: str = "none") -> str | None:
  """The method whose seeds reached the threshold most often, ties by the lowest mean
  steps under `accounting` (one of ACCOUNTINGS); None if none reached it."""
  def key(item):
    return (-item[1]["reached"] / item[1]["seeds"], item[1][accounting]["mean"])
  candidates = [(n, m) for n, m in methods.items() if m["reached"]]
  if not candidates:
    return None
  best = min(key(c) for c in candidates)
  return " = ".join(n for n, m in candidates if key((n, m)) == best)


def _cell(steps: dict, reached: int, seeds: int) -> str:
  if steps["mean"] is None:
    return f"never (0/{seeds})"
  ci_text = "" if steps["ci95"] is None or math.isnan(steps["ci95"]) else f" ± {steps['ci95'] / 1e3:,.0f}k"
  return f"{steps['mean'] / 1e3:,.0f}k{ci_text} ({reached}/{seeds})"


def locomotion(env_name: str) -> bool:
  """Whether `env_name` is a locomotion env (its spec's `locomotion`: hopper, halfcheetah);
  the others hold the paper's 8 fine-tuning tasks (mountain_car, reacher)."""
  from lsc.envs import get_env_spec
  return get_env_spec(env_name).locomotion


def _method_order(rows: list[dict]) -> list[str]:
  """The methods of the rows in the registry's order (latent methods first), then any
  others by name."""
  from lsc.methods import names
  order = names()
  return sorted({m for r in rows for m in r["methods"]},
                key=lambda m: (not reads_dataset(m), order.index(m) if m in order else len(order), m))


def markdown(rows: list[dict], command: str) -> str:
  methods = _method_order(rows)
  latent = [m for m in methods if reads_dataset(m)]
  lines = [f"Env steps to reach min + {FRACTION} (max - min) of the methods' mean final returns, mean ± 95 % CI "
           f"over the seeds that reached it (reached / seeds); collection not charged. `{command}`", "",
           "| env | task | threshold | " + " | ".join(methods) + "".join(f" | {m} + collection ({a})" for m in latent
                                                              for a in ACCOUNTINGS[1:])
           + " | fastest | fastest, shared | fastest, full |",
           "|---|---|---:|" + "---:|" * (len(methods) + 2 * len(latent)) + "---|---|---|"]
  for r in rows:
    ms = r["methods"]
    cells = [_cell(ms[m]["none"], ms[m]["reached"], ms[m]["seeds"]) if m in ms else "" for m in methods]
    cells += [_cell(ms[m][a], ms[m]["reached"], ms[m]["seeds"]) if m in ms else "" for m in latent
              for a in ACCOUNTINGS[1:]]
    lines.append(f"| {r['env']} | {r['task']} | {r['threshold']:.2f} | " + " | ".join(cells) + " | "
                 + " | ".join(r["fastest"][a] or "-" for a in ACCOUNTINGS) + " |")
  lines.append("")
  from lsc.envs import env_names
  fine_tuning = ", ".join(e for e in env_names() if not locomotion(e))
  for group, members in ((f"fine-tuning ({fine_tuning})", [r for r in rows if not locomotion(r["env"])]),
                         ("locomotion", [r for r in rows if locomotion(r["env"])])):
    if members:
      lines.append(f"- {group} tasks: " + first_counts(members))
  lines += ["", "Collection steps charged per task (`shared`: once per env, divided by its tasks; `full`: "
            "to every task): " + "; ".join(f"{env} {c['shared']:,} / {c['full']:,}" for env, c in
                                           {r["env"]: r["collection_steps"] for r in rows}.items()) + ".",
            "", "Final returns (mean over seeds, fresh evaluation keys):", "",
            "| env | task | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
  for r in rows:
    lines.append(f"| {r['env']} | {r['task']} | " + " | ".join(
        f"{r['methods'][m]['final_mean']:.2f}" if m in r["methods"] else "" for m in methods) + " |")
  walls = wall_table(rows)
  if walls:
    lines += ["", "Wall time per 10⁶ env steps (s; compile and training summed over the tasks and seeds run, "
              "final evaluation excluded; see the runs' device):", "",
              "| env | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for env, per in walls.items():
      lines.append(f"| {env} | " + " | ".join(f"{per[m]:,.0f}" if m in per else "" for m in methods) + " |")
  return "\n".join(lines) + "\n"


def wall_table(rows: list[dict]) -> dict[str, dict[str, float]]:
  """{env: {method: wall seconds per 10^6 env steps}} over the rows that carry timings."""
  sums: dict = {}
  for r in rows:
    for name, m in r["methods"].items():
      if m.get("env_steps_charged"):
        total = sums.setdefault(r["env"], {}).setdefault(name, [0.0, 0])
        total[0] += m["wall_s"]
        total[1] += m["env_steps_charged"]
  return {env: {m: 1e6 * s / n for m, (s, n) in per.items()} for env, per in sums.items()}


def first_counts(rows: list[dict]) -> str:
  """How often a latent-space method (one that reads the dataset) is first: alone or
  tied only with other latent methods, and tied with another method; per accounting."""
  def count(accounting):
    names = [[n for n in (r["fastest"][accounting] or "").split(" = ") if n] for r in rows]
    first = sum(bool(n) and all(map(reads_dataset, n)) for n in names)
    return first, sum(any(map(reads_dataset, n)) and not all(map(reads_dataset, n)) for n in names)
  (first, tied), shared, full = count("none"), count("shared")[0], count("full")[0]
  return (f"a latent-space method reaches the threshold first on {first} of {len(rows)}, ties for first with "
          f"another method on {tied} ({shared} of {len(rows)} first with the collection shared by the env's "
          f"tasks, {full} with it charged in full to every task).")


def plot(rows: list[dict], path: pathlib.Path) -> None:
  """Grouped bars of steps-to-threshold per task and method (collection not charged;
  hatched: never reached; "k/n" on a bar that only k of n seeds reached); the 95 %
  intervals are clipped to [0, the run's budget]."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  methods = _method_order(rows)
  width = 0.8 / len(methods)
  fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4))
  top = max((m["none"]["mean"] for r in rows for m in r["methods"].values() if m["none"]["mean"]), default=1.0)
  labelled = set()
  for j, method in enumerate(methods):
    for i, r in enumerate(rows):
      m = r["methods"].get(method)
      if m is None:
        continue
      x = i + (j - (len(methods) - 1) / 2) * width
      mean, ci = m["none"]["mean"], m["none"]["ci95"]
      label = None if method in labelled else method  # each method in the legend once
      labelled.add(method)
      if mean is None:
        ax.bar(x, top * 1.2, width, color="none", edgecolor=f"C{j}", hatch="//", label=label)
        continue
      yerr = None
      if ci is not None and not math.isnan(ci):
        high = ci if r.get("budget") is None else max(0.0, min(ci, r["budget"] - mean))
        yerr = [[min(ci, mean)], [high]]
      ax.bar(x, mean, width, color=f"C{j}", label=label, yerr=yerr, capsize=2)
      if m["reached"] < m["seeds"]:  # the mean is over the seeds that reached it: say how many
        ax.text(x, mean + (yerr[1][0] if yerr else 0.0), f"{m['reached']}/{m['seeds']}", ha="center",
                va="bottom", fontsize=7, rotation=90)
  ax.set_xticks(range(len(rows)), [f"{r['env']}\n{r['task']}" for r in rows], fontsize=8)
  ax.set_ylabel("env steps to threshold")
  ax.set_title("sample efficiency (hatched: threshold never reached; k/n: reached by k of n seeds)")
  handles, labels = ax.get_legend_handles_labels()
  ax.legend(handles, labels, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def load(run: str | pathlib.Path) -> dict:
  """The results of pipeline run `run`: its directory (holding results.json) or the file.
  FileNotFoundError if there is none."""
  path = pathlib.Path(run)
  path = path / "results.json" if path.is_dir() or path.suffix != ".json" else path
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist (run the pipeline first)")
  return json.loads(path.read_text())


def merge(results: list[dict], names: list[str]) -> dict:
  """One env's runs `results` (their sources `names`) as one: the first run's record with
  every run's curves, per task.  ValueError where the runs are not comparable (another
  dataset, autoencoder or search settings, evaluation protocol or package versions; which
  methods ran may differ, but not the settings of a method two runs share) or two ran the
  same method on a task."""
  base = results[0]
  search = lambda config: {k: v for k, v in config["search"].items() if k != "methods"}  # the parts' own methods
  merged = {**base, "curves": {task: dict(methods) for task, methods in base["curves"].items()},
            "merged_from": list(names)}
  for other, name in zip(results[1:], names[1:]):
    shared = set(base["config"].get("settings", {})) & set(other["config"].get("settings", {}))
    for key, a, b in [*[(k, base["config"][k], other["config"][k]) for k in ("collect", "train", "eval")],
                      ("search", search(base["config"]), search(other["config"])),
                      *[(f"methods.{m}", base["config"]["settings"][m], other["config"]["settings"][m]) for m in shared],
                      ("versions", base.get("versions"), other.get("versions"))]:
      if a != b:
        hint = ""
        if key == "collect" and a["env"]["backend"] != b["env"]["backend"]:  # e.g. RL-only parts on a Warp GPU
          hint = (f"; the backends differ ({b['env']['backend']} vs {a['env']['backend']}): run every part with "
                  f"--set collect.env.backend=NAME")
        raise ValueError(f"{name} and {names[0]} differ in {key} ({b} vs {a}): not one comparison{hint}")
    for task, methods in other["curves"].items():
      into = merged["curves"].setdefault(task, {})
      twice = sorted(set(into) & set(methods))
      if twice:
        raise ValueError(f"{', '.join(twice)} on {task} appear in {name} and an earlier run: give each once")
      into.update(methods)
    merged["config"] = {**merged["config"],
                        "methods": [*merged["config"]["methods"],
                                    *[m for m in other["config"]["methods"] if m not in merged["config"]["methods"]]],
                        "tasks": list(merged["curves"])}
    if "settings" in other["config"]:
      merged["config"]["settings"] = {**other["config"]["settings"], **merged["config"].get("settings", {})}
  merged["devices"] = [r.get("device") for r in results]  # one per source, in order
  return merged


def main(argv=None) -> int:
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", help="pipeline output directories or results.json files; runs of one env "
                                         "are merged")
  p.add_argument("--tag", default="", help="suffix of the results files")
  p.add_argument("--results", default=str(RESULTS))
  args = p.parse_args(argv)
  by_env: dict[str, list] = {}
  try:
    for run in args.runs:
      result = load(run)
      by_env.setdefault(result["config"]["collect"]["env"]["name"], []).append((run, result))
    merged = {env: merge([r for _, r in runs], [str(n) for n, _ in runs]) for env, runs in by_env.items()}
  except (FileNotFoundError, ValueError) as error:
    print(f"sample_efficiency: error: {error}", file=sys.stderr)
    return 2
  rows = [row for result in merged.values() for row in summarise(result)]
  command = "python -m experiments.sample_efficiency " + " ".join(argv if argv is not None else sys.argv[1:])
  text = markdown(rows, command)
  out = pathlib.Path(args.results)
  out.mkdir(parents=True, exist_ok=True)
  stem = out / ("sample_efficiency" + (f"_{args.tag}" if args.tag else ""))
  stem.with_suffix(".json").write_text(jsonfile.dumps({"command": command, "fraction": FRACTION, "rows": rows}, indent=1))
  stem.with_suffix(".md").write_text(text)
  plot(rows, stem.with_suffix(".png"))
  stem.mkdir(exist_ok=True)  # beside the table: every env's merged results, each run's summary and curves
  for stale in [*stem.glob("results_*.json"), *stem.glob("summary_*.md"), *stem.glob("*_curves_*.png")]:
    stale.unlink()  # an earlier table of this tag, from other runs: only the kinds of file written below
  for env, result in merged.items():
    (stem / f"results_{env}.json").write_text(jsonfile.dumps(result))
    for i, (run, _) in enumerate(by_env[env]):
      run = pathlib.Path(run)
      if run.is_dir():
        suffix = "" if len(by_env[env]) == 1 else f"_{i}"
        shutil.copy(run / "summary.md", stem / f"summary_{env}{suffix}.md")
        for curves in run.glob("curves_*.png"):
          shutil.copy(curves, stem / f"{env}{suffix}_{curves.name}")
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
