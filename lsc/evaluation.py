"""The evaluation protocol shared by recovery metrics, searches and baselines.

Every policy that is *evaluated* (as opposed to explored) runs the same E episodes:
episode e of every policy starts from reset key e of the protocol's seed.  Returns of
different policies, methods and stages are then compared on identical start states
(common random numbers), and a fresh seed gives fresh evaluation keys.
"""

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lsc.policy import MLPPolicy, pool_thetas
from lsc.rollout import RolloutResult, rollout


@dataclasses.dataclass(frozen=True)
class EvalProtocol:
  """`episodes` episodes per policy, from reset keys derived from `seed` alone."""
  episodes: int = 5
  seed: int = 1_000_003

  def __post_init__(self):
    if self.episodes < 1:
      raise ValueError(f"episodes must be >= 1, got {self.episodes}")

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


@functools.lru_cache(maxsize=16)
def _pool_block_fn(policy: MLPPolicy):
  return jax.jit(lambda seed, indices: pool_thetas(policy, seed, indices))


def evaluate_pool(env, policy: MLPPolicy, seed: int, size: int,
                  protocol: EvalProtocol = EvalProtocol(), *, block_size: int = 1024,
                  n_samples: int = 0, chunk_size: int | None = None, mesh=None,
                  progress_fn: Callable[[int, int], None] | None = None) -> RolloutResult:
  """Evaluates members 0..size-1 of random pool `seed` under `protocol`, block by block.

  Parameters are regenerated on device per block and never all held at once; results
  come back to the host as NumPy arrays (returns (size, n_tasks), ...).  Every block
  has the same shape (the last is padded), so one program is compiled.
  `progress_fn(done, size)` is called after each block.
  """
  if size < 1 or block_size < 1:
    raise ValueError(f"need size >= 1 and block_size >= 1, got {size}, {block_size}")
  block = min(block_size, size)
  make_thetas = _pool_block_fn(policy)
  parts = []
  for start in range(0, size, block):
    indices = np.minimum(np.arange(start, start + block), size - 1)
    thetas = make_thetas(seed, jnp.asarray(indices, jnp.uint32))
    result = rollout(env, policy, thetas, protocol.reset_keys(block), n_samples=n_samples,
                     chunk_size=chunk_size, mesh=mesh, check=False)
    keep = min(block, size - start)
    parts.append(jax.tree.map(lambda x: np.asarray(x)[:keep], result))
    if progress_fn is not None:
      progress_fn(start + keep, size)
  return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
