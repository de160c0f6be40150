"""Reconstruction error against return rank: does the autoencoder keep the dataset's
best policies as well as its typical ones?

  python -m experiments.reconstruction runs/halfcheetah-cpu \
      [--variant own:states=own --variant long:patience=0 ...] [--out DIR] [--tag halfcheetah_cpu]

Reads a pipeline run's dataset (RUN/dataset/artifact) and its autoencoder
(RUN/autoencoder, the `pipeline` model), and trains each `--variant` NAME:KEY=VALUE,...
on the same dataset: the run's training settings with those overridden
(`lsc.config.override` of its TrainConfig), into OUT/NAME (resumed when there), with
its recovery measured as the run's was (`lsc.compression.compress`).  For the `--top`
best dataset policies of every task and `--sample` others, evaluates theta and
g(f(theta)) on fresh keys (`lsc.metrics.reconstruction_by_rank`) and reports, per
task and return-rank bucket, the return error relative to the range, the action error
on the policy's own visited states, and the best policy's return beside its
reconstruction's.  Writes experiments/results/reconstruction[_<tag>].{md,json,png}.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

from experiments.presets import RESULTS
from lsc import jsonfile
from lsc.keys import RECOVERY_EVAL_SEED
from lsc.validate import integer



def parse_variant(text: str) -> tuple[str, list[str]]:
  """NAME:KEY=VALUE,KEY=VALUE -> (NAME, ["KEY=VALUE", ...]) (TrainConfig fields)."""
  name, sep, items = text.partition(":")
  if not sep or not name or not items or any("=" not in item for item in items.split(",")):
    raise ValueError(f"--variant: expected NAME:KEY=VALUE[,KEY=VALUE...] (TrainConfig fields), got {text!r}")
  return name, items.split(",")


def markdown(reports: dict, command: str, episodes: int) -> str:
  tasks = list(next(iter(reports.values()))["tasks"])
  lines = [f"Reconstruction error against return rank, `{command}`. Errors: |J(θ) − J(g(f(θ)))| / range of J(θ) "
           f"over the rows (median / 90th percentile), {episodes} episode(s) on fresh keys (seed {RECOVERY_EVAL_SEED}); action "
           "error: mean ‖π_θ(s) − π_g(f(θ))(s)‖² over the policy's own visited states (median).", "",
           "| model | settings changed | steps run | training (s) | recovery | best recovery | error median | "
           "error p90 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
  for model, report in reports.items():
    summary = report["summary"]
    mean = {k: jsonfile.number(v) for k, v in summary["recovery"]["trained"]["mean"].items()}
    lines.append(f"| {model} | {', '.join(report['changes']) or '-'} | {summary['steps_run']} | "
                 f"{summary['timings'].get('train_s', float('nan')):.0f} | {mean['recovery']:.2f} | "
                 f"{mean['best_recovery']:.2f} | {mean['error_median']:.3f} | {mean['error_p90']:.3f} |")
  lines.append("")
  for task in tasks:
    lines += [f"### {task}", "", "| model | bucket | n | error median | error p90 | own action error |",
              "|---|---|---:|---:|---:|---:|"]
    for model, report in reports.items():
      for bucket, m in report["tasks"][task].items():
        if isinstance(m, dict) and "n" in m:
          lines.append(f"| {model} | {bucket} | {m['n']} | {m['error_median']:.3f} | {m['error_p90']:.3f} | "
                       f"{m['own_action_error_median']:.4f} |")
    lines += ["", "| model | best dataset policy: collected return | on fresh keys | reconstructed |",
              "|---|---:|---:|---:|"]
    for model, report in reports.items():
      b = report["tasks"][task]["best_policy"]
      lines.append(f"| {model} | {b['dataset_return']:.1f} | {b['return']:.1f} | {b['reconstructed_return']:.1f} |")
    lines.append("")
  return "\n".join(lines)


def plot(reports: dict, path: pathlib.Path) -> None:
  """Normalised return error against return rank (log scale), one panel per task."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  tasks = list(next(iter(reports.values()))["tasks"])
  fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.2), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    for j, (model, report) in enumerate(reports.items()):
      per = report["tasks"][task]
      ax.scatter(np.maximum(per["rank"], 1e-4), per["error"], s=6, alpha=0.5, color=f"C{j}", label=model)
    ax.set_xscale("log")
    ax.set_xlabel("return rank in the dataset (fraction)")
    ax.set_title(task)
  axes[0][0].set_ylabel("|J(θ) − J(g(f(θ)))| / range")
  axes[0][0].legend(fontsize=8)
  fig.tight_layout()
  from lsc.distributed import on_main
  on_main(fig.savefig, path, dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("run", help="a pipeline run directory (its dataset/artifact and autoencoder are read)")
  p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                 help="an autoencoder trained on the run's dataset with these TrainConfig fields changed")
  p.add_argument("--out", default=None, help="where the variants are trained (default runs/reconstruction/<tag>)")
  p.add_argument("--top", type=integer, default=16, help="best dataset policies per task")
  p.add_argument("--sample", type=integer, default=256, help="other dataset policies, drawn uniformly")
  p.add_argument("--episodes", type=integer, default=1)
  p.add_argument("--tag", default="")
  p.add_argument("--results", default=str(RESULTS))
  from lsc import distributed
  distributed.add_arguments(p)
  args = p.parse_args(argv)

  distributed.setup_command_line(p, args)
  from lsc.compression import compress
  from lsc.config import from_dict, override
  from lsc.dataset import load_dataset
  from lsc.evaluation import EvalProtocol
  from lsc.metrics import reconstruction_by_rank
  from lsc.progress import Bars
  from lsc.training import TrainConfig, load_autoencoder

  run = pathlib.Path(args.run)
  out = pathlib.Path(args.out or f"runs/reconstruction/{args.tag or run.name}")
  try:
    summary = json.loads((run / "autoencoder" / "recovery.json").read_text())
    base = from_dict(TrainConfig, summary["train"])
    variants = {name: (changes, override(base, changes)) for name, changes in map(parse_variant, args.variant)}
    dataset, _ = load_dataset(run / "dataset" / "artifact")
  except (ValueError, FileNotFoundError) as error:
    print(f"reconstruction: error: {error}", file=sys.stderr)
    return 2
  env = dataset.config.env.build()
  policy = dataset.config.policy.build(env)
  recovery = EvalProtocol(**summary["recovery_protocol"])
  models = {"pipeline": ([], load_autoencoder(run / "autoencoder" / "model"), summary)}
  for name, (changes, config) in variants.items():
    with Bars() as bars:
      compressed = compress(run / "dataset" / "artifact", config, out / name, protocol=recovery,
                            n_points=summary["held_out"], progress_fn=bars)
    models[name] = (changes, compressed.autoencoder, compressed.summary)
  protocol = EvalProtocol(args.episodes, RECOVERY_EVAL_SEED)
  reports = {}
  for name, (changes, trained, trained_summary) in models.items():
    reports[name] = {**reconstruction_by_rank(env, policy, trained.ae, trained.params, dataset, protocol,
                                              top=args.top, sample=args.sample),
                     "changes": changes, "summary": trained_summary}
    print(f"{name}: evaluated {len(reports[name]['rows'])} policies and their reconstructions")
  command = "python -m experiments.reconstruction " + " ".join(argv if argv is not None else sys.argv[1:])
  results = pathlib.Path(args.results)
  results.mkdir(parents=True, exist_ok=True)
  stem = results / ("reconstruction" + (f"_{args.tag}" if args.tag else ""))
  text = markdown(reports, command, args.episodes)
  distributed.on_main(stem.with_suffix(".md").write_text, text)
  plain = {name: {**{k: np.asarray(v).tolist() for k, v in r.items() if k in ("rows", "returns", "reconstructed",
                                                                            "own_error")},
                  "changes": r["changes"], "recovery": r["summary"]["recovery"],
                  "steps_run": r["summary"]["steps_run"], "timings": r["summary"]["timings"],
                  "tasks": {t: {b: (np.asarray(m).tolist() if isinstance(m, np.ndarray) else m) for b, m in per.items()}
                            for t, per in r["tasks"].items()}} for name, r in reports.items()}
  payload = {"command": command, "seed": RECOVERY_EVAL_SEED, "episodes": args.episodes, "reports": plain}
  distributed.on_main(stem.with_suffix(".json").write_text, jsonfile.dumps(payload))
  plot(reports, stem.with_suffix(".png"))
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
