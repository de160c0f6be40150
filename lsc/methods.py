"""The methods, as objects in one registry: what a method reads, its settings, its checks
and how it runs, used alike by `lsc search`, the pipelines, the sweeps and Python.

A method has a frozen config dataclass (`method.config`: every setting it reads, with its
defaults, nowhere else), checks its inputs before any work (`check`) and runs S seeds to
an `Outcome`.  Three kinds:

- `SearchMethod`: an evolution strategy (`lsc.strategies`: PGPE, CMA-ES, OpenES, ...)
  in a space, all seeds at once (`lsc.search`).  "latent": an autoencoder's latent space
  (or a toy linear one); "parameter": the policy's parameters.  `latent_pgpe` is
  (PGPE, latent), `param_cmaes` (CMA-ES, parameter): a new strategy or space is one
  `register` call.
- `Sequence`: one method, then another from where the first ended, with a budget split
  (`SequenceConfig.fraction`): `latent_then_param` is latent PGPE for a quarter of the
  budget, then parameter PGPE started, seed by seed, at the decoded result g(z*).  Each
  phase keeps its own method's settings.
- `RLMethod`: a deep-RL baseline trained on the task's reward (`lsc.baselines`), one seed
  at a time; its config is an `lsc.rl_configs` dataclass.

Settings are addressed by method name, `methods.<name>.<field>` (`MethodConfigs`), the
same in `--set`, a `--config` file and Python.  `run_method(name, env, task, directory,
...)` runs one method and writes into `directory`: `result` (the method's artifact),
its checkpoints (`state`, `state_seed*`; a sequence writes each phase into its own
subdirectory) and `outcome.json` (`Outcome.to_json()`).
"""

import dataclasses
import json
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any, Callable

import jax
import numpy as np

from lsc import checkpoint, distributed, jsonfile
from lsc.config import from_dict, to_dict
from lsc.envs import default_backend, env_spec, import_quietly
from lsc.evaluation import CURVE_EVAL, EvalProtocol, eval_grid, on_grid
from lsc.keys import PHASE_TWO, seed_keys
from lsc.policy import MLPPolicy
from lsc.progress import ProgressFn, register_unit
from lsc.rl_configs import (ACTOR_AGENTS, CONFIGS as RL_CONFIGS, resumable, check_budget as check_rl_budget,
                            check_devices as check_rl_devices)
from lsc.search import (SEARCH_EVAL, SUBSPACE_FORMAT, Search, SearchSpace, check_budget as check_search_budget, identity_space,
                        run_search, save_result)
from lsc.strategies import CMAESConfig, OpenESConfig, PGPEConfig, SepCMAESConfig, SNESConfig, StrategyConfig
from lsc.tasks import resolve_task
from lsc.validate import check_finite


@dataclasses.dataclass(frozen=True)
class Outcome:
  """One method's run of S seeds on one task.

  The learning curve every method is compared by: `eval_returns[s, i]`, the return of
  the solution seed s held at `eval_steps[i]` env steps (the common grid of the run,
  `lsc.evaluation.eval_grid`, step 0 included; a search's centre, an RL agent's
  deterministic policy) on the fixed episodes of the run's curve protocol
  (`lsc.evaluation.CURVE_EVAL`); NaN where it held none yet (before the env steps
  charged for choosing its start).  The training curve, labelled as such: point g of
  seed s is (env_steps[s, g], returns[s, g]); a search has one per generation (its
  centre on that generation's training episodes; NaN once the seed's budget is spent), RL
  one before training and one after each epoch (the curve protocol).  `final_z` /
  `final_thetas`: a search's final solutions (in memory only; its result artifact
  stores them)."""
  method: str
  env_steps: np.ndarray  # (S, G) int64
  returns: np.ndarray  # (S, G) float64
  final_returns: np.ndarray  # (S,) of the final policies on fresh evaluation keys
  final_env_steps: np.ndarray  # (S,) int64, env steps charged to each seed
  timings: dict  # seconds: compile and run time, summed over seeds
  eval_steps: np.ndarray  # (P,) int64, the common grid
  eval_returns: np.ndarray  # (S, P) float64
  final_distance: np.ndarray | None = None  # (S,) distance moved along x (locomotion envs; searches)
  final_z: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)  # (S, k)
  final_thetas: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)  # (S, P)

  def to_json(self) -> dict:
    """A JSON-able dict (NaN as null); `from_json` inverts it (without final_z/thetas)."""
    data = {"method": self.method, "env_steps": jsonfile.plain(self.env_steps),
            "returns": jsonfile.plain(self.returns), "final_returns": jsonfile.plain(self.final_returns),
            "final_env_steps": jsonfile.plain(self.final_env_steps), "timings": self.timings,
            "eval_steps": jsonfile.plain(self.eval_steps), "eval_returns": jsonfile.plain(self.eval_returns)}
    if self.final_distance is not None:
      data["final_distance"] = jsonfile.plain(self.final_distance)
    return data

  @classmethod
  def from_json(cls, data: dict) -> "Outcome":
    floats = lambda x: np.asarray(x, np.float64)  # null (None) becomes NaN
    distance = data.get("final_distance")
    return cls(method=data["method"], env_steps=np.asarray(data["env_steps"], np.int64),
               returns=floats(data["returns"]), final_returns=floats(data["final_returns"]),
               final_env_steps=np.asarray(data["final_env_steps"], np.int64), timings=data["timings"],
               eval_steps=np.asarray(data["eval_steps"], np.int64), eval_returns=floats(data["eval_returns"]),
               final_distance=None if distance is None else floats(distance))

  def after(self, steps) -> "Outcome":
    """This outcome moved `steps` (a number or (S,)) env steps later: charged before it
    ran.  The learning curve is already on the run's grid (its points before them NaN)."""
    steps = np.asarray(steps, np.int64)
    return dataclasses.replace(self, env_steps=self.env_steps + steps.reshape(-1, 1),
                               final_env_steps=self.final_env_steps + steps)


OUTCOME = "outcome.json"


def load_outcome(directory) -> Outcome:
  """The Outcome a `run_method` wrote into `directory`."""
  return Outcome.from_json(json.loads((pathlib.Path(directory) / OUTCOME).read_text()))


@dataclasses.dataclass(frozen=True)
class Run:
  """What one run of a method gets besides its settings: the env and task, S = `seeds`
  seeds from `seed` with `budget` env steps each, the final evaluation `protocol`; a
  search's `policy` and spaces (`latent`; `parameter`, default
  `lsc.search.identity_space(policy)`); the learning curve's `grid` (P,) of the whole
  run's env steps and its `curve` protocol (an RL baseline trains `n_evals` epochs over
  what it is given, so with env steps charged before it an epoch ends after its grid
  point); the env steps each seed was charged before (`spent`: choosing its
  start, the same for every seed; `offsets` (S,): a sequence's first phase, per seed);
  where each seed starts (`starts` (S, k) in the method's space: a sequence's second
  phase)."""
  env: Any
  task: str
  budget: int
  seeds: int
  seed: Any  # an int or a jax.random key (a sequence's second phase)
  protocol: "EvalProtocol"
  policy: "MLPPolicy | None" = None
  latent: "SearchSpace | None" = None
  parameter: "SearchSpace | None" = None
  spaces: Mapping[str, "SearchSpace"] = dataclasses.field(default_factory=dict)  # the controls' (CONTROL_SPACES)
  n_evals: int = 10
  spent: int = 0
  starts: np.ndarray | None = None
  grid: np.ndarray | None = None  # default eval_grid(budget, n_evals)
  curve: EvalProtocol = CURVE_EVAL
  offsets: np.ndarray | None = None
  progress_fn: ProgressFn | None = None
  overwrite: bool = False
  log: Callable[[str], None] | None = None
  record: dict = dataclasses.field(default_factory=dict)

  @property
  def points(self) -> np.ndarray:
    """The run's learning-curve grid (P,) int64 of env steps."""
    return eval_grid(self.budget, self.n_evals) if self.grid is None else np.asarray(self.grid, np.int64)


def charged_before(run: Run) -> np.ndarray:
  """(S,) int64: the env steps each seed was charged before this method's run began
  (`spent`, and a sequence's first phase, `offsets`)."""
  offsets = np.zeros(run.seeds, np.int64) if run.offsets is None else np.asarray(run.offsets, np.int64)
  return run.spent + offsets


def run_grid(run: Run) -> np.ndarray:
  """The run's learning-curve grid as env steps of this method's own run, per seed
  (S, P) int64: the run's grid less what each seed was charged before it (negative:
  points before it began)."""
  return run.points[None, :] - charged_before(run)[:, None]


class Method:
  """The protocol every method follows.  `name`, `help`; `reads`: what a run depends on
  besides the env and task ("autoencoder": a trained latent space; "policy": the policy
  architecture; "env": nothing else); `config`: the default settings (a frozen
  dataclass); `multi_process`: it can run in a multi-process run; `warp`: it can run on
  MuJoCo Warp physics."""
  name: str
  help: str
  reads: str
  config: Any
  multi_process: bool = True
  warp: bool = True

  def settings(self, configs: "Mapping[str, Any] | None" = None) -> Any:
    """This method's config in `configs` (a `MethodConfigs` or {name: config}), else its default."""
    config = (configs or {}).get(self.name, self.config)
    if type(config) is not type(self.config):
      raise ValueError(f"{self.name} takes a {type(self.config).__name__}, got a {type(config).__name__}")
    return config

  def identity(self, configs=None, env=None) -> dict:
    """Every setting a run reads, defaults included: in a pipeline stage's key, so a
    changed setting or default recomputes the stage."""
    # defaults included, but a field marked omit_default (added later, its default the earlier
    # behaviour) only once set: the keys of runs from before it still match
    return {"kind": type(self).__name__, "config": to_dict(self.settings(configs))}

  def check(self, configs, budget: int, episode_length: int, *, spent: int = 0, dims: Mapping[str, int] | None = None,
            n_evals: int = 10, backend: str | None = None) -> None:
    """ValueError, before any work, if a run of `budget` env steps per seed (of which
    `spent` were charged before it) cannot run with these settings; `dims`: the sizes
    of the spaces, where known ({"latent": k, "parameter": P}); `backend`: the env's
    physics, where known (how many devices an RL baseline trains over)."""
    raise NotImplementedError

  def outputs(self, directory: pathlib.Path, seed: int, seeds: int) -> dict[pathlib.Path, str]:
    """{path: artifact kind} of everything a run writes into `directory`."""
    raise NotImplementedError

  def run(self, run: Run, configs, directory: pathlib.Path | None) -> Outcome:
    """Runs S seeds and writes the result and checkpoints into `directory` (None: in
    memory, nothing written); the Outcome."""
    raise NotImplementedError


# The spaces a search runs in: "latent" and "parameter", and those of the controls that
# isolate what a latent space adds (issue "a fair race"), each built from the policy the
# latent search starts from and the dataset (`lsc.pipeline`; in Python, run_method(spaces=)).
CONTROL_SPACES = {
    "start": "the parameter space, centred at the policy the latent search starts from",
    "random_subspace": "a random affine subspace of the latent space's size through that policy "
                       "(lsc.search.random_subspace)",
    "principal_subspace": "the dataset's principal subspace of the latent space's size through that policy "
                          "(lsc.search.principal_subspace)"}
SPACES = ("latent", "parameter", *CONTROL_SPACES)


@dataclasses.dataclass(frozen=True)
class SearchMethod(Method):
  """Evolution strategy `config` (its type names the strategy) in `space` (`SPACES`)."""
  name: str
  space: str
  config: StrategyConfig
  help: str = ""

  def __post_init__(self):
    if self.space not in SPACES:
      raise ValueError(f"{self.name}: unknown space {self.space!r}; valid: {', '.join(SPACES)}")

  @property
  def reads(self) -> str:  # a control's space depends on the latent search's start
    return "policy" if self.space == "parameter" else "autoencoder"

  def identity(self, configs=None, env=None) -> dict:  # two strategies may have the same fields
    identity = {**super().identity(configs, env), "strategy": self.settings(configs).algorithm, "space": self.space}
    if self.space in CONTROL_SPACES:  # built by lsc.search from the dataset: how, too
      identity["space_format"] = SUBSPACE_FORMAT
    return identity

  def check(self, configs, budget, episode_length, *, spent=0, dims=None, n_evals=10, backend=None) -> None:
    config = self.settings(configs)
    config.check()
    if dims and self.space in dims:
      config.check_dim(dims[self.space], self.space)
    if not 0 <= spent < budget:
      raise ValueError(f"{self.name}: spent must be in [0, budget = {budget:,}), got {spent:,}")
    check_search_budget(budget - spent, config, episode_length)

  def outputs(self, directory, seed, seeds):
    return {directory / "result": "search", directory / "state": "search_state"}

  def run(self, run: Run, configs, directory) -> Outcome:
    config = self.settings(configs)
    if run.policy is None:
      raise ValueError(f"{self.name} needs a policy")
    if self.space in CONTROL_SPACES:
      space = run.spaces.get(self.space)
      if space is None:
        raise ValueError(f"{self.name} searches {CONTROL_SPACES[self.space]}: a pipeline builds it, or give it "
                         f"as run_method(spaces={{{self.space!r}: ...}})")
    else:
      space = run.latent if self.space == "latent" else (run.parameter or identity_space(run.policy))
    if space is None:
      raise ValueError(f"{self.name} searches a latent space: give it one (an autoencoder: --decoder)")
    search = Search(run.env, run.policy, space, run.task, config, budget=run.budget - run.spent, seeds=run.seeds,
                    seed=run.seed, starts=run.starts, grid=run_grid(run), curve=run.curve)
    if run.log is not None:
      run.log(f"{self.name}: {space.name} space of {space.dim} dims -> {run.policy.num_params} params; "
              f"{config.algorithm}, population {config.population} x {config.episodes} episode(s), {run.seeds} "
              f"seed(s), {search.generations_per_chunk} generations per device call")
    result = run_search(search, run.protocol, checkpoint_path=None if directory is None else directory / "state",
                        progress_fn=run.progress_fn, overwrite=run.overwrite)
    if directory is not None:
      save_result(directory / "result", search, result,
                  {**run.record, "spent": run.spent} if run.spent else run.record)
    return Outcome(method=self.name, env_steps=result.curves["env_steps"],
                   returns=result.curves["center_return"].astype(np.float64),
                   final_returns=result.final_returns.astype(np.float64), final_env_steps=result.env_steps,
                   timings={"generations": result.generations, **result.timings},
                   eval_steps=run.points, eval_returns=result.eval_returns,
                   final_distance=result.final_displacement.astype(np.float64)
                   if env_spec(run.env).locomotion else None,
                   final_z=result.final_z, final_thetas=result.final_thetas).after(run.spent)


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
  """A sequence's own setting: the first phase's share of the budget, in (0, 1)."""
  fraction: float = 0.5

  def check(self) -> None:
    if not 0 < check_finite("fraction", self.fraction) < 1:
      raise ValueError(f"fraction must be in (0, 1), got {self.fraction}")


@dataclasses.dataclass(frozen=True)
class Sequence(Method):
  """Method `phases[0]` for `fraction` of the budget (rounded down; env steps charged
  before, `spent`, included), then `phases[1]` started, seed by seed, where the first
  ended: at its final parameters in the parameter space, at its final code in the
  latent space (if the first phase searched it too).  Each phase reads its own
  method's settings and writes into its own subdirectory (`dirs`)."""
  name: str
  phases: tuple[str, str]
  config: SequenceConfig = SequenceConfig()
  help: str = ""
  dirs: tuple[str, str] = ("first", "second")

  @property
  def methods(self) -> tuple[Method, Method]:
    return get_method(self.phases[0]), get_method(self.phases[1])

  @property
  def reads(self) -> str:
    reads = {m.reads for m in self.methods}
    return next(r for r in ("autoencoder", "policy", "env") if r in reads)

  @property
  def multi_process(self) -> bool:
    return all(m.multi_process for m in self.methods)

  @property
  def warp(self) -> bool:
    return all(m.warp for m in self.methods)

  def identity(self, configs=None, env=None) -> dict:
    return {**super().identity(configs, env),
            "phases": {m.name: m.identity(configs, env) for m in self.methods}}

  def budgets(self, configs, budget: int) -> tuple[int, int]:
    """(first phase, second phase) env steps per seed."""
    config = self.settings(configs)
    config.check()
    first = int(budget * config.fraction)
    return first, budget - first

  def _check_chain(self) -> None:
    first, second = self.methods
    if not isinstance(first, SearchMethod):
      raise ValueError(f"{self.name}: its first phase {first.name} leaves no policy of the search's own to start "
                       "from; a sequence starts with a search method")
    if not (isinstance(second, SearchMethod) or getattr(second, "policy_actor", False)):
      raise ValueError(f"{self.name}: {second.name} cannot start from another method's policy (search methods and "
                       "RL agents whose actor is the lsc policy take a start)")
    if getattr(second, "space", None) == "latent" and first.space != "latent":
      raise ValueError(f"{self.name}: {second.name} searches the latent space but {first.name} ends in the "
                       "parameter space")

  def check(self, configs, budget, episode_length, *, spent=0, dims=None, n_evals=10, backend=None) -> None:
    self._check_chain()
    shares = self.budgets(configs, budget)
    if not 0 <= spent < shares[0]:
      raise ValueError(f"{self.name}: spent must be in [0, the first phase's {shares[0]:,}), got {spent:,}")
    for method, share, before in zip(self.methods, shares, (spent, 0)):
      try:
        method.check(configs, share, episode_length, spent=before, dims=dims, n_evals=n_evals, backend=backend)
      except ValueError as error:
        raise ValueError(f"{self.name}'s {method.name} phase ({share:,} env steps of {budget:,}): {error} "
                         f"(its settings: methods.{method.name}.*)") from None

  def outputs(self, directory, seed, seeds):
    return {path: kind for method, sub in zip(self.methods, self.dirs)
            for path, kind in method.outputs(directory / sub, seed, seeds).items()}

  def run(self, run: Run, configs, directory) -> Outcome:
    """Seed s's second phase draws from fold_in(its first phase's key, PHASE_TWO) alone (a
    tag no split reaches, so no key of either phase repeats, and seeds still run apart).
    One training curve: the second phase's points follow the first's, shifted by the env
    steps each seed spent in it; on the learning curve's grid, each point is the phase's
    that held the solution then."""
    first, second = self.methods
    shares = self.budgets(configs, run.budget)
    record = {**run.record, "phases": dict(zip(self.phases, shares))}
    progress = lambda phase: None if run.progress_fn is None else (
        lambda stage, done, total, info: run.progress_fn(f"{stage} ({phase})", done, total, info))
    sub = lambda i: None if directory is None else directory / self.dirs[i]
    one = first.run(dataclasses.replace(run, budget=shares[0], grid=run.points, record=record,
                                        progress_fn=progress(first.name)), configs, sub(0))
    keys = jax.vmap(lambda k: jax.random.fold_in(k, PHASE_TWO))(seed_keys(run.seed, run.seeds))
    starts = one.final_z if getattr(second, "space", None) == "latent" else one.final_thetas
    two = second.run(dataclasses.replace(run, budget=shares[1], seed=keys, spent=0, starts=starts, record=record,
                                         grid=run.points, offsets=one.final_env_steps,
                                         progress_fn=progress(second.name)),
                     configs, sub(1)).after(one.final_env_steps)
    # both phases' seconds and generations summed (the final evaluation's: the second
    # phase's, the first's is only recorded in its result), and the first's generations
    keys = {*two.timings, *(k for k in one.timings if k != "final_eval_s")}  # an RL phase has other keys
    timings = {k: two.timings.get(k, 0.0) + (one.timings.get(k, 0.0) if k != "final_eval_s" else 0.0) for k in keys}
    if "total_s" in two.timings and "total_s" not in one.timings:  # an RL phase's wall time: add the search's
      timings["total_s"] += one.timings.get("compile_s", 0.0) + one.timings.get("search_s", 0.0)
    timings[f"{first.name}_generations"] = one.timings["generations"]
    return dataclasses.replace(two, method=self.name, env_steps=np.concatenate([one.env_steps, two.env_steps], 1),
                               returns=np.concatenate([one.returns, two.returns], 1), timings=timings,
                               eval_returns=np.where(np.isnan(two.eval_returns), one.eval_returns, two.eval_returns),
                               final_z=two.final_z, final_thetas=two.final_thetas)


# How an RL agent with a latent actor trains (`lsc.baselines.PolicyActor` with a space).
# 2: the decoder is `off_policy.Frozen`, outside Adam's state and the target's average
# (before: averaged into the target, whose decoder then drifted by rounding).
LATENT_ACTOR_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class RLMethod(Method):
  """Deep-RL agent `agent` of `lsc.baselines` ('ppo' | 'sac' | 'td3' | 'ddpg'; default:
  the method's name), trained on the task's reward one seed at a time (in one process,
  not on MuJoCo Warp: Brax's training wrappers merge batched env states leaf by leaf,
  which Warp's contact buffer, shared by the batch, does not allow).  With
  `policy_actor` (TD3, DDPG, SAC) its actor is the run's lsc policy (`lsc.baselines.PolicyActor`):
  over its parameters, from its random init or, as a sequence's second phase, from where
  the first ended; with `space` "latent", over the run's latent space's coordinates,
  from its centre (the latent start) or a first phase's final code; with `space` "start",
  over its parameters from the policy the latent search starts from (the run's "start"
  control space's centre: a control for both)."""
  name: str
  config: Any
  help: str = ""
  multi_process: bool = False
  warp: bool = False
  agent: str = ""
  policy_actor: bool = False
  space: str | None = None  # "latent": the actor's parameters are latent coordinates; "start": see above

  def __post_init__(self):
    if self.policy_actor and self.algorithm not in ACTOR_AGENTS:
      raise ValueError(f"{self.name}: an lsc policy as actor needs agent {', '.join(ACTOR_AGENTS)}")
    if self.space not in (None, "latent", "start") or (self.space and not self.policy_actor):
      raise ValueError(f"{self.name}: space is None, 'latent' or 'start' (with policy_actor), got {self.space!r}")

  @property
  def reads(self) -> str:  # the env alone, unless its actor is the lsc policy (in the latent space)
    return "autoencoder" if self.space else "policy" if self.policy_actor else "env"

  @property
  def algorithm(self) -> str:
    return self.agent or self.name

  def identity(self, configs=None, env=None) -> dict:
    identity = super().identity(configs, env)
    if self.space == "latent":  # how a latent actor trains: in its identity, so a change recomputes its stages
      identity["actor_format"] = LATENT_ACTOR_FORMAT
    if env is not None:  # the devices Brax spreads training over change its numbers (Brax: loaded here, lazily)
      identity["devices"] = import_quietly("lsc.baselines").devices_to_use(env, self.settings(configs),
                                                                           self.policy_actor)
    if self.agent:
      identity.update(agent=self.agent, policy_actor=self.policy_actor, space=self.space)
    return identity

  def check(self, configs, budget, episode_length, *, spent=0, dims=None, n_evals=10, backend=None) -> None:
    if not 0 <= spent < budget:
      raise ValueError(f"{self.name}: spent must be in [0, budget = {budget:,}), got {spent:,}")
    if getattr(self.settings(configs), "latent_head", ()) and self.space != "latent":
      raise ValueError(f"{self.name}: latent_head conditions a latent actor's code on the state; {self.name}'s "
                       "actor is not a latent code (a method with space 'latent' is, e.g. latent_td3)")
    check_rl_budget(self.algorithm, budget - spent, self.settings(configs), n_evals)
    if backend is not None:
      check_rl_devices(self.settings(configs), backend, self.policy_actor)

  def outputs(self, directory, seed, seeds):
    states = ({directory / f"state_seed{s}": "td3_state" for s in range(seed, seed + seeds)}
              if resumable(self.algorithm, self.policy_actor) else {})
    return {directory / "result": "baseline", **states}

  def seeds(self, run: Run) -> list[tuple[int, int]]:
    """(name, Brax seed) of each of the run's seeds: for an int `run.seed`, s and s; for
    keys (a sequence's second phase), the run's own seed numbers (its record) and 31
    bits drawn from each key."""
    if isinstance(run.seed, (int, np.integer)):
      return [(s, s) for s in range(int(run.seed), int(run.seed) + run.seeds)]
    first = int(run.record.get("run", {}).get("seed", 0))
    drawn = [int(jax.random.bits(k, dtype=np.uint32)) >> 1 for k in seed_keys(run.seed, run.seeds)]
    return list(zip(range(first, first + run.seeds), drawn))

  def run(self, run: Run, configs, directory) -> Outcome:
    baselines = import_quietly("lsc.baselines")  # Brax's agents, first loaded here
    config = self.settings(configs)
    if run.starts is not None and not self.policy_actor:
      raise ValueError(f"{self.name} cannot start from another method's policy (its actor is not the lsc policy)")
    if self.policy_actor and run.policy is None:
      raise ValueError(f"{self.name} trains the lsc policy as its actor: give policy=")
    if self.space == "latent" and run.latent is None:
      raise ValueError(f"{self.name} trains a latent code as its actor: give latent=")
    if self.space == "start" and "start" not in run.spaces:
      raise ValueError(f"{self.name} starts its actor at the latent search's start: a pipeline builds it, or give "
                       f"spaces={{'start': lsc.euclidean_space(theta, policy.init_std(), 'parameter')}}")
    starts = run.starts
    if self.space == "start" and starts is None:  # every seed from the one start policy
      starts = np.broadcast_to(np.asarray(run.spaces["start"].center, np.float32), (run.seeds, run.policy.num_params))
    budget = run.budget - run.spent  # what choosing its start (`spent`) left
    if run.log is not None:
      run.log(f"{self.name}: {run.seeds} seed(s) of {budget:,} env steps, {run.n_evals} evaluations each")
    runs, seeds = [], self.seeds(run)
    for i, (s, brax_seed) in enumerate(seeds):
      report = None if run.progress_fn is None else (
          lambda stage, done, total, info, s=s: run.progress_fn(f"{stage} seed {s}", done, total, info))
      actor = None if not self.policy_actor else baselines.PolicyActor(
          run.policy, None if starts is None else np.asarray(starts[i], np.float32),
          run.latent if self.space == "latent" else None, getattr(config, "latent_head", ()))
      runs.append(baselines.train_baseline(
          run.env, run.task, self.algorithm, budget, brax_seed, run.protocol, config=config, n_evals=run.n_evals,
          progress_fn=report, overwrite=run.overwrite, curve=run.curve, actor=actor,
          checkpoint_path=directory / f"state_seed{s}" if resumable(self.algorithm, self.policy_actor)
          and directory is not None
          else None))
      # Brax's train() jits fresh closures on every call, never reused: their CPU executables
      # stay mapped and in memory while JAX's caches hold them (~20 runs in one process
      # exhausted the kernel's memory-map limit), so drop them after every seed
      jax.clear_caches()
    outcome = Outcome(method=self.name, env_steps=np.stack([r.env_steps for r in runs]),
                      returns=np.stack([r.returns for r in runs]),
                      final_returns=np.asarray([r.final_return for r in runs], np.float64),
                      # a baseline's curve points come after each epoch: the last is what the run spent
                      final_env_steps=np.asarray([r.env_steps[-1] for r in runs], np.int64),
                      timings={k: float(sum(r.timings[k] for r in runs)) for k in runs[0].timings},
                      # the policy held at each grid point: the last one evaluated at or before it
                      eval_steps=run.points,
                      # (on the run's grid: after the env steps charged before it, a sequence's first phase)
                      eval_returns=on_grid(np.stack([r.env_steps for r in runs]) + charged_before(run)[:, None],
                                           np.stack([r.returns for r in runs]), run.points)).after(run.spent)
    if directory is None:
      return outcome
    checkpoint.save_artifact(directory / "result", {"curve_env_steps": outcome.env_steps - run.spent,  # its own
                                                    "curve_return": outcome.returns,
                                                    "eval_steps": outcome.eval_steps,
                                                    "eval_returns": outcome.eval_returns,
                                                    "final_returns": outcome.final_returns},
                             kind="baseline",
                             config={**run.record, **({"spent": run.spent} if run.spent else {}), "task": run.task,
                                     "budget": budget, "seeds": run.seeds,
                                     "seed": seeds[0][0], "brax_seeds": [b for _, b in seeds], "n_evals": run.n_evals,
                                     "config": [dataclasses.asdict(r.config) for r in runs]},
                             identity={"env": run.env.name, "backend": run.env.backend,
                                       "episode_length": run.env.episode_length})
    return outcome


# --- the registry --------------------------------------------------------------------
METHODS: dict[str, Method] = {}


def register(method: Method, *, replace: bool = False) -> Method:
  """Adds `method` to the registry under its name (ValueError if taken, unless
  `replace`); its progress reports count env steps.  Returns it."""
  if not isinstance(method, Method):
    raise TypeError(f"register takes a Method (SearchMethod, Sequence, RLMethod), got {type(method).__name__}")
  if method.name in METHODS and not replace:
    raise ValueError(f"a method named {method.name!r} is registered already; pass replace=True to replace it")
  METHODS[method.name] = method
  register_unit("env step", method.name)
  return method


def get_method(name: str) -> Method:
  """The registered method `name`; ValueError listing the valid names otherwise."""
  if name not in METHODS:
    raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
  return METHODS[name]


def names() -> tuple[str, ...]:
  """Every registered method's name, in registration order."""
  return tuple(METHODS)


# std_init (and lr) defaults are in units of the space's spread: latent_pgpe's untuned,
# param_pgpe's from Mountain Car (large policy, speed); the presets set each env's own
# from `python -m experiments.sweep` (experiments/RESULTS.md).  The other strategies'
# std_init is PGPE's (untuned).  latent_then_param's fraction: the best of {0.25, 0.5,
# 0.75} on every env swept (sweep_<env>_latent_then_param).
register(SearchMethod("latent_pgpe", "latent", PGPEConfig(std_init=0.5, lr=0.1), "PGPE in a learned latent space"))
register(Sequence("latent_then_param", ("latent_pgpe", "param_pgpe"), SequenceConfig(fraction=0.25),
                  "latent PGPE, then parameter PGPE from each seed's decoded result", dirs=("latent", "param")))
register(SearchMethod("param_pgpe", "parameter", PGPEConfig(std_init=0.1, lr=1.0), "PGPE in the policy's parameters"))
for _name, _help in (("ppo", "Brax PPO on the task's reward"), ("sac", "Brax SAC on the task's reward"),
                     ("td3", "TD3 (lsc.off_policy, from Brax's parts) on the task's reward"),
                     ("ddpg", "DDPG (TD3 with one critic, no smoothing, no delay) on the task's reward")):
  register(RLMethod(_name, RL_CONFIGS[_name](), _help))
for _short, _label, _latent, _param in (
    ("cmaes", "CMA-ES", CMAESConfig(std_init=0.5), CMAESConfig(std_init=0.1)),
    ("sep_cmaes", "Sep-CMA-ES", SepCMAESConfig(std_init=0.5), SepCMAESConfig(std_init=0.1)),
    ("openes", "OpenAI-ES", OpenESConfig(std_init=0.5, lr=0.1), OpenESConfig(std_init=0.1, lr=1.0)),
    ("snes", "SNES", SNESConfig(std_init=0.5), SNESConfig(std_init=0.1))):
  register(SearchMethod(f"latent_{_short}", "latent", _latent, f"{_label} in a learned latent space"))
  register(SearchMethod(f"param_{_short}", "parameter", _param, f"{_label} in the policy's parameters"))
# RL from the behaviour space: TD3 and SAC whose actor is the dataset's policy architecture,
# alone (from its random init) or after a latent search / the start control (from where it ended)
register(RLMethod("td3_policy", RL_CONFIGS["td3"](), "TD3 whose actor is the lsc policy (the dataset's "
                  "architecture), from its random init or where a sequence's first phase ended",
                  agent="td3", policy_actor=True))
register(RLMethod("sac_policy", RL_CONFIGS["sac"](), "SAC (lsc.off_policy, Brax's losses) whose actor is the lsc "
                  "policy with a state-independent scale, from its random init or where a first phase ended",
                  agent="sac", policy_actor=True))
# ... and the same agents as a sequence's second phase, guarding the start they are handed:
# the buffer filled by the starting policy, then 50,000 env steps in which only the critics
# learn (the flagship pilots, experiments/RESULTS.md: without them TD3's first epochs
# wrecked a good start)
register(RLMethod("td3_from_start", dataclasses.replace(RL_CONFIGS["td3"](), prefill="actor", actor_warmup=50_000),
                  "td3_policy as a sequence's second phase: the buffer prefilled by the start, then critics-only "
                  "env steps (actor_warmup) before the actor learns", agent="td3", policy_actor=True))
register(RLMethod("sac_from_start", dataclasses.replace(RL_CONFIGS["sac"](), actor_warmup=50_000),
                  "sac_policy as a sequence's second phase: critics-only env steps (actor_warmup) after the "
                  "start's own prefill before the actor learns", agent="sac", policy_actor=True))
register(RLMethod("latent_td3", dataclasses.replace(RL_CONFIGS["td3"](), prefill="actor", actor_warmup=50_000),
                  "TD3 whose actor is the decoder's policy at a latent code, trained through the frozen decoder by "
                  "the critic's gradient, from the latent start, with td3_from_start's guards of that start",
                  agent="td3", policy_actor=True, space="latent"))
register(RLMethod("latent_head_td3", dataclasses.replace(METHODS["latent_td3"].config, latent_head=(64,)),
                  "latent_td3 with a state-conditioned code: a tanh MLP head over the observation (64 units) "
                  "shifts the code in each state, its output layer starting at zero (the actor starts at the "
                  "code's policy); the head and the code train, the decoder stays frozen",
                  agent="td3", policy_actor=True, space="latent"))
register(RLMethod("start_td3", dataclasses.replace(RL_CONFIGS["td3"](), prefill="actor", actor_warmup=50_000),
                  "td3_from_start from the policy the latent search starts from, with no search before it: the "
                  "start control of the sequences into TD3 and of latent_td3", agent="td3", policy_actor=True,
                  space="start"))
register(RLMethod("start_sac", dataclasses.replace(RL_CONFIGS["sac"](), actor_warmup=50_000),
                  "sac_from_start from the policy the latent search starts from, with no search before it",
                  agent="sac", policy_actor=True, space="start"))
register(Sequence("latent_then_td3", ("latent_pgpe", "td3_from_start"), SequenceConfig(fraction=0.25),
                  "latent PGPE, then TD3 with the lsc policy as actor from each seed's decoded result",
                  dirs=("latent", "td3")))
register(Sequence("start_then_td3", ("start_param_pgpe", "td3_from_start"), SequenceConfig(fraction=0.25),
                  "control for latent_then_td3: the start control (parameter PGPE from the latent search's start), "
                  "then TD3 from where it ended", dirs=("start", "td3")))
register(Sequence("latent_then_sac", ("latent_pgpe", "sac_from_start"), SequenceConfig(fraction=0.25),
                  "latent PGPE, then SAC with the lsc policy as actor from each seed's decoded result",
                  dirs=("latent", "sac")))
register(Sequence("start_then_sac", ("start_param_pgpe", "sac_from_start"), SequenceConfig(fraction=0.25),
                  "control for latent_then_sac: the start control, then SAC from where it ended",
                  dirs=("start", "sac")))
# the controls (CONTROL_SPACES): PGPE with the settings of the space they stand beside
register(SearchMethod("start_param_pgpe", "start", PGPEConfig(std_init=0.1, lr=1.0),
                      "control: parameter PGPE from the policy latent PGPE is started at (a dataset "
                      "policy's own parameters, or the decoded centre)"))
register(SearchMethod("random_subspace_pgpe", "random_subspace", PGPEConfig(std_init=0.5, lr=0.1),
                      "control: PGPE in a random subspace of the latent size through that policy"))
register(SearchMethod("pca_subspace_pgpe", "principal_subspace", PGPEConfig(std_init=0.5, lr=0.1),
                      "control: PGPE in the dataset's principal subspace of the latent size through that policy"))
# ... and with CMA-ES, the controls of latent CMA-ES (issue 36: is its gain the space's?)
register(SearchMethod("start_param_cmaes", "start", CMAESConfig(std_init=0.1),
                      "control: parameter CMA-ES from the policy latent CMA-ES is started at (at most 4,096 "
                      "parameters: a full covariance)"))
register(SearchMethod("random_subspace_cmaes", "random_subspace", CMAESConfig(std_init=0.5),
                      "control: CMA-ES in a random subspace of the latent size through that policy"))
register(SearchMethod("pca_subspace_cmaes", "principal_subspace", CMAESConfig(std_init=0.5),
                      "control: CMA-ES in the dataset's principal subspace of the latent size through that policy"))


class MethodConfigs(Mapping):
  """Every registered method's settings by name (`methods.<name>.<field>` in `--set` and
  config files): the given configs, the registry's defaults for the rest.  Immutable."""

  def __init__(self, given: Mapping[str, Any] | None = None):
    given = dict(given or {})
    for name, config in given.items():
      get_method(name).settings({name: config})  # a registered name and a config of its type
    self._given = given

  def __getitem__(self, name: str) -> Any:
    return self._given[name] if name in self._given else get_method(name).config

  def __iter__(self) -> Iterator[str]:
    return iter(METHODS)

  def __len__(self) -> int:
    return len(METHODS)

  def __eq__(self, other) -> bool:
    return isinstance(other, MethodConfigs) and dict(self) == dict(other)

  def __hash__(self) -> int:  # equal mappings differ at most in given defaults: hash the rest
    return hash(tuple(sorted((name, config) for name, config in self._given.items()
                             if name not in METHODS or config != METHODS[name].config)))

  def __repr__(self) -> str:
    return f"MethodConfigs({self._given!r})"

  def replace(self, name: str, **fields) -> "MethodConfigs":
    """These configs with fields of method `name`'s replaced."""
    return MethodConfigs({**self._given, name: dataclasses.replace(self[name], **fields)})

  def to_plain(self) -> dict:
    """{name: its config as plain data} for every registered method (`lsc.config.to_dict`)."""
    return {name: to_dict(self[name], omit_defaults=False) for name in self}

  @classmethod
  def from_plain(cls, data, where: str = "methods") -> "MethodConfigs":
    """From {name: {field: value}} (any subset of names and fields; the rest are the
    defaults); ValueError naming an unknown method or field, or a bad value."""
    if not isinstance(data, Mapping):
      raise ValueError(f"{where}: expected a mapping of method names to settings, got {data!r}")
    given = {}
    for name, fields in data.items():
      if fields is not None and not isinstance(fields, Mapping) and not dataclasses.is_dataclass(fields):
        raise ValueError(f"{where}.{name}: expected a mapping of its settings, got {fields!r}")
      if name not in METHODS:
        raise ValueError(f"{where}: unknown method {name!r}; valid methods: {', '.join(METHODS)}")
      default = get_method(name).config
      if isinstance(fields, type(default)):
        given[name] = fields
        continue
      given[name] = from_dict(type(default), {**to_dict(default, omit_defaults=False), **(fields or {})},
                              f"{where}.{name}")
    return cls(given)


def check_can_run(method_names, backend: str | None = None) -> None:
  """ValueError if a method among `method_names` cannot run here: in a multi-process run
  (`lsc.distributed`), or on physics `backend` 'mjx_warp'."""
  methods = [get_method(name) for name in method_names]
  single = [m.name for m in methods if not m.multi_process]
  if single and distributed.is_multi():
    raise ValueError(f"{', '.join(single)} run in one process; leave them out of a multi-process run (--methods)")
  no_warp = [m.name for m in methods if not m.warp]
  if no_warp and backend == "mjx_warp":
    raise ValueError(f"{', '.join(no_warp)} cannot train on backend mjx_warp (Brax's training wrappers cannot "
                     "merge MuJoCo Warp states); use backend mjx for them, or leave them out (--methods)")


def default_backend_for(method_names, env_name: str) -> str:
  """The physics backend a run of methods `method_names` on env `env_name` gets by
  default: `lsc.envs.default_backend`, except `mjx` where that is `mjx_warp` and a
  method that cannot run on MuJoCo Warp is among them, so that every method of one run
  steps the same physics."""
  backend = default_backend(env_name)
  if backend == "mjx_warp" and not all(get_method(name).warp for name in method_names):
    return "mjx"
  return backend


def run_method(name: str, env, task, directory=None, *, budget: int, seeds: int = 1, seed: int = 0,
               protocol: "EvalProtocol | None" = None, configs: Mapping[str, Any] | None = None, policy=None,
               latent=None, parameter=None, spaces: Mapping[str, Any] | None = None, n_evals: int = 10, spent: int = 0,
               curve: EvalProtocol = CURVE_EVAL,
               progress_fn: ProgressFn | None = None, overwrite: bool = False,
               log: Callable[[str], None] | None = None, record: dict | None = None) -> Outcome:
  """Runs method `name` on `task` for `seeds` seeds (seed, seed + 1, ...) with `budget`
  env steps each, with its settings from `configs` ({name: config} or `MethodConfigs`;
  the registry's defaults for any method not in it), evaluates the final policies
  under `protocol` (default `lsc.search.SEARCH_EVAL`) and writes `result`, its
  checkpoints and `outcome.json` into `directory` (None: runs in memory and writes
  nothing; the Outcome holds a search's final solutions, `final_z` / `final_thetas`).  Search methods need `policy` and,
  in the latent space, `latent` (an `lsc.search.SearchSpace`); the parameter space is
  `parameter` (default `identity_space(policy)`); the controls' in `spaces` ({kind:
  SearchSpace}, kinds `CONTROL_SPACES`).  A search resumes from its checkpoint
  in `directory` and refuses another's unless `overwrite`.  Every method's learning
  curve is its solution at the `n_evals` + 1 points of `eval_grid(budget, n_evals)`,
  evaluated on the episodes of `curve` (RL baselines train `n_evals` epochs).
  `progress_fn`: see `lsc.progress`; `log` gets a line describing the
  run; `record` is stored in the result's config.  `spent` (searches, RL agents): env steps each
  seed was already charged (e.g. choosing its start); the method gets `budget - spent`
  and its curve and totals include them.  Every setting and output is checked before
  any work.  `env`: any env (`lsc.envs.as_env`); `task`: the name of one of its tasks,
  or a reward function of a `lsc.tasks.Transition` (or `Task`), then scored too
  (`lsc.tasks.with_tasks`)."""
  method = get_method(name)
  env, task = resolve_task(env, task)
  check_can_run([name], env.backend)
  directory = None if directory is None else pathlib.Path(directory)
  protocol = SEARCH_EVAL if protocol is None else protocol
  spaces = dict(spaces or {})
  dims = {k: space.dim for k, space in (("latent", latent), ("parameter", parameter), *spaces.items())
          if space is not None}
  if policy is not None and "parameter" not in dims:
    dims["parameter"] = policy.num_params
  method.check(configs, budget, env.episode_length, spent=spent, dims=dims, n_evals=n_evals, backend=env.backend)
  if directory is not None:
    check_outputs(name, directory, task=task, budget=budget, seeds=seeds, seed=seed, overwrite=overwrite)
  record = {"method": name, "eval": dataclasses.asdict(protocol), "curve": dataclasses.asdict(curve),
            "run": run_fields(task, budget, seeds, seed), **(record or {})}
  run = Run(env, task, int(budget), int(seeds), seed, protocol, policy, latent, parameter, spaces, int(n_evals),
            int(spent), curve=curve, progress_fn=progress_fn, overwrite=overwrite, log=log, record=record)
  outcome = method.run(run, configs, directory)
  if directory is not None:
    distributed.on_main((directory / OUTCOME).write_text, jsonfile.dumps(outcome.to_json()))
  return outcome


def check_outputs(name: str, directory, *, task: str, budget: int, seeds: int, seed: int,
                  overwrite: bool = False) -> None:
  """Refuses, before any work, a `run_method` whose outputs cannot be written: a path
  holding something other than the artifact kind it will write (ForeignPath), or, unless
  `overwrite`, a result in `directory` of another method (wherever any method writes
  it), task, budget, seeds or seed, or of an lsc that did not record these (ValueError;
  a result of the same run is resumed or recomputed, never relabelled)."""
  directory = pathlib.Path(directory)
  for path, kind in get_method(name).outputs(directory, seed, seeds).items():
    checkpoint.check_output_path(path, kind)
  want = {"method": name, **run_fields(task, budget, seeds, seed)}
  # every place any method writes its result: one method's run never joins another's
  places = {directory / "result"} | {directory / sub / "result" for m in METHODS.values()
                                     for sub in getattr(m, "dirs", ())}
  for path in sorted(places):
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
