"""Stages 1-2: a random pool, behaviour descriptors, kNN novelty, the kept dataset.

A pool is (seed, size, policy): member i is regenerated from (seed, i) and never
stored.  Each member is described by its actions on M fixed probe states,
(M * |A|,); the `keep` fraction with the highest novelty (mean distance to the
`n_neighbors` nearest other members) forms the dataset, which is then evaluated
on every task of the env under the shared protocol.  With `generations` > 0, an
iterated novelty search (`lsc.novelty_search`, reward-free, no env steps) goes on from
those members before the evaluation; with `union` as well, the dataset is the filter's
kept members together with the policies the search made (its archive's mutated members),
so both sources are evaluated and trained on.  The dataset's record says which source
made it.

Probe states (`probe`):
  `uniform`  uniform inside the env's observation bounds (`EnvSpec.obs_bounds`;
             mountain_car's default; the Brax envs have unbounded state spaces, so
             they cannot use it)
  `rollout`  states visited by rollouts of `probe_policies` random policies of a
             separate pool (the Brax envs' default)
An env's spec names its default (`EnvSpec.probe`).
"""

import dataclasses
import functools
import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lsc import checkpoint
from lsc.config import EnvConfig, PolicyConfig, from_dict, to_dict
from lsc.distributed import gather_rows, row_range
from lsc.evaluation import (EvalProtocol, PoolMembers, default_block_size, evaluate, evaluate_members, pool_blocks,
                            regenerate)
from lsc.keys import POOL_EVAL_SEED
from lsc.novelty import KERNEL_VERSION, kept_count, most_novel, novelty
from lsc.novelty_search import Archive, novelty_search
from lsc.policy import MAX_PARAMETER_SCALE, MLPPolicy, check_parameters, descriptors, member_key
from lsc.progress import ProgressFn, for_stage
from lsc.tasks import fingerprint, task_names
from lsc.envs import PROBE_MODES, as_env, env_spec, get_env_spec
from lsc.validate import check_finite, check_int, check_memory, check_seed

STORES = ("parameters", "indices")
KIND = "dataset"


@dataclasses.dataclass(frozen=True)
class CollectConfig:
  """Everything that determines a dataset.  `env` may also be given as a registered
  env's name or as an env object (`lsc.envs.as_env` adopts it; its `EnvConfig` is kept)."""
  env: EnvConfig = EnvConfig("mountain_car")
  policy: PolicyConfig = PolicyConfig()  # the one default preset, medium, as the command line's
  pool: int = 10_000
  keep: float = 0.1
  n_neighbors: int = 10
  probe: str | None = None  # PROBE_MODES; None: the env's (`EnvSpec.probe`)
  n_probe: int = 256
  probe_policies: int = 64
  seed: int = 0
  visited_per_episode: int = 16
  eval_episodes: int = 3
  eval_seed: int = POOL_EVAL_SEED
  n_random: int | None = None  # random members evaluated for comparison; None: as many as the dataset holds
  # iterated novelty search after the filter (lsc.novelty_search): 0 generations = the one-shot filter
  generations: int = dataclasses.field(default=0, metadata={"omit_default": True})
  offspring: int | None = dataclasses.field(default=None, metadata={"omit_default": True})  # None: as many as kept
  mutation_std: float = dataclasses.field(default=0.1, metadata={"omit_default": True})  # x the init std
  # with generations > 0: keep the filter's members as well as the search's archive (its mutated policies):
  # between K and 2K policies, the filter's first
  union: bool = dataclasses.field(default=False, metadata={"omit_default": True})
  # what the artifact keeps of the kept members: "parameters" (K x P floats) or "indices" (K pool indices:
  # the parameters are regenerated from (seed, index) where they are read, `lsc.evaluation.PoolMembers`)
  store: str = dataclasses.field(default="parameters", metadata={"omit_default": True})

  def __post_init__(self):
    if isinstance(self.env, str):
      object.__setattr__(self, "env", EnvConfig(self.env))
    elif not isinstance(self.env, EnvConfig) and hasattr(self.env, "reset"):
      env = as_env(self.env)
      if env.spec != get_env_spec(env.name):  # a config names a registered env: it would lose them
        raise ValueError(f"env {env.name!r} scores tasks its registered spec lacks (lsc.with_tasks): give them "
                         f"to lsc.as_env(..., tasks=...) or register a spec with them to collect on it")
      object.__setattr__(self, "env", EnvConfig(env.name, env.backend, env.episode_length))

  @property
  def source(self) -> str:
    """What made the dataset: "filter" (one-shot), "novelty_search" (iterated) or
    "union" (the filter's members and the search's)."""
    return "union" if self.union else "novelty_search" if self.generations else "filter"

  @property
  def dataset_size(self) -> int:
    """K, the policies the dataset keeps (`lsc.novelty.kept_count`; a novelty search
    keeps its archive's size); a union's at least (it holds up to 2K: the archive's
    mutated members besides)."""
    return kept_count(self.pool, self.keep)

  def policy_shape(self) -> MLPPolicy:
    """The policy this config collects, known without building the env (ValueError for an
    unknown activation, init scheme or width)."""
    spec = get_env_spec(self.env.name)
    policy = self.policy.resolved(self.env.name)
    return MLPPolicy(spec.observation_size, spec.action_size, policy.hidden, policy.activation, policy.init_scheme)

  def training_inputs(self) -> dict:
    """What `TrainConfig.check` can check a training on this dataset against, known
    before it is collected: {num_params, dataset_size, policy (its shape), n_probe}.
    On a resolved config."""
    policy = self.policy_shape()
    return {"num_params": policy.num_params, "dataset_size": self.dataset_size, "policy": policy,
            "n_probe": self.n_probe}

  def resolved(self) -> "CollectConfig":
    """Defaults filled in and every field checked; ValueError names the bad value."""
    env = self.env.resolved()
    spec = get_env_spec(env.name)
    if env.backend not in spec.backends:
      raise ValueError(f"unknown backend {env.backend!r} for {env.name}; valid: {', '.join(spec.backends)}")
    if not isinstance(self.policy, PolicyConfig):
      raise ValueError(f"policy must be a policy config (preset, hidden, ...), got {self.policy!r}")
    policy = self.policy.resolved(env.name)
    self.policy_shape()  # activation, init, widths
    probe = self.probe or spec.probe
    if probe not in PROBE_MODES:
      raise ValueError(f"unknown probe mode {probe!r}; valid modes: {', '.join(PROBE_MODES)}")
    if probe == "uniform" and spec.obs_bounds is None:
      raise ValueError(f"probe mode 'uniform' needs observation bounds, which {env.name} lacks; use 'rollout'")
    for name in ("pool", "n_neighbors", "n_probe", "probe_policies", "visited_per_episode", "eval_episodes"):
      check_int(name, getattr(self, name))
    if self.n_random is not None:
      check_int("n_random", self.n_random)
    check_int("generations", self.generations, low=0)
    if self.store not in STORES:
      raise ValueError(f"unknown store {self.store!r}; valid: {', '.join(STORES)}")
    if self.union and not self.generations:
      raise ValueError("union joins the filter's members and a novelty search's: it needs generations > 0")
    if self.store == "indices" and self.generations:
      raise ValueError("store 'indices' needs every kept member to be a pool member; a novelty search "
                       "(generations > 0) makes new ones: store 'parameters'")
    if self.offspring is not None:
      check_int("offspring", self.offspring, low=1)
    if not check_finite("mutation_std", self.mutation_std) > 0:
      raise ValueError(f"mutation_std must be > 0, got {self.mutation_std}")
    # A child is its parent plus mutation_std init stds of noise per parameter, while two random
    # pool members differ by ~1.4 (sqrt(2)) init stds: at MAX_MUTATION_STD a child lies 7x farther
    # from its parent than two random pool members lie from each other, a draw from a 10x wider
    # distribution whose tanh units saturate, not a variation of its parent.  Larger steps only grow
    # the parameters, towards exploding (`lsc.policy.MAX_PARAMETER_SCALE`) and float32 overflow.
    if self.mutation_std > MAX_MUTATION_STD:
      raise ValueError(f"mutation_std must be <= {MAX_MUTATION_STD:g} (init stds per parameter; a larger step "
                       f"explodes the parameters), got {self.mutation_std:g}")
    # a lineage drifts ~ mutation_std * sqrt(generations) init stds, its extremes a few times that:
    # refused now what would explode past MAX_PARAMETER_SCALE after hours of generations
    drift = self.mutation_std * math.sqrt(check_int("generations", self.generations, low=0))
    if 5 * drift > MAX_PARAMETER_SCALE:
      raise ValueError(f"a novelty search of {self.generations:,} generations with mutation_std {self.mutation_std:g} "
                       f"drifts ~{drift:,.0f} init stds, its extremes past {MAX_PARAMETER_SCALE:,.0f} (exploded); lower "
                       f"collect.generations or collect.mutation_std")
    check_seed("seed", self.seed)
    check_seed("eval_seed", self.eval_seed)
    if self.pool < 2:
      raise ValueError(f"pool must be >= 2, got {self.pool}")
    if not (check_finite("keep", self.keep) and 0.0 < self.keep <= 1.0):
      raise ValueError(f"keep must be a fraction in (0, 1], got {self.keep}")
    if not 1 <= self.n_neighbors < self.pool:
      raise ValueError(f"n_neighbors must be in [1, pool size - 1] = [1, {self.pool - 1}], got {self.n_neighbors}")
    if self.generations:
      archive = self.dataset_size
      scored = archive + (archive if self.offspring is None else self.offspring)
      if self.n_neighbors >= scored:
        raise ValueError(f"n_neighbors must be < the {scored} members a novelty search generation scores "
                         f"(archive {archive} + offspring), got {self.n_neighbors}; raise "
                         f"collect.offspring or lower collect.n_neighbors")
    if self.n_random is not None and not 1 <= self.n_random <= self.pool:
      raise ValueError(f"n_random must be in [1, pool size = {self.pool}] or None, got {self.n_random}")
    if self.n_probe < 1 or self.probe_policies < 1 or self.eval_episodes < 1:
      raise ValueError(f"n_probe, probe_policies and eval_episodes must be >= 1, got "
                       f"{self.n_probe}, {self.probe_policies}, {self.eval_episodes}")
    if self.visited_per_episode < 1:
      raise ValueError(f"visited_per_episode must be >= 1 (training's `own` states are the visited ones), "
                       f"got {self.visited_per_episode}")
    if probe == "rollout" and self.n_probe > self.probe_policies * env.episode_length:
      raise ValueError(f"n_probe {self.n_probe:,} distinct states cannot come from probe_policies "
                       f"{self.probe_policies} episodes of {env.episode_length} steps; raise probe_policies or "
                       f"lower n_probe")
    resolved = dataclasses.replace(self, env=env, policy=policy, probe=probe)
    check_memory("collect", *collect_memory(resolved))
    return resolved


# A mutation's step, in init stds per parameter, that CollectConfig.resolved allows (see there).
MAX_MUTATION_STD = 10.0


def collect_memory(config: CollectConfig) -> tuple[int, str]:
  """(bytes, what they hold): an estimate of the arrays `collect` holds at once, on the
  host and the device, in float32: the pool's descriptors (pool x n_probe x A, twice:
  host and kNN copies) and kNN state, the probe states (n_probe x O) and one
  descriptor block's activations (block x n_probe x (H + A), H the policy's hidden
  units), the kept and random members' visited states, the kept parameters (K x P) and
  a novelty search's archive + children (parameters and descriptors, twice while
  selecting).  Reasonable, not exact."""
  shape = config.policy_shape()
  obs, act, params = shape.obs_size, shape.action_size, shape.num_params
  hidden = sum(shape.hidden) + act
  kept = config.dataset_size * (2 if config.union else 1)  # a union's at most
  n_random = kept if config.n_random is None else config.n_random
  descriptors = 4 * config.pool * config.n_probe * act
  neighbours = 8 * config.pool * config.n_neighbors + 4 * config.pool  # kNN distances, ids; novelty scores
  block = min(config.pool, default_block_size(shape))  # members described per device call
  probe = 4 * config.n_probe * obs + 4 * block * config.n_probe * hidden
  members = 4 * (kept + n_random) * config.eval_episodes * config.visited_per_episode * obs
  # the kept parameters; a novelty search holds archive + children, twice while selecting
  archive = config.dataset_size  # what a novelty search holds
  offspring = 0 if not config.generations else (archive if config.offspring is None else config.offspring)
  thetas = 4 * kept * params * (config.store == "parameters") + 8 * (archive + offspring) * params * bool(offspring)
  searched = 8 * (archive + offspring) * config.n_probe * act * bool(offspring)
  total = 2 * descriptors + neighbours + probe + members + thetas + searched
  held = f"kept parameters {kept:,} x {params:,} floats" if config.store == "parameters" else "kept indices"
  return total, (f"descriptors {config.pool:,} x n_probe {config.n_probe:,} x {act} floats twice, "
                 f"{block:,} x {config.n_probe:,} x {hidden} activations, {held}"
                 + (f", {offspring:,} children's" if offspring else ""))


def uniform_probe_states(env, m: int, key: jax.Array) -> np.ndarray:
  """m states uniform inside the env's observation bounds (`EnvSpec.obs_bounds`): (m, O)."""
  low, high = (np.asarray(b, np.float32) for b in env_spec(env).obs_bounds)
  return np.asarray(jax.random.uniform(key, (m, len(low)), jnp.float32, low, high))


# Probe policies are members PROBE_MEMBERS + i of the pool (a collected pool holds members
# below 2**30, recovery's fresh ones start at 2**30); the uniform probe's key is member
# PROBE_MEMBERS - 1's.  So the probe never shares a key with any pool of any seed.
PROBE_MEMBERS = 2**31


def probe_key(seed: int) -> jax.Array:
  """The key of pool `seed`'s uniform probe states."""
  return member_key(seed, PROBE_MEMBERS - 1)


def rollout_probe_states(env, policy: MLPPolicy, seed: int, m: int, n_policies: int) -> tuple[np.ndarray, int]:
  """m distinct states visited by one episode of each of `n_policies` probe members
  (PROBE_MEMBERS + i) of random pool `seed` (evaluation keys of the same seed): ((m, O),
  env steps spent)."""
  per_policy = -(-m // n_policies)
  members = PROBE_MEMBERS + np.arange(n_policies, dtype=np.uint32)
  visited = evaluate_members(env, policy, seed, members, EvalProtocol(1, seed), n_samples=per_policy)
  states = np.unique(visited.obs_samples.reshape(-1, policy.obs_size), axis=0)
  if len(states) < m:
    raise ValueError(f"the probe rollouts visited {len(states)} distinct states, fewer than "
                     f"n_probe = {m}; raise probe_policies")
  choice = np.random.default_rng(seed).choice(len(states), m, replace=False)
  return states[np.sort(choice)], visited.env_steps


@functools.lru_cache(maxsize=16)
def _describe_fn(policy: MLPPolicy):
  return jax.jit(lambda thetas, probe: descriptors(policy, thetas, probe))


def pool_descriptors(policy: MLPPolicy, seed: int, size: int, probe, *, block_size: int | None = None,
                     progress_fn: Callable[[int, int], None] | None = None) -> np.ndarray:
  """Descriptors (size, M*A) of members 0..size-1 of pool `seed`, block by block: the
  pool's parameters are generated on device per block and dropped after it.  In a
  multi-process run (`lsc.distributed`) each process describes its own share of the
  members, and every process gets them all."""
  probe = jnp.asarray(probe, jnp.float32)
  describe = _describe_fn(policy)
  block = min(block_size or default_block_size(policy), size)
  mine = row_range(size, block)
  out = np.empty((len(mine), probe.shape[0] * policy.action_size), np.float32)
  if len(mine):
    for start, count, thetas in pool_blocks(policy, seed, np.arange(mine.start, mine.stop), block):
      out[start:start + count] = np.asarray(describe(thetas, probe))[:count]
      if progress_fn is not None:
        progress_fn(mine.start + start + count, size)
  return gather_rows(out, size, block)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """The result of stages 1-2: K policies of P parameters kept from a pool of N by
  novelty, M probe states of O dims, T tasks, R random members for comparison."""
  thetas: np.ndarray  # (K, P) float32: the kept members' parameters (memory-mapped when large and loaded;
  # a PoolMembers, regenerating rows where they are read, with store "indices")
  indices: np.ndarray  # (K,) int64: which pool members they are (-1: a novelty search's mutated policy)
  descriptors: np.ndarray  # (K, M * A) float32: their actions on the probe states
  novelty: np.ndarray  # (K,): their novelty in the pool (a novelty search: among its last archive + children)
  probe_states: np.ndarray  # (M, O) float32
  visited_states: np.ndarray  # (K, E * V, O): V states per evaluation episode, E episodes
  returns: np.ndarray  # (K, T): every task's return under the collection protocol
  random_indices: np.ndarray  # (R,) int64: random pool members evaluated for comparison
  random_returns: np.ndarray  # (R, T)
  pool_novelty: np.ndarray  # (N,): every pool member's novelty
  config: CollectConfig  # resolved
  identity: dict  # env, backend, episode length, policy shape (`checkpoint.policy_identity`), source
  env_steps: int  # probe rollouts + evaluations
  env_steps_by_stage: dict  # probe, kept (evaluating the dataset), random (evaluating the random members)
  timings: dict  # seconds per step of the stage

  ARRAYS = ("thetas", "indices", "descriptors", "novelty", "probe_states", "visited_states", "returns",
            "random_indices", "random_returns", "pool_novelty")

  def arrays(self) -> dict:
    """The array fields by name (what the artifact stores: not the parameters of a
    dataset that stores indices)."""
    return {name: getattr(self, name) for name in self.ARRAYS
            if not (name == "thetas" and isinstance(self.thetas, PoolMembers))}


def collect(config: CollectConfig, progress_fn: ProgressFn | None = None) -> Dataset:
  """Runs stages 1-2 on `config` and returns the `Dataset`.  `progress_fn`: see
  `lsc.progress` (stages descriptors, novelty, novelty search, evaluate kept, evaluate
  random)."""
  config = config.resolved()
  env = config.env.build()
  policy = config.policy.build(env)
  report = functools.partial(for_stage, progress_fn)

  timings, env_steps = {}, 0

  start = time.perf_counter()
  if config.probe == "uniform":
    probe = uniform_probe_states(env, config.n_probe, probe_key(config.seed))
  else:
    probe, env_steps = rollout_probe_states(env, policy, config.seed, config.n_probe, config.probe_policies)
  timings["probe_s"] = time.perf_counter() - start

  start = time.perf_counter()
  descs = pool_descriptors(policy, config.seed, config.pool, probe, progress_fn=report("descriptors"))
  timings["descriptors_s"] = time.perf_counter() - start

  start = time.perf_counter()
  scores = novelty(descs, config.n_neighbors, progress_fn=report("novelty"))
  kept = most_novel(scores, config.keep)
  timings["novelty_s"] = time.perf_counter() - start

  thetas, indices, kept_descs, kept_scores = None, kept.astype(np.int64), descs[kept], scores[kept]
  if config.generations:
    start = time.perf_counter()
    filtered = Archive(regenerate(policy, config.seed, kept), kept_descs, kept_scores, indices)
    archive = novelty_search(policy, filtered, probe, config.seed, config.generations,
                             len(kept) if config.offspring is None else config.offspring, config.mutation_std,
                             config.n_neighbors, progress_fn=report("novelty search"))
    if config.union:
      archive = union_of(filtered, archive)
    thetas, indices, kept_descs, kept_scores = archive.thetas, archive.indices, archive.descriptors, archive.novelty
    timings["novelty_search_s"] = time.perf_counter() - start

  start = time.perf_counter()
  protocol = EvalProtocol(config.eval_episodes, config.eval_seed)
  if thetas is None:
    result = evaluate_members(env, policy, config.seed, kept, protocol, n_samples=config.visited_per_episode,
                              progress_fn=report("evaluate kept"))
  else:  # not all pool members: by their parameters, on the keys evaluate_members gives one block
    result = jax.tree.map(np.asarray, evaluate(env, policy, thetas, protocol, n_samples=config.visited_per_episode))
  # random members (as many as the dataset holds unless n_random says), evaluated by the same compiled program,
  # for comparison
  n_random = min(len(kept if thetas is None else thetas), config.pool) if config.n_random is None else config.n_random
  random_members = np.random.default_rng(config.seed).choice(config.pool, n_random, replace=False)
  random_result = evaluate_members(env, policy, config.seed, random_members, protocol,
                                   n_samples=config.visited_per_episode, progress_fn=report("evaluate random"))
  if thetas is None:
    thetas = (PoolMembers(policy, config.seed, kept) if config.store == "indices"
              else regenerate(policy, config.seed, kept))
  timings["evaluation_s"] = time.perf_counter() - start
  env_steps_by_stage = {"probe": env_steps, "kept": result.env_steps, "random": random_result.env_steps}
  env_steps += result.env_steps + random_result.env_steps

  return Dataset(thetas=thetas, indices=indices, descriptors=kept_descs, novelty=kept_scores,
                 probe_states=np.asarray(probe, np.float32), visited_states=np.asarray(result.obs_samples),
                 returns=np.asarray(result.returns), random_indices=random_members.astype(np.int64),
                 random_returns=np.asarray(random_result.returns), pool_novelty=scores, config=config,
                 identity={**checkpoint.policy_identity(env, policy), "source": config.source}, env_steps=int(env_steps),
                 env_steps_by_stage={k: int(v) for k, v in env_steps_by_stage.items()}, timings=timings)


def union_of(filtered: Archive, searched: Archive) -> Archive:
  """The filter's members `filtered` (K), then the members of the novelty search's
  archive `searched` that are not among them (its mutated policies, index -1; a pool
  member it kept is the filter's already): between K and 2K policies.  Each keeps the
  novelty it was scored with (the filter's among the pool, the archive's among its
  last generation)."""
  new = np.asarray(searched.indices) < 0
  return Archive(*(np.concatenate([getattr(filtered, f.name), getattr(searched, f.name)[new]])
                   for f in dataclasses.fields(Archive)))


def save_dataset(path, dataset: Dataset) -> None:
  """Writes a dataset from `collect` as an artifact (atomically), after checking that
  its parameters are finite and sane (`lsc.policy.check_parameters`): nothing is
  written otherwise."""
  config = dataset.config
  if not isinstance(dataset.thetas, PoolMembers):  # pool members are sane by construction
    check_parameters(dataset.thetas, config.policy_shape(), "the dataset's parameters",
                     "lower collect.mutation_std / --mutation-std or collect.generations")
  checkpoint.save_artifact(path, dataset.arrays(), kind=KIND, config=_record_config(dataset), identity=dataset.identity)


def _record_config(dataset: Dataset) -> dict:
  """The config a dataset's artifact records: its collect config, costs, tasks, their
  formulas' fingerprint, the novelty kernel and a union's size (`lsc.store.recorded_dataset_key` reads
  its key back from these)."""
  extra = {"thetas_checksum": dataset.thetas.checksum()} if isinstance(dataset.thetas, PoolMembers) else {}
  if dataset.config.union:  # its size is known only once collected
    extra["dataset_size"] = len(dataset.thetas)
  return {**to_dict(dataset.config), "timings": dataset.timings, "env_steps": dataset.env_steps,
          "env_steps_by_stage": dataset.env_steps_by_stage, "tasks": list(task_names(dataset.config.env.name)),
          "rewards": fingerprint(dataset.config.env.name), "novelty_kernel": KERNEL_VERSION, **extra}


def dataset_digest(dataset: Dataset) -> str:
  """The content digest `save_dataset` would record for `dataset` (what
  `checkpoint.digest` of its artifact says, and what the records of stages trained on it
  name), computed without writing anything: one SHA-256 pass over its arrays."""
  content = checkpoint.content_digest(KIND, dataset.identity, _record_config(dataset), dataset.arrays(), {})
  return content[:20]  # as `checkpoint.digest` names an artifact


def training_inputs(record: dict) -> dict:
  """What `TrainConfig.check` can check a training on a dataset against, from the
  dataset artifact's record alone (`checkpoint.read_record`): {num_params,
  dataset_size, policy (its shape), n_probe}; None for what the record lacks."""
  shape, saved = record.get("identity", {}).get("policy", {}), record.get("config", {})
  policy = None
  if all(k in shape for k in ("obs_size", "action_size", "hidden")):
    policy = MLPPolicy(int(shape["obs_size"]), int(shape["action_size"]), tuple(shape["hidden"]),
                       shape.get("activation", "tanh"))
  size = None
  if "dataset_size" in saved:
    size = int(saved["dataset_size"])
  elif "pool" in saved and "keep" in saved:
    size = CollectConfig(pool=int(saved["pool"]), keep=float(saved["keep"])).dataset_size
  return {"num_params": int(shape["num_params"]) if "num_params" in shape else None, "dataset_size": size,
          "policy": policy, "n_probe": int(saved["n_probe"]) if "n_probe" in saved else None}


def load_dataset(path, env=None, policy: MLPPolicy | None = None) -> tuple[Dataset, dict]:
  """(dataset, record) of the dataset artifact at `path` (the record: its provenance,
  digest and versions); with env/policy given, refuses a dataset made for another env,
  backend, episode length or policy shape."""
  if env is None:
    expect = None
  elif policy is None:
    expect = {"env": env.name, "backend": env.backend}
  else:
    expect = checkpoint.policy_identity(env, policy)
  arrays, record = checkpoint.load_artifact(path, kind=KIND, expect=expect)
  saved = record["config"]
  config = from_dict(CollectConfig, {f.name: saved[f.name] for f in dataclasses.fields(CollectConfig)
                                     if f.name in saved}, "dataset config")
  if "thetas" not in arrays:  # store "indices": regenerate the members where they are read
    members = PoolMembers(policy if policy is not None else config.policy.build(env or config.env.build()),
                          config.seed, arrays["indices"])
    if members.checksum() != saved["thetas_checksum"]:
      raise checkpoint.ArtifactMismatch(f"{path}: the pool members regenerated here differ from those collected "
                                        f"(another JAX version or policy initialisation?); collect the dataset again")
    arrays = {**arrays, "thetas": members}
  return Dataset(**{name: arrays[name] if name == "thetas" else np.asarray(arrays[name]) for name in Dataset.ARRAYS},
                 config=config,
                 identity=record["identity"], env_steps=int(saved["env_steps"]),
                 env_steps_by_stage=saved.get("env_steps_by_stage", {}), timings=saved.get("timings", {})), record
