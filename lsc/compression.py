"""Stage 3 end to end: train an autoencoder on a dataset artifact, then measure its
performance recovery (with the untrained-decoder and random-policy controls) and draw
its training curves and latent landscape.  What `lsc train` and the experiments run.

Output directory layout: `model/` (the autoencoder artifact, checkpoints included),
`recovery.json` (strict JSON: an undefined metric is null), `training.png` and, for
latent_dim <= 2, `landscape.png`.
"""

import pathlib

import numpy as np

from lsc import jsonfile
from lsc.dataset import load_dataset
from lsc.evaluation import EvalProtocol
from lsc.keys import RECOVERY_EVAL_SEED
from lsc.metrics import check_recovery_points, points_for, recovery_report
from lsc.plots import plot_landscape, plot_training
from lsc.progress import ProgressFn, for_stage
from lsc.tasks import task_names
from lsc.training import TrainConfig, Trainer, train
from lsc.distributed import on_main

RECOVERY_PROTOCOL = EvalProtocol(episodes=3, seed=RECOVERY_EVAL_SEED)


def compress(dataset_path, config: TrainConfig, out, *, protocol: EvalProtocol = RECOVERY_PROTOCOL,
             n_points: int = 256, progress_fn: ProgressFn | None = None,
             overwrite: bool = False) -> dict:
  """Trains on the dataset at `dataset_path` (resuming from `out`/model when it holds a
  run of the same settings on the same dataset; `overwrite` starts afresh), evaluates
  recovery on up to `n_points` held-out policies and writes the outputs listed in the
  module docstring.  Returns the summary written to recovery.json."""
  config.check()  # bad settings fail before the dataset is read
  check_recovery_points(config.latent_dim, n_points, "n_points (recovery_points)")
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  dataset, record = load_dataset(dataset_path)
  if len(dataset.thetas) < 2:
    raise ValueError(f"the dataset at {dataset_path} holds {len(dataset.thetas)} policies; training needs >= 2")
  env_config, policy_config = dataset.config.env, dataset.config.policy
  env = env_config.build()
  policy = policy_config.build(env)
  trainer = Trainer(env, policy, dataset, config)
  record_config = {"dataset": str(pathlib.Path(dataset_path).absolute()), "env": record["config"]["env"],
                   "policy": record["config"]["policy"], "inputs": {"dataset": record["digest"]}}
  state, codes, timings = train(trainer, out / "model", record_config, progress_fn, overwrite=overwrite)

  held_out = trainer.val_idx[:points_for(config.latent_dim, len(trainer.val_idx), n_points)]
  held_out = np.asarray(trainer.thetas[held_out], np.float32)  # only those rows: a PoolMembers regenerates them
  report = recovery_report(env, policy, trainer.ae, state["best_params"], held_out, protocol,
                           pool_seed=dataset.config.seed, seed=config.seed,
                           progress_fn=for_stage(progress_fn, "recovery"))
  landscape = report.pop("landscape")
  names = task_names(env.name)
  title = f"{env.name} {policy_config.preset} policy, latent {config.latent_dim}, {config.loss} loss"
  plot_training(state["history"], out / "training.png", title)
  plot_landscape(landscape["z"], landscape["returns"], names, out / "landscape.png", title)
  summary = {"dataset": record_config["dataset"], "dataset_size": len(trainer.thetas),
             "held_out": len(held_out), "env": env.name, "backend": env.backend, "policy": policy_config.preset,
             "num_params": policy.num_params, "train": {k: getattr(config, k) for k in config.__dataclass_fields__},
             "steps_run": state["step"], "best_val": state["best_val"], "timings": timings,
             "recovery_protocol": {"episodes": protocol.episodes, "seed": protocol.seed}, "recovery": report}
  summary = jsonfile.plain(summary)  # strict JSON: an undefined metric (NaN) is null, here as when read back
  on_main((out / "recovery.json").write_text, jsonfile.dumps(summary, indent=2))
  return summary


def recovery_table(report: dict, names) -> str:
  """A markdown table of a recovery report: one row per (row, task) and the means; an
  undefined metric (NaN, or null read back from recovery.json) shows as n/a."""
  cell = lambda v, digits: "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"
  lines = ["| row | task | recovery | best_recovery | error median | error p90 | wasserstein |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for row in ("trained", "untrained", "random"):
    for task in (*names, "mean"):
      m = report[row][task]
      lines.append(f"| {row} | {task} | {cell(m['recovery'], 2)} | {cell(m['best_recovery'], 2)} | "
                   f"{cell(m['error_median'], 3)} | {cell(m['error_p90'], 3)} | {cell(m['wasserstein'], 3)} |")
  return "\n".join(lines)
