"""The occupancy term of the autoencoder's loss: where a decoded policy goes, against
where its original went.

The behaviour loss compares actions state by state; a small action error on a policy's
own trajectory compounds over an episode, and the loss never sees it.  The occupancy
term compares the two policies' state distributions instead (in the spirit of the
occupancy-matching follow-up paper, arXiv 2603.27044): for a policy theta of the
dataset and its reconstruction theta_hat = g(f(theta)),

  MMD^2(d_theta, d_theta_hat)  with a Gaussian kernel of width `bandwidth` on states
                               divided by `scale` (the dataset's per-dimension std),

where d_theta and d_theta_hat are samples of the states the two policies visit in one
episode each from the *same* reset key, run by the shared rollout engine
(`lsc.rollout.make_episode_fn`, its reservoir sample of K states, drawn alike): equal
policies give equal samples, so the term is exactly 0 at a perfect reconstruction, with
no sampling floor (the dataset's own visited states, from other episodes, leave one that
measured larger than a trained autoencoder's distance on Mountain Car).  The decoded
episode is differentiated through the env's dynamics, so the gradient reaches the
decoder along the whole trajectory (the original's is a constant): an env whose step is
not differentiable (a foreign env may not be) cannot carry this term:
`check_differentiable` refuses it before anything compiles.

Both episodes are env steps spent on the compression (reward-free): the term returns
them, the training state counts them and the fair race charges them
(`lsc.comparison`).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lsc.envs import for_worlds
from lsc.policy import MLPPolicy
from lsc.rollout import make_episode_fn
from lsc.validate import check_memory


class OccupancyBatch(NamedTuple):
  """The inputs of one step's occupancy term, a pytree: B_o policies of the batch."""
  thetas: jax.Array  # (B_o, P) the dataset's policies
  keys: jax.Array  # (B_o,) reset keys of each one's episode and its decoded policy's
  scale: jax.Array  # (O,) per-dimension state scale of the kernel


def mmd2(x: jax.Array, y: jax.Array, scale: jax.Array, bandwidth: float) -> jax.Array:
  """The squared maximum mean discrepancy between the samples x (V, O) and y (K, O), (),
  the biased (V-statistic) estimate, >= 0 and 0 for equal samples, under the Gaussian
  kernel exp(-||(a - b) / scale||^2 / (2 bandwidth^2))."""
  x, y = x / scale, y / scale

  def kernel(a, b):
    d2 = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    return jnp.exp(-d2 / (2.0 * bandwidth ** 2))

  return jnp.mean(kernel(x, x)) + jnp.mean(kernel(y, y)) - 2.0 * jnp.mean(kernel(x, y))


def occupancy_term(env, policy: MLPPolicy, n_samples: int, decoded: jax.Array, batch: OccupancyBatch,
                   bandwidth: float, grad_horizon: int | None = None) -> tuple[jax.Array, jax.Array]:
  """(mean over the B_o policies of MMD^2 between the states batch.thetas[i] and its
  decoded policy decoded[i] (B_o, P) visit in one episode each from batch.keys[i],
  n_samples of each; the env steps the 2 B_o episodes took, () int32).
  Differentiable in `decoded` through the env's dynamics, back at most `grad_horizon`
  steps (None: the whole episode; `lsc.rollout.make_episode_fn`); jit-safe.  Memory:
  the backward pass keeps the env state of every step of the B_o decoded episodes
  (B_o x episode_length states), whatever the horizon; the originals' episodes run
  apart, with no gradient, and keep nothing (`occupancy_memory` estimates it)."""
  sized = for_worlds(env, len(batch.keys))
  original = jax.vmap(make_episode_fn(sized, policy, n_samples))
  reconstruction = jax.vmap(make_episode_fn(sized, policy, n_samples, grad_horizon))
  _, original_lengths, targets, _ = original(jax.lax.stop_gradient(batch.thetas), batch.keys)
  _, lengths, samples, _ = reconstruction(decoded, batch.keys)
  distances = jax.vmap(mmd2, in_axes=(0, 0, None, None))(jax.lax.stop_gradient(targets), samples,
                                                           batch.scale, bandwidth)
  return jnp.mean(distances), jnp.sum(original_lengths) + jnp.sum(lengths)


def occupancy_memory(env, n_policies: int) -> tuple[int, str]:
  """(bytes, what they hold): an estimate of what the term's backward pass keeps, every
  step's env state of the `n_policies` decoded episodes (n_policies x episode_length
  states, each the size of `env.reset`'s), twice (the states and their cotangents),
  whatever the horizon (`occupancy_term`).  Shapes only: nothing runs."""
  state = jax.eval_shape(env.reset, jax.random.key(0))
  per_state = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))
  steps = n_policies * env.episode_length
  return 2 * steps * per_state, (f"occupancy_policies {n_policies:,} x episode_length {env.episode_length:,} "
                                 f"env states of {per_state:,} bytes, twice")


def check_env(env, policy: MLPPolicy, n_policies: int, grad_horizon: int | None = None) -> None:
  """Refuses, before anything compiles, training with the term on `env` that JAX cannot
  differentiate (`check_differentiable`) or whose backward pass would not fit in this
  machine's memory (`occupancy_memory`): ValueError saying which."""
  check_differentiable(env, policy, grad_horizon)
  check_memory("the occupancy term's backward pass", *occupancy_memory(env, n_policies))


def check_differentiable(env, policy: MLPPolicy, grad_horizon: int | None = None) -> None:
  """Refuses an env whose episode JAX cannot differentiate, before anything compiles:
  ValueError naming the env and JAX's complaint.  Traces the gradient of one decoded
  episode's occupancy term abstractly (`jax.eval_shape`: shapes only, nothing runs; still
  seconds for a 1,000-step Brax episode, so an answer is remembered per env, policy and
  horizon)."""
  try:
    _check_differentiable(env, policy, grad_horizon)
  except TypeError as error:  # an unhashable foreign env: checked every time
    if "unhashable" not in str(error):
      raise
    _check_differentiable.__wrapped__(env, policy, grad_horizon)


@functools.lru_cache(maxsize=16)
def _check_differentiable(env, policy: MLPPolicy, grad_horizon: int | None) -> None:
  thetas = jax.ShapeDtypeStruct((1, policy.num_params), jnp.float32)
  batch = OccupancyBatch(thetas, jax.eval_shape(lambda: jax.random.split(jax.random.key(0), 1)),
                         jax.ShapeDtypeStruct((policy.obs_size,), jnp.float32))
  term = lambda decoded, batch: occupancy_term(env, policy, 1, decoded, batch, 1.0, grad_horizon)[0]
  try:
    jax.eval_shape(jax.grad(term), thetas, batch)
  except Exception as error:  # whatever JAX raises while differentiating the user's step
    complaint = str(error).strip().splitlines()[0] if str(error).strip() else ""
    raise ValueError(f"the occupancy term (train.occupancy_weight > 0) differentiates the episodes of env "
                     f"{getattr(env, 'name', env)!r} through its step, and JAX cannot: {type(error).__name__}: "
                     f"{complaint}; train without it (train.occupancy_weight=0), or on a backend whose step "
                     f"JAX differentiates (the Brax envs' spring, positional or generalized; MJX's solver "
                     f"loops)") from error
