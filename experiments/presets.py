"""Every env's presets as data: `smoke` (the tests: tiny, seconds of compute), `cpu`
(the default: sized for a 2-core CPU) and `paper` (the paper's scale, for a GPU).

Every `cpu` preset is timed (`python -m benchmarks.pipeline`, benchmarks/RESULTS.md):
2 to 11 minutes on 2 cores.  The Brax envs share one shape.  On a CPU the Brax envs run the
spring backend at ~12k env steps/s, so the dataset is 3,000 policies (the paper: 5e4)
evaluated over one episode each, and every search gets 5e5 env steps per seed.  What
it needs to be useful at that size: a 16-dimensional latent space, and latent PGPE
starting from the code of the dataset's best policy on the task (`latent_start=best`;
from the mean code it decodes an average, poor policy and 31 generations do not get
far).  SAC is left out of every `cpu` preset (far more wall time per env step on a
CPU); add it with `--methods latent_pgpe,latent_then_param,param_pgpe,ppo,sac` (on Mountain Car
and Reacher `latent_cmaes` in latent_pgpe's place).  Both PGPE
spaces use their env's best (std_init, lr) cell of `experiments.sweep`, chosen on selection
seeds the reported runs never use (`TUNED`).  Mountain Car's and Reacher's `cpu` presets
search the latent space with CMA-ES instead of PGPE (`CPU_STRATEGY`: the best strategy the
race compared there, at its race-tuned std_init); latent-then-parameter keeps its PGPE
phases.  Mountain Car's policies
scale their observations to [-1, 1] (`PolicyConfig.normalize_obs`) in the smoke and cpu
presets; the paper preset keeps raw observations (untested at that scale)."""

import dataclasses
import functools
import json
import pathlib

from lsc.pipeline import ExperimentConfig, SearchSettings
from lsc.config import EnvConfig, PolicyConfig, override
from lsc.dataset import CollectConfig
from lsc.methods import METHODS, MethodConfigs, SearchMethod
from lsc.training import TrainConfig

RESULTS = pathlib.Path(__file__).parent / "results"


def make(env: str, policy: str, pool: int, keep: float, train: dict, search: dict, methods: dict, *,
         episode_length=None, collect: dict | None = None, normalize_obs: bool = False, **rest) -> ExperimentConfig:
  """An ExperimentConfig from plain settings: `search` of SearchSettings, `methods`
  {name: {field: value}} (rest: tasks, eval_episodes, ...)."""
  return ExperimentConfig(
      collect=CollectConfig(EnvConfig(env, episode_length=episode_length),
                            PolicyConfig(policy, normalize_obs=normalize_obs), pool=pool,
                            keep=keep, **(collect or {})),
      train=TrainConfig(**train), search=SearchSettings(**search), methods=MethodConfigs.from_plain(methods), **rest)


def searches(population: int, episodes: int, env: str | None = None, **per_method: dict) -> dict:
  """methods.* settings: every registered search method's population and episodes per
  candidate, `env`'s tuned PGPE settings (`tuned`), then `per_method` {name: {field: value}}."""
  methods = {name: {"population": population, "episodes": episodes}
             for name, method in METHODS.items() if isinstance(method, SearchMethod)}
  for name, fields in {**(tuned(env) if env else {}), **per_method}.items():
    methods[name] = {**methods.get(name, {}), **fields}
  return methods


TINY_TRAIN = dict(encoder_widths=(16,), decoder_widths=(16,), steps=20, eval_every=10, batch_states=32)
TINY_SEARCH = dict(seeds=2, n_evals=2)
TINY_METHODS = searches(4, 1, latent_then_param={"fraction": 0.5})  # a generation per phase
NO_SAC = ("latent_pgpe", "param_pgpe", "ppo")
# the tests' Mountain Car run: every kind of method (a search in each space, a sequence, an
# on-policy and an off-policy RL baseline); SAC and DDPG add compile time, not coverage
SMOKE_METHODS = ("latent_pgpe", "latent_then_param", "param_pgpe", "ppo", "td3")
CPU_METHODS = ("latent_pgpe", "latent_then_param", "param_pgpe", "ppo")

# Each env's PGPE settings, {space: (std_init, lr)}: the best cell (mean rank over the
# env's cpu tasks) of the 3 x 4 sweep std_init {0.1, 0.3, 1.0} x lr {0.03, 0.1, 0.3, 1.0}
# on selection seeds, experiments/results/sweep_<env>_<method>.md.  HalfCheetah's searches
# are so noisy that 2 seeds crowned a lucky cell, so there the 3 best cells of the grid
# and its edge (std 3.0, lr 3.0: sweep_halfcheetah_*_edge.md) were rerun on 4 fresh
# selection seeds (sweep_halfcheetah_*_confirm.md) and the best of those is used; every
# env's cells went through that confirm stage (sweep_<env>_*_confirm.md), which moved
# Reacher's parameter cell from the grid's (1.0, 0.3) to (0.3, 0.3).
# "fraction": latent_then_param's latent share, the best of {0.25, 0.5, 0.75} with those
# cells (sweep_<env>_latent_then_param.md).  Hopper, Walker2d and Ant were not swept: they
# take HalfCheetah's.
TUNED = {"mountain_car": {"latent": (0.3, 0.1), "param": (1.0, 1.0), "fraction": 0.25},
         "reacher": {"latent": (0.1, 0.1), "param": (0.3, 0.3), "fraction": 0.25},
         "halfcheetah": {"latent": (0.3, 0.1), "param": (0.3, 0.1), "fraction": 0.25}}
TUNED["hopper"] = TUNED["halfcheetah"]  # not swept
TUNED["walker2d"] = TUNED["halfcheetah"]  # not swept
TUNED["ant"] = TUNED["halfcheetah"]  # not swept


def tuned(env: str) -> dict:
  """Env's tuned PGPE settings as methods.* settings.  The controls (not swept yet) take
  the cell of the space they stand beside: the start control parameter PGPE's, the
  subspace controls latent PGPE's (their spread is the data's along each direction, as a
  latent space's is its codes')."""
  (latent_std, latent_lr), (param_std, param_lr) = TUNED[env]["latent"], TUNED[env]["param"]
  latent, param = {"std_init": latent_std, "lr": latent_lr}, {"std_init": param_std, "lr": param_lr}
  return {"latent_pgpe": latent, "param_pgpe": param, "latent_then_param": {"fraction": TUNED[env]["fraction"]},
          "start_param_pgpe": param, "random_subspace_pgpe": latent, "pca_subspace_pgpe": latent}


def mountain_car() -> dict:
  return {
      "smoke": lambda: make("mountain_car", "small", 200, 0.25, {**TINY_TRAIN, "latent_dim": 1, "batch_policies": 16},
                            {**TINY_SEARCH, "budget": 12_000, "methods": SMOKE_METHODS}, TINY_METHODS,
                            collect=dict(n_probe=32, eval_episodes=1),
                            tasks=("speed",), eval_episodes=2, normalize_obs=True),
      # Observations scaled to [-1, 1]: raw, the velocity (+-0.07) is all but invisible to a
      # random network, and the dataset then holds no goal-reaching policy (experiments/RESULTS.md).
      # That richer dataset needs 4 latent dimensions (recovery 1.03; 0.41 at 2).
      "cpu": lambda: make("mountain_car", "medium", 50_000, 0.1, {"latent_dim": 4, "steps": 3000},
                          {"budget": 1_000_000, "seeds": 3, "latent_start": "best", "methods": CPU_METHODS},
                          searches(32, 1, "mountain_car"), normalize_obs=True),
      "paper": lambda: make("mountain_car", "large", 500_000, 0.1,
                            {"latent_dim": 1, "steps": 20_000, "encoder_widths": (256,), "decoder_widths": (256,)},
                            {"budget": 5_000_000, "seeds": 10},
                            searches(64, 3, "mountain_car"),  # swept on medium policies
                            collect=dict(store="indices")),  # 5e4 large policies' parameters would be 24 GB
  }


def brax(env: str, cpu_latent: int, paper_latent: int, cpu_tasks: tuple[str, ...] = ("forward",)) -> dict:
  """Presets of a Brax env.  `cpu`: spring backend, medium policy, no SAC (it needs far
  more wall time per env step on a CPU); `paper`: every task and method, 10 seeds.  Both
  use the env's `TUNED` PGPE settings."""
  smoke_task = cpu_tasks[:1]
  return {
      # 32 kept policies: val_fraction 0.15 holds out 5, a recovery grid of 4 (0.1 left 3, one grid point)
      "smoke": lambda: make(env, "small", 64, 0.5, {**TINY_TRAIN, "latent_dim": 2, "batch_policies": 8,
                                                    "val_fraction": 0.15},
                            {**TINY_SEARCH, "budget": 6_000, "latent_start": "best", "methods": NO_SAC}, TINY_METHODS,
                            episode_length=20, collect=dict(n_probe=32, probe_policies=8, eval_episodes=1),
                            tasks=smoke_task, eval_episodes=2),
      "cpu": lambda: make(env, "medium", 20_000, 0.15,
                          {"latent_dim": cpu_latent, "steps": 3000, "lr": 3e-3, "encoder_widths": (256,),
                           "decoder_widths": (256,)},
                          {"budget": 500_000, "seeds": 2, "latent_start": "best", "methods": CPU_METHODS},
                          searches(16, 1, env), collect=dict(eval_episodes=1, n_random=256), tasks=cpu_tasks,
                          eval_episodes=3, recovery_points=64, recovery_episodes=1),
      "paper": lambda: make(env, "large", 200_000, 0.25,
                            {"latent_dim": paper_latent, "steps": 20_000, "encoder_widths": (256,),
                             "decoder_widths": (256,)},
                            {"budget": 20_000_000, "seeds": 10},
                            searches(128, 2, env),  # swept on medium policies
                            collect=dict(store="indices")),  # 5e4 large policies' parameters: 25 GB
  }


# walker2d's and ant's cpu presets are not timed yet (the others: benchmarks/RESULTS.md)
PRESETS = {"mountain_car": mountain_car(), "reacher": brax("reacher", 4, 8, ("reach_ne",)),
           "hopper": brax("hopper", 16, 8), "halfcheetah": brax("halfcheetah", 16, 8),
           "walker2d": brax("walker2d", 16, 8, ("forward", "backward")),
           "ant": brax("ant", 16, 8, ("forward", "backward"))}
# the cpu presets as the race's sweeps found them: each sweep's grid is centred on these values
UNTUNED_CPU = {env: presets["cpu"] for env, presets in PRESETS.items()}

# The fair race (experiments/RACE.md): every method and control on the `cpu` preset's
# dataset, autoencoder and budget, its learning curve on 21 grid points (n_evals 20), on
# the 15 tasks of the earlier table, 10 seeds on the fine-tuning tasks, 5 on locomotion;
# each method's setting tuned by `experiments.race_tune` (in this order: latent-then-
# parameter's phases keep the winners of latent and parameter PGPE).
RACE_METHODS = ("latent_pgpe", "param_pgpe", "latent_then_param", "start_param_pgpe", "random_subspace_pgpe",
                "pca_subspace_pgpe", "ppo", "sac", "td3", "ddpg")
RACE = {"mountain_car": (10, ("goal", "left", "height", "speed")),
        "reacher": (10, ("reach_ne", "reach_nw", "reach_sw", "reach_se")),
        "hopper": (5, ("forward", "backward", "jump")),
        "halfcheetah": (5, ("forward", "backward", "frontflip", "backflip"))}


def tuned_winners(config: ExperimentConfig, env: str, tag: str, methods) -> ExperimentConfig:
  """`config` with the `best` cell of each of `methods`' committed sweeps tagged `tag`
  (experiments/results/sweep_<env>_<method>_<tag>.json) in place, where one exists."""
  for method in methods:
    swept = RESULTS / f"sweep_{env}_{method}_{tag}.json"
    if swept.is_file():
      config = override(config, json.loads(swept.read_text())["best"])
  return config


# The latent strategy of an env's cpu preset, in latent PGPE's place: the best of the strategies
# the race compared on that env (issue 36 item 3, experiments/RESULTS.md: CMA-ES, normalised
# IQM 0.65 against PGPE's 0.16 on Mountain Car, 0.61 against 0.46 on Reacher), at the
# setting its race sweep chose on selection seeds.  PGPE elsewhere: not compared there yet.
CPU_STRATEGY = {"mountain_car": "latent_cmaes", "reacher": "latent_cmaes"}


def with_strategy(env: str, strategy: str) -> ExperimentConfig:
  """Env's cpu preset with `strategy` run in latent PGPE's place (latent-then-parameter
  keeps its PGPE phases), at its race-tuned setting."""
  config = UNTUNED_CPU[env]()
  methods = tuple(strategy if m == "latent_pgpe" else m for m in config.search.methods)
  config = dataclasses.replace(config, search=dataclasses.replace(config.search, methods=methods))
  return tuned_winners(config, env, "race", [strategy])


for _env, _strategy in CPU_STRATEGY.items():
  PRESETS[_env]["cpu"] = functools.partial(with_strategy, _env, _strategy)


def race(env: str) -> ExperimentConfig:
  """Env's race preset: its cpu preset before any race winner (`UNTUNED_CPU`) with the race's seeds, tasks, grid and methods,
  and each registered method's tuned setting where its race sweep is committed
  (experiments/results/sweep_<env>_<method>_race.json, its `best` cell: the race's
  methods and any other `experiments.race_tune` tuned); the subspace controls take
  latent PGPE's step size, and the agents started elsewhere (the sequences' RL phases
  `td3_from_start`, `sac_from_start`; `start_td3`, `start_sac`) their agent's tuned
  learning rate, and `latent_head_td3` `latent_td3`'s (so the head is all that differs)."""
  seeds, tasks = RACE[env]
  cpu = UNTUNED_CPU[env]()
  config = dataclasses.replace(cpu, tasks=tasks, search=dataclasses.replace(
      cpu.search, seeds=seeds, n_evals=20, methods=RACE_METHODS))
  config = tuned_winners(config, env, "race", METHODS)
  # the subspace controls search beside the latent space with its step size (they tune
  # their own std_init): latent PGPE's winner, so only the space differs
  lr = config.methods["latent_pgpe"].lr
  config = override(config, {f"methods.{m}.lr": lr for m in ("random_subspace_pgpe", "pca_subspace_pgpe")})
  # an agent started elsewhere is the agent the race tuned: the same learning rate, so that against
  # it from a random actor only the start differs (a sequence's `fraction` is tuned)
  phases = {name: agent for agent in ("td3", "sac") for name in (f"{agent}_from_start", f"start_{agent}")}
  phases["latent_head_td3"] = "latent_td3"
  config = override(config, {f"methods.{phase}.learning_rate": config.methods[agent].learning_rate
                             for phase, agent in phases.items()})
  return tuned_winners(config, env, "race", phases)  # unless tuned for itself


def race_mean(env: str) -> ExperimentConfig:
  """Env's race preset from the reward-free start, the mean code (`search.latent_start`
  mean), with each method's setting tuned for that start where its sweep is committed
  (experiments/results/sweep_<env>_<method>_race_mean.json; `python -m
  experiments.race_tune ENV --start mean`), the race preset's otherwise."""
  config = override(race(env), {"search.latent_start": "mean"})
  # only the methods that start there: the rest keep the race's settings
  return tuned_winners(config, env, "race_mean", [m for m, kind in METHODS.items() if kind.reads == "autoencoder"])


for _env in RACE:
  PRESETS[_env]["race"] = functools.partial(race, _env)
  PRESETS[_env]["race_mean"] = functools.partial(race_mean, _env)
