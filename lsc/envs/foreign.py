"""Envs lsc did not build: any object with Brax's `reset(key)` / `step(state, action)`
protocol (a Brax env from `brax.envs.get_environment`, or a pure-JAX env of your own),
made an lsc env by `as_env(obj, ...)`.

`as_env` reads the sizes from the object, fills in what it cannot know (no observation
bounds, probe states from rollouts, no x position) unless told, gives it its own reward
as the task `reward` unless given tasks, and registers the result under its name
(`name=`, else the object's `name` attribute, else its class's name in snake case), so
configs naming it (`EnvConfig(name)`, the pipelines) build it in this process.  Every
lsc entry point that takes an env calls it, so a Brax env object can be passed anywhere
an env is taken.
"""

import copy
import dataclasses
import re

from lsc.envs.base import KeyedByConfig
from lsc.envs.registry import EnvSpec, env_names, get_env_spec, register_env

DEFAULT_EPISODE_LENGTH = 1000  # Brax's training horizon, where the object does not say


class ForeignEnv(KeyedByConfig):
  """An env object lsc did not build, with the attributes lsc reads of an env (`name`,
  `spec`, `backend`, `episode_length`; `lsc.envs.make_env` sets the first two).
  `reset`/`step` are the object's own; other attributes are read through to it.  Equal
  to another only when it wraps the very same object."""

  def __init__(self, inner, backend: str, episode_length: int):
    self.inner, self._backend, self.episode_length = inner, backend, episode_length

  def reset(self, rng):
    return self.inner.reset(rng)

  def step(self, state, action):
    return self.inner.step(state, action)

  @property
  def observation_size(self) -> int:
    return self.spec.observation_size

  @property
  def action_size(self) -> int:
    return self.spec.action_size

  @property
  def backend(self) -> str:
    return self._backend

  @property
  def unwrapped(self):
    return self

  def config_key(self) -> tuple:
    return super().config_key() + (id(self.inner),)

  def __getattr__(self, attr):  # only reached for attributes this class lacks
    if attr == "inner":
      raise AttributeError(attr)
    return getattr(self.inner, attr)


@dataclasses.dataclass(frozen=True, eq=False)
class _Rebuild:
  """`EnvSpec.make` of an adopted object: wraps that same object again.  Equal by the
  object's identity, so adopting it twice alike gives equal specs (and shared programs)."""
  inner: object

  def __eq__(self, other) -> bool:
    return isinstance(other, _Rebuild) and other.inner is self.inner

  def __hash__(self) -> int:
    return id(self.inner)

  def __call__(self, backend: str, episode_length: int) -> ForeignEnv:
    return ForeignEnv(self.inner, backend, episode_length)

  def __repr__(self) -> str:
    return f"<the {type(self.inner).__name__} object given to lsc.as_env>"


def snake_case(name: str) -> str:
  """'InvertedPendulum' -> 'inverted_pendulum'."""
  return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _check_protocol(obj) -> None:
  missing = [a for a in ("reset", "step") if not callable(getattr(obj, a, None))]
  missing += [a for a in ("observation_size", "action_size") if not hasattr(obj, a)]
  if missing:
    raise TypeError(f"{type(obj).__name__} is not an env lsc can run: it lacks {', '.join(missing)} (an env has "
                    "reset(key) -> State, step(State, action) -> State, observation_size and action_size, as "
                    "brax.envs.Env; lsc.envs.base.State holds a State's fields)")


def as_env(env, *, name: str | None = None, tasks=None, episode_length: int | None = None, **spec_fields):
  """`env` as an lsc env: an env lsc built (`make_env`, or an earlier `as_env`) as it is
  when nothing else is given; any other object with Brax's env protocol adopted.

  name            the registry name (default: `env.name` if a string, else the class
                  name in snake case); a name that lsc or `register_env` gave another env
                  is refused, while an earlier `as_env`'s is replaced; the same object
                  (or the env `as_env` made of it) given again keeps its earlier name and
                  settings, but for those given
  tasks           rewards (`lsc.tasks.Task`s, or functions of a `lsc.tasks.Transition`,
                  named by their `__name__`); default: the env's own reward as task
                  `reward`
  episode_length  the truncation horizon (default: `env.episode_length`, else 1000)
  spec_fields     any other `EnvSpec` field: obs_bounds, probe, x_position, locomotion,
                  hidden, ...

  Sizes are read from the object (a Brax env resets once to find them), its backend from
  `env.backend` ("jax" if it has none).  Returns the built env (`make_env(name)`).
  """
  from lsc.envs import make_env  # lsc.envs imports this module
  from lsc.tasks import as_tasks  # lsc.tasks imports lsc.envs
  given = dict(spec_fields)
  if tasks is not None:
    given["tasks"] = as_tasks(tasks)
  if episode_length is not None:
    given["episode_length"] = episode_length
  if isinstance(getattr(env, "spec", None), EnvSpec):
    if name is None and not given:
      return env
    if not isinstance(env, ForeignEnv):
      raise ValueError(f"{env.name!r} is an env lsc builds; to change its tasks or settings register a spec of "
                       f"your own: lsc.register_env(dataclasses.replace(lsc.get_env_spec({env.name!r}), name=..., ...))")
    name, env = name or env.name, env.inner
  # adopted before (under any name): its name and settings, with the given ones changed;
  # looked up first, so a raw object passed again costs no reset (Brax's sizes reset it)
  earlier = next((get_env_spec(n) for n in env_names() if getattr(get_env_spec(n).make, "inner", None) is env), None)
  if earlier is not None and name in (None, earlier.name):
    if given:
      register_env(dataclasses.replace(earlier, **given), replace=True)
    return make_env(earlier.name)
  _check_protocol(env)
  own = getattr(env, "name", None)
  name = name or (own if isinstance(own, str) and own else snake_case(type(env).__name__))
  if name in env_names() and not isinstance(get_env_spec(name).make, _Rebuild):
    raise ValueError(f"env name {name!r} is taken by another env ({get_env_spec(name).make}); pass "
                     f"lsc.as_env(env, name=...) another name")
  if earlier is not None:  # renamed: the earlier settings under the new name
    register_env(dataclasses.replace(earlier, name=name, **given), replace=True)
    return make_env(name)
  length = given.pop("episode_length", None) or getattr(env, "episode_length", None) or DEFAULT_EPISODE_LENGTH
  spec = EnvSpec(name, _Rebuild(env), env.observation_size, env.action_size, length,
                 given.pop("tasks", None) or as_tasks(None), backends=(getattr(env, "backend", None) or "jax",),
                 **given)
  register_env(spec, replace=True)
  return make_env(name)


def with_spec(env, spec: EnvSpec):
  """A copy of lsc env `env` that reads `spec` (same name, not registered): what
  `lsc.tasks.with_tasks` returns."""
  env = copy.copy(env)
  env.spec = spec
  return env
