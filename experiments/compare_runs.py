"""Side by side: pipeline runs that differ in one factor (a dataset source, a policy
size, ...), per env and task.

  python -m experiments.compare_runs filter=runs/h3-filter-mountain_car ns=runs/h3-ns-mountain_car \
      [filter=runs/h3-filter-reacher ns=runs/h3-ns-reacher ...] --tag h3

Each argument is LABEL=RUN (a pipeline's --out); runs of the same env are compared.  A
label given twice for one env names two runs of one dataset and autoencoder (e.g. the
race's and the strategies' runs): their methods are read together, and runs that hold
different datasets or autoencoders are refused.  For every task: the dataset's best and
90th-percentile return (collection protocol, RUN/dataset/artifact), recovery with its
controls (untrained, random) and the best dataset policy re-evaluated on the final
evaluation keys (results.json), and each method's final return, mean and range over
seeds (--methods: only these).  The env steps of the collection, and of the
autoencoder's training where it spent any (its `rollout` or occupancy episodes), are
stated per run.  Writes experiments/results/compare_<tag>.{md,json} and, per env, the
finals side by side in compare_<tag>_<env>.png.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

from experiments.presets import RESULTS
from lsc import jsonfile


def parse_runs(items: list[str]) -> list[tuple[str, pathlib.Path]]:
  runs = []
  for item in items:
    label, sep, path = item.partition("=")
    if not sep or not label or not path:
      raise ValueError(f"expected LABEL=RUN_DIRECTORY, got {item!r}")
    if not (pathlib.Path(path) / "results.json").is_file():
      raise ValueError(f"{path} holds no results.json (not a finished pipeline run)")
    runs.append((label, pathlib.Path(path)))
  return runs


def summarize(run: pathlib.Path) -> dict:
  """{env, tasks: {task: {dataset_best, dataset_p90, recovery, controls, best_policy,
  methods: {method: final returns}}}, dataset_env_steps} of one pipeline run."""
  from lsc.checkpoint import digest
  from lsc.comparison import autoencoder_env_steps
  from lsc.dataset import load_dataset
  results = json.loads((run / "results.json").read_text())
  dataset, _ = load_dataset(run / "dataset" / "artifact")
  env = results["config"]["collect"]["env"]["name"]
  from lsc.tasks import task_names
  names = task_names(env)
  tasks = {}
  for i, task in enumerate(names):
    returns = np.asarray(dataset.returns[:, i], np.float64)
    tasks[task] = {
        "dataset_best": float(returns.max()), "dataset_p90": float(np.quantile(returns, 0.9)),
        "recovery": {kind: results["recovery"][kind][task]["recovery"] for kind in ("trained", "untrained", "random")},
        "best_policy": results["dataset_best"].get(task, {}).get("return"),
        "methods": {m: o["final_returns"] for m, o in results["curves"].get(task, {}).items()}}
  return {"env": env, "source": dataset.config.source, "tasks": tasks,
          "dataset_env_steps": results["dataset_env_steps"], "dataset_size": int(len(dataset.thetas)),
          "autoencoder_env_steps": autoencoder_env_steps(results, str(run)),
          "dataset_digest": digest(run / "dataset" / "artifact"), "results": results}


def merge(first: dict, second: dict, label: str) -> dict:
  """One label's two summaries of one dataset and autoencoder, their methods together;
  ValueError if they hold different ones (dataset digests, or what the race compares:
  `lsc.comparison.dataset_clash`), differ in a setting every run of one race shares
  (`lsc.comparison.SHARED_SETTINGS`: budget, seeds, evaluation, grid, ...), or both ran
  a method with other results."""
  from lsc.comparison import SHARED_SETTINGS, dataset_clash, settings_of
  clash = ("dataset digests differ" if first["dataset_digest"] != second["dataset_digest"]
           else dataset_clash(first["results"], second["results"]))
  if clash:
    raise ValueError(f"label {label!r} names runs {first['run']} and {second['run']}, which hold different datasets "
                     f"or autoencoders ({clash}): give them different labels")
  settings = [settings_of(s["results"], s["run"]) for s in (first, second)]
  differ = [key for key in SHARED_SETTINGS if settings[0][key] != settings[1][key]]
  if differ:
    raise ValueError(f"label {label!r} names runs {first['run']} and {second['run']}, which differ in "
                     f"{', '.join(differ)}: give them different labels")
  merged = {**first, "run": f"{first['run']}+{second['run']}", "tasks": {}}
  for task, row in first["tasks"].items():
    other = second["tasks"][task]["methods"]
    differ = sorted(m for m in set(row["methods"]) & set(other) if row["methods"][m] != other[m])
    if differ:
      raise ValueError(f"label {label!r}: runs {first['run']} and {second['run']} both ran {differ} on {task}, "
                       f"with other results")
    merged["tasks"][task] = {**row, "methods": {**row["methods"], **second["tasks"][task]["methods"]}}
  return merged


def markdown(summaries: dict, command: str, methods: list[str] | None = None) -> str:
  lines = [f"`{command}`", ""]
  by_env = {}
  for s in summaries.values():
    by_env.setdefault(s["env"], {})[s["label"]] = s
  for env, runs in by_env.items():
    labels = list(runs)
    lines += [f"### {env}", "", "Dataset: " + "; ".join(
        f"{label} ({runs[label]['source']}, {runs[label]['dataset_size']:,} policies, "
        f"{runs[label]['dataset_env_steps']:,} env steps"
        + (f"; the autoencoder's training {runs[label]['autoencoder_env_steps']:,} more"
           if runs[label].get("autoencoder_env_steps") else "") + ")" for label in labels), "",
        "| task | " + " | ".join(f"{label}: {what}" for what in ("best / p90 in dataset", "recovery (untrained, random)")
                                  for label in labels) + " |",
        "|---|" + "---:|" * (2 * len(labels))]
    tasks = list(runs[labels[0]]["tasks"])
    for task in tasks:
      cells = [f"{runs[l]['tasks'][task]['dataset_best']:.1f} / {runs[l]['tasks'][task]['dataset_p90']:.1f}"
               for l in labels]
      cells += ["{trained:.2f} ({untrained:.2f}, {random:.2f})".format(
                    **{k: jsonfile.number(v) for k, v in runs[l]["tasks"][task]["recovery"].items()}) for l in labels]
      lines.append(f"| {task} | " + " | ".join(cells) + " |")
    shown = shown_methods(runs.values(), methods)
    if shown:
      lines += ["", "Final return on fresh evaluation keys, mean [min, max] over seeds (best dataset policy "
                "re-evaluated on the same keys in brackets after the label):", "",
                "| task | " + " | ".join(f"{l}: {m}" for m in shown for l in labels) + " |",
                "|---|" + "---:|" * (len(shown) * len(labels))]
      for task in tasks:
        cells = []
        for m in shown:
          for l in labels:
            v = runs[l]["tasks"][task]["methods"].get(m)
            best = runs[l]["tasks"][task]["best_policy"]
            cells.append("-" if v is None else f"{np.mean(v):.1f} [{np.min(v):.1f}, {np.max(v):.1f}]"
                         + ("" if best is None else f" ({best:.1f})"))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


def shown_methods(summaries, methods: list[str] | None) -> list[str]:
  """The methods the summaries ran that a table or plot shows: `methods` (in their
  order) where given, else every one, sorted."""
  ran = {m for s in summaries for task in s["tasks"].values() for m in task["methods"]}
  return sorted(ran) if methods is None else [m for m in methods if m in ran]


def plot(summaries: dict, methods: list[str] | None, tag: str) -> None:
  """Per env, the methods' finals side by side (`lsc.plots.plot_finals`):
  experiments/results/compare_<tag>_<env>.png."""
  from lsc.plots import plot_finals
  by_env = {}
  for s in summaries.values():
    by_env.setdefault(s["env"], []).append(s)
  for env, runs in by_env.items():
    shown = shown_methods(runs, methods)
    if not shown:
      continue
    finals = {}
    for task in runs[0]["tasks"]:  # every run of one env lists its tasks
      ran = [(s["label"], s["tasks"][task]["methods"]) for s in runs]
      finals[task] = {m: {label: of[m] for label, of in ran if m in of} for m in shown if any(m in of for _, of in ran)}
    plot_finals(finals, RESULTS / f"compare_{tag}_{env}.png", f"{env}: final return per seed ({tag})")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(allow_abbrev=False, prog="python -m experiments.compare_runs",
                              description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", metavar="LABEL=RUN")
  p.add_argument("--tag", required=True, help="results file suffix")
  p.add_argument("--methods", help="comma-separated: show only these methods' finals, in this order")
  args = p.parse_args(argv)
  try:
    runs = parse_runs(args.runs)
    summaries = {}
    for label, run in runs:
      s = summarize(run)
      key, s = f"{label}@{s['env']}", {"label": label, "run": str(run), **s}
      summaries[key] = merge(summaries[key], s, label) if key in summaries else s
  except ValueError as error:
    print(f"experiments.compare_runs: error: {error}", file=sys.stderr)
    return 2
  for s in summaries.values():  # the whole results.json served the merge's check; the file keeps the summary
    del s["results"]
  methods = args.methods.split(",") if args.methods else None
  ran = shown_methods(summaries.values(), None)
  unknown = sorted(set(methods or ()) - set(ran))
  if unknown:
    print(f"experiments.compare_runs: error: --methods names {', '.join(unknown)}, which no run ran; "
          f"they ran {', '.join(ran)}", file=sys.stderr)
    return 2
  command = "python -m experiments.compare_runs " + " ".join(argv if argv is not None else sys.argv[1:])
  text = markdown(summaries, command, methods)
  RESULTS.mkdir(exist_ok=True)
  (RESULTS / f"compare_{args.tag}.json").write_text(jsonfile.dumps({"command": command, "runs": summaries}, indent=1))
  (RESULTS / f"compare_{args.tag}.md").write_text(text)
  plot(summaries, methods, args.tag)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
