"""Brax's Reacher, Hopper, HalfCheetah, Walker2d and Ant, extended with what the tasks read.

Each env keeps Brax's dynamics, observation and termination, and adds the physical
quantities that `lsc.tasks` scores to `state.metrics` (all scalars, present after
`reset` too so Brax's wrappers see a fixed set of keys).
"""

import jax
import jax.numpy as jnp
from brax import base
from brax.envs import ant, half_cheetah, hopper, reacher, walker2d
from brax.envs.base import State

from lsc.envs.base import KeyedByConfig
from lsc.envs.mjx_impl import MjxImplEnv

FINGERTIP_OFFSET = 0.11  # fingertip position along the second link (reacher.xml)
MJX_SOLVER_OPTIONS = ("solver", "iterations", "ls_iterations", "disableflags")  # what Brax's Ant retunes on mjx


class BraxEnv(MjxImplEnv, KeyedByConfig):
  """What lsc's Brax envs share: built as `cls(backend=..., episode_length=...)` (the call
  `lsc.envs.make_env` makes of an `EnvSpec.make`; other keywords go to Brax's env), equal
  by settings, and steppable through MuJoCo Warp (`MjxImplEnv`)."""

  def __init__(self, backend: str, episode_length: int, **kwargs):
    super().__init__(backend=backend, **kwargs)
    self.episode_length = episode_length
    if backend == "mjx":
      # MuJoCo Warp (`mjx_warp`) builds its model from `sys.mj_model`, which keeps the
      # MJCF's options; Brax's Ant retunes its MJX solver (1 iteration, 4 line-search
      # steps, no implicit damping), so both MJX backends get the solver Brax chose (the
      # other envs keep the MJCF's: a no-op there).
      for field in MJX_SOLVER_OPTIONS:
        setattr(self.sys.mj_model.opt, field, int(getattr(self.sys.opt, field)))


class Reacher(BraxEnv, reacher.Reacher):
  """Reacher with the target pinned at the origin: obs (11,), action (2,).

  Gymnasium's Reacher draws a target and shows it to the policy, which would make
  behaviour depend on the task.  Here the target joints sit at (0, 0) for ever, so
  obs[4:6] are always 0 and obs[8:10] is the fingertip position; the `reach_*`
  tasks then score the same rollout against four fixed points.
  metrics: `tip_x`, `tip_y` (fingertip, after the step), `ctrl_cost` = |a|^2.
  """

  def reset(self, rng: jax.Array) -> State:
    key_q, key_qd = jax.random.split(rng)
    q = self.sys.init_q + jax.random.uniform(key_q, (self.sys.q_size(),), minval=-0.1, maxval=0.1)
    qd = jax.random.uniform(key_qd, (self.sys.qd_size(),), minval=-0.005, maxval=0.005)
    q, qd = q.at[2:].set(0.0), qd.at[2:].set(0.0)
    pipeline_state = self.pipeline_init(q, qd)
    obs = self._get_obs(pipeline_state)
    zero = jnp.zeros(())
    metrics = {"reward_dist": zero, "reward_ctrl": zero, **self._task_metrics(pipeline_state, jnp.zeros(2))}
    return State(pipeline_state, obs, zero, zero, metrics)

  def step(self, state: State, action: jax.Array) -> State:
    state = super().step(state, action)
    state.metrics.update(self._task_metrics(state.pipeline_state, action))
    return state

  def _task_metrics(self, pipeline_state: base.State, action: jax.Array) -> dict:
    tip = pipeline_state.x.take(1).do(
        base.Transform.create(pos=jnp.array([FINGERTIP_OFFSET, 0.0, 0.0]))).pos
    return {"tip_x": tip[0], "tip_y": tip[1], "ctrl_cost": jnp.sum(action**2)}


class TorsoHeight:
  """Task metrics of the envs that end when unhealthy and can jump (Hopper, Walker2d): `z`
  torso height and `z_velocity` its rate of change (after the step), `healthy_reward`
  (1 while alive) and `ctrl_cost` (the env's own, -`reward_ctrl`)."""

  def reset(self, rng: jax.Array) -> State:
    state = super().reset(rng)
    zero = jnp.zeros(())
    state.metrics.update(z=state.pipeline_state.x.pos[0, 2], z_velocity=zero,
                         healthy_reward=zero, ctrl_cost=zero)
    return state

  def step(self, state: State, action: jax.Array) -> State:
    z0 = state.pipeline_state.x.pos[0, 2]
    state = super().step(state, action)
    z1 = state.pipeline_state.x.pos[0, 2]
    state.metrics.update(
        z=z1, z_velocity=(z1 - z0) / self.dt,
        healthy_reward=state.metrics["reward_healthy"],
        ctrl_cost=-state.metrics["reward_ctrl"])
    return state


class Hopper(BraxEnv, TorsoHeight, hopper.Hopper):
  """Brax's Hopper (Gymnasium Hopper-v5 rewards and termination): obs (11,), action (3,).

  metrics added (`TorsoHeight`): `z` torso height and `z_velocity` its rate of change
  (after the step), `healthy_reward` (1 while alive; the episode ends when unhealthy),
  `ctrl_cost` = 1e-3 |a|^2.  Brax's `x_velocity` is kept.
  """


class HalfCheetah(BraxEnv, half_cheetah.Halfcheetah):
  """Brax's HalfCheetah (Gymnasium HalfCheetah-v5 rewards): obs (17,), action (6,).

  metrics added: `pitch_rate`, the torso's angular velocity about the world y axis
  (positive = nose down, i.e. a front flip for a cheetah facing +x), and
  `ctrl_cost` = 0.1 |a|^2.  Brax's `x_velocity` is kept.  No termination.
  """

  def reset(self, rng: jax.Array) -> State:
    state = super().reset(rng)
    state.metrics.update(pitch_rate=state.pipeline_state.xd.ang[0, 1], ctrl_cost=jnp.zeros(()))
    return state

  def step(self, state: State, action: jax.Array) -> State:
    state = super().step(state, action)
    state.metrics.update(pitch_rate=state.pipeline_state.xd.ang[0, 1],
                         ctrl_cost=-state.metrics["reward_ctrl"])
    return state


class Walker2d(BraxEnv, TorsoHeight, walker2d.Walker2d):
  """Brax's Walker2d (Gymnasium Walker2d-v5 rewards; the episode ends when the torso
  leaves 0.8 < z < 2 or tilts past 1 rad): obs (17,), action (6,).

  metrics added (`TorsoHeight`, as Hopper's): `z` torso height and `z_velocity` its rate
  of change (after the step), `healthy_reward` (1 while alive), `ctrl_cost` = 1e-3 |a|^2.
  Brax's `x_velocity` is kept.
  """


class Ant(BraxEnv, ant.Ant):
  """Brax's Ant (Gymnasium Ant-v5 rewards without the contact cost; the episode ends
  when the torso leaves 0.2 < z < 1): obs (27,), action (8,).

  metrics added: `healthy_reward` (1 while alive) and `ctrl_cost` = 0.5 |a|^2, Ant-v5's
  control cost.  Brax's `x_velocity` and `y_velocity` (the torso's, after the step;
  +y is the ant's left when it faces +x) are kept.
  """

  def reset(self, rng: jax.Array) -> State:
    state = super().reset(rng)
    zero = jnp.zeros(())
    state.metrics.update(healthy_reward=zero, ctrl_cost=zero)
    return state

  def step(self, state: State, action: jax.Array) -> State:
    state = super().step(state, action)
    state.metrics.update(healthy_reward=state.metrics["reward_survive"],
                         ctrl_cost=-state.metrics["reward_ctrl"])
    return state
