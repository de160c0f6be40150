"""Seeds and keys: wherever lsc takes a seed it also takes a `jax.random` key."""

import jax
import jax.numpy as jnp
import numpy as np

from lsc.validate import check_seed

# The named key streams: the seed each purpose derives its keys from, apart from the
# stage seeds a user sets (pool, training, search seeds 0, 1, ...), so that no purpose
# reuses another's keys.  Evaluation seeds give the reset keys of every evaluated policy
# (`lsc.evaluation.EvalProtocol`).
POOL_EVAL_SEED = 1_000_003  # task returns of a pool's or dataset's policies (collect, lsc rollout)
FINAL_EVAL_SEED = 2_000_003  # every method's final policies (lsc search, the pipelines)
RECOVERY_EVAL_SEED = 3_000_017  # the autoencoder's recovery measurement (lsc.compression)
START_SEED = 4_000_037  # choosing a latent search's start by decoded return (best_decoded)
SUBSPACE_SEED = 6_000_011  # the random subspace of the dimension control (lsc.pipeline, random_subspace_pgpe)
CURVE_EVAL_SEED = 7_000_003  # every method's learning curve: its current solution at each point of the common grid
SELECTION_EVAL_SEED = 5_000_011  # the final evaluation of the sweeps' selection runs
SELECTION_SEED = 1000  # the sweeps' first search seed (1000, 1001, ...): reported runs use 0, 1, ...
PHASE_TWO = 2**31 - 1  # fold_in tag of a two-phase method's second phase (`lsc.methods`): no split reaches it


def as_key(seed, name: str = "seed") -> jax.Array:
  """A typed PRNG key from an int seed (checked: [0, 2**32 - 1]), a typed key, or raw
  uint32 key data (`jax.random.key_data`)."""
  if isinstance(seed, jax.Array) and jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key):
    return seed
  if isinstance(seed, (jax.Array, np.ndarray)) and seed.dtype == np.uint32:
    return jax.random.wrap_key_data(seed)
  return jax.random.key(check_seed(name, seed))


def key_record(seed):
  """`seed` as JSON: the int itself, or a key's data as a list of ints (artifact records)."""
  if isinstance(seed, (jax.Array, np.ndarray)):
    return np.asarray(jax.random.key_data(as_key(seed))).tolist()
  return int(seed)


def seed_keys(seed, count: int, name: str = "seed") -> jax.Array:
  """(count,) typed keys of `count` runs starting at `seed`: run i's is `key(seed + i)`
  for an int seed (checked, with the seeds after it), `fold_in(key, i)` for one key, and
  `seed[i]` for `count` keys ((count,) typed keys or (count, ...) key data).  Run i's key
  does not depend on `count`: a 3-seed run repeats a 2-seed run's two seeds."""
  if isinstance(seed, (jax.Array, np.ndarray)):
    base = as_key(seed, name)
    if base.ndim == 1:
      if base.shape[0] != count:
        raise ValueError(f"{name}: {base.shape[0]} keys for {count} runs")
      return base
    if base.ndim:
      raise ValueError(f"{name}: one key, or one per run, got an array of shape {base.shape}")
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(count, dtype=jnp.uint32))
  check_seed(name, seed, count=count)
  return jax.vmap(jax.random.key)(jnp.arange(seed, seed + count, dtype=jnp.uint32))
