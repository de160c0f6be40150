"""Performance recovery: how much of the dataset's range of returns a latent space keeps.

Per task, with the shared evaluation protocol and the same n policies in every row:
  (a) held-out dataset policies theta;
  (b) their reconstructions g(f(theta));
  (c) decoded latent points from the dataset's latent distribution: a grid over the
      held-out codes' range when latent_dim <= 2, else held-out codes plus Gaussian
      noise of `noise` x their standard deviation per dimension.
Metrics (R_a = max(a) - min(a), the range of the held-out returns):
  recovery        (max(c) - min(c)) / R_a        the paper's reading: range kept
  best_recovery   (max(c) - min(a)) / R_a        how far the best decoded point reaches
  error_median,   |J(theta) - J(g(f(theta)))| / R_a over the n pairs (a, b):
  error_p90       median and 90th percentile
  wasserstein     1-D Wasserstein distance between the returns of (a) and (b) / R_a
A metric is NaN where R_a is 0 (every held-out policy returns the same on the task); the
mean over tasks averages the defined ones, and recovery.json writes NaN as null
(`lsc.jsonfile`).  Recovery needs `min_held_out(latent_dim)` held-out policies.
Control rows use the same code: `untrained` runs it with freshly initialised autoencoder
parameters; `random` replaces (b) and (c) by fresh members of the random pool (the
distribution the dataset was drawn from).  A ratio near 1 means little unless it beats
both controls.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lsc.evaluation import EvalProtocol, evaluate, regenerate
from lsc.tasks import task_names
from lsc.validate import check_int

METRICS = ("recovery", "best_recovery", "error_median", "error_p90", "wasserstein")


def wasserstein_1d(x: np.ndarray, y: np.ndarray) -> float:
  """W1 between the empirical distributions of x (n,) and y (n,) (same n): mean |sorted gap|."""
  x, y = np.sort(np.asarray(x, np.float64)), np.sort(np.asarray(y, np.float64))
  if x.shape != y.shape:
    raise ValueError(f"need samples of the same size, got {x.shape} and {y.shape}")
  return float(np.mean(np.abs(x - y)))


def recovery_metrics(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> dict:
  """The metrics of one task from returns a, b (n,) (paired) and c (m,); see the module
  docstring.  A zero range of a gives NaN ratios."""
  a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
  if a.shape != b.shape:
    raise ValueError(f"(a) and (b) must pair up, got {a.shape} and {b.shape}")
  span = a.max() - a.min()
  span = span if span > 0 else np.nan
  errors = np.abs(a - b) / span
  return {"recovery": float((c.max() - c.min()) / span), "best_recovery": float((c.max() - a.min()) / span),
          "error_median": float(np.median(errors)), "error_p90": float(np.quantile(errors, 0.9)),
          "wasserstein": wasserstein_1d(a, b) / span, "range_a": float(a.max() - a.min()),
          "range_c": float(c.max() - c.min())}


def latent_points(codes: np.ndarray, n: int, key: jax.Array, noise: float = 0.25) -> np.ndarray:
  """n latent points from the distribution of codes (N, k): an even grid over the codes'
  range for k <= 2 (k = 2: n must be a square), else codes[:n] (cycled) plus Gaussian
  noise of `noise` x the codes' std per dimension.  (n, k)."""
  codes = np.asarray(codes, np.float32)
  k = codes.shape[1]
  low, high = codes.min(axis=0), codes.max(axis=0)
  if k == 1:
    return np.linspace(low, high, n, dtype=np.float32).reshape(n, 1)
  if k == 2:
    side = int(round(np.sqrt(n)))
    if side * side != n:
      raise ValueError(f"a 2-D grid needs a square number of points, got {n}")
    xs, ys = (np.linspace(low[i], high[i], side, dtype=np.float32) for i in range(2))
    return np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(n, 2)
  base = codes[np.arange(n) % len(codes)]
  return base + noise * codes.std(axis=0) * np.asarray(jax.random.normal(key, base.shape), np.float32)


def min_held_out(latent_dim: int) -> int:
  """The fewest held-out policies recovery can measure with latent codes of
  `latent_dim`: 2, since every metric is a ratio to the range R_a of their returns,
  which one policy does not have (0: every ratio NaN); 4 for latent_dim 2, whose grid
  of row (c) is a square (`points_for` rounds 2 and 3 down to 1)."""
  return 4 if latent_dim == 2 else 2


def check_recovery_points(latent_dim: int, n_points: int, name: str = "recovery_points") -> int:
  """`n_points` (setting `name`: how many held-out policies each recovery row
  evaluates, at most) if it is at least `min_held_out(latent_dim)`."""
  need = min_held_out(latent_dim)
  check_int(name, n_points)
  if n_points < need:
    raise ValueError(f"{name} must be >= {need} (recovery measures a range of returns; latent_dim {latent_dim}), "
                     f"got {n_points}")
  return n_points


def points_for(latent_dim: int, n_held_out: int, n_max: int = 256) -> int:
  """How many policies each row evaluates: min(n_max, held-out), a square for k = 2."""
  n = min(n_max, n_held_out)
  return int(np.floor(np.sqrt(n))) ** 2 if latent_dim == 2 else n


def evaluate_rows(env, policy, ae, params, held_out: np.ndarray, protocol: EvalProtocol, key: jax.Array,
                  noise: float = 0.25, a: np.ndarray | None = None, progress=None) -> dict:
  """Returns (n, n_tasks) of rows a, b, c for autoencoder params; n = len(held_out).
  Row a (the held-out policies' own returns) is evaluated unless given; `progress(n)`
  is called after each row with the policies it evaluated."""
  n = len(held_out)
  thetas = jnp.asarray(held_out, jnp.float32)
  encode, decode = jax.jit(ae.encode), jax.jit(ae.decode)
  codes = np.asarray(encode(params, thetas))
  z = latent_points(codes, n, key, noise)
  rows = {"a": thetas, "b": decode(params, encode(params, thetas)), "c": decode(params, jnp.asarray(z))}
  out = {} if a is None else {"a": a}
  for name, x in rows.items():
    if name not in out:
      out[name] = np.asarray(evaluate(env, policy, x, protocol).returns)
      if progress is not None:
        progress(n)
  return {**out, "z": z}


def recovery_report(env, policy, ae, params, held_out: np.ndarray, protocol: EvalProtocol, *,
                    pool_seed: int, seed: int = 0, noise: float = 0.25,
                    progress_fn: Callable[[int, int], None] | None = None) -> dict:
  """Recovery of a trained autoencoder and its two controls, per task and averaged.

  held_out: (n, P) dataset policies never trained on (n = `points_for(...)` of them
  make a grid for latent_dim 2).  Returns {row: {task: metrics, "mean": metrics}} for
  rows `trained`, `untrained` and `random` (fresh members of random pool `pool_seed`
  from indices past any collected pool), and "landscape": the trained model's latent
  points z (n, k) with their returns (n, n_tasks).  `progress_fn(done, total)` counts
  the policies evaluated (6 n in all)."""
  key = jax.random.key(seed)
  n = len(held_out)
  if n < min_held_out(ae.latent_dim) or points_for(ae.latent_dim, n, n) != n:
    raise ValueError(f"recovery needs >= {min_held_out(ae.latent_dim)} held-out policies (a square number for "
                     f"latent_dim 2: `points_for`), got {n}; raise train.val_fraction or the dataset's size")
  done = [0]

  def progress(count):
    done[0] += count
    if progress_fn is not None:
      progress_fn(done[0], 6 * n)

  trained = evaluate_rows(env, policy, ae, params, held_out, protocol, key, noise, progress=progress)
  returns = {"trained": trained,
             "untrained": evaluate_rows(env, policy, ae, ae.init(jax.random.fold_in(key, 1)), held_out,
                                        protocol, key, noise, a=trained["a"], progress=progress)}
  fresh = regenerate(policy, pool_seed, np.arange(2**30, 2**30 + 2 * n))
  random_returns = np.asarray(evaluate(env, policy, fresh, protocol).returns)
  progress(2 * n)
  returns["random"] = {"a": returns["trained"]["a"], "b": random_returns[:n], "c": random_returns[n:]}
  names = task_names(env)
  report = {"landscape": {"z": returns["trained"]["z"], "returns": returns["trained"]["c"]}}
  for row, r in returns.items():
    per_task = {name: recovery_metrics(r["a"][:, t], r["b"][:, t], r["c"][:, t]) for t, name in enumerate(names)}
    per_task["mean"] = {m: _mean_defined([per_task[name][m] for name in names]) for m in METRICS}
    report[row] = per_task
  return report


def _mean_defined(values) -> float:
  """The mean of the finite values (tasks whose metric is defined); NaN if none is."""
  values = np.asarray(values, np.float64)
  finite = np.isfinite(values)
  return float(values[finite].mean()) if finite.any() else float("nan")


RANK_BUCKETS = (("best", 0.0, 0.0), ("top 1 %", 0.0, 0.01), ("top 10 %", 0.01, 0.1), ("rest", 0.1, 1.0))


def rank_rows(returns: np.ndarray, top: int, sample: int, seed: int = 0) -> np.ndarray:
  """Dataset rows to examine: the `top` best of every task by `returns` (K, T) and
  `sample` others drawn uniformly; sorted unique row indices."""
  order = np.argsort(-np.asarray(returns), axis=0)[:top].reshape(-1)
  others = np.setdiff1d(np.arange(len(returns)), order)
  drawn = np.random.default_rng(seed).choice(others, min(sample, len(others)), replace=False)
  return np.unique(np.concatenate([order, drawn]))


def action_errors(policy, thetas: jax.Array, thetas_hat: jax.Array, states: jax.Array) -> np.ndarray:
  """Per policy, the mean over its own states of ||pi_theta(s) - pi_theta_hat(s)||^2:
  thetas, thetas_hat (n, P), states (n, V, O) -> (n,)."""
  act = jax.vmap(policy.apply)
  return np.asarray(jnp.mean(jnp.sum((act(thetas, states) - act(thetas_hat, states)) ** 2, -1), -1))


def reconstruction_by_rank(env, policy, ae, params, dataset, protocol: EvalProtocol, *, top: int = 16,
                           sample: int = 256, seed: int = 0) -> dict:
  """How well the autoencoder reconstructs the dataset's best policies against its
  typical ones.  Rows: `rank_rows(dataset.returns, top, sample, seed)`.  Each row's
  policy theta and its reconstruction g(f(theta)) are evaluated under `protocol` (fresh
  keys), and per task the row's return rank in the whole dataset (0: best) is bucketed
  (RANK_BUCKETS: the best policy, top 1 %, top 1-10 %, the rest).  Per task and bucket:
  the median and 90th percentile of |J(theta) - J(g(f(theta)))| / R (R: the range of
  J(theta) over the rows) and the median action error on the policy's own visited
  states (`action_errors`); and the best policy's return with its reconstruction's.
  Returns {"rows": (n,), "returns": (n, T), "reconstructed": (n, T), "own_error": (n,),
  "tasks": {task: {bucket: {...}, "best": {...}}}}."""
  rows = rank_rows(dataset.returns, top, sample, seed)
  thetas = jnp.asarray(np.asarray(dataset.thetas[rows], np.float32))
  decoded = jax.jit(ae.reconstruct)(params, thetas)
  a = np.asarray(evaluate(env, policy, thetas, protocol).returns, np.float64)
  b = np.asarray(evaluate(env, policy, decoded, protocol).returns, np.float64)
  own = action_errors(policy, thetas, decoded, jnp.asarray(np.asarray(dataset.visited_states[rows], np.float32)))
  k = len(dataset.returns)
  report = {"rows": rows, "returns": a, "reconstructed": b, "own_error": own, "tasks": {}}
  for t, name in enumerate(task_names(env)):
    rank = np.argsort(np.argsort(-np.asarray(dataset.returns)[:, t]))[rows] / k  # 0 = the dataset's best
    span = a[:, t].max() - a[:, t].min()
    error = np.abs(a[:, t] - b[:, t]) / (span if span > 0 else np.nan)
    per = {}
    for bucket, low, high in RANK_BUCKETS:
      pick = rank == 0 if high == 0 else (rank >= low) & (rank < high) & (rank > 0)
      if pick.any():
        per[bucket] = {"n": int(pick.sum()), "error_median": float(np.median(error[pick])),
                       "error_p90": float(np.quantile(error[pick], 0.9)),
                       "own_action_error_median": float(np.median(own[pick]))}
    best = int(np.argmin(rank))
    per["best_policy"] = {"row": int(rows[best]), "dataset_return": float(np.asarray(dataset.returns)[rows[best], t]),
                          "return": float(a[best, t]), "reconstructed_return": float(b[best, t])}
    per["rank"], per["error"] = rank, error
    report["tasks"][name] = per
  return report
