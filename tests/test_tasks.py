"""Task rewards on hand-built transitions, the registry, and the reward wrapper."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsc.baselines import TaskReward
from lsc.envs import env_names
from lsc.tasks import Transition, get_task, task_names, task_rewards

EXPECTED_TASKS = {
    "mountain_car": ("goal", "left", "height", "speed"),
    "reacher": ("reach_ne", "reach_nw", "reach_sw", "reach_se"),
    "hopper": ("forward", "backward", "jump"),
    "halfcheetah": ("forward", "backward", "frontflip", "backflip"),
    "walker2d": ("forward", "backward", "jump"),
    "ant": ("forward", "backward", "left", "right"),
}


def transition(done=0.0, action=(0.0,), **metrics):
  metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
  a = jnp.asarray(action, jnp.float32)
  return Transition(obs=jnp.zeros(2), action=a, next_obs=jnp.zeros(2), metrics=metrics,
                    done=jnp.asarray(done, jnp.float32), reward=jnp.zeros(()))


def reward(env, task, t):
  return float(get_task(env, task).reward(t))


def test_registry_lists_every_task_of_the_design():
  assert set(env_names()) == set(EXPECTED_TASKS)
  for env, names in EXPECTED_TASKS.items():
    assert task_names(env) == names
    assert all(get_task(env, n).doc for n in names)  # every task states its formula


def test_unknown_names_list_the_valid_ones():
  with pytest.raises(ValueError, match="valid tasks: forward, backward, jump"):
    get_task("hopper", "flip")
  with pytest.raises(ValueError, match="valid envs: mountain_car, reacher"):
    task_names("cartpole")


def test_mountain_car_rewards():
  mc = lambda action=0.0, **kw: transition(action=(action,), **{"position": -0.5, "velocity": 0.0, **kw})
  # goal: Gymnasium's, on the unclipped action
  assert reward("mountain_car", "goal", mc(action=2.0)) == pytest.approx(-0.4)
  assert reward("mountain_car", "goal", mc(done=1.0, action=0.5)) == pytest.approx(100 - 0.025)
  # left: 0 right of the valley bottom, 1 at the wall, in between linear
  assert reward("mountain_car", "left", mc(position=0.3)) == 0.0
  assert reward("mountain_car", "left", mc(position=-1.2)) == pytest.approx(1.0)
  mid = (-math.pi / 6 - 1.2) / 2
  assert reward("mountain_car", "left", mc(position=mid)) == pytest.approx(0.5, abs=1e-6)
  # height: (1 + sin 3x) / 2
  assert reward("mountain_car", "height", mc(position=-math.pi / 6)) == pytest.approx(0.0, abs=1e-6)
  assert reward("mountain_car", "height", mc(position=0.0)) == pytest.approx(0.5)
  # speed: |v| / 0.07, either direction
  assert reward("mountain_car", "speed", mc(velocity=-0.035)) == pytest.approx(0.5)
  assert reward("mountain_car", "speed", mc(velocity=0.07)) == pytest.approx(1.0)
  # the non-goal tasks never pay for ending the episode: non-negative everywhere
  for x in np.linspace(-1.2, 0.6, 19):
    for v in (-0.07, 0.0, 0.07):
      r = task_rewards("mountain_car")(mc(position=x, velocity=v))
      assert np.all(np.asarray(r[1:]) >= 0)


def test_reacher_rewards_are_distances_to_quadrant_points():
  at_ne = transition(tip_x=0.1, tip_y=0.1, ctrl_cost=0.0)
  r = np.asarray(task_rewards("reacher")(at_ne))
  np.testing.assert_allclose(r, [0.0, -0.2, -math.sqrt(0.08), -0.2], atol=1e-6)
  assert reward("reacher", "reach_sw", transition(tip_x=-0.1, tip_y=-0.1)) == pytest.approx(0.0)


def test_hopper_rewards():
  t = transition(x_velocity=2.0, z_velocity=-0.5, healthy_reward=1.0, ctrl_cost=0.003)
  assert reward("hopper", "forward", t) == pytest.approx(2.0 + 0.1 - 0.003)
  assert reward("hopper", "backward", t) == pytest.approx(-2.0 + 0.1 - 0.003)
  assert reward("hopper", "jump", t) == pytest.approx(0.1 - 0.003)  # falling earns no jump
  up = transition(x_velocity=0.0, z_velocity=1.5, healthy_reward=1.0, ctrl_cost=0.0)
  assert reward("hopper", "jump", up) == pytest.approx(1.6)
  # standing still: a tenth of Hopper-v5's alive bonus, still above the largest control cost (3 x 1e-3)
  still = transition(x_velocity=0.0, z_velocity=0.0, healthy_reward=1.0, ctrl_cost=0.003)
  assert 0 < reward("hopper", "jump", still) < 0.1 and reward("hopper", "forward", still) < 0.1


def test_halfcheetah_rewards():
  t = transition(x_velocity=3.0, pitch_rate=-2.0, ctrl_cost=0.6)
  r = dict(zip(task_names("halfcheetah"), np.asarray(task_rewards("halfcheetah")(t))))
  assert r == pytest.approx({"forward": 2.4, "backward": -3.6, "frontflip": -2.6, "backflip": 1.4})


def test_walker2d_and_ant_rewards_keep_standing_above_ending():
  t = transition(x_velocity=2.0, z_velocity=-0.5, healthy_reward=1.0, ctrl_cost=0.006)
  r = dict(zip(task_names("walker2d"), np.asarray(task_rewards("walker2d")(t))))
  assert r == pytest.approx({"forward": 2.094, "backward": -1.906, "jump": 0.094})
  # ant: 0.01 |a|^2 of the env's 0.5 |a|^2; at full torque (|a|^2 = 8) standing still still earns
  ant = transition(x_velocity=1.0, y_velocity=-2.0, healthy_reward=1.0, ctrl_cost=4.0)
  r = dict(zip(task_names("ant"), np.asarray(task_rewards("ant")(ant))))
  assert r == pytest.approx({"forward": 1.02, "backward": -0.98, "left": -1.98, "right": 2.02})
  still = transition(x_velocity=0.0, y_velocity=0.0, healthy_reward=1.0, ctrl_cost=4.0)
  assert all(0 < v < 0.1 for v in np.asarray(task_rewards("ant")(still)))


def test_task_reward_wrapper_replaces_the_reward(mountain_car):
  env = TaskReward(mountain_car, "speed")
  state = env.reset(jax.random.key(0))
  state = env.step(state, jnp.ones(1))
  assert float(state.reward) == pytest.approx(abs(float(state.obs[1])) / 0.07)
  with pytest.raises(ValueError, match="valid tasks"):
    TaskReward(mountain_car, "forward")


def test_brax_training_wrappers_run_on_our_env_and_task(mountain_car):
  """Brax's training stack (vmap, episode, auto-reset) drives env + task unchanged."""
  from brax.envs.wrappers.training import wrap
  env = wrap(TaskReward(mountain_car, "left"), episode_length=5, action_repeat=1)
  state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(0), 3))  # Brax wants raw keys
  step = jax.jit(env.step)
  left = -jnp.ones((3, 1))
  for t in range(5):
    state = step(state, left)
    assert np.all(np.asarray(state.reward) >= 0)
  assert np.all(np.asarray(state.done) == 1) and np.all(np.asarray(state.info["truncation"]) == 1)
  state = step(state, left)  # auto-reset: a fresh episode
  assert np.all(np.asarray(state.info["steps"]) == 1)
