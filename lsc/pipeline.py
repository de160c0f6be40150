"""The whole method on one env, as one resumable pipeline (`run(config, out)`; the
command line of `python -m experiments.<env>` is `main`): collect -> train the
autoencoder -> recovery (with controls) -> for each task, every method of
`search.methods` (any registered method: `lsc.methods`).

Settings: `collect.*`, `train.*`, `search.*` (which methods run, their budget and seeds)
and `methods.<name>.*` (each method's own: `methods.latent_pgpe.std_init`,
`methods.ppo.learning_rate`, ...), from a preset, `--config FILE` and `--set KEY=VALUE`.

Each stage writes into its own directory under --out together with `stage.json`, its
key: its complete config (every field, defaults included), the content digests of the
stages it reads and the package versions.  A rerun reuses a stage whose key matches and
recomputes it (and everything downstream of it) otherwise, so an interrupted run
continues where it stopped and changing one method's setting recomputes only the
searches that read it.  Searches checkpoint between chunks, so even a killed search resumes.

Outputs in --out: results.json (config, versions, device, timings with compile time
apart, recovery per task with controls, per-method curves of return vs env steps per
seed), curves_<task>.png (every method, mean and min-max band over seeds), the
autoencoder's training.png and landscape.png, and summary.md (printed at the end).
"""

import argparse
import dataclasses
import functools
import json
import pathlib
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from lsc import checkpoint, distributed, jsonfile, rundir
from lsc.compression import RECOVERY_PROTOCOL, compress, recovery_table
from lsc.config import override, read_settings, to_dict
from lsc.dataset import CollectConfig, collect, load_dataset, save_dataset
from lsc.distributed import on_main
from lsc.envs import default_backend, env_spec
from lsc.evaluation import EvalProtocol, evaluate
from lsc.jax_setup import cpu_ids, release_executables
from lsc.keys import CURVE_EVAL_SEED, FINAL_EVAL_SEED, START_SEED, SUBSPACE_SEED
from lsc.methods import (MethodConfigs, Sequence, check_can_run, default_backend_for, get_method,
                         load_outcome, names, run_method)
from lsc.metrics import check_recovery_points
from lsc.occupancy import check_env as check_occupancy_env
from lsc.plots import plot_curves
from lsc.progress import METRICS, Bars, MetricsLog, tee
from lsc.search import decoder_space, euclidean_space, identity_space, principal_subspace, random_subspace
from lsc.store import Stages, dataset_key, search_stage
from lsc.tasks import get_task, task_index, task_names
from lsc.training import TrainConfig, load_autoencoder
from lsc.validate import check_int, check_seed, debug_wanted, error_line, integer, user_errors


# Where latent PGPE starts: `mean` the mean code; `best` the code of the dataset policy
# with the best collected return on the task (one collection episode each, so partly
# luck); `best_decoded` the code, among the `start_candidates` best dataset policies,
# whose *decoded* policy returns most over `start_episodes` fresh episodes (seed
# START_SEED): what the search actually starts from, chosen on the task's reward, so
# those env steps are charged to the search (`run_method(spent=...)`); `spread` the same
# choice among `start_candidates` codes picked with no reward, spread over the latent
# space (`spread_rows` of the codes), so that the candidates' episodes are the only task
# reward it reads and all it is charged; `spread_descriptors` its control, the candidates
# spread over the dataset's behaviour descriptors instead (the actions on the probe
# states, which the novelty filter reads: no autoencoder in the choice).
LATENT_STARTS = ("mean", "best", "best_decoded", "spread", "spread_descriptors")
# the latent starts that evaluate candidates (charged), and where the spread ones pick them
CHOSEN_BY_DECODING = ("best_decoded", "spread", "spread_descriptors")
# of a search stage's key: 2, every method's whole settings (`Method.identity`); 3, every
# method's learning curve on the common grid (`lsc.methods.Outcome.eval_returns`)
STAGE_FORMAT = 3


# the methods a pipeline runs unless told otherwise (every registered method can run)
DEFAULT_METHODS = ("latent_pgpe", "latent_then_param", "param_pgpe", "ppo", "sac", "td3", "ddpg")


@dataclasses.dataclass(frozen=True)
class SearchSettings:
  """What the search stage runs, and how much: the methods (`methods`, by registered
  name), their budget and seeds (the same for every method), where latent searches
  start and the grid of env steps every method's learning curve is evaluated at.  Each method's own settings are in the
  `methods.<name>.*` section (`ExperimentConfig.methods`)."""
  methods: tuple[str, ...] = DEFAULT_METHODS
  budget: int = 1_000_000  # env steps per seed and method
  seeds: int = 3
  seed: int = 0  # the first seed (seed, seed + 1, ...); tune on seeds the reported runs do not use
  latent_start: str = "mean"  # mean | best | best_decoded | spread | spread_descriptors (see LATENT_STARTS)
  start_candidates: int = 8  # best_decoded, spread*: how many codes' decodings are tried
  start_episodes: int = 3  # best_decoded, spread*: episodes per candidate (charged to the latent search)
  n_evals: int = 10  # learning-curve grid: n_evals equal intervals of the budget, 0 included (RL: its epochs)

  def check(self) -> None:
    """Raises ValueError naming any bad field."""
    for name in ("budget", "seeds", "n_evals", "start_candidates", "start_episodes"):
      check_int(f"search.{name}", getattr(self, name), low=1)
    check_seed("search.seed", self.seed, count=self.seeds)
    if self.latent_start not in LATENT_STARTS:
      raise ValueError(f"unknown search.latent_start {self.latent_start!r}; valid: {', '.join(LATENT_STARTS)}")
    if not isinstance(self.methods, tuple) or not all(isinstance(m, str) for m in self.methods):
      raise ValueError(f"search.methods must be a list of names, got {self.methods!r}")
    if not self.methods:
      raise ValueError(f"search.methods is empty; name at least one of {', '.join(names())}")
    for name in self.methods:
      get_method(name)  # ValueError listing the valid names

  def max_spent(self, episode_length: int) -> int:
    """The most env steps choosing a latent start can charge a search."""
    if self.latent_start not in CHOSEN_BY_DECODING:
      return 0
    return self.start_candidates * self.start_episodes * episode_length


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """One env's whole pipeline.  `methods`: every method's settings, by name
  (`methods.latent_pgpe.std_init`, `methods.ppo.learning_rate`, ...)."""
  collect: CollectConfig
  train: TrainConfig
  search: SearchSettings = SearchSettings()
  methods: MethodConfigs = MethodConfigs()
  tasks: tuple[str, ...] = ()  # empty: every task of the env
  eval_episodes: int = 5
  eval_seed: int = FINAL_EVAL_SEED
  curve_seed: int = CURVE_EVAL_SEED  # the learning curves' fixed episodes (eval_episodes of them)
  recovery_points: int = 256  # held-out policies (and latent points) per recovery row
  recovery_episodes: int = 3


def searched(name: str) -> set[str]:
  """The spaces method `name` searches or starts in (a sequence's: its phases')."""
  method = get_method(name)
  if isinstance(method, Sequence):
    return set().union(*(searched(phase) for phase in method.phases))
  return {method.space} if getattr(method, "space", None) else set()


def run_settings(settings: SearchSettings, method: str) -> dict:
  """The `search.*` fields a run of `method` reads: every method its budget and seeds; a
  method that reads the autoencoder where it starts.  In its stage key, with the
  method's own settings."""
  fields = ["budget", "seeds", "seed", "n_evals"]
  if get_method(method).reads == "autoencoder":
    fields += ["latent_start"] + (["start_candidates", "start_episodes"]
                                  if settings.latent_start in CHOSEN_BY_DECODING else [])
  return {f: getattr(settings, f) for f in fields}


def validate(config: ExperimentConfig):
  """Checks every setting of `config` without building an env or compiling anything;
  ValueError names the bad value and what is allowed.  Returns the resolved collect config."""
  collect = config.collect.resolved()  # env, policy, pool sizes, seeds, memory
  env_name = collect.env.name
  config.train.check(**collect.training_inputs())  # latent_dim, held-out and training sizes, memory
  check_recovery_points(config.train.latent_dim, config.recovery_points)
  config.search.check()
  for name in ("eval_episodes", "recovery_points", "recovery_episodes"):
    check_int(name, getattr(config, name), low=1)
  check_seed("eval_seed", config.eval_seed)
  check_seed("curve_seed", config.curve_seed)
  if not isinstance(config.tasks, tuple) or not all(isinstance(v, str) for v in config.tasks):
    raise ValueError(f"tasks must be a list of names, got {config.tasks!r}")
  for task in config.tasks:
    get_task(env_name, task)  # ValueError naming the valid tasks
  settings = config.search
  if config.collect.env.backend is None:  # one physics for every method of the run
    collect = dataclasses.replace(collect, env=dataclasses.replace(
        collect.env, backend=default_backend_for(settings.methods, env_name)))
  check_can_run(settings.methods, collect.env.backend)
  episode_length = collect.env.episode_length
  dims = {"latent": config.train.latent_dim, "parameter": collect.policy.num_params(env_name)}
  dims.update(start=dims["parameter"], random_subspace=dims["latent"], principal_subspace=dims["latent"])  # controls
  for name in settings.methods:
    method = get_method(name)
    spent = settings.max_spent(episode_length) if method.reads == "autoencoder" else 0
    try:
      method.check(config.methods, settings.budget, episode_length, spent=spent, dims=dims, n_evals=settings.n_evals,
                   backend=collect.env.backend)
    except ValueError as error:  # a sequence's message names the phase whose settings to change
      extra = f" after choosing the {settings.latent_start} start" if spent else ""
      where = "" if isinstance(method, Sequence) else f"methods.{name}.*, "
      raise ValueError(f"{name} ({where}search.budget {settings.budget:,}{extra}): {error}") from None
  reads_codes = any(get_method(m).reads == "autoencoder" for m in settings.methods)
  if reads_codes and settings.latent_start in CHOSEN_BY_DECODING and settings.start_candidates > collect.dataset_size:
    raise ValueError(f"search.start_candidates {settings.start_candidates:,} is more than the dataset's "
                     f"{collect.dataset_size:,} policies")
  return collect


def _plain(config) -> dict:
  return to_dict(config)


def run(config: ExperimentConfig, out, log=print, progress_fn=None, tensorboard: bool = False) -> dict:
  """Runs (or resumes) the pipeline into `out` (an lsc pipeline run directory, locked
  while it runs); returns the results dict.  `log(line)` gets the stage lines,
  `progress_fn` (see `lsc.progress`) the progress inside each stage, which also goes to
  out/metrics.jsonl (scope: the stage's name) and, with `tensorboard`, to TensorBoard
  event files in out/tensorboard."""

  collect_config = validate(config)  # every setting, before any env is built
  usual = default_backend(collect_config.env.name)
  if config.collect.env.backend is None and collect_config.env.backend != usual:
    log(f"note: backend {collect_config.env.backend}, not {usual}: the RL baselines cannot train on "
        "MuJoCo Warp (leave them out, or set collect.env.backend, to choose)")
  rundir.check(out, "pipeline")  # a foreign --out is refused before any work
  env = collect_config.env.build()
  policy = collect_config.policy.build(env)
  if config.train.occupied:  # before the dataset is collected, not after
    check_occupancy_env(env, policy, config.train.occupancy_policies, config.train.occupancy_horizon or None)
  tasks = config.tasks or task_names(env)
  out = rundir.claim(out, "pipeline")
  with rundir.lock(out), MetricsLog(out / METRICS, out / "tensorboard" if tensorboard else None) as metrics:
    return _run_stages(config, collect_config, env, policy, tasks, out, log, tee(progress_fn, metrics), metrics)


def _run_stages(config: ExperimentConfig, collect_config, env, policy, tasks, out: pathlib.Path, log,
                progress_fn, metrics) -> dict:
  """The stages of `run`, inside its lock on `out`."""
  stages = Stages(out, log, metrics)
  stages.clean_leftovers()
  protocol = EvalProtocol(config.eval_episodes, config.eval_seed)
  curve = EvalProtocol(config.eval_episodes, config.curve_seed)  # every method's learning curve

  # stage 1-2: the dataset
  data_config = dataset_key(collect_config)  # with the task formulas: none computed under other rewards is reused
  rewards = data_config["rewards"]
  log(f"[1/3] dataset: pool {collect_config.pool}, keep {collect_config.keep}")
  stages.run("dataset", data_config, lambda d: save_dataset(d / "artifact", collect(collect_config, progress_fn)),
             lambda d: None)
  dataset_path = out / "dataset" / "artifact"

  # stage 3: the autoencoder and its recovery
  ae_config = {**data_config, "train": _plain(config.train),
               "recovery": [config.recovery_points, config.recovery_episodes],
               "inputs": {"dataset": stages.digest("dataset", "artifact")}}
  log(f"[2/3] autoencoder: latent {config.train.latent_dim}, {config.train.loss} loss, {config.train.steps} steps")
  recovery_protocol = dataclasses.replace(RECOVERY_PROTOCOL, episodes=config.recovery_episodes)

  def compute_autoencoder(directory):
    compressed = compress(dataset_path, config.train, directory, protocol=recovery_protocol,
                          n_points=config.recovery_points, progress_fn=progress_fn)
    return compressed.summary, compressed.autoencoder

  def load_autoencoder_stage(directory):
    return json.loads((directory / "recovery.json").read_text()), load_autoencoder(directory / "model")

  summary, trained = stages.run("autoencoder", ae_config, compute_autoencoder, load_autoencoder_stage)
  log(recovery_table(summary["recovery"], task_names(env)))
  ae, params, codes = trained.ae, trained.params, trained.codes
  parameter = identity_space(policy, collect_config.seed)
  dataset, dataset_record = load_dataset(dataset_path)
  dataset_best = best_dataset_policies(env, policy, dataset, tasks, protocol)

  controls = set().union(*(searched(m) for m in config.search.methods))
  # the curves' reference line: the best dataset policy, with no search (the latent searches' start under `best`)
  start_label = ("best dataset policy (its code: the latent start)" if config.search.latent_start == "best"
                 else "best dataset policy")
  chosen = {}

  @functools.cache
  def candidates(rows: tuple) -> tuple:
    """(every task's decoded return (n, T), env steps) of dataset `rows`: evaluated once,
    where the tasks share their candidates (the spread starts)."""
    return decoded_returns(env, policy, ae, params, codes, rows, config.search.start_episodes)

  def latent_space(task):
    """(the latent search space of `task`, {kind: a function building the control space
    around its start} for the controls the run's methods search (each built once, and
    only by a stage that runs), env steps spent choosing the start); chosen once per task."""
    if task in chosen:
      return chosen[task]
    row, spent = None, 0  # the start: the mean code, or a dataset policy's
    if config.search.latent_start == "best":
      row = dataset_best[task]["index"]
    elif config.search.latent_start in CHOSEN_BY_DECODING:
      n, column = config.search.start_candidates, task_index(env, task)
      if config.search.latent_start == "best_decoded":
        rows = np.argsort(-np.asarray(dataset.returns)[:, column])[:n]
      else:  # picked with no reward: the same candidates for every task
        rows = spread_rows(codes if config.search.latent_start == "spread" else dataset.descriptors, n)
      rows = tuple(int(r) for r in rows)
      start = decoded_start(rows, *candidates(rows), column)
      log(f"      start: dataset row {start['row']} (decoded return {start['return']:.1f}, best of "
          f"{len(start['rows'])} {config.search.latent_start} candidates; {start['spent']:,} env steps charged)")
      starts[task] = start
      row, spent = start["row"], start["spent"]
    latent = decoder_space(ae, params, codes, start=None if row is None else codes[row])
    # the controls start from the policy the latent search is started at: where that is a
    # dataset policy's code, the policy's own parameters (the latent search starts at their
    # decoding, which differs by the reconstruction error), else the decoded centre
    origin = np.asarray(latent.decode(latent.center) if row is None else dataset.thetas[row], np.float32)
    k = config.train.latent_dim
    builders = {"start": lambda: euclidean_space(origin, policy.init_std(), "parameter"),
                "random_subspace": lambda: random_subspace(dataset.thetas, origin, k, jax.random.key(SUBSPACE_SEED)),
                "principal_subspace": lambda: principal_subspace(dataset.thetas, origin, k)}
    chosen[task] = latent, {kind: functools.cache(build) for kind, build in builders.items() if kind in controls}, spent
    return chosen[task]

  # stage 4: searches; latent PGPE also reads the trained model
  latent_inputs = {**ae_config, "inputs": {**ae_config["inputs"], "model": stages.digest("autoencoder", "model")}}
  curves, finals, starts = {}, {}, {}
  for task in tasks:
    for method in config.search.methods:
      name = search_stage(task, method)
      # what each method reads: the autoencoder, the policy (parameter search) or only the env (RL)
      reads = get_method(method).reads
      inputs = {"autoencoder": latent_inputs, "policy": data_config}.get(reads, {"env": data_config["collect"]["env"]})
      # the key: every setting the method reads, defaults included, and what it runs on
      search_config = {**inputs, "rewards": rewards, "task": task, "method": method, "format": STAGE_FORMAT,
                       "run": run_settings(config.search, method),
                       "settings": get_method(method).identity(config.methods, env),
                       "eval": [config.eval_episodes, config.eval_seed],
                       "curve": [config.eval_episodes, config.curve_seed]}
      log(f"[3/3] {task} {method}: budget {config.search.budget:,} env steps x {config.search.seeds} seeds")
      run = dict(budget=config.search.budget, seeds=config.search.seeds, seed=config.search.seed, protocol=protocol,
                 n_evals=config.search.n_evals, curve=curve, progress_fn=progress_fn, configs=config.methods)
      if reads != "env":
        run.update(policy=policy, parameter=parameter)
      if reads == "autoencoder":
        latent, builders, spent = latent_space(task)
        run.update(latent=latent, spent=spent)
      compute = lambda d: run_method(method, env, task, d, **run, spaces={
          k: b() for k, b in builders.items() if k in searched(method)} if reads == "autoencoder" else None).to_json()
      outcome = stages.run(name, search_config, compute, lambda d: load_outcome(d).to_json())
      # the race preset's 24 Reacher searches of 10 seeds once exhausted the kernel's default
      # memory-map limit (65,530) in one process: release compiled programs before that
      release_executables()
      curves.setdefault(task, {})[method] = outcome
      finals.setdefault(task, {})[method] = outcome["final_returns"]
      log(f"      final return {np.mean(outcome['final_returns']):.2f} "
          f"(seeds {' '.join(f'{r:.1f}' for r in outcome['final_returns'])})")
    plot_curves({m: (np.broadcast_to(np.asarray(o["eval_steps"], float), np.shape(o["eval_returns"])),
                     np.asarray(o["eval_returns"], float)) for m, o in curves[task].items()},
                out / f"curves_{task}.png", f"{env.name} {task}",
                references={start_label: dataset_best[task]["return"]})

  for name in ("training.png", "landscape.png"):
    if (out / "autoencoder" / name).exists():
      on_main(shutil.copy, out / "autoencoder" / name, out / name)
  results = {"config": {"collect": _plain(collect_config), "train": _plain(config.train),
                        "search": _plain(config.search), "tasks": list(tasks), "methods": list(config.search.methods),
                        "settings": {m: get_method(m).identity(config.methods) for m in config.search.methods},
                        "eval": {"episodes": config.eval_episodes, "seed": config.eval_seed},
                        "curve_eval": {"episodes": config.eval_episodes, "seed": config.curve_seed}},
             "versions": checkpoint.versions(), "device": _device(), "backend": env.backend,
             "timings": {"stages_s": stages.timings, "reused": stages.reused, "recorded_s": stages.recorded,
                         "resumed": stages.resumed,
                         "autoencoder": summary.get("timings", {})},
             "recovery": summary["recovery"], "curves": curves,
             "dataset_best": dataset_best, "latent_starts": starts,
             "dataset_env_steps": int(dataset_record["config"]["env_steps"]),
             "dataset_env_steps_by_stage": dataset_record["config"].get("env_steps_by_stage", {}),
             "autoencoder_env_steps": trained.env_steps}
  on_main((out / "results.json").write_text, jsonfile.dumps(results, indent=1))
  on_main((out / "summary.md").write_text, summary_markdown(env.name, results, finals))
  return results


def decoded_returns(env, policy, ae, params, codes, rows, episodes: int) -> tuple[np.ndarray, int]:
  """(returns (n, T) on every task, env steps) of the codes of dataset `rows` (n,),
  decoded and evaluated over `episodes` episodes (seed START_SEED)."""
  decoded = ae.decode(params, jnp.asarray(codes[np.asarray(rows)]))
  result = evaluate(env, policy, decoded, EvalProtocol(episodes, START_SEED))
  return np.asarray(result.returns), int(np.asarray(result.lengths).sum())


def decoded_start(rows, returns: np.ndarray, spent: int, column: int) -> dict:
  """A start chosen by decoded return (latent_start `best_decoded`, `spread*`): of
  candidate dataset `rows` (n,), whose decoded returns are `returns` (n, T) for `spent`
  env steps, the best on task `column`: {"row": its dataset row, "return", "rows",
  "returns": every candidate's on the task, "spent": the env steps charged for choosing}."""
  returns = np.asarray(returns)[:, column]
  best = int(np.argmax(returns))
  return {"row": int(rows[best]), "return": float(returns[best]), "rows": list(rows),
          "returns": returns.tolist(), "spent": spent}


def spread_rows(points: np.ndarray, n: int) -> np.ndarray:
  """Farthest-point sampling, with no reward: the rows (n,) of `n` distinct rows of
  `points` (N, d) spread over them, each column over its standard deviation (for codes,
  the latent space's units, as `decoder_space` scales them; at least 10⁻³ of the largest
  column's, so that a near-constant column's rounding cannot decide): first the row
  nearest the mean, then each time the row farthest from those already chosen (ties,
  equal rows included: the lowest row not chosen).  A change here changes every spread
  start: give its stages a format then."""
  points = np.asarray(points, np.float64).reshape(len(points), -1)
  if not 1 <= n <= len(points):
    raise ValueError(f"search.start_candidates must be in [1, {len(points)}] (the dataset's policies), got {n}")
  std = points.std(axis=0)
  x = (points - points.mean(axis=0)) / np.maximum(std, max(1e-6, 1e-3 * std.max()))
  rows = [int(np.argmin((x ** 2).sum(axis=1)))]
  distance = ((x - x[rows[0]]) ** 2).sum(axis=1)
  for _ in range(n - 1):
    distance[rows[-1]] = -np.inf  # chosen: never again, even where rows repeat
    rows.append(int(np.argmax(distance)))
    distance = np.minimum(distance, ((x - x[rows[-1]]) ** 2).sum(axis=1))
  return np.asarray(rows, np.int64)


def best_dataset_policies(env, policy, dataset, tasks, protocol) -> dict:
  """Per task, the `Dataset` policy with the best collected return, re-evaluated under
  `protocol` (fresh keys: the collection's own returns are a maximum over noisy
  estimates): {task: {"index", "collected", "return"[, "distance"]}}."""
  columns = [task_index(env, t) for t in tasks]
  rows = [int(np.argmax(dataset.returns[:, c])) for c in columns]
  thetas = np.asarray(dataset.thetas[rows], np.float32)
  result = evaluate(env, policy, thetas, protocol)
  returns, moved = np.asarray(result.returns), np.asarray(result.displacement).mean(axis=1)
  best = {t: {"index": r, "collected": float(dataset.returns[r, c]), "return": float(returns[i, c])}
          for i, (t, r, c) in enumerate(zip(tasks, rows, columns))}
  if env_spec(env).locomotion:
    for t, distance in zip(tasks, moved):
      best[t]["distance"] = float(distance)
  return best


def _device() -> str:
  """The devices, and on the CPU the host's processor: XLA compiles for the host's
  instruction set, so two CPUs can round differently (docs/reliability.md)."""
  device = f"{jax.default_backend()}: {jax.devices()[0].device_kind} x{jax.device_count()}"
  ids = cpu_ids() if jax.default_backend() == "cpu" else {}
  host = ", ".join(f"{k} {v}" if k != "model name" else v for k, v in ids.items())
  return f"{device} ({host})" if host else device


def summary_markdown(env_name: str, results: dict, finals: dict) -> str:
  """The markdown summary: recovery means with controls, then final returns per task
  and method (mean and min-max over seeds, fresh evaluation keys)."""
  rec = results["recovery"]
  lines = [f"# {env_name}", "", "| recovery (mean over tasks) | trained | untrained | random |", "|---|---:|---:|---:|"]
  for metric in ("recovery", "best_recovery", "error_median", "wasserstein"):
    lines.append(f"| {metric} | " + " | ".join(f"{jsonfile.number(rec[r]['mean'][metric]):.3f}" for r in ("trained", "untrained", "random"))
                 + " |")
  methods = list(next(iter(finals.values())))
  lines += ["", "Final returns on fresh evaluation keys, mean [min, max] over seeds; the best dataset policy "
            "(by its collected return) re-evaluated on the same keys.", "",
            "| task | best dataset policy | " + " | ".join(methods) + " |", "|---|---:|" + "---:|" * len(methods)]
  for task, per_method in finals.items():
    cells = [f"{np.mean(v):.1f} [{np.min(v):.1f}, {np.max(v):.1f}]" for v in per_method.values()]
    lines.append(f"| {task} | {results['dataset_best'][task]['return']:.1f} | " + " | ".join(cells) + " |")
  moved = {(t, m): o["final_distance"] for t, per in results["curves"].items() for m, o in per.items()
           if "final_distance" in o}
  if moved:
    lines += ["", "Torso displacement along x over an episode (m, mean over the evaluation episodes; > 0 = forward):",
              "", "| task | best dataset policy | " + " | ".join(m for m in methods if (next(iter(finals)), m) in moved)
              + " |", "|---|---:|" + "---:|" * sum((next(iter(finals)), m) in moved for m in methods)]
    for task in finals:
      cells = [f"{np.mean(moved[task, m]):.2f} [{np.min(moved[task, m]):.2f}, {np.max(moved[task, m]):.2f}]"
               for m in methods if (task, m) in moved]
      lines.append(f"| {task} | {results['dataset_best'][task]['distance']:.2f} | " + " | ".join(cells) + " |")
  stages = results["timings"]["stages_s"]
  lines += ["", "Stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
            + (f"; reused: {', '.join(results['timings']['reused'])}" if results["timings"]["reused"] else "")
            + (f"; resumed after a kill (the last process's time only): {', '.join(results['timings']['resumed'])}"
               if results["timings"]["resumed"] else "")]
  return "\n".join(lines) + "\n"


def main(env_name: str, presets: dict, argv=None) -> int:
  """The command line of `python -m experiments.<env>`: a preset, then overrides."""
  p = argparse.ArgumentParser(allow_abbrev=False, prog=f"python -m experiments.{env_name}", description=__doc__.split("\n")[0])
  p.add_argument("--preset", default="cpu", choices=sorted(presets))
  p.add_argument("--out", default=None, help="output directory (default runs/<env>-<preset>)")
  p.add_argument("--config", default=None, help="YAML/JSON file of overrides (same keys as --set)")
  p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                 help="dotted overrides, e.g. search.budget=2000000 train.latent_dim=3 methods.ppo.learning_rate=1e-4")
  p.add_argument("--latent-dim", type=integer, default=None)
  p.add_argument("--seeds", type=integer, default=None)
  p.add_argument("--budget", type=integer, default=None)
  p.add_argument("--tasks", default=None, help="comma-separated tasks (default: the preset's)")
  p.add_argument("--methods", default=None, help=f"comma-separated, from {', '.join(names())} (search.methods)")
  p.add_argument("--tensorboard", action="store_true",
                 help="also write TensorBoard event files to OUT/tensorboard (needs the tensorboard extra)")
  p.add_argument("--debug", action="store_true", help="show the traceback of an error (or set LSC_DEBUG=1)")
  distributed.add_arguments(p)
  args = p.parse_args(argv)

  distributed.setup_command_line(p, args)

  try:
    config = configure(presets[args.preset](), args)
    out = pathlib.Path(args.out or f"runs/{env_name}-{args.preset}")
    start = time.perf_counter()
    with Bars(prefix="      ") as bars:
      def log(line):  # a stage line ends the bar above it
        bars.close()
        print(line)
      run(config, out, log=log, progress_fn=bars, tensorboard=args.tensorboard)
  except user_errors() as error:  # bad input: one line, no traceback (--debug / LSC_DEBUG=1: the traceback)
    if debug_wanted(args.debug):
      raise
    print(f"experiments.{env_name}: error: {error_line(error)}", file=sys.stderr)
    return 2
  print()
  print((out / "summary.md").read_text())
  print(f"total {time.perf_counter() - start:.0f} s; wrote {out}/results.json, summary.md and plots")
  return 0


def configure(config: ExperimentConfig, args) -> ExperimentConfig:
  """`config` with the command line's settings applied (`lsc.config.override`, the one
  override path): --config's file, then --set's KEY=VALUE items, then the flags."""
  if args.config:
    try:
      config = override(config, read_settings(args.config))
    except ValueError as error:
      message = str(error)
      raise ValueError(message if message.startswith("--config") else f"--config {args.config}: {message}") from None
  config = override(config, args.set)
  flags = {"train.latent_dim": args.latent_dim, "search.seeds": args.seeds, "search.budget": args.budget,
           "tasks": args.tasks.split(",") if args.tasks else None,
           "search.methods": args.methods.split(",") if args.methods else None}
  return override(config, {k: v for k, v in flags.items() if v is not None})
