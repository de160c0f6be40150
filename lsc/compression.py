"""Stage 3 end to end: train an autoencoder on a dataset (in memory, or the artifact at a
path), then measure its performance recovery (with the untrained-decoder and
random-policy controls).  What `lsc train` and the experiments run.

`compress` returns a `Compressed` in memory: the trained autoencoder (what
`load_autoencoder` reads back from an artifact), the recovery report and the summary.
Saving is separate: only given an output directory does it write there `model/` (the
autoencoder artifact, checkpoints included, which a later call resumes from),
`recovery.json` (the summary, strict JSON: an undefined metric is null),
`training.png` and, for latent_dim <= 2, `landscape.png`.
"""

import dataclasses
import os
import pathlib

import numpy as np

from lsc import checkpoint, jsonfile
from lsc.config import to_dict
from lsc.dataset import Dataset, dataset_digest, load_dataset
from lsc.evaluation import EvalProtocol
from lsc.keys import RECOVERY_EVAL_SEED
from lsc.metrics import check_recovery_points, points_for, recovery_report
from lsc.plots import plot_landscape, plot_training
from lsc.progress import ProgressFn, for_stage
from lsc.tasks import task_names
from lsc.training import (KIND as AUTOENCODER_KIND, TrainConfig, TrainedAutoencoder, Trainer, state_record,
                          identity as autoencoder_identity, train)
from lsc.distributed import on_main

RECOVERY_PROTOCOL = EvalProtocol(episodes=3, seed=RECOVERY_EVAL_SEED)


@dataclasses.dataclass(frozen=True)
class Compressed:
  """What `compress` returns: the same numbers whether or not it wrote anything."""
  autoencoder: TrainedAutoencoder  # ae, params (the best), codes of every dataset policy, record (see `compress`)
  recovery: dict  # {row: {task or "mean": metrics}}, rows trained, untrained, random (NaN: undefined)
  summary: dict  # what recovery.json holds: the dataset, settings, steps, timings, recovery (undefined: None)
  landscape: dict  # the trained model's latent points: "z" (n, k) and their "returns" (n, tasks)
  history: dict  # the training curves: lists under step, train, val_behaviour, val_parameter


def compress(dataset, config: TrainConfig, out=None, *, protocol: EvalProtocol = RECOVERY_PROTOCOL,
             n_points: int = 256, progress_fn: ProgressFn | None = None, overwrite: bool = False) -> Compressed:
  """Trains `config`'s autoencoder on `dataset` (an `lsc.Dataset`, as `collect` returns
  it, or the path of a saved one) and evaluates its recovery on up to `n_points`
  held-out policies under `protocol`.

  With `out` None nothing is written.  With a directory `out`, training resumes from
  `out`/model when it holds a run of the same settings on the same dataset (by content
  digest; `overwrite` starts afresh), checkpoints there, and the outputs listed in the
  module docstring are written; the numbers are the same either way.

  The returned autoencoder's record holds the dataset's path (None for one given in
  memory) and content digest (computed as `save_dataset` would record it, `dataset_digest`),
  the training settings and outcome; with `out`, it is the artifact's own record (as
  `load_autoencoder(out / "model")` reads it: versions and digest included), without,
  what that record's kind, identity and config would be, plus the package versions."""
  config.check()  # bad settings fail before the dataset is read
  check_recovery_points(config.latent_dim, n_points, "n_points (recovery_points)")
  if out is not None:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
  if isinstance(dataset, Dataset):
    source, saved, digest = None, to_dict(dataset.config), dataset_digest(dataset)
  elif isinstance(dataset, (str, os.PathLike)):
    source = str(pathlib.Path(dataset).absolute())
    dataset, record = load_dataset(dataset)
    saved, digest = record["config"], record["digest"]
  else:
    raise TypeError(f"dataset must be an lsc.Dataset (from lsc.collect) or the path of a saved one, "
                    f"got {type(dataset).__name__}")
  if len(dataset.thetas) < 2:
    where = "" if source is None else f" at {source}"
    raise ValueError(f"the dataset{where} holds {len(dataset.thetas)} policies; training needs >= 2")
  env_config, policy_config = dataset.config.env, dataset.config.policy
  env = env_config.build()
  policy = policy_config.build(env)
  trainer = Trainer(env, policy, dataset, config)
  # the dataset by its digest (`inputs`); where it was read from is provenance, left out of the autoencoder's own
  # digest (`checkpoint.VOLATILE`), so the same training on the same dataset elsewhere has the same digest
  record_config = {"dataset_path": source, "env": saved["env"], "policy": saved["policy"],
                   "inputs": {"dataset": digest}}
  model = None if out is None else out / "model"
  state, codes, timings = train(trainer, model, record_config, progress_fn, overwrite=overwrite)

  held_out = trainer.val_idx[:points_for(config.latent_dim, len(trainer.val_idx), n_points)]
  held_out = np.asarray(trainer.thetas[held_out], np.float32)  # only those rows: a PoolMembers regenerates them
  report = recovery_report(env, policy, trainer.ae, state["best_params"], held_out, protocol,
                           pool_seed=dataset.config.seed, seed=config.seed,
                           progress_fn=for_stage(progress_fn, "recovery"))
  landscape = report.pop("landscape")
  summary = {"dataset": source, "dataset_size": len(trainer.thetas),
             "held_out": len(held_out), "env": env.name, "backend": env.backend, "policy": policy_config.preset,
             "num_params": policy.num_params, "train": {k: getattr(config, k) for k in config.__dataclass_fields__},
             "steps_run": state["step"], "best_val": state["best_val"], "env_steps": state["env_steps"], "timings": timings,
             "recovery_protocol": {"episodes": protocol.episodes, "seed": protocol.seed}, "recovery": report}
  summary = jsonfile.plain(summary)  # strict JSON: an undefined metric (NaN) is null, here as when read back
  if out is None:
    record = {"kind": AUTOENCODER_KIND, "identity": autoencoder_identity(trainer),
              "config": state_record(trainer, state, {**record_config, "timings": timings}, final=True),
              "versions": checkpoint.versions()}
  else:
    title = f"{env.name} {policy_config.preset} policy, latent {config.latent_dim}, {config.loss} loss"
    plot_training(state["history"], out / "training.png", title)
    plot_landscape(landscape["z"], landscape["returns"], task_names(env.name), out / "landscape.png", title)
    on_main((out / "recovery.json").write_text, jsonfile.dumps(summary, indent=2))
    record = {**checkpoint.read_record(model), "digest": checkpoint.digest(model)}
  return Compressed(TrainedAutoencoder(trainer.ae, state["best_params"], codes, record), report, summary, landscape,
                    state["history"])


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
