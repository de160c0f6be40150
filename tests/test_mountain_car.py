"""mountain_car must equal Gymnasium's MountainCarContinuous-v0."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.wrappers.training import EpisodeWrapper

from lsc.policy import pool_thetas


@pytest.fixture(scope="module")
def gym_env():
  env = gym.make("MountainCarContinuous-v0")
  env.reset(seed=0)
  yield env.unwrapped
  env.close()


@pytest.fixture(scope="module")
def step(mountain_car):
  return jax.jit(mountain_car.step)


def _state(env, obs):
  state = env.reset(jax.random.key(0))
  return state.replace(obs=jnp.asarray(obs, jnp.float32))


def test_single_steps_match_gymnasium(mountain_car, step, gym_env):
  rng = np.random.default_rng(0)
  states = np.stack([rng.uniform(-1.2, 0.6, 400), rng.uniform(-0.07, 0.07, 400)], 1).astype(np.float32)
  # edge cases: at the walls, near the goal, saturated speed
  states[:6] = [[-1.2, -0.07], [-1.2, 0.0], [0.6, 0.07], [0.449, 0.002], [0.45, 0.0], [-0.5, 0.07]]
  actions = rng.uniform(-3.0, 3.0, (400, 1)).astype(np.float32)  # many outside [-1, 1]
  for obs, action in zip(states, actions):
    gym_env.state = obs.copy()
    g_obs, g_reward, g_terminated, g_truncated, _ = gym_env.step(action)
    ours = step(_state(mountain_car, obs), jnp.asarray(action))
    np.testing.assert_allclose(np.asarray(ours.obs), g_obs, atol=1e-5)
    np.testing.assert_allclose(float(ours.reward), g_reward, atol=1e-5)
    assert bool(ours.done) == g_terminated
    assert not g_truncated


def test_whole_episodes_match_gymnasium(mountain_car, step, gym_env, mc_policy):
  apply = jax.jit(mc_policy.apply)
  controllers = [lambda obs, theta=theta: np.asarray(apply(theta, obs))
                 for theta in pool_thetas(mc_policy, 3, jnp.arange(5))]
  controllers.append(lambda obs: np.where(obs[1:] >= 0, 1.5, -1.5))  # pumps energy: reaches the goal
  rewards_seen, reached_goal = 0, 0
  for i, controller in enumerate(controllers):
    g_obs, _ = gym_env.reset(seed=i)
    state = _state(mountain_car, g_obs)
    for t in range(999):
      action = controller(np.asarray(state.obs)).astype(np.float32)
      g_obs, g_reward, g_terminated, _, _ = gym_env.step(action)
      state = step(state, jnp.asarray(action))
      np.testing.assert_allclose(np.asarray(state.obs), g_obs, atol=1e-5)
      np.testing.assert_allclose(float(state.reward), g_reward, atol=1e-5)
      assert bool(state.done) == g_terminated
      rewards_seen += 1
      if g_terminated:
        reached_goal += 1
        break
  assert rewards_seen > 999 and reached_goal >= 1  # whole episodes, ending both ways


def test_reset_distribution(mountain_car):
  states = jax.vmap(mountain_car.reset)(jax.random.split(jax.random.key(1), 2000))
  position, velocity = np.asarray(states.obs).T
  assert position.min() >= -0.6 and position.max() <= -0.4
  assert position.std() > 0.05  # uniform on [-0.6, -0.4] has std 0.058
  assert np.all(velocity == 0)


def test_time_limit_is_a_truncation(mountain_car):
  """999 steps without reaching the goal: Brax's EpisodeWrapper marks a truncation."""
  env = EpisodeWrapper(mountain_car, episode_length=999, action_repeat=1)
  state = env.reset(jax.random.key(0))
  do_nothing = jnp.zeros(1)
  state = jax.lax.fori_loop(0, 998, lambda _, s: env.step(s, do_nothing), state)
  assert float(state.done) == 0.0
  state = env.step(state, do_nothing)
  assert float(state.done) == 1.0 and float(state.info["truncation"]) == 1.0
  assert float(state.obs[0]) < 0.45  # the car never got there: not a termination
