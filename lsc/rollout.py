"""Population rollouts: the one engine every stage uses to evaluate policies.

`rollout(env, policy, thetas, reset_keys)` runs E episodes of each of N policies and
returns, without ever materialising a trajectory:
  returns      (N, n_tasks)  the return of every task of the env, mean over episodes
  lengths      (N, E) int32  steps until termination (episode_length if none)
  obs_samples  (N, E*K, O)   per episode a uniform sample (reservoir) of K observations
                             the policy acted on; short episodes repeat their states
  displacement (N, E)        how far the agent moved along x until termination (its
                             spec's `x_position`: the torso on hopper/halfcheetah; 0
                             on an env without one)
On device: `vmap` over episodes and policies, `lax.scan` over time with a done-mask (a
terminated episode is frozen and earns nothing more), `lax.map` over chunks of
policies (memory O(chunk), not O(N); see `default_chunk_size`), and the population
axis sharded over a device mesh.  One compiled program per (env, policy, N, E, K,
chunk, mesh), cached.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from lsc.envs import as_env, env_spec, for_worlds, select_state
from lsc.policy import MLPPolicy, check_finite, check_fits
from lsc.sharding import chunk_layout, gather, population_mesh, shard_population, spans_processes
from lsc.tasks import Transition, check_rewards, task_names, task_rewards

CPU_CHUNK_BYTES = 4 * 2**20  # parameters of one chunk: a few MB stay in cache (CPU)
GPU_CHUNK_BYTES = 2 * 2**30  # ... and a few GB on an accelerator


def default_chunk_size(policy: MLPPolicy) -> int:
  """Policies simulated at once per device.  On CPU a chunk's parameters should stay in
  cache across the time loop (one CPU device, mountain_car large, N = 1024: chunks
  of 8 ran 227k env-steps/s, of 32 182k, of 128 47k), and throughput stops growing
  past 64-256 envs; accelerators want the largest chunk memory allows."""
  if jax.default_backend() == "cpu":
    return int(np.clip(CPU_CHUNK_BYTES // (4 * policy.num_params), 1, 256))
  return int(np.clip(GPU_CHUNK_BYTES // (4 * policy.num_params), 1, 8192))


@struct.dataclass
class RolloutResult:
  """What a population rollout returns; see the module docstring for shapes."""
  returns: jax.Array
  lengths: jax.Array
  obs_samples: jax.Array
  displacement: jax.Array

  @property
  def env_steps(self) -> int:
    """Steps until termination, summed over policies and episodes: what a simulator
    must run.  This is the env-step count charged to every method."""
    return int(np.asarray(self.lengths, np.int64).sum())

  def steps_computed(self, episode_length: int) -> int:
    """Steps the vectorised program computed (N * E * episode_length)."""
    return int(np.prod(self.lengths.shape)) * int(episode_length)


def _xorshift32(x: jax.Array) -> jax.Array:
  x = x ^ (x << 13)
  x = x ^ (x >> 17)
  return x ^ (x << 5)


def _no_position(state) -> jax.Array:
  return jnp.zeros((), jnp.float32)


def make_episode_fn(env, policy: MLPPolicy, n_samples: int, grad_horizon: int | None = None):
  """A jit-safe function (theta (P,), key) -> (returns (n_tasks,), length (), samples (K, O),
  displacement ()) for one episode of `env.episode_length` steps.  `env`: any env
  (`lsc.envs.as_env`); its tasks are checked on an abstract transition first.
  `grad_horizon` T: a gradient through the episode reaches back at most T steps (the
  env's state is cut from the gradient every T steps; the values are unchanged), the
  truncation that keeps gradients through long, chaotic dynamics usable; None: the
  whole episode."""
  if grad_horizon is not None and grad_horizon < 1:
    raise ValueError(f"grad_horizon must be >= 1 (None: the whole episode), got {grad_horizon}")
  env = as_env(env)
  check_rewards(env)
  rewards_fn = task_rewards(env)
  n_tasks = len(task_names(env))
  horizon = env.episode_length
  x_position = env_spec(env).x_position or _no_position

  def episode(theta, key):
    reset_key, sample_key = jax.random.split(key)
    state = env.reset(reset_key)
    start = x_position(state)
    rng = jax.random.bits(sample_key, (), jnp.uint32) | jnp.uint32(1)
    buffer = jnp.zeros((n_samples, policy.obs_size), jnp.float32)
    layers = policy.unflatten(theta)

    def step(carry, t):
      state, alive, returns, length, buffer, rng = carry
      if grad_horizon is not None:
        cut = t % grad_horizon == 0
        state = jax.tree.map(lambda x: jnp.where(cut, jax.lax.stop_gradient(x), x)
                             if jnp.issubdtype(x.dtype, jnp.inexact) else x, state)
      action = policy.apply_layers(layers, state.obs)
      nxt = env.step(state, action)
      reward = rewards_fn(Transition(state.obs, action, nxt.obs, nxt.metrics, nxt.done, nxt.reward))
      returns = returns + jnp.where(alive, reward, 0.0)
      if n_samples:  # reservoir sampling (Algorithm R) of the observations acted on
        rng = _xorshift32(rng)
        count = (length + 1).astype(jnp.uint32)
        slot = jnp.where(count <= n_samples, count - 1, (rng >> 8) % count)
        write = alive & (slot < n_samples)
        slot = jnp.minimum(slot, n_samples - 1).astype(jnp.int32)
        buffer = buffer.at[slot].set(jnp.where(write, state.obs, buffer[slot]))
      length = length + alive.astype(jnp.int32)
      state = select_state(alive, nxt, state)
      alive = alive & (nxt.done == 0)
      return (state, alive, returns, length, buffer, rng), None

    carry = (state, jnp.bool_(True), jnp.zeros(n_tasks, jnp.float32), jnp.int32(0), buffer, rng)
    steps = None if grad_horizon is None else jnp.arange(horizon)  # no truncation: the program as before
    (state, _, returns, length, buffer, _), _ = jax.lax.scan(step, carry, steps, length=horizon)
    if n_samples:  # an episode shorter than K repeats its states to fill the buffer
      slots = jnp.arange(n_samples)
      filled = jnp.minimum(length, n_samples)
      buffer = buffer[jnp.where(slots < filled, slots, slots % filled)]
    return returns, length, buffer, x_position(state) - start  # the state froze at termination

  return episode


def mjx_on_cpu(backend: str) -> bool:
  """Whether `backend` is MJX's (either implementation) on a CPU, where sharding over
  several devices crashes XLA."""
  return backend in ("mjx", "mjx_warp") and jax.default_backend() == "cpu"


def default_mesh(env):
  """All devices (of every process), except for MJX on CPU: sharding MJX over several
  CPU devices segfaults inside XLA (jax 0.11.2), so it runs on one of this process's."""
  return population_mesh(jax.local_devices()[:1] if mjx_on_cpu(env.backend) else None)


def rollout_fn(env, policy: MLPPolicy, n: int, episodes: int = 1, n_samples: int = 16,
               chunk_size: int | None = None, mesh=None, nested: bool = False):
  """The compiled program behind `rollout` for a population of exactly `n`.

  Returns a jitted `fn(thetas (n, P), reset_keys (n, E) key array) -> RolloutResult`;
  cached per arguments (env and mesh by identity), so repeated calls trace once.
  Useful to time compilation apart: `fn.lower(thetas, keys).compile()`.  On a mesh that
  spans processes the results come back whole on every process (`lsc.sharding.gather`),
  except with `nested`: for a program that calls it inside its own and gathers its own
  outputs.
  """
  env = as_env(env)
  check_fits(policy, env)
  mesh = default_mesh(env) if mesh is None else mesh
  if mjx_on_cpu(env.backend) and mesh.devices.size > 1:
    raise ValueError("MJX rollouts on several CPU devices crash XLA (segfault, jax 0.11.2); "
                     "pass a one-device mesh or leave mesh=None")
  chunk_size = default_chunk_size(policy) if chunk_size is None else chunk_size
  nested = nested and spans_processes(mesh)  # one process: one program either way
  return _build_rollout_fn(env, policy, int(n), int(episodes), int(n_samples), int(chunk_size), mesh, nested)


@functools.lru_cache(maxsize=64)
def _build_rollout_fn(env, policy, n, episodes, n_samples, chunk_size, mesh, nested):
  n_devices = mesh.devices.size
  chunk, n_chunks = chunk_layout(n, n_devices, chunk_size)
  padded = n_devices * n_chunks * chunk
  episode = make_episode_fn(for_worlds(env, chunk * episodes), policy, n_samples)  # one vmapped call per chunk
  per_policy = jax.vmap(episode, in_axes=(None, 0))  # E episodes share one theta

  def local(thetas, key_data):  # one device's slice: (n_chunks * chunk, ...)
    keys = jax.random.wrap_key_data(key_data)
    thetas = thetas.reshape(n_chunks, chunk, *thetas.shape[1:])
    keys = keys.reshape(n_chunks, chunk, *keys.shape[1:])
    outs = jax.lax.map(lambda xs: jax.vmap(per_policy)(*xs), (thetas, keys))
    return jax.tree.map(lambda x: x.reshape(n_chunks * chunk, *x.shape[2:]), outs)

  sharded = shard_population(local, mesh)

  @jax.jit
  def fn(thetas, reset_keys):
    key_data = jax.random.key_data(reset_keys)
    pad = padded - n
    if pad:  # pad with copies of the first member; their results are dropped
      thetas = jnp.concatenate([thetas, jnp.broadcast_to(thetas[:1], (pad, *thetas.shape[1:]))])
      key_data = jnp.concatenate([key_data, jnp.broadcast_to(key_data[:1], (pad, *key_data.shape[1:]))])
    returns, lengths, samples, moved = (x[:n] for x in sharded(thetas.astype(jnp.float32), key_data))
    return RolloutResult(returns=returns.mean(axis=1), lengths=lengths,
                         obs_samples=samples.reshape(n, episodes * n_samples, policy.obs_size), displacement=moved)

  if nested or not spans_processes(mesh):
    return fn
  return lambda thetas, reset_keys: gather(fn(thetas, reset_keys), mesh)


def rollout(env, policy: MLPPolicy, thetas, reset_keys, *, n_samples: int = 16,
            chunk_size: int | None = None, mesh=None, check: bool = True) -> RolloutResult:
  """Runs E episodes of each policy of thetas (N, P) from reset_keys (N, E) (a typed
  key array; see `lsc.evaluation` for the shared protocol) and returns a RolloutResult.

  Not itself jitted (it validates its input on the host first); the program it runs is.
  `check=False` skips the host-side NaN check, for callers that already did it.
  """
  env = as_env(env)
  thetas = jnp.asarray(thetas)
  if thetas.ndim != 2 or thetas.shape[1] != policy.num_params:
    raise ValueError(f"thetas must have shape (N, {policy.num_params}) for this policy, "
                     f"got {thetas.shape}")
  if reset_keys.ndim != 2 or reset_keys.shape[0] != thetas.shape[0]:
    raise ValueError(f"reset_keys must have shape (N, E) with N = {thetas.shape[0]}, "
                     f"got {reset_keys.shape}")
  if n_samples < 0 or (chunk_size is not None and chunk_size < 1):
    raise ValueError(f"need n_samples >= 0 and chunk_size >= 1, got {n_samples}, {chunk_size}")
  if check:
    check_finite(thetas)
  fn = rollout_fn(env, policy, thetas.shape[0], reset_keys.shape[1], n_samples, chunk_size, mesh)
  return fn(thetas, reset_keys)
