"""Iterated novelty search: a reward-free second source of datasets.

The one-shot filter (`lsc.dataset.collect`) keeps the most novel K members of one
random pool.  Iterated novelty search goes on from that archive of K policies.  Each
generation
  1. draws `offspring` parents from the archive, with probability proportional to
     their novelty;
  2. mutates them: Gaussian noise of `mutation_std` times the policy's init std per
     parameter (`MLPPolicy.init_std`), so the step means the same for every size;
  3. describes the children as the pool was described, by their actions on the same
     probe states (`lsc.policy.descriptors`);
  4. scores every member of archive + children by its exact kNN novelty among them
     (`lsc.novelty.novelty`, the same `n_neighbors`) and keeps the K most novel.

Nothing here rolls out an episode or computes a reward: the descriptors are actions
on fixed probe states, so the search spends no env steps at all, and the dataset it
leaves is evaluated exactly as the one-shot one is (K policies, the same protocol).
Generation g draws its keys from `fold_in(search_key(seed), g)` only.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from lsc.novelty import novelty, top_novel
from lsc.policy import MLPPolicy, check_parameters, descriptors, member_key

# The search's keys: member SEARCH_MEMBER of pool `seed`, which no pool, probe or
# recovery member uses (pools hold members below 2**30, recovery's start at 2**30, the
# probe's at 2**31 - 1 and above).
SEARCH_MEMBER = 2**31 - 2


def search_key(seed: int) -> jax.Array:
  """The key of pool `seed`'s novelty search (generation g: fold_in(it, g))."""
  return member_key(seed, SEARCH_MEMBER)


@dataclasses.dataclass(frozen=True)
class Archive:
  """K policies and their behaviour: host arrays."""
  thetas: np.ndarray  # (K, P) float32
  descriptors: np.ndarray  # (K, D) float32: actions on the probe states
  novelty: np.ndarray  # (K,): novelty among the set they were kept from
  indices: np.ndarray  # (K,) int64: the pool member, or -1 for a mutated policy

  def __len__(self) -> int:
    return len(self.thetas)


@functools.lru_cache(maxsize=16)
def _children_fn(policy: MLPPolicy):
  init_std = jnp.asarray(policy.init_std())

  @jax.jit
  def children(parents, key, mutation_std, probe):
    thetas = parents + mutation_std * init_std * jax.random.normal(key, parents.shape, parents.dtype)
    return thetas, descriptors(policy, thetas, probe)

  return children


def offspring_of(policy: MLPPolicy, archive: Archive, probe, key: jax.Array, offspring: int,
                 mutation_std: float) -> Archive:
  """`offspring` children of parents drawn from `archive` with probability proportional
  to their novelty (uniform if every novelty is 0), mutated and described on `probe`
  (M, O); their novelty is NaN (not yet scored), their index -1."""
  parent_key, noise_key = jax.random.split(key)
  weights = np.asarray(archive.novelty, np.float64)
  weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(archive), 1.0 / len(archive))
  parents = np.asarray(jax.random.choice(parent_key, len(archive), (offspring,), p=jnp.asarray(weights)))
  thetas, descs = _children_fn(policy)(jnp.asarray(archive.thetas[parents]), noise_key,
                                       jnp.float32(mutation_std), jnp.asarray(probe, jnp.float32))
  return Archive(thetas=np.asarray(thetas), descriptors=np.asarray(descs), novelty=np.full(offspring, np.nan),
                 indices=np.full(offspring, -1, np.int64))


def most_novel_of(archive: Archive, children: Archive, n_neighbors: int) -> Archive:
  """The len(archive) most novel of archive + children, each with its exact kNN
  novelty among all of them; ties keep the earlier (archive before children)."""
  merged = jax.tree.map(lambda a, b: np.concatenate([a, b]), dataclasses.asdict(archive), dataclasses.asdict(children))
  scores = novelty(merged["descriptors"], n_neighbors)
  keep = top_novel(scores, len(archive))
  return Archive(thetas=merged["thetas"][keep], descriptors=merged["descriptors"][keep], novelty=scores[keep],
                 indices=merged["indices"][keep])


def novelty_generation(policy: MLPPolicy, archive: Archive, probe, key: jax.Array, offspring: int,
                       mutation_std: float, n_neighbors: int) -> Archive:
  """One generation (see the module docstring).  Children whose parameters are NaN, inf
  or exploded (`lsc.policy.check_parameters`) are refused where they are made:
  ValueError naming mutation_std."""
  children = offspring_of(policy, archive, probe, key, offspring, mutation_std)
  check_parameters(children.thetas, policy, "the novelty search's children",
                   f"lower collect.mutation_std / --mutation-std (now {mutation_std:g}) or collect.generations")
  return most_novel_of(archive, children, n_neighbors)


def novelty_search(policy: MLPPolicy, archive: Archive, probe, seed: int, generations: int, offspring: int,
                   mutation_std: float, n_neighbors: int, progress_fn=None) -> Archive:
  """`generations` generations from `archive` (zero: the archive itself); generation
  g's keys are fold_in(search_key(seed), g).  `progress_fn(done, generations)` after each."""
  for g in range(generations):
    archive = novelty_generation(policy, archive, probe, jax.random.fold_in(search_key(seed), g), offspring,
                                 mutation_std, n_neighbors)
    if progress_fn is not None:
      progress_fn(g + 1, generations)
  return archive
