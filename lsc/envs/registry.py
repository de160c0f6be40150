"""The env registry: one `EnvSpec` per env, added by `register_env(spec)`.

A spec is everything lsc knows about an env without building it: its sizes, default
episode length, observation bounds, probe-state mode, physics backends, how to read
its position along x, contact sizing on `mjx_warp`, its tasks and its policy sizes.
lsc's own six envs are registered by `lsc.envs.builtin` through the same call, on
the registry's first use (their tasks live in `lsc.tasks`, which imports `lsc.envs`:
registering them when `lsc.envs` loads would be an import cycle).  This module
imports neither Brax nor MuJoCo: a spec names its env's class ("module:Class"), which
`lsc.envs.make_env` imports when the env is first built.

A new env:

  lsc.register_env(lsc.EnvSpec(
      "pendulum", "mypackage.envs:Pendulum", observation_size=3, action_size=1,
      episode_length=200, tasks=(lsc.tasks.Task("swing_up", swing_up_reward),)))

after which `make_env("pendulum")`, `EnvConfig("pendulum")`, `lsc.tasks.task_names` and
the pipelines in this process know it (the command lines: register it in a module of
yours and call their `main` from there).
"""

import dataclasses
import importlib
from typing import Any, Callable, Mapping

PROBE_MODES = ("uniform", "rollout")  # `lsc.dataset`: uniform in the observation bounds, or visited states
BUILTIN = "lsc.envs.builtin"  # registers lsc's own envs when imported


@dataclasses.dataclass(frozen=True)
class EnvSpec:
  """One env, as lsc sees it.

  name                the env's name (`make_env(name)`; built envs carry it as `env.name`)
  make                "module:attr" (imported when the env is first built, so a spec costs
                      no import) or the callable itself: `make(backend=..., episode_length=...)`
                      returns the env, a Brax-protocol `Env` with `reset`, `step`,
                      `observation_size`, `action_size`, `backend` and `episode_length`
  observation_size    O, known without building the env
  action_size         A, likewise
  episode_length      the default truncation horizon (`make_env`'s when given None)
  tasks               its `lsc.tasks.Task`s, in the order of a rollout's returns columns
  backends            the physics backends it runs on: ("jax",) for a pure-JAX env,
                      `lsc.envs.BRAX_BACKENDS` for a Brax one
  choose_backend      () -> the default backend on this machine; None: backends[0]
  probe               default probe-state mode of a dataset (PROBE_MODES); "uniform"
                      needs obs_bounds
  obs_bounds          ((low,) * O, (high,) * O) where the env bounds its observations, else
                      None: what `probe="uniform"` draws from and `normalize_obs` scales by
  x_position          state -> scalar, where the agent is along x (a rollout's displacement
                      is its change over an episode); None: displacement 0
  locomotion          whether the agent travels along x, so results report its distance
                      (needs x_position); the others are fine-tuning envs
  contacts_per_world  contacts per episode that `mjx_warp`'s shared buffer holds
                      (`lsc.envs.mjx_impl`); needed when backends include mjx_warp,
                      which builds the env on `mjx` and steps it through MuJoCo Warp
                      (an env with `lsc.envs.mjx_impl.MjxImplEnv`, as lsc's Brax envs)
  hidden              {policy preset: hidden sizes} where the env overrides
                      `lsc.policy`'s defaults
  """
  name: str
  make: str | Callable[..., Any]
  observation_size: int
  action_size: int
  episode_length: int
  tasks: tuple
  backends: tuple[str, ...] = ("jax",)
  choose_backend: Callable[[], str] | None = None
  probe: str = "rollout"
  obs_bounds: tuple[tuple[float, ...], tuple[float, ...]] | None = None
  x_position: Callable[[Any], Any] | None = None
  locomotion: bool = False
  contacts_per_world: int | None = None
  hidden: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict, hash=False)

  def __post_init__(self):
    if self.obs_bounds is not None:  # lists would make the spec unhashable
      object.__setattr__(self, "obs_bounds", tuple(tuple(float(v) for v in side) for side in self.obs_bounds))
    _check_spec(self)


def _check_positive(what: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{what} must be an int >= 1, got {value!r}")


def _check_make(name: str, make) -> None:
  if isinstance(make, str):
    module, _, attr = make.partition(":")
    if not module or not attr or ":" in attr:
      raise ValueError(f"env {name!r}: make must be 'module:attr' or a callable, got {make!r}")
  elif not callable(make):
    raise ValueError(f"env {name!r}: make must be 'module:attr' or a callable, got {make!r}")


def _check_bounds(spec: EnvSpec) -> None:
  if spec.obs_bounds is None:
    return
  low, high = spec.obs_bounds
  if not len(low) == len(high) == spec.observation_size:
    raise ValueError(f"env {spec.name!r}: obs_bounds must be (low, high) of {spec.observation_size} values "
                     f"each, got {len(low)} and {len(high)}")
  if not all(l < h for l, h in zip(low, high)):
    raise ValueError(f"env {spec.name!r}: obs_bounds need low < high in every coordinate, got {spec.obs_bounds}")


def _check_tasks(spec: EnvSpec) -> None:
  names = [getattr(task, "name", None) for task in spec.tasks]
  if not names or not all(isinstance(n, str) and callable(getattr(t, "reward", None))
                          for n, t in zip(names, spec.tasks)):
    raise ValueError(f"env {spec.name!r}: tasks must be a non-empty tuple of lsc.tasks.Task, got {spec.tasks!r}")
  if len(set(names)) < len(names):
    raise ValueError(f"env {spec.name!r}: task names must be distinct, got {', '.join(names)}")


def _check_spec(spec: EnvSpec) -> None:
  """Raises ValueError naming the first field of `spec` that cannot be right."""
  if not isinstance(spec.name, str) or not spec.name:
    raise ValueError(f"an env's name must be a non-empty string, got {spec.name!r}")
  _check_make(spec.name, spec.make)
  for field in ("observation_size", "action_size", "episode_length"):
    _check_positive(f"env {spec.name!r}: {field}", getattr(spec, field))
  _check_tasks(spec)
  if not spec.backends or not all(isinstance(b, str) for b in spec.backends):
    raise ValueError(f"env {spec.name!r}: backends must be a non-empty tuple of names, got {spec.backends!r}")
  if spec.probe not in PROBE_MODES:
    raise ValueError(f"env {spec.name!r}: unknown probe mode {spec.probe!r}; valid modes: {', '.join(PROBE_MODES)}")
  _check_bounds(spec)
  if spec.probe == "uniform" and spec.obs_bounds is None:
    raise ValueError(f"env {spec.name!r}: probe 'uniform' needs obs_bounds; give them or use 'rollout'")
  if spec.locomotion and spec.x_position is None:
    raise ValueError(f"env {spec.name!r}: a locomotion env needs x_position (its distance is reported)")
  if "mjx_warp" in spec.backends or spec.contacts_per_world is not None:
    _check_positive(f"env {spec.name!r}: contacts_per_world (mjx_warp's contact buffer)", spec.contacts_per_world)
  for preset, hidden in spec.hidden.items():
    if not all(isinstance(h, int) and h >= 1 for h in hidden):
      raise ValueError(f"env {spec.name!r}: hidden sizes of preset {preset!r} must be ints >= 1, got {hidden!r}")


_SPECS: dict[str, EnvSpec] = {}


def _specs() -> dict[str, EnvSpec]:
  """The registry, lsc's own envs in it (importing `BUILTIN` registers them, once)."""
  importlib.import_module(BUILTIN)
  return _SPECS


def register_env(spec: EnvSpec, *, replace: bool = False) -> EnvSpec:
  """Adds `spec` to the registry under `spec.name` (ValueError if taken, unless
  `replace`).  Returns it."""
  if not isinstance(spec, EnvSpec):
    raise TypeError(f"register_env takes an EnvSpec, got {type(spec).__name__}")
  specs = _specs()
  if spec.name in specs and not replace:
    raise ValueError(f"an env named {spec.name!r} is registered already; pass replace=True to replace it")
  specs[spec.name] = spec
  return spec


def get_env_spec(name: str) -> EnvSpec:
  """The registered env `name`'s spec; ValueError listing the valid names otherwise."""
  specs = _specs()
  if name not in specs:
    raise ValueError(f"unknown env {name!r}; valid envs: {', '.join(specs)}")
  return specs[name]


def env_names() -> tuple[str, ...]:
  """Every registered env's name, in registration order."""
  return tuple(_specs())
