"""Gymnasium's `MountainCarContinuous-v0` in pure JAX, behind Brax's `Env` interface
(`lsc.envs.base`: no Brax import).

Dynamics, action clipping, the left-wall velocity reset, the start distribution,
the reward (computed from the *unclipped* action) and termination at the goal are
Gymnasium's.  The 999-step time limit is not part of the env: it is a truncation,
applied by the rollout (`episode_length`) or by Brax's `EpisodeWrapper`, which then
sets `info['truncation'] = 1`.
"""

import jax
import jax.numpy as jnp

from lsc.envs.base import Env, State

MIN_ACTION, MAX_ACTION = -1.0, 1.0
MIN_POSITION, MAX_POSITION = -1.2, 0.6
MAX_SPEED = 0.07
GOAL_POSITION, GOAL_VELOCITY = 0.45, 0.0
POWER = 0.0015
GRAVITY = 0.0025  # the coefficient of cos(3x) in the velocity update


class MountainCar(Env):
  """Continuous Mountain Car; obs = state = (position, velocity), action (1,) in [-1, 1].

  `pipeline_state` is None: the observation is the whole state.  `metrics` after a
  step hold `position` and `velocity` of the next state, which `lsc.tasks` reads.
  """

  def __init__(self, backend: str, episode_length: int):
    """`backend` is "jax", the only one (`lsc.envs.make_env` checks it)."""
    self.episode_length = episode_length

  def reset(self, rng: jax.Array) -> State:
    position = jax.random.uniform(rng, (), jnp.float32, -0.6, -0.4)
    obs = jnp.stack([position, jnp.zeros((), jnp.float32)])
    zero = jnp.zeros((), jnp.float32)
    metrics = {"position": position, "velocity": zero}
    return State(pipeline_state=None, obs=obs, reward=zero, done=zero, metrics=metrics)

  def step(self, state: State, action: jax.Array) -> State:
    position, velocity = state.obs[0], state.obs[1]
    requested = action[0]
    force = jnp.clip(requested, MIN_ACTION, MAX_ACTION)
    velocity = velocity + force * POWER - GRAVITY * jnp.cos(3.0 * position)
    velocity = jnp.clip(velocity, -MAX_SPEED, MAX_SPEED)
    position = jnp.clip(position + velocity, MIN_POSITION, MAX_POSITION)
    velocity = jnp.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
    terminated = (position >= GOAL_POSITION) & (velocity >= GOAL_VELOCITY)
    done = terminated.astype(jnp.float32)
    reward = 100.0 * done - 0.1 * requested**2
    return state.replace(obs=jnp.stack([position, velocity]), reward=reward, done=done,
                         metrics={"position": position, "velocity": velocity})

  @property
  def observation_size(self) -> int:
    return 2

  @property
  def action_size(self) -> int:
    return 1

  @property
  def backend(self) -> str:
    return "jax"
