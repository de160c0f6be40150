"""The compression table: performance recovery per policy size and latent size, with the
parameter-loss ablation and both controls, beside the paper's numbers.

  python -m experiments.compression_table                       # mountain_car, CPU-sized
  python -m experiments.compression_table --pool 100000 --keep 0.5 --steps 20000   # paper-sized

For each policy preset: collect a dataset (reused when its artifact exists in --out),
then train one autoencoder per latent size with the behaviour loss and, for the
ablation, with the parameter loss, and measure recovery (`lsc.compression.compress`).
Every stage resumes from --out.  Writes experiments/results/compression_<env>.{json,md}.
"""

import argparse
import dataclasses
import itertools
import pathlib
import sys
import time

from experiments.presets import RESULTS
from lsc import jsonfile
from lsc.validate import integer

# The paper's Mountain Car recovery (dataset 50k, mean over tasks) per preset at latent 1 / 2 / 3.
PAPER = {"mountain_car": {"small": (0.64, 0.93, 0.94), "medium": (0.66, 1.01, 1.02), "large": (1.02, 1.01, 1.01)}}
# The paper's per-task recovery of Hopper and HalfCheetah at latent 5 / 8 / 16.
PAPER_TASKS = {"hopper": {"forward": (1.33, 1.59, 1.48), "backward": (2.66, 1.29, 1.20), "jump": (3.83, 1.54, 2.42)},
               "halfcheetah": {"forward": (1.63, 1.80, 1.84), "backward": (1.27, 1.52, 1.72),
                               "frontflip": (0.54, 0.74, 1.20), "backflip": (0.55, 0.75, 1.23)}}
PAPER_TASK_LATENTS = (5, 8, 16)


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--env", default="mountain_car")
  p.add_argument("--presets", default="small,medium,large")
  p.add_argument("--latents", default="1,2,3")
  p.add_argument("--losses", default="behaviour,parameter")
  p.add_argument("--encoder-inputs", default="actions",
                 help="comma-separated encoder inputs: actions (lsc's default) and/or parameters (the paper's)")
  p.add_argument("--pool", type=integer, default=50_000)
  p.add_argument("--keep", type=float, default=0.2)
  p.add_argument("--large-pool", type=integer, default=0, help="pool for the large preset (0: --pool)")
  p.add_argument("--steps", type=integer, default=3000)
  p.add_argument("--large-steps", type=integer, default=0, help="steps for the large preset (0: --steps)")
  p.add_argument("--out", default="runs/compression", help="datasets and models (every stage resumes from here)")
  p.add_argument("--results", default=str(RESULTS), help="where compression_<env>[_<tag>].{md,json} go")
  p.add_argument("--tag", default="", help="suffix of the results files, e.g. gpu")
  p.add_argument("--dataset", default=None, help="a dataset artifact to use instead of collecting one (e.g. a "
                 "pipeline run's RUN/dataset/artifact): its env and policy win over --env and --presets")
  p.add_argument("--lr", type=float, default=1e-3, help="autoencoder learning rate")
  p.add_argument("--widths", default="128", help="encoder (and decoder) hidden widths, e.g. 256")
  p.add_argument("--recovery-points", type=integer, default=256, help="held-out policies per recovery row")
  p.add_argument("--recovery-episodes", type=integer, default=3, help="episodes per recovery evaluation")
  from lsc import distributed
  distributed.add_arguments(p)
  args = p.parse_args(argv)
  distributed.setup_command_line(p, args)
  return args


def _device() -> str:
  import jax
  return f"{jax.devices()[0].device_kind} ({jax.default_backend()})"


def write_table(args, argv, rows) -> str:
  """Writes the rows so far as markdown + JSON under args.results; returns the markdown."""
  paper = PAPER.get(args.env, {})
  lines = [f"Performance recovery on {args.env} (mean over its tasks), `python -m experiments.compression_table "
           f"{' '.join(argv or sys.argv[1:])}`. Dataset = the `keep` most novel of a random pool; recovery and "
           f"errors on held-out dataset policies (see lsc.metrics). Device: {_device()}.", "",
           "| policy | encoder input | loss | latent | dataset | paper recovery | recovery | untrained | random | "
           "median error (untrained, random) | W1 (untrained, random) | steps | training (s) |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"]
  for r in rows:
    ref = paper.get(r["preset"])
    ref = f"{ref[r['latent_dim'] - 1]:.2f}" if ref and r["loss"] == "behaviour" and r["latent_dim"] <= 3 else ""
    lines.append(f"| {r['preset']} | {r['encoder_input']} | {r['loss']} | {r['latent_dim']} | {r['dataset']:,} | {ref} | "
                 f"{r['trained_recovery']:.2f} | {r['untrained_recovery']:.2f} | {r['random_recovery']:.2f} | "
                 f"{r['trained_error_median']:.3f} ({r['untrained_error_median']:.3f}, {r['random_error_median']:.3f}) | "
                 f"{r['trained_wasserstein']:.3f} ({r['untrained_wasserstein']:.3f}, {r['random_wasserstein']:.3f}) | "
                 f"{r['steps']} | {r['seconds']:.0f} |")
  per_task = PAPER_TASKS.get(args.env)
  if per_task and rows:
    names = list(per_task)
    lines += ["", "Recovery per task, trained (paper at the same latent size where it has one):", "",
              "| policy | encoder input | loss | latent | " + " | ".join(names) + " |",
              "|---|---|---|---:|" + "---:|" * len(names)]
    for r in rows:
      at = PAPER_TASK_LATENTS.index(r["latent_dim"]) if r["latent_dim"] in PAPER_TASK_LATENTS else None
      cells = [f"{r['tasks'][t]:.2f}" + (f" ({per_task[t][at]:.2f})" if at is not None and r["loss"] == "behaviour"
                                          else "") for t in names]
      lines.append(f"| {r['preset']} | {r['encoder_input']} | {r['loss']} | {r['latent_dim']} | " + " | ".join(cells) + " |")
  results = pathlib.Path(args.results)
  results.mkdir(parents=True, exist_ok=True)
  stem = results / (f"compression_{args.env}" + (f"_{args.tag}" if args.tag else ""))
  from lsc.distributed import on_main  # process 0 of a multi-process run writes
  on_main(stem.with_suffix(".json").write_text, jsonfile.dumps({"args": vars(args), "rows": rows}, indent=2))
  on_main(stem.with_suffix(".md").write_text, "\n".join(lines) + "\n")
  return "\n".join(lines)


def main(argv=None) -> int:
  args = parse_args(argv)
  from lsc import checkpoint
  from lsc.compression import RECOVERY_PROTOCOL, compress
  from lsc.config import EnvConfig, PolicyConfig
  from lsc.dataset import CollectConfig, collect, save_dataset
  from lsc.training import TrainConfig

  out = pathlib.Path(args.out)
  if args.dataset:  # the dataset's env and policy preset
    saved = checkpoint.read_record(args.dataset)["config"]
    args.env, args.presets = saved["env"]["name"], saved["policy"]["preset"]
  widths = tuple(int(w) for w in args.widths.split(","))
  protocol = dataclasses.replace(RECOVERY_PROTOCOL, episodes=args.recovery_episodes)
  rows = []
  for preset in args.presets.split(","):
    large = preset == "large"
    pool = (args.large_pool or args.pool) if large else args.pool
    steps = (args.large_steps or args.steps) if large else args.steps
    data = out / f"{args.env}_{preset}_pool{pool}_keep{args.keep}"
    if args.dataset:
      data = pathlib.Path(args.dataset)
    elif not checkpoint.is_artifact(data):
      start = time.perf_counter()
      save_dataset(data, collect(CollectConfig(EnvConfig(args.env), PolicyConfig(preset), pool=pool, keep=args.keep)))
      print(f"{preset}: collected {data} in {time.perf_counter() - start:.0f} s", flush=True)
    for encoder_input, loss in itertools.product(args.encoder_inputs.split(","), args.losses.split(",")):
      for latent in (int(k) for k in args.latents.split(",")):
        config = TrainConfig(latent_dim=latent, loss=loss, steps=steps, encoder_input=encoder_input, lr=args.lr,
                             encoder_widths=widths, decoder_widths=widths)
        start = time.perf_counter()
        name = (f"{args.env}_{preset}_{checkpoint.digest(data)[:12]}" if args.dataset else data.name)
        summary = compress(data, config, out / f"{name}_{loss}_{encoder_input}_k{latent}", protocol=protocol,
                           n_points=args.recovery_points).summary
        report = summary["recovery"]
        row = {"preset": preset, "encoder_input": encoder_input, "loss": loss, "latent_dim": latent,
               "dataset": summary["dataset_size"],
               "held_out": summary["held_out"], "steps": summary["steps_run"],
               "seconds": summary["timings"]["train_s"], "wall_s": time.perf_counter() - start,
               **{f"{r}_{m}": jsonfile.number(report[r]["mean"][m]) for r in ("trained", "untrained", "random")
                  for m in ("recovery", "error_median", "wasserstein")},
               "tasks": {t: jsonfile.number(report["trained"][t]["recovery"]) for t in report["trained"] if t != "mean"}}
        rows.append(row)
        write_table(args, argv, rows)  # after every row: a long run shows what it has so far
        print(f"{preset:<6} {encoder_input:<10} {loss:<9} k={latent}: recovery {row['trained_recovery']:.2f} (untrained "
              f"{row['untrained_recovery']:.2f}, random {row['random_recovery']:.2f}), median error "
              f"{row['trained_error_median']:.3f} ({row['seconds']:.0f} s)", flush=True)

  print(write_table(args, argv, rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
