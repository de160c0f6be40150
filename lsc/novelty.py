"""Exact k-nearest-neighbour novelty, blocked so memory stays O(block^2), never O(N^2).

Squared distances come from ||x||^2 + ||y||^2 - 2 x.y: one matmul per (row block,
column block), the fastest kernel an accelerator has.  Each row block keeps a running
top-k over the column blocks it has seen, so only a (row_block, col_block) tile is ever
live; a tile's candidates come from the k column groups with the smallest minima, so no
top-k runs over a whole tile (see `_knn_rows`).  The k neighbours found are then
re-measured directly, ||x_i - x_j||, so the distances returned are exact even where
the expansion loses precision (near-duplicates: exactly 0 for identical rows).
Self-matches are excluded by index, so duplicates of a member count as neighbours.
"""

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lsc.distributed import gather_rows, row_range


def _pad_rows(x: jax.Array, multiple: int) -> jax.Array:
  pad = -x.shape[0] % multiple
  return jnp.pad(x, ((0, pad), (0, 0))) if pad else x


KERNEL_VERSION = 2  # bumped when a change can pick other neighbours on some device: part of the
# dataset's stage key and provenance, so no run reuses a dataset the kernel would now build otherwise
# (1: the distance matmul at default precision, TF32 on GPUs; 2: float32 HIGHEST everywhere)

ROWS_PER_CALL = 8192  # rows per device call: progress is reported between calls


@functools.partial(jax.jit, static_argnames=("n", "col_block"))
def _columns(x: jax.Array, n: int, col_block: int):
  """The column side, prepared once: x transposed and padded (D, Nc), squared norms (Nc,)."""
  xc = _pad_rows(x, col_block)
  return xc.T, jnp.sum(xc * xc, axis=1)


def group_size(col_block: int, k: int) -> int:
  """Columns per group in a tile's selection: the power of two nearest sqrt(col_block / k),
  which balances the top-k over group minima (col_block / group) against the one over
  the k chosen groups' members (k * group)."""
  return 2 ** max(0, round(math.log2(math.sqrt(max(col_block / k, 1.0)))))


@functools.partial(jax.jit, static_argnames=("k", "n", "row_block", "col_block", "group"))
def _knn_rows(x, xct, sq_c, rows, row_ids, *, k: int, n: int, row_block: int, col_block: int, group: int):
  """kNN of rows (R, D) (R a multiple of row_block) with pool ids row_ids (R,) among the
  n rows of x: (distances (R, k), indices (R, k)).  col_block is a multiple of group.

  Each tile's candidates are found without a top-k over all its columns: split into
  groups of `group` columns, the k nearest lie in the k groups whose minima are
  smallest (ordering by (distance, index), so ties too), and only those groups' members
  enter the top-k merged with the best so far."""
  n_cols, n_groups = xct.shape[1] // col_block, col_block // group
  picked = min(k, n_groups)

  def row_tile(args):
    rows, row_ids = args  # (B, D), (B,)
    sq_r = jnp.sum(rows * rows, axis=1)

    def merge(carry, c):
      best_d, best_i = carry
      start = c * col_block
      cols_t = jax.lax.dynamic_slice_in_dim(xct, start, col_block, axis=1)
      ids = start + jnp.arange(col_block, dtype=jnp.int32)
      dots = jnp.matmul(rows, cols_t, precision=jax.lax.Precision.HIGHEST)  # no TF32 on GPUs
      d2 = sq_r[:, None] + jax.lax.dynamic_slice_in_dim(sq_c, start, col_block)[None] - 2.0 * dots
      d2 = jnp.where((ids[None] == row_ids[:, None]) | (ids[None] >= n), jnp.inf, d2)
      grouped = d2.reshape(row_block, n_groups, group)
      _, chosen = jax.lax.top_k(-grouped.min(axis=2), picked)  # (B, picked); ties pick the earlier group
      chosen = jnp.sort(chosen, axis=1)  # in column order, so that ties below keep the earlier column
      cand_d = jnp.take_along_axis(grouped, chosen[:, :, None], axis=1).reshape(row_block, picked * group)
      members = chosen[:, :, None] * group + jnp.arange(group, dtype=jnp.int32)  # (B, picked, group) in the tile
      cand_i = start + members.reshape(row_block, picked * group)
      cand_d, cand_i = jnp.concatenate([best_d, cand_d], axis=1), jnp.concatenate([best_i, cand_i], axis=1)
      neg, pos = jax.lax.top_k(-cand_d, k)  # ties keep the earlier column, as one top-k over all would
      return (-neg, jnp.take_along_axis(cand_i, pos, axis=1)), None

    init = (jnp.full((rows.shape[0], k), jnp.inf), jnp.zeros((rows.shape[0], k), jnp.int32))
    (_, best_i), _ = jax.lax.scan(merge, init, jnp.arange(n_cols))
    exact = jnp.sqrt(jnp.sum((rows[:, None, :] - x[best_i]) ** 2, axis=-1))
    order = jnp.argsort(exact, axis=1)
    return jnp.take_along_axis(exact, order, 1), jnp.take_along_axis(best_i, order, 1)

  d = rows.shape[1]
  tiles = (rows.reshape(-1, row_block, d), row_ids.reshape(-1, row_block))
  dist, idx = jax.lax.map(row_tile, tiles)
  return dist.reshape(-1, k), idx.reshape(-1, k)


def knn(x, k: int, row_block: int = 512, col_block: int = 4096,
        progress_fn: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The k nearest *other* rows of each row of x (N, D), Euclidean.

  Returns (distances (N, k) ascending, indices (N, k) int32) as NumPy arrays.  Requires
  k < N.  Rows go to the device ROWS_PER_CALL at a time (one compiled program: the
  last group is padded), with `progress_fn(done, N)` after each.  In a multi-process
  run (`lsc.distributed`) each process finds its own share of the rows among all of
  them, and every process gets the whole result.
  Memory: O(row_block * col_block + N * D).
  """
  x = jnp.asarray(x, jnp.float32)
  n, d = x.shape
  row_block, col_block = min(row_block, n), min(col_block, n)
  group = group_size(col_block, k)
  col_block = -(-col_block // group) * group  # whole groups (the padding columns are never neighbours)
  per_call = min(row_block * max(1, ROWS_PER_CALL // row_block), -(-n // row_block) * row_block)
  xct, sq_c = _columns(x, n, col_block)
  xr = _pad_rows(x, per_call)
  row_ids = jnp.arange(xr.shape[0], dtype=jnp.int32)
  mine = row_range(n, per_call)
  dist, idx = np.empty((len(mine), k), np.float32), np.empty((len(mine), k), np.int32)
  for start in range(mine.start, mine.stop, per_call):
    stop = min(start + per_call, n)
    part = _knn_rows(x, xct, sq_c, xr[start:start + per_call], row_ids[start:start + per_call],
                     k=k, n=n, row_block=row_block, col_block=col_block, group=group)
    rows = slice(start - mine.start, stop - mine.start)
    dist[rows], idx[rows] = (np.asarray(a)[:stop - start] for a in part)
    if progress_fn is not None:
      progress_fn(stop, n)
  return gather_rows(dist, n, per_call), gather_rows(idx, n, per_call)


def novelty(descriptors, n_neighbors: int = 10, row_block: int = 512, col_block: int = 4096,
            progress_fn: Callable[[int, int], None] | None = None) -> np.ndarray:
  """Novelty of each row of descriptors (N, D): the mean Euclidean distance to its
  `n_neighbors` nearest other rows, (N,).  Validates its input, then runs `knn`."""
  descriptors = jnp.asarray(descriptors)
  n = descriptors.shape[0]
  if not 1 <= n_neighbors < n:
    raise ValueError(f"n_neighbors must be in [1, pool size - 1] = [1, {n - 1}], got {n_neighbors}")
  distances, _ = knn(descriptors, n_neighbors, row_block, col_block, progress_fn)
  return distances.mean(axis=1)


def kept_count(n: int, keep: float) -> int:
  """How many of n members a filter keeping fraction `keep` keeps: round(keep * n), at least 1."""
  return max(1, int(round(keep * n)))


def most_novel(novelty_scores, keep: float) -> np.ndarray:
  """Indices of the `kept_count(N, keep)` most novel members, most novel first."""
  if not 0.0 < keep <= 1.0:
    raise ValueError(f"keep must be a fraction in (0, 1], got {keep}")
  return top_novel(novelty_scores, kept_count(len(novelty_scores), keep))


def top_novel(novelty_scores, count: int) -> np.ndarray:
  """Indices of the `count` most novel members, most novel first (ties: lower index first)."""
  return np.argsort(-np.asarray(novelty_scores), kind="stable")[:count]
