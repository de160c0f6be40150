"""The population rollout engine: equivalence to single rollouts, termination,
step accounting, state samples, tracing, sharding and the MJX backend."""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import keys
from lsc.envs import make_env
from lsc.evaluation import EvalProtocol, evaluate
from lsc.policy import make_policy, pool_thetas
from lsc.rollout import rollout, rollout_fn
from lsc.tasks import Transition, task_names, task_rewards


def reference_episode(env, policy, theta, key):
  """One episode stepped from Python, the obvious way: (returns, length, visited obs,
  final state)."""
  step, apply = jax.jit(env.step), jax.jit(policy.apply)
  rewards = jax.jit(task_rewards(env.name))
  reset_key, _ = jax.random.split(key)
  state = env.reset(reset_key)
  total, visited = 0.0, []
  for t in range(env.episode_length):
    action = apply(theta, state.obs)
    nxt = step(state, action)
    total = total + np.asarray(rewards(Transition(state.obs, action, nxt.obs, nxt.metrics, nxt.done, nxt.reward)))
    visited.append(np.asarray(state.obs))
    state = nxt
    if float(state.done):
      break
  return total, len(visited), np.stack(visited), state


def test_population_equals_single_rollouts(mountain_car, mc_policy):
  thetas = pool_thetas(mc_policy, 0, jnp.arange(5))
  reset_keys = keys(5, episodes=2)
  population = rollout(mountain_car, mc_policy, thetas, reset_keys, n_samples=8)
  assert population.returns.shape == (5, 4) and population.lengths.shape == (5, 2)
  assert population.obs_samples.shape == (5, 16, 2)
  for i in range(5):
    single = rollout(mountain_car, mc_policy, thetas[i:i + 1], reset_keys[i:i + 1], n_samples=8)
    np.testing.assert_allclose(population.returns[i], single.returns[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(population.lengths[i], single.lengths[0])
    np.testing.assert_allclose(population.obs_samples[i], single.obs_samples[0], atol=1e-6)


def test_rollout_matches_a_python_loop_and_samples_visited_states(mountain_car, mc_policy):
  thetas = pool_thetas(mc_policy, 0, jnp.arange(5))
  reset_keys = keys(5, episodes=2)
  result = rollout(mountain_car, mc_policy, thetas, reset_keys, n_samples=8)
  for i in (0, 3):
    for e in range(2):
      returns, length, visited, last = reference_episode(mountain_car, mc_policy, thetas[i], reset_keys[i, e])
      np.testing.assert_allclose(result.lengths[i, e], length)
      # the car's displacement: final position minus start position
      np.testing.assert_allclose(result.displacement[i, e], last.obs[0] - visited[0, 0], atol=1e-5)
      samples = np.asarray(result.obs_samples[i, 8 * e:8 * (e + 1)])
      distance = np.abs(samples[:, None, :] - visited[None]).max(-1).min(1)
      assert np.all(distance < 1e-5)  # every sample is a state this episode visited
      assert len(np.unique(samples, axis=0)) == 8  # ... and 8 distinct ones (999 visited)
    episode_means = [reference_episode(mountain_car, mc_policy, thetas[i], k)[0] for k in reset_keys[i]]
    np.testing.assert_allclose(result.returns[i], np.mean(episode_means, 0), rtol=1e-4, atol=1e-3)


def test_terminated_hopper_earns_nothing_after_termination(hopper, hopper_policy):
  # Large weights make the hopper fall within the horizon (two of these three do).
  thetas = 3.0 * pool_thetas(hopper_policy, 1, jnp.arange(3))
  reset_keys = keys(3)
  result = rollout(hopper, hopper_policy, thetas, reset_keys, n_samples=64)
  lengths = np.asarray(result.lengths[:, 0])
  assert np.sum(lengths < hopper.episode_length) == 2
  for i in range(3):
    returns, length, visited, _ = reference_episode(hopper, hopper_policy, thetas[i], reset_keys[i, 0])
    assert lengths[i] == length
    np.testing.assert_allclose(result.returns[i], returns, rtol=1e-4, atol=1e-3)
    # fewer visited states than buffer slots: the buffer holds each of them
    samples = np.asarray(result.obs_samples[i])
    distance = np.abs(samples[:, None, :] - visited[None]).max(-1).min(1)
    assert np.all(distance < 2e-3)  # scan-compiled and step-by-step physics drift apart slightly
    assert len(np.unique(samples.round(5), axis=0)) == min(length, 64)
  # charged the steps until termination, not the steps computed
  assert result.env_steps == lengths.sum() < result.steps_computed(hopper.episode_length)


def test_displacement_is_the_integral_of_forward_velocity(hopper, hopper_policy):
  thetas = 3.0 * pool_thetas(hopper_policy, 1, jnp.arange(3))  # two of them fall: episodes end early
  protocol = EvalProtocol(1, 7)
  result = evaluate(hopper, hopper_policy, thetas, protocol, n_samples=64)
  returns, moved = np.asarray(result.returns), np.asarray(result.displacement)
  assert moved.shape == (3, 1) and np.ptp(moved) > 1e-3
  names = task_names("hopper")
  # forward - backward = 2 * sum of x_velocity = 2 * displacement / dt, until termination
  velocity_sum = (returns[:, names.index("forward")] - returns[:, names.index("backward")]) / 2
  np.testing.assert_allclose(moved[:, 0], hopper.dt * velocity_sum, rtol=2e-3, atol=2e-4)


def test_repeated_calls_trace_once(mountain_car, mc_policy):
  fn = rollout_fn(mountain_car, mc_policy, 7, episodes=1, n_samples=4)
  for seed in range(3):
    thetas = pool_thetas(mc_policy, seed, jnp.arange(7))
    rollout(mountain_car, mc_policy, thetas, keys(7, seed=seed), n_samples=4)
  assert fn._cache_size() == 1


def test_compiled_programs_are_released_only_near_the_memory_map_limit():
  # a pipeline of dozens of searches once died at the kernel's memory-map limit
  from lsc.jax_setup import release_executables
  double = jax.jit(lambda x: 2 * x)
  double(jnp.ones(3))
  assert not release_executables(1.0) and double._cache_size() == 1  # below the limit: kept
  if pathlib.Path("/proc/self/maps").exists():
    assert release_executables(0.0) and double._cache_size() == 0  # "near" it: released


def test_bad_input_is_refused_before_compiling(mountain_car, mc_policy):
  thetas = pool_thetas(mc_policy, 0, jnp.arange(3))
  with pytest.raises(ValueError, match=r"shape \(N, 1185\)"):
    rollout(mountain_car, mc_policy, thetas[:, :10], keys(3))
  with pytest.raises(ValueError, match="NaN"):
    rollout(mountain_car, mc_policy, thetas.at[1, 5].set(jnp.nan), keys(3))
  with pytest.raises(ValueError, match="reset_keys"):
    rollout(mountain_car, mc_policy, thetas, keys(2))


def test_suite_runs_sharded_over_two_devices(mountain_car, mc_policy):
  from lsc.sharding import population_mesh
  assert jax.device_count() == 2  # conftest: every rollout here takes the sharded path
  thetas = pool_thetas(mc_policy, 0, jnp.arange(5))
  sharded = rollout(mountain_car, mc_policy, thetas, keys(5, 2), n_samples=8)
  single = rollout(mountain_car, mc_policy, thetas, keys(5, 2), n_samples=8,
                   mesh=population_mesh(jax.devices()[:1]))
  np.testing.assert_allclose(sharded.returns, single.returns, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(sharded.obs_samples, single.obs_samples, atol=1e-6)


SHARDED_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from lsc import enable_compilation_cache
    from lsc.envs import make_env
    from lsc.policy import make_policy, pool_thetas
    from lsc.rollout import rollout
    from lsc.sharding import population_mesh
    enable_compilation_cache()
    assert jax.device_count() == 4, jax.devices()
    env = make_env("mountain_car", episode_length=300)
    policy = make_policy(env, "medium")
    n = 10  # not a multiple of the 4 devices: exercises the padding
    thetas = pool_thetas(policy, 0, jnp.arange(n))
    reset_keys = jax.random.split(jax.random.key(0), n).reshape(n, 1)
    sharded = rollout(env, policy, thetas, reset_keys, n_samples=4, chunk_size=2)
    single = rollout(env, policy, thetas, reset_keys, n_samples=4, chunk_size=2,
                     mesh=population_mesh(jax.devices()[:1]))
    np.testing.assert_allclose(sharded.returns, single.returns, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(sharded.lengths, single.lengths)
    np.testing.assert_allclose(sharded.obs_samples, single.obs_samples, atol=1e-6)
    print("SHARDED_OK", sharded.returns.shape)
""")


def test_sharded_rollout_on_4_fake_devices_equals_unsharded():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "JAX_PLATFORMS": "cpu"}
  done = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True,
                        text=True, timeout=600)
  assert "SHARDED_OK (10, 4)" in done.stdout, done.stderr[-3000:]


@pytest.mark.slow
def test_mjx_backend_runs_a_tiny_population():
  env = make_env("hopper", backend="mjx", episode_length=20)
  policy = make_policy(env, "small")
  thetas = pool_thetas(policy, 0, jnp.arange(2))
  result = rollout(env, policy, thetas, keys(2), n_samples=4)
  assert env.backend == "mjx"
  assert result.returns.shape == (2, 3) and np.all(np.isfinite(result.returns))
  assert np.all((result.lengths >= 1) & (result.lengths <= 20))
  # forward + backward = 2 * (alive bonus 0.1 - ctrl cost <= 0.003) per step until termination
  alive_part = (result.returns[:, 0] + result.returns[:, 1]) / 2
  length = result.lengths[:, 0]
  assert np.all((alive_part <= 0.1 * length + 1e-4) & (alive_part >= 0.097 * length - 1e-4))
  # MJX sharded over several CPU devices segfaults in XLA: refused with a clear error
  from lsc.sharding import population_mesh
  with pytest.raises(ValueError, match="one-device mesh"):
    rollout(env, policy, thetas, keys(2), mesh=population_mesh())


def test_pool_evaluation_in_blocks_equals_one_big_rollout(mountain_car):
  from lsc.evaluation import EvalProtocol, evaluate, evaluate_pool
  policy = make_policy(mountain_car, "small")
  protocol = EvalProtocol(episodes=2, seed=5)
  seen = []
  blocks = evaluate_pool(mountain_car, policy, 3, 40, protocol, block_size=16,
                         progress_fn=lambda done, total: seen.append((done, total)))
  whole = evaluate(mountain_car, policy, pool_thetas(policy, 3, jnp.arange(40)), protocol)
  assert seen == [(16, 40), (32, 40), (40, 40)]
  with pytest.raises(ValueError, match="block_size must be >= 1, got 0"):
    evaluate_pool(mountain_car, policy, 3, 40, protocol, block_size=0)
  np.testing.assert_allclose(blocks.returns, whole.returns, rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(blocks.lengths, whole.lengths)
  # the protocol gives every policy the same start states: identical policies, identical returns
  twins = evaluate(mountain_car, policy, pool_thetas(policy, 3, jnp.array([7, 7])), protocol)
  np.testing.assert_array_equal(twins.returns[0], twins.returns[1])
