"""Exact k-nearest-neighbour novelty, blocked so memory stays O(block^2), never O(N^2).

Squared distances come from ||x||^2 + ||y||^2 - 2 x.y: one matmul per (row block,
column block), the fastest kernel an accelerator has.  Each row block keeps a running
top-k over the column blocks it has seen (a streaming merge), so only a
(row_block, col_block + k) tile is ever live.  The k neighbours found are then
re-measured directly, ||x_i - x_j||, so the distances returned are exact even where
the expansion loses precision (near-duplicates: exactly 0 for identical rows).
Self-matches are excluded by index, so duplicates of a member count as neighbours.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _pad_rows(x: jax.Array, multiple: int) -> jax.Array:
  pad = -x.shape[0] % multiple
  return jnp.pad(x, ((0, pad), (0, 0))) if pad else x


@functools.partial(jax.jit, static_argnames=("k", "row_block", "col_block"))
def knn(x: jax.Array, k: int, row_block: int = 512, col_block: int = 4096):
  """The k nearest *other* rows of each row of x (N, D), Euclidean.  Jit-compiled.

  Returns (distances (N, k) ascending, indices (N, k) int32).  Requires k < N.
  Memory: O(row_block * (col_block + k) + N * D).
  """
  n, d = x.shape
  x = x.astype(jnp.float32)
  row_block, col_block = min(row_block, n), min(col_block, n)
  xr = _pad_rows(x, row_block)
  xc = _pad_rows(x, col_block)
  n_cols = xc.shape[0] // col_block
  xct = xc.T  # (D, Nc): transposed once, not in every block
  sq_c = jnp.sum(xc * xc, axis=1)
  col_ids = jnp.arange(xc.shape[0], dtype=jnp.int32)

  def row_tile(args):
    rows, row_ids = args  # (B, D), (B,)
    sq_r = jnp.sum(rows * rows, axis=1)

    def merge(carry, c):
      best_d, best_i = carry
      start = c * col_block
      cols_t = jax.lax.dynamic_slice_in_dim(xct, start, col_block, axis=1)
      ids = jax.lax.dynamic_slice_in_dim(col_ids, start, col_block)
      d2 = sq_r[:, None] + jax.lax.dynamic_slice_in_dim(sq_c, start, col_block)[None] - 2.0 * rows @ cols_t
      d2 = jnp.where((ids[None] == row_ids[:, None]) | (ids[None] >= n), jnp.inf, d2)
      neg, pos = jax.lax.top_k(-jnp.concatenate([best_d, d2], axis=1), k)
      all_ids = jnp.concatenate([best_i, jnp.broadcast_to(ids, d2.shape)], axis=1)
      return (-neg, jnp.take_along_axis(all_ids, pos, axis=1)), None

    init = (jnp.full((rows.shape[0], k), jnp.inf), jnp.zeros((rows.shape[0], k), jnp.int32))
    (_, best_i), _ = jax.lax.scan(merge, init, jnp.arange(n_cols))
    exact = jnp.sqrt(jnp.sum((rows[:, None, :] - x[best_i]) ** 2, axis=-1))
    order = jnp.argsort(exact, axis=1)
    return jnp.take_along_axis(exact, order, 1), jnp.take_along_axis(best_i, order, 1)

  n_rows = xr.shape[0] // row_block
  row_ids = jnp.arange(xr.shape[0], dtype=jnp.int32)
  dist, idx = jax.lax.map(row_tile, (xr.reshape(n_rows, row_block, d), row_ids.reshape(n_rows, row_block)))
  return dist.reshape(-1, k)[:n], idx.reshape(-1, k)[:n]


def novelty(descriptors, n_neighbors: int = 10, row_block: int = 512, col_block: int = 4096) -> jax.Array:
  """Novelty of each row of descriptors (N, D): the mean Euclidean distance to its
  `n_neighbors` nearest other rows, (N,).  Validates its input, then runs `knn`."""
  descriptors = jnp.asarray(descriptors)
  n = descriptors.shape[0]
  if not 1 <= n_neighbors < n:
    raise ValueError(f"n_neighbors must be in [1, pool size - 1] = [1, {n - 1}], got {n_neighbors}")
  distances, _ = knn(descriptors, n_neighbors, row_block, col_block)
  return distances.mean(axis=1)


def most_novel(novelty_scores, keep: float) -> np.ndarray:
  """Indices of the round(keep * N) (at least 1) most novel members, most novel first."""
  if not 0.0 < keep <= 1.0:
    raise ValueError(f"keep must be a fraction in (0, 1], got {keep}")
  scores = np.asarray(novelty_scores)
  count = max(1, int(round(keep * len(scores))))
  return np.argsort(-scores, kind="stable")[:count]
