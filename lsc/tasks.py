"""Tasks: per-step rewards as pure functions of a transition.

A task never changes the dynamics or the termination of its env, so one rollout of a
population scores every task of the env at once (`task_rewards`).  Each task's
docstring states its formula; primes denote the state after the step, `a` the action
the policy emitted.  Rewards of tasks whose env terminates early are chosen so that
ending the episode is never a shortcut for a policy that does the task: they are non-negative
per step (mountain_car `left`, `height`, `speed`, hopper `jump`) or carry a per-step
alive bonus (hopper `forward`, `backward`).  Hopper's bonus is 0.1, a tenth of
Hopper-v5's: with 1 per step, standing still for 1,000 steps earns 1,000, more than
most gaits a CPU-sized search finds, so every method converged on standing and "first
to the threshold" measured the starting point (experiments/RESULTS.md).  At 0.1
standing earns 100 and moving is what pays, while the bonus still exceeds the largest
control cost (3e-3), so jumping's reward stays positive and falling never pays a
policy that moves the task's way.

`lsc.baselines.TaskReward(env, task)` turns any task into the env's reward, for Brax's
agents.
"""

import dataclasses
import hashlib
from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from lsc.envs import get_env_spec
from lsc.envs import mountain_car as mc


@struct.dataclass
class Transition:
  """One env step: obs (O,), action (A,), next_obs (O,), metrics of the next state
  (dict of scalars, see each env's docstring) and done (scalar, 1.0 = terminated)."""
  obs: jax.Array
  action: jax.Array
  next_obs: jax.Array
  metrics: dict
  done: jax.Array


RewardFn = Callable[[Transition], jax.Array]


@dataclasses.dataclass(frozen=True)
class Task:
  """A named reward function; an env's `EnvSpec.tasks` lists its own."""
  name: str
  reward: RewardFn

  @property
  def doc(self) -> str:
    return (self.reward.__doc__ or "").strip()


# --- mountain_car ------------------------------------------------------------------
VALLEY_BOTTOM = -jnp.pi / 6  # argmin of the height sin(3x)


def mountain_car_goal(t: Transition) -> jax.Array:
  """Gymnasium's reward: r = 100 * terminated - 0.1 * a^2 (a unclipped).
  Terminated means x' >= 0.45 and v' >= 0; the episode then ends."""
  return 100.0 * t.done - 0.1 * t.action[0] ** 2


def mountain_car_left(t: Transition) -> jax.Array:
  """Reach the left edge: r = clip((x_b - x') / (x_b + 1.2), 0, 1), x_b = -pi/6 the valley
  bottom: 0 right of the bottom, 1 at the left wall x = -1.2.  Non-negative, so reaching
  the goal (which ends the episode) only forfeits reward."""
  return jnp.clip((VALLEY_BOTTOM - t.metrics["position"]) / (VALLEY_BOTTOM - mc.MIN_POSITION), 0.0, 1.0)


def mountain_car_height(t: Transition) -> jax.Array:
  """Height reached: r = (1 + sin(3 x')) / 2 in [0, 1], summed over the episode.  The top
  of the right hill (x = pi/6) lies past the goal, so the optimum climbs high on
  either side without crossing x = 0.45 moving right (which would end the episode)."""
  return 0.5 * (1.0 + jnp.sin(3.0 * t.metrics["position"]))


def mountain_car_speed(t: Transition) -> jax.Array:
  """Speed: r = |v'| / 0.07 in [0, 1]; swinging fast without ending the episode at the goal."""
  return jnp.abs(t.metrics["velocity"]) / mc.MAX_SPEED


# --- reacher -----------------------------------------------------------------------
REACH_POINTS = {"ne": (0.1, 0.1), "nw": (-0.1, 0.1), "sw": (-0.1, -0.1), "se": (0.1, -0.1)}


def _reach(point: tuple[float, float]) -> RewardFn:
  px, py = point

  def reward(t: Transition) -> jax.Array:
    return -jnp.sqrt((t.metrics["tip_x"] - px) ** 2 + (t.metrics["tip_y"] - py) ** 2)

  reward.__doc__ = (f"r = -|tip' - ({px}, {py})|, the fingertip's distance to a fixed point "
                    "(the arm reaches radius 0.21).")
  return reward


# --- hopper ------------------------------------------------------------------------
HOPPER_ALIVE = 0.1  # per healthy step: a tenth of Hopper-v5's (see the module docstring)


def hopper_forward(t: Transition) -> jax.Array:
  """Hopper-v5's reward with a tenth of its alive bonus: r = x_velocity + 0.1 (healthy)
  - 1e-3 |a|^2."""
  return t.metrics["x_velocity"] + HOPPER_ALIVE * t.metrics["healthy_reward"] - t.metrics["ctrl_cost"]


def hopper_backward(t: Transition) -> jax.Array:
  """r = -x_velocity + 0.1 (healthy) - 1e-3 |a|^2."""
  return -t.metrics["x_velocity"] + HOPPER_ALIVE * t.metrics["healthy_reward"] - t.metrics["ctrl_cost"]


def hopper_jump(t: Transition) -> jax.Array:
  """r = max(z_velocity, 0) + 0.1 (healthy) - 1e-3 |a|^2: upward speed of the torso, so
  repeated jumps score and standing still earns the alive bonus only."""
  return (jnp.maximum(t.metrics["z_velocity"], 0.0) + HOPPER_ALIVE * t.metrics["healthy_reward"]
          - t.metrics["ctrl_cost"])


# --- halfcheetah -------------------------------------------------------------------
def halfcheetah_forward(t: Transition) -> jax.Array:
  """Gymnasium HalfCheetah-v5's reward: r = x_velocity - 0.1 |a|^2."""
  return t.metrics["x_velocity"] - t.metrics["ctrl_cost"]


def halfcheetah_backward(t: Transition) -> jax.Array:
  """r = -x_velocity - 0.1 |a|^2."""
  return -t.metrics["x_velocity"] - t.metrics["ctrl_cost"]


def halfcheetah_frontflip(t: Transition) -> jax.Array:
  """r = pitch_rate - 0.1 |a|^2 (torso angular velocity about y, positive = nose down)."""
  return t.metrics["pitch_rate"] - t.metrics["ctrl_cost"]


def halfcheetah_backflip(t: Transition) -> jax.Array:
  """r = -pitch_rate - 0.1 |a|^2."""
  return -t.metrics["pitch_rate"] - t.metrics["ctrl_cost"]


# Each env's tasks, in the order of the columns of its rollout returns; its `EnvSpec`
# (`lsc.envs.builtin`) holds them.
MOUNTAIN_CAR_TASKS = (Task("goal", mountain_car_goal), Task("left", mountain_car_left),
                      Task("height", mountain_car_height), Task("speed", mountain_car_speed))
REACHER_TASKS = tuple(Task(f"reach_{q}", _reach(p)) for q, p in REACH_POINTS.items())
HOPPER_TASKS = (Task("forward", hopper_forward), Task("backward", hopper_backward), Task("jump", hopper_jump))
HALFCHEETAH_TASKS = (Task("forward", halfcheetah_forward), Task("backward", halfcheetah_backward),
                     Task("frontflip", halfcheetah_frontflip), Task("backflip", halfcheetah_backflip))


def fingerprint(env_name: str) -> str:
  """A short hash of env `env_name`'s task names and formulas (their docstrings, which
  state them): part of every pipeline stage's key, so that results computed under
  other rewards are recomputed, never reused."""
  text = "\n".join(f"{t.name}: {t.doc}" for t in get_env_spec(env_name).tasks)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def task_names(env_name: str) -> tuple[str, ...]:
  """Names of the tasks of `env_name`, in the order of the columns of rollout returns."""
  return tuple(t.name for t in get_env_spec(env_name).tasks)


def get_task(env_name: str, task_name: str) -> Task:
  """The task `task_name` of `env_name`; ValueError listing the valid names otherwise."""
  for task in get_env_spec(env_name).tasks:
    if task.name == task_name:
      return task
  raise ValueError(f"unknown task {task_name!r} for env {env_name!r}; valid tasks: "
                   f"{', '.join(task_names(env_name))}")


def task_index(env_name: str, task_name: str) -> int:
  """Column of `task_name` in the (N, n_tasks) returns of a rollout of `env_name`."""
  get_task(env_name, task_name)
  return task_names(env_name).index(task_name)


def task_rewards(env_name: str) -> Callable[[Transition], jax.Array]:
  """A jit-safe function: Transition -> rewards of every task of `env_name`, (n_tasks,)."""
  tasks = get_env_spec(env_name).tasks

  def rewards(t: Transition) -> jax.Array:
    return jnp.stack([jnp.asarray(task.reward(t), jnp.float32) for task in tasks])

  return rewards
