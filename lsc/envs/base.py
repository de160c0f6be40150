"""The env protocol without Brax: `State` and `Env` with the fields and methods of
`brax.envs.base.State` / `Env`, so the pure-JAX Mountain Car needs neither Brax nor
MuJoCo, while Brax's wrappers and agents still run on it (they read only these fields
and methods; `lsc.baselines.TaskReward` makes it a Brax `Env`)."""

from typing import Any

import jax
from flax import struct


@struct.dataclass
class State:
  """One env state: `pipeline_state` (the physics state, None where the observation is
  the whole state), `obs` (O,), `reward` and `done` scalars, `metrics` (scalars the
  tasks read) and `info` (what wrappers keep)."""
  pipeline_state: Any
  obs: jax.Array
  reward: jax.Array
  done: jax.Array
  metrics: dict = struct.field(default_factory=dict)
  info: dict = struct.field(default_factory=dict)


class KeyedByConfig:
  """Equality and hash by what determines an env's compiled programs (its class, its
  spec (`lsc.envs.EnvSpec`: name, tasks, ...), its backend and episode length), not by
  object identity: two `make_env` calls with the same settings share every cached
  rollout and search program."""

  def config_key(self) -> tuple:
    return (type(self).__module__, type(self).__qualname__, getattr(self, "spec", None) or getattr(self, "name", None),
            self.backend, self.episode_length)

  def __eq__(self, other) -> bool:
    return type(other) is type(self) and other.config_key() == self.config_key()

  def __hash__(self) -> int:
    return hash(self.config_key())


class Env(KeyedByConfig):
  """An env: `reset(key) -> State`, `step(state, action (A,)) -> State`, and its sizes.
  `lsc.envs.make_env` sets `name` and `spec` (its `EnvSpec`)."""
  name: str
  spec: Any  # lsc.envs.EnvSpec
  episode_length: int

  def reset(self, rng: jax.Array) -> State:
    raise NotImplementedError

  def step(self, state: State, action: jax.Array) -> State:
    raise NotImplementedError

  @property
  def observation_size(self) -> int:
    raise NotImplementedError

  @property
  def action_size(self) -> int:
    raise NotImplementedError

  @property
  def backend(self) -> str:
    raise NotImplementedError

  @property
  def unwrapped(self) -> "Env":
    return self
