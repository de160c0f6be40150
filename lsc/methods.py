"""The search methods, in one registry: their names, what they read, their defaults, one
runner and one set of outputs, used alike by `lsc search` and the pipelines.

Two families:

- "pgpe": PGPE (`lsc.search`) over a search space, all seeds at once.  latent_pgpe
  searches an autoencoder's latent space (or a toy linear one), param_pgpe the policy's
  parameters.  Their `std_init` / `lr` defaults are in units of the space's spread.
  latent_then_param runs both in turn: latent PGPE for `latent_fraction` of the budget,
  then parameter PGPE started, seed by seed, at the decoded result g(z*) (it leaves the
  decoder's manifold to reach what parameter search can); each phase keeps its own
  method's settings.
- "rl": deep-RL baselines trained on the task's reward (`lsc.baselines`), one seed at a
  time; their hyper-parameters are that module's `CONFIGS[name]()`.

`run_method(name, env, task, directory, ...)` runs one method for S seeds and writes,
into `directory`: `result` (the method's artifact: kind "search" for PGPE, "baseline"
for RL), `state` (PGPE's resumable checkpoint; a two-phase method writes both into one
subdirectory per phase, `latent/` and `param/`) and `outcome.json`
(`Outcome.to_json()`).  It returns the `Outcome`, the one form every method's result
takes: curves of return against env steps per seed, final returns on fresh evaluation
keys and the env steps charged.
"""

import dataclasses
import json
import pathlib
from typing import TYPE_CHECKING, Callable

import numpy as np

from lsc import jsonfile
from lsc.distributed import on_main
from lsc.keys import PHASE_TWO
from lsc.progress import ProgressFn, register_unit

if TYPE_CHECKING:
  from lsc.evaluation import EvalProtocol


@dataclasses.dataclass(frozen=True)
class Method:
  """One registered method.  `reads`: what a run depends on besides the env and task
  ("autoencoder": a trained latent space; "policy": the policy architecture; "env":
  nothing else).  `std_init` and `lr`: PGPE defaults (one-phase PGPE methods only).
  `phases`: the PGPE methods a two-phase method runs in turn (their settings are
  theirs), the first for `latent_fraction` of the budget."""
  name: str
  family: str  # "pgpe" | "rl"
  reads: str
  help: str
  std_init: float | None = None
  lr: float | None = None
  phases: tuple[str, ...] = ()
  latent_fraction: float | None = None


# (std_init, lr) defaults, in units of the space's spread: latent_pgpe's untuned,
# param_pgpe's from Mountain Car (large policy, speed); the presets set each env's own
# from `python -m experiments.sweep` (experiments/RESULTS.md).  latent_then_param's
# latent_fraction: the best of {0.25, 0.5, 0.75} on every env swept (sweep_<env>_latent_then_param).
METHODS = {m.name: m for m in (
    Method("latent_pgpe", "pgpe", "autoencoder", "PGPE in a learned latent space", std_init=0.5, lr=0.1),
    Method("latent_then_param", "pgpe", "autoencoder",
           "latent PGPE, then parameter PGPE from each seed's decoded result", phases=("latent_pgpe", "param_pgpe"),
           latent_fraction=0.25),
    Method("param_pgpe", "pgpe", "policy", "PGPE in the policy's parameter space", std_init=0.1, lr=1.0),
    Method("ppo", "rl", "env", "Brax PPO on the task's reward"),
    Method("sac", "rl", "env", "Brax SAC on the task's reward"),
    Method("td3", "rl", "env", "TD3 (lsc.td3, from Brax's parts) on the task's reward"),
    Method("ddpg", "rl", "env", "DDPG (TD3 with one critic, no smoothing, no delay) on the task's reward"),
)}
NAMES = tuple(METHODS)
register_unit("env step", *NAMES)  # their progress reports count env steps


def get_method(name: str) -> Method:
  """The registered method `name`; ValueError listing the valid names otherwise."""
  if name not in METHODS:
    raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(NAMES)}")
  return METHODS[name]


def check_can_run(names, backend: str | None = None) -> None:
  """ValueError if an RL baseline among methods `names` cannot run here: in a
  multi-process run (`lsc.distributed`; they train in one process), or on physics
  `backend` 'mjx_warp' (Brax's training wrappers merge batched env states leaf by leaf,
  which MuJoCo Warp's contact buffer, shared by the batch, does not allow)."""
  from lsc.distributed import is_multi
  rl = [name for name in names if get_method(name).family == "rl"]
  if rl and is_multi():
    raise ValueError(f"{', '.join(rl)} run in one process; leave them out of a multi-process run (--methods)")
  if rl and backend == "mjx_warp":
    raise ValueError(f"{', '.join(rl)} cannot train on backend mjx_warp (Brax's training wrappers cannot "
                     "merge MuJoCo Warp states); use backend mjx for them, or leave them out (--methods)")


def default_backend_for(names, env_name: str) -> str:
  """The physics backend a run of methods `names` on env `env_name` gets by default:
  `lsc.envs.default_backend`, except `mjx` where that is `mjx_warp` and an RL baseline
  is among the methods (they cannot train on MuJoCo Warp: `check_can_run`), so that
  every method of one run steps the same physics."""
  from lsc.envs import default_backend
  backend = default_backend(env_name)
  if backend == "mjx_warp" and any(get_method(name).family == "rl" for name in names):
    return "mjx"
  return backend


def pgpe_config(name: str, population: int = 64, episodes: int = 3, std_init: float | None = None,
                lr: float | None = None, **fields):
  """The checked PGPEConfig of PGPE method `name`: `std_init` / `lr` default to the
  method's own; other PGPEConfig fields pass through."""
  from lsc.search import PGPEConfig
  method = get_method(name)
  if method.family != "pgpe":
    raise ValueError(f"{name} is not a PGPE method")
  if method.phases:
    raise ValueError(f"{name} runs {' then '.join(method.phases)}: configure each phase by its method's name")
  config = PGPEConfig(population=population, episodes=episodes,
                      std_init=method.std_init if std_init is None else std_init,
                      lr=method.lr if lr is None else lr, **fields)
  config.check()
  return config


def phase_budgets(name: str, budget: int, latent_fraction: float | None = None) -> tuple[int, int]:
  """(latent phase, parameter phase) env steps per seed of two-phase method `name`:
  `latent_fraction` (default the method's, in (0, 1)) of `budget`, rounded down, and the
  rest.  Each phase stops before a generation that could overrun its share."""
  method = get_method(name)
  if not method.phases:
    raise ValueError(f"{name} has one phase")
  fraction = method.latent_fraction if latent_fraction is None else latent_fraction
  from lsc.validate import check_finite
  if not 0 < check_finite("latent_fraction", fraction) < 1:
    raise ValueError(f"latent_fraction must be in (0, 1), got {fraction}")
  first = int(budget * fraction)
  return first, budget - first


def check_budget(name: str, budget: int, episode_length: int, *, pgpe=None, n_evals: int = 10,
                 rl_config=None, param_pgpe=None, latent_fraction: float | None = None) -> None:
  """ValueError if `budget` env steps per seed cannot run method `name`: less than one
  PGPE generation of `pgpe` (default: the method's, `pgpe_config(name)`) or past the
  int32 counters (a two-phase method: in either phase's share, the second phase's
  generations those of `param_pgpe`), or too few steps for an RL baseline's `n_evals`
  evaluation intervals."""
  method = get_method(name)
  if method.phases:
    from lsc.search import check_budget as check_pgpe_budget
    shares = phase_budgets(name, budget, latent_fraction)
    configs = (pgpe or pgpe_config(method.phases[0]), param_pgpe or pgpe_config(method.phases[1]))
    for phase, share, config in zip(method.phases, shares, configs):
      try:
        check_pgpe_budget(share, config, episode_length)
      except ValueError as error:
        raise ValueError(f"{name}'s {phase} phase ({share:,} env steps of {budget:,}): {error}") from None
    return
  if method.family == "pgpe":
    from lsc.search import check_budget as check_pgpe_budget
    check_pgpe_budget(budget, pgpe or pgpe_config(name), episode_length)
    return
  from lsc.rl_configs import check_budget as check_rl_budget
  check_rl_budget(name, budget, rl_config, n_evals)


@dataclasses.dataclass(frozen=True)
class Outcome:
  """One method's run of S seeds on one task.  Curve point g of seed s is
  (env_steps[s, g], returns[s, g]); PGPE has a point per generation (the centre it
  started from, the env steps spent before it; NaN once the seed's budget is spent), RL
  one per training epoch (after it)."""
  method: str
  env_steps: np.ndarray  # (S, G) int64
  returns: np.ndarray  # (S, G) float64
  final_returns: np.ndarray  # (S,) of the final policies on fresh evaluation keys
  final_env_steps: np.ndarray  # (S,) int64, env steps charged to each seed
  timings: dict  # seconds: compile and run time, summed over seeds
  final_distance: np.ndarray | None = None  # (S,) distance moved along x (locomotion envs; PGPE)

  def to_json(self) -> dict:
    """A JSON-able dict (NaN as null); `from_json` inverts it."""
    def plain(a):
      return np.where(np.isfinite(a), a, None).tolist() if a.dtype.kind == "f" else a.tolist()
    data = {"method": self.method, "env_steps": plain(self.env_steps), "returns": plain(self.returns),
            "final_returns": plain(self.final_returns), "final_env_steps": plain(self.final_env_steps),
            "timings": self.timings}
    if self.final_distance is not None:
      data["final_distance"] = plain(self.final_distance)
    return data

  @classmethod
  def from_json(cls, data: dict) -> "Outcome":
    floats = lambda x: np.asarray(x, np.float64)  # null (None) becomes NaN
    distance = data.get("final_distance")
    return cls(method=data["method"], env_steps=np.asarray(data["env_steps"], np.int64),
               returns=floats(data["returns"]), final_returns=floats(data["final_returns"]),
               final_env_steps=np.asarray(data["final_env_steps"], np.int64), timings=data["timings"],
               final_distance=None if distance is None else floats(distance))


OUTCOME = "outcome.json"


def load_outcome(directory) -> Outcome:
  """The Outcome a `run_method` wrote into `directory`."""
  return Outcome.from_json(json.loads((pathlib.Path(directory) / OUTCOME).read_text()))


def run_method(name: str, env, task: str, directory, *, budget: int, seeds: int = 1, seed: int = 0,
               protocol: "EvalProtocol | None" = None, policy=None, space=None, pgpe=None, rl_config=None,
               n_evals: int = 10, progress_fn: ProgressFn | None = None, overwrite: bool = False,
               log: Callable[[str], None] | None = None, record: dict | None = None, spent: int = 0,
               param_pgpe=None, latent_fraction: float | None = None) -> Outcome:
  """Runs method `name` on `task` for `seeds` seeds (seed, seed + 1, ...) with `budget`
  env steps each, evaluates the final policies under `protocol` (default
  `lsc.search.SEARCH_EVAL`) and writes `result`, `state` (PGPE) and `outcome.json`
  into `directory`.  PGPE methods need `policy`, `space` (an `lsc.search.SearchSpace`)
  and `pgpe` (default `pgpe_config(name)`), resume from `directory/state` and refuse
  another search's state unless `overwrite`; RL methods take `rl_config` (default: the
  method's own) and `n_evals` curve points.  `progress_fn`: see `lsc.progress`; `log`
  gets a line describing the run; `record` is stored in the result's config.  `spent`
  (PGPE): env steps each seed was already charged before the search (e.g. choosing its
  start); the search gets `budget - spent` and its curve and totals include them.
  Two-phase methods (latent_then_param): `space` and `pgpe` (default latent_pgpe's) are
  the first phase's, `param_pgpe` (default param_pgpe's) the second's, `latent_fraction`
  (default the method's) the first phase's share of the budget, `spent` included."""
  from lsc.search import SEARCH_EVAL
  method = get_method(name)
  check_can_run([name], env.backend)
  directory = pathlib.Path(directory)
  protocol = SEARCH_EVAL if protocol is None else protocol
  check_outputs(name, directory, task=task, budget=budget, seeds=seeds, seed=seed, overwrite=overwrite)
  record = {"method": name, "eval": dataclasses.asdict(protocol), "run": run_fields(task, budget, seeds, seed),
            **(record or {})}
  if method.phases:
    outcome = _run_phases(method, env, task, directory, budget, seeds, seed, protocol, policy, space, pgpe,
                          param_pgpe, latent_fraction, spent, progress_fn, overwrite, log, record)
  elif method.family == "pgpe":
    if not 0 <= spent < budget:
      raise ValueError(f"{name}: spent must be in [0, budget = {budget:,}), got {spent:,}")
    outcome, _ = _run_pgpe(name, env, task, directory, budget - spent, seeds, seed, protocol, policy, space,
                           pgpe or pgpe_config(name), progress_fn, overwrite, log,
                           {**record, "spent": spent} if spent else record)
    outcome = _after(outcome, spent)
  elif spent:
    raise ValueError(f"spent is for PGPE methods, not {name}")
  else:
    outcome = _run_rl(name, env, task, directory, budget, seeds, seed, protocol, rl_config, n_evals,
                      progress_fn, overwrite, log, record)
  on_main((directory / OUTCOME).write_text, jsonfile.dumps(outcome.to_json()))
  return outcome


def _outputs(name: str, directory: pathlib.Path, seed: int, seeds: int) -> dict[pathlib.Path, str]:
  """{path: artifact kind} of everything `run_method(name, ..., directory)` writes."""
  method = get_method(name)
  if method.phases:
    return {path: kind for phase, sub in zip(method.phases, ("latent", "param"))
            for path, kind in _outputs(phase, directory / sub, seed, seeds).items()}
  if method.family == "pgpe":
    return {directory / "result": "search", directory / "state": "search_state"}
  from lsc.rl_configs import RESUMABLE
  states = {directory / f"state_seed{s}": "td3_state" for s in range(seed, seed + seeds)} if name in RESUMABLE else {}
  return {directory / "result": "baseline", **states}


def check_outputs(name: str, directory, *, task: str, budget: int, seeds: int, seed: int,
                  overwrite: bool = False) -> None:
  """Refuses, before any work, a `run_method` whose outputs cannot be written: a path
  holding something other than the artifact kind it will write (ForeignPath), or, unless
  `overwrite`, a result in `directory` of another method (wherever that method writes
  it), task, budget, seeds or seed, or of an lsc that did not record these (ValueError;
  a result of the same run is resumed or recomputed, never relabelled)."""
  from lsc import checkpoint
  directory = pathlib.Path(directory)
  for path, kind in _outputs(name, directory, seed, seeds).items():
    checkpoint.check_output_path(path, kind)
  want = {"method": name, **run_fields(task, budget, seeds, seed)}
  # every place any method writes its result: one method's run never joins another's
  for path in (directory / "result", directory / "latent" / "result", directory / "param" / "result"):
    if overwrite or not checkpoint.is_artifact(path):
      continue
    config = checkpoint.read_record(path).get("config", {})
    have = {"method": config.get("method"), **config.get("run", {})}
    differ = [f"{k} {have.get(k, '(not recorded)')!r} there, {v!r} here" for k, v in want.items() if have.get(k) != v]
    if differ:
      raise ValueError(f"{directory} holds the result of another run ({'; '.join(differ)}); choose another --out, "
                       f"or --overwrite (overwrite=True) to replace it")


def run_fields(task: str, budget: int, seeds: int, seed: int) -> dict:
  """What a `run_method` result records of its run (and `check_outputs` compares)."""
  return {"task": task, "budget": int(budget), "seeds": int(seeds), "seed": int(seed)}


def _after(outcome: Outcome, steps) -> Outcome:
  """`outcome` moved `steps` (a number or (S,)) env steps later: charged before it ran."""
  steps = np.asarray(steps, np.int64)
  return dataclasses.replace(outcome, env_steps=outcome.env_steps + steps.reshape(-1, 1),
                             final_env_steps=outcome.final_env_steps + steps)


def _run_phases(method, env, task, directory, budget, seeds, seed, protocol, policy, space, pgpe, param_pgpe,
                latent_fraction, spent, progress_fn, overwrite, log, record) -> Outcome:
  """A two-phase method: latent PGPE in `space` for its share of the budget (`spent`
  included), then parameter PGPE started at each seed's final decoded policy.  Seed s's
  second phase draws from fold_in(its first phase's key, PHASE_TWO) alone (a tag no
  split reaches, so no key of either phase repeats, and seeds still run apart).  Both
  phases are checked before either runs.  One curve: the second phase's points follow
  the first's, shifted by the env steps each seed spent in it."""
  import jax
  from lsc.keys import seed_keys
  from lsc.search import check_budget as check_pgpe_budget, identity_space
  first, second = method.phases
  latent_budget, param_budget = phase_budgets(method.name, budget, latent_fraction)
  if not 0 <= spent < latent_budget:
    raise ValueError(f"{method.name}: spent must be in [0, the latent phase's {latent_budget:,}), got {spent:,}")
  configs = (pgpe or pgpe_config(first), param_pgpe or pgpe_config(second))
  for phase, share, config in zip(method.phases, (latent_budget - spent, param_budget), configs):
    config.check()
    try:
      check_pgpe_budget(share, config, env.episode_length)
    except ValueError as error:
      raise ValueError(f"{method.name}'s {phase} phase ({share:,} env steps of {budget:,}): {error}") from None
  record = {**record, "phases": {first: latent_budget, second: param_budget}}
  phase_progress = lambda phase: None if progress_fn is None else (
      lambda stage, done, total, info: progress_fn(f"{stage} ({phase})", done, total, info))
  latent, result = _run_pgpe(first, env, task, directory / "latent", latent_budget - spent, seeds, seed, protocol,
                             policy, space, configs[0], phase_progress(first), overwrite, log,
                             {**record, "spent": spent} if spent else record)
  latent = _after(latent, spent)
  keys = jax.vmap(lambda k: jax.random.fold_in(k, PHASE_TWO))(seed_keys(seed, seeds))
  param, _ = _run_pgpe(second, env, task, directory / "param", param_budget, seeds, keys, protocol, policy,
                       identity_space(policy), configs[1], phase_progress(second), overwrite, log, record,
                       starts=result.final_thetas)
  param = _after(param, latent.final_env_steps)
  # both phases' seconds and generations summed (the final evaluation's: the second
  # phase's, the first's is only recorded in its result), and the first's generations
  timings = {k: v + (latent.timings[k] if k != "final_eval_s" else 0) for k, v in param.timings.items()}
  timings[f"{first}_generations"] = latent.timings["generations"]
  return dataclasses.replace(param, method=method.name, env_steps=np.concatenate([latent.env_steps, param.env_steps], 1),
                             returns=np.concatenate([latent.returns, param.returns], 1), timings=timings)


def _run_pgpe(name, env, task, directory, budget, seeds, seed, protocol, policy, space, config, progress_fn,
              overwrite, log, record, starts=None):
  """(Outcome, SearchResult) of PGPE method `name`'s search in `space`."""
  from lsc.evaluation import LOCOMOTION_ENVS
  from lsc.search import Search, run_search, save_result
  if policy is None or space is None:
    raise ValueError(f"{name} needs a policy and a search space")
  search = Search(env, policy, space, task, config, budget=budget, seeds=seeds, seed=seed, starts=starts)
  if log is not None:
    log(f"{name}: {space.name} space of {space.dim} dims -> {policy.num_params} params; population "
        f"{config.population} x {config.episodes} episode(s), {seeds} seed(s), "
        f"{search.generations_per_chunk} generations per device call")
  result = run_search(search, protocol, checkpoint_path=directory / "state", progress_fn=progress_fn,
                      overwrite=overwrite)
  save_result(directory / "result", search, result, record)
  return Outcome(method=name, env_steps=result.curves["env_steps"],
                 returns=result.curves["center_return"].astype(np.float64),
                 final_returns=result.final_returns.astype(np.float64), final_env_steps=result.env_steps,
                 timings={"generations": result.generations, **result.timings},
                 final_distance=result.final_displacement.astype(np.float64) if env.name in LOCOMOTION_ENVS
                 else None), result


def _run_rl(name, env, task, directory, budget, seeds, seed, protocol, config, n_evals, progress_fn, overwrite, log,
            record) -> Outcome:
  import jax
  from lsc import checkpoint
  from lsc.envs import import_quietly
  from lsc.rl_configs import RESUMABLE
  train_baseline = import_quietly("lsc.baselines").train_baseline  # Brax's agents, first loaded here
  if log is not None:
    log(f"{name}: {seeds} seed(s) of {budget:,} env steps, {n_evals} evaluations each")
  runs = []
  for s in range(seed, seed + seeds):
    report = None if progress_fn is None else (
        lambda stage, done, total, info, s=s: progress_fn(f"{stage} seed {s}", done, total, info))
    runs.append(train_baseline(env, task, name, budget, s, protocol, config=config, n_evals=n_evals,
                               progress_fn=report, overwrite=overwrite,
                               checkpoint_path=directory / f"state_seed{s}" if name in RESUMABLE else None))
    # Brax's train() jits fresh closures on every call; their CPU executables stay mapped
    # while JAX's caches hold them, and ~20 runs in one process exhausted the kernel's
    # memory-map limit (LLVM "Cannot allocate memory").  Dropping the caches releases them.
    jax.clear_caches()
  outcome = Outcome(method=name, env_steps=np.stack([r.env_steps for r in runs]),
                    returns=np.stack([r.returns for r in runs]),
                    final_returns=np.asarray([r.final_return for r in runs], np.float64),
                    # a baseline's curve points come after each epoch: the last is what the run spent
                    final_env_steps=np.asarray([r.env_steps[-1] for r in runs], np.int64),
                    timings={k: float(sum(r.timings[k] for r in runs)) for k in runs[0].timings})
  checkpoint.save_artifact(directory / "result", {"curve_env_steps": outcome.env_steps,
                                                  "curve_return": outcome.returns,
                                                  "final_returns": outcome.final_returns},
                           kind="baseline",
                           config={**record, "task": task, "budget": budget, "seeds": seeds, "seed": seed,
                                   "n_evals": n_evals, "config": [dataclasses.asdict(r.config) for r in runs]},
                           identity={"env": env.name, "backend": env.backend, "episode_length": env.episode_length})
  return outcome
