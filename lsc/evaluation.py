"""The evaluation protocol shared by recovery metrics, searches and baselines.

Every policy that is *evaluated* (as opposed to explored) runs the same E episodes:
episode e of every policy starts from reset key e of the protocol's seed.  Returns of
different policies, methods and stages are then compared on identical start states
(common random numbers), and a fresh seed gives fresh evaluation keys.
"""

import dataclasses
import functools
import hashlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lsc.keys import CURVE_EVAL_SEED, POOL_EVAL_SEED
from lsc.policy import MLPPolicy, pool_thetas
from lsc.rollout import RolloutResult, rollout
from lsc.validate import check_int, check_seed


@dataclasses.dataclass(frozen=True)
class EvalProtocol:
  """`episodes` episodes per policy, from reset keys derived from `seed` alone."""
  episodes: int = 5
  seed: int = POOL_EVAL_SEED

  def __post_init__(self):
    check_int("episodes", self.episodes)
    if self.episodes < 1:
      raise ValueError(f"episodes must be >= 1, got {self.episodes}")
    check_seed("evaluation seed", self.seed)

  def episode_keys(self) -> jax.Array:
    """The E reset keys, (E,)."""
    return jax.random.split(jax.random.key(self.seed), self.episodes)

  def reset_keys(self, n: int) -> jax.Array:
    """The same E keys for each of n policies: (n, E)."""
    keys = self.episode_keys()
    return jnp.broadcast_to(keys, (n, self.episodes))


def evaluate(env, policy: MLPPolicy, thetas, protocol: EvalProtocol = EvalProtocol(), *,
             n_samples: int = 0, chunk_size: int | None = None, mesh=None) -> RolloutResult:
  """Rolls out thetas (N, P) under `protocol`: returns (N, n_tasks) are means over its
  episodes.  See `lsc.rollout.rollout` for the result's fields."""
  return rollout(env, policy, thetas, protocol.reset_keys(len(thetas)), n_samples=n_samples,
                 chunk_size=chunk_size, mesh=mesh)


# The learning curve every method is read by (issue "a fair race"): its current solution
# (a strategy's centre, an RL agent's deterministic policy) evaluated on these fixed
# episodes, apart from the final evaluation's and every search's, at each point of one
# grid of env steps (`eval_grid`), step 0 included.  Not charged, for every method alike.
CURVE_EVAL = EvalProtocol(episodes=5, seed=CURVE_EVAL_SEED)


def eval_grid(budget: int, intervals: int) -> np.ndarray:
  """The common grid of a run of `budget` env steps: `intervals` + 1 points, 0 and
  `budget` included, (intervals + 1,) int64 (point i at floor(i budget / intervals))."""
  check_int("intervals", intervals, low=1)
  return np.asarray([int(budget) * i // int(intervals) for i in range(int(intervals) + 1)], np.int64)


def on_grid(env_steps, values, grid) -> np.ndarray:
  """Curves measured at increasing env steps `env_steps` (S, G) with `values` (S, G)
  (NaN: not measured), read on `grid` (n,): at each grid point, each curve's value at
  its latest finite point at or before it (what the method held having spent no more),
  NaN where it has none yet.  (S, n) float64."""
  env_steps, values = np.atleast_2d(env_steps), np.atleast_2d(np.asarray(values, np.float64))
  if env_steps.shape != values.shape:
    raise ValueError(f"env_steps and values must have one shape, got {env_steps.shape} and {values.shape}")
  out = np.full((len(values), len(grid)), np.nan)
  for s, (x, y) in enumerate(zip(env_steps, values)):
    keep = np.isfinite(y)
    x, y = np.asarray(x)[keep], y[keep]
    at = np.searchsorted(x, np.asarray(grid), side="right") - 1
    out[s] = np.where(at >= 0, y[np.maximum(at, 0)], np.nan) if len(y) else np.nan
  return out


BLOCK_BYTES = 256 * 2**20  # parameters generated per device call while streaming a pool


def default_block_size(policy: MLPPolicy) -> int:
  """Pool members per device call: their parameters take about BLOCK_BYTES."""
  return int(np.clip(BLOCK_BYTES // (4 * policy.num_params), 1, 4096))


@functools.lru_cache(maxsize=16)
def _member_block_fn(policy: MLPPolicy):
  return jax.jit(lambda seed, indices: pool_thetas(policy, seed, indices))


def pool_blocks(policy: MLPPolicy, seed: int, indices, block_size: int | None = None):
  """Yields (offset, count, thetas (block, P) on device) for members `indices` of pool
  `seed`, block by block.  Every block has the same shape (the last repeats its final
  index; use only its first `count` rows), so consumers compile once."""
  indices = np.asarray(indices)
  if indices.ndim != 1 or len(indices) == 0:
    raise ValueError(f"indices must be a non-empty 1-D array, got shape {indices.shape}")
  if block_size is not None and block_size < 1:
    raise ValueError(f"block_size must be >= 1, got {block_size}")
  block = min(block_size or default_block_size(policy), len(indices))
  make_thetas = _member_block_fn(policy)
  for start in range(0, len(indices), block):
    chunk = indices[np.minimum(np.arange(start, start + block), len(indices) - 1)]
    yield start, min(block, len(indices) - start), make_thetas(seed, jnp.asarray(chunk, jnp.uint32))


def regenerate(policy: MLPPolicy, seed: int, indices, block_size: int | None = None) -> np.ndarray:
  """Parameters of members `indices` of pool `seed` as one host array (len(indices), P)."""
  out = np.empty((len(indices), policy.num_params), np.float32)
  for start, count, thetas in pool_blocks(policy, seed, indices, block_size):
    out[start:start + count] = np.asarray(thetas)[:count]
  return out


class PoolMembers:
  """The parameters of members `indices` (K,) of random pool `seed`, as an array-like
  (K, P) float32 that holds only the indices: indexing it (an int, a slice or an int
  array of rows) regenerates those rows on device from (seed, index) and returns a
  jax.Array; `np.asarray` of the whole regenerates every row (block by block).  A
  dataset whose members are all pool members can store this instead of its parameters
  (`CollectConfig.store = "indices"`): its memory no longer grows with its size."""

  def __init__(self, policy: MLPPolicy, seed: int, indices):
    self.policy, self.seed = policy, int(seed)
    self.indices = np.asarray(indices, np.int64)
    if self.indices.ndim != 1 or (self.indices < 0).any():
      raise ValueError("PoolMembers needs a 1-D array of pool indices >= 0")
    self.shape, self.dtype, self.ndim = (len(self.indices), policy.num_params), np.dtype(np.float32), 2

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, rows) -> jax.Array:
    picked = self.indices[rows]
    thetas = _member_block_fn(self.policy)(self.seed, jnp.asarray(np.atleast_1d(picked), jnp.uint32))
    return thetas[0] if np.ndim(picked) == 0 else thetas

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    out = regenerate(self.policy, self.seed, self.indices)
    return out if dtype is None else out.astype(dtype)

  def checksum(self, rows: int = 256) -> str:
    """SHA-256 (20 hex digits) of the regenerated parameters of the first `rows` members:
    recorded when a dataset is collected, checked when it is loaded, so a change in how
    members are generated (JAX's RNG, the policy's initialisation) cannot go unnoticed."""
    first = np.ascontiguousarray(np.asarray(self[:rows], np.float32))
    return hashlib.sha256(first.tobytes()).hexdigest()[:20]


def evaluate_members(env, policy: MLPPolicy, seed: int, indices, protocol: EvalProtocol = EvalProtocol(),
                     *, block_size: int | None = None, n_samples: int = 0, chunk_size: int | None = None,
                     mesh=None, progress_fn: Callable[[int, int], None] | None = None) -> RolloutResult:
  """Evaluates members `indices` (K,) of random pool `seed` under `protocol`, block by block.

  Parameters are regenerated on device per block and never all held at once, so a
  pool of 10^5 large policies (49 GB of parameters) fits in a few GB; results come
  back as NumPy arrays (returns (K, n_tasks), ...).  `progress_fn(done, K)` is called
  after each block.
  """
  parts = []
  for start, count, thetas in pool_blocks(policy, seed, indices, block_size):
    result = rollout(env, policy, thetas, protocol.reset_keys(len(thetas)), n_samples=n_samples,
                     chunk_size=chunk_size, mesh=mesh, check=False)
    parts.append(jax.tree.map(lambda x: np.asarray(x)[:count], result))
    if progress_fn is not None:
      progress_fn(start + count, len(indices))
  return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def evaluate_pool(env, policy: MLPPolicy, seed: int, size: int,
                  protocol: EvalProtocol = EvalProtocol(), **kwargs) -> RolloutResult:
  """`evaluate_members` for the whole pool: members 0..size-1."""
  if size < 1:
    raise ValueError(f"pool size must be >= 1, got {size}")
  return evaluate_members(env, policy, seed, np.arange(size), protocol, **kwargs)

