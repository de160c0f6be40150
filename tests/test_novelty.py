"""Exact blocked kNN novelty against a NumPy brute force."""

import numpy as np
import pytest

from lsc import novelty as novelty_module
from lsc.novelty import knn, most_novel, novelty


def brute_force(x, k):
  d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
  np.fill_diagonal(d, np.inf)  # self excluded
  idx = np.argsort(d, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(d, idx, 1), idx


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(203, 24)).astype(np.float32) * 3.0 + 10.0  # offset: stresses the expansion
  x[50] = x[10]  # duplicates: distance 0 to each other, not to themselves
  x[51] = x[10]
  return x


@pytest.mark.parametrize("row_block,col_block", [(7, 13), (64, 64), (512, 4096), (8, 3)])  # 3 < k
def test_knn_equals_brute_force(data, row_block, col_block):
  dist, idx = knn(data, 5, row_block, col_block)
  ref_dist, ref_idx = brute_force(data, 5)
  np.testing.assert_allclose(np.asarray(dist), ref_dist, rtol=1e-5, atol=1e-5)
  assert np.all(np.asarray(idx) != np.arange(len(data))[:, None])  # never itself
  assert (np.asarray(idx) == ref_idx).mean() > 0.99  # same neighbours up to exact ties


@pytest.mark.parametrize("row_block,col_block", [(16, 64), (512, 4096)])
def test_knn_breaks_ties_by_index_like_one_sort(row_block, col_block):
  # integer points: many exactly equal distances, and the expansion is exact in float32;
  # the tiles' group selection must still return the lowest-index neighbours among ties
  x = np.random.default_rng(1).integers(0, 4, size=(150, 3)).astype(np.float32)
  dist, idx = knn(x, 10, row_block, col_block)
  ref_dist, ref_idx = brute_force(x, 10)
  np.testing.assert_array_equal(np.asarray(dist), ref_dist.astype(np.float32))
  np.testing.assert_array_equal(np.asarray(idx), ref_idx)


def test_knn_in_several_device_calls_reports_progress(data, monkeypatch):
  monkeypatch.setattr(novelty_module, "ROWS_PER_CALL", 32)  # 2 row blocks of 16 per call
  seen = []
  dist, _ = knn(data, 5, 16, 64, progress_fn=lambda done, total: seen.append((done, total)))
  n = len(data)
  assert seen == [(min(s + 32, n), n) for s in range(0, n, 32)]
  np.testing.assert_allclose(dist, brute_force(data, 5)[0], rtol=1e-5, atol=1e-5)


def test_duplicates_are_at_distance_zero(data):
  dist, idx = knn(data, 3, 16, 32)
  for member, twins in ((10, {50, 51}), (50, {10, 51}), (51, {10, 50})):
    assert set(np.asarray(idx[member, :2]).tolist()) == twins
    assert float(dist[member, 0]) == 0.0 and float(dist[member, 1]) == 0.0
    assert float(dist[member, 2]) > 0.0


def test_novelty_is_mean_neighbour_distance(data):
  scores = np.asarray(novelty(data, 4))
  np.testing.assert_allclose(scores, brute_force(data, 4)[0].mean(1), rtol=1e-5)


def test_most_novel_keeps_the_requested_fraction_and_spreads_out():
  rng = np.random.default_rng(1)
  x = np.concatenate([rng.normal(size=(900, 8)) * 0.1, rng.normal(size=(100, 8)) * 3.0]).astype(np.float32)
  kept = most_novel(novelty(x, 10), 0.1)
  assert len(kept) == 100 and len(set(kept.tolist())) == 100

  def mean_pairwise(subset):
    d = np.sqrt(((subset[:, None] - subset[None]) ** 2).sum(-1))
    return d[np.triu_indices(len(subset), 1)].mean()

  random_subset = rng.choice(len(x), 100, replace=False)
  assert mean_pairwise(x[kept]) > 2 * mean_pairwise(x[random_subset])
  assert len(most_novel(np.arange(10.0), 0.01)) == 1  # at least one member


def test_bad_arguments():
  x = np.zeros((5, 2), np.float32)
  with pytest.raises(ValueError, match=r"n_neighbors must be in \[1, pool size - 1\] = \[1, 4\], got 5"):
    novelty(x, 5)
  for keep in (0.0, 1.5, -0.1):
    with pytest.raises(ValueError, match=r"keep must be a fraction in \(0, 1\]"):
      most_novel(np.arange(5.0), keep)
