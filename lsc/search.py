"""Stage 4: PGPE over a search space z -> theta = g(z), fully compiled.

A `SearchSpace` is a frozen decoder g: R^k -> R^P with the point a search starts from
(`center`, (k,)) and the natural spread of each coordinate (`scale`, (k,)).  PGPE
(`evosax.algorithms.PGPE`) runs in normalised coordinates u with z = center + scale * u,
so `std_init` and the learning rates are in units of that spread and mean the same in a
3-D latent space and in a 10^5-D parameter space:
  latent space     g = the autoencoder's decoder, center = mean of the dataset's codes
                   (or 0), scale = their standard deviation per dimension;
  parameter space  g = identity, center = a random member of the init distribution,
                   scale = the init distribution's standard deviation per parameter.

Fitness of a candidate = its mean return on one task over `episodes` episodes.  Every
generation draws fresh episode keys, shared by all candidates of that generation
(common random numbers, as in the shared evaluation protocol: antithetic pairs are
compared on identical start states).  evosax minimises; `maximize` says which way.

The search is one compiled program per chunk: `lax.scan` over generations, `vmap` over
seeds, one population rollout per generation for all seeds (sharded over the device
mesh).  Progress is reported between chunks, where the state is also checkpointed.

Env steps are counted as the rollout engine charges them: steps until termination of
every candidate's episodes.  The centre is also evaluated every generation on the
same keys (the curve's y value); those steps are not charged, like the evaluation
episodes of PPO and SAC.  A seed whose budget is spent stops updating (its later
generations change nothing and cost nothing); the search ends when every seed's has.
A generation starts only if it fits in the budget even with full-length episodes, so
no seed ever exceeds `budget` (like the baselines); one falls short of it by less than
one generation.
"""

import dataclasses
import functools
import hashlib
import time
from typing import Callable

import evosax.algorithms
import jax
import jax.numpy as jnp
import numpy as np
import optax
from evosax.core.optimizer import clipup

from lsc import checkpoint
from lsc.evaluation import EvalProtocol, evaluate
from lsc.policy import MLPPolicy, member_key
from lsc.progress import ProgressFn
from lsc.rollout import rollout_fn
from lsc.tasks import task_index, task_names
from lsc.validate import check_finite, check_int, check_seed

OPTIMIZERS = ("adam", "sgd", "clipup")
CENTERS = ("mean", "zero")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """theta = decode(z): decode maps z (k,) to theta (P,) and must be jit-safe."""
  decode: Callable[[jax.Array], jax.Array]
  dim: int
  num_params: int
  center: np.ndarray  # (k,) where a search starts
  scale: np.ndarray  # (k,) > 0: the spread of each coordinate
  name: str = "latent"
  fingerprint: str = ""  # what decode computes with (a hash of its weights, or its seed): checkpoints compare it

  def __post_init__(self):
    for field in ("center", "scale"):
      value = np.asarray(getattr(self, field), np.float32)
      if value.shape != (self.dim,) or not np.isfinite(value).all():
        raise ValueError(f"{field} must be {self.dim} finite numbers, got shape {value.shape}")
      object.__setattr__(self, field, value)
    if (self.scale <= 0).any():
      raise ValueError("scale must be > 0 in every coordinate")

  def check(self, policy: MLPPolicy) -> None:
    """Raises ValueError unless decode maps (dim,) to (policy.num_params,)."""
    out = jax.eval_shape(self.decode, jax.ShapeDtypeStruct((self.dim,), jnp.float32))
    if out.shape != (policy.num_params,) or self.num_params != policy.num_params:
      raise ValueError(f"the {self.name} space decodes {self.dim} numbers to shape {out.shape}, "
                       f"but the policy has {policy.num_params} parameters")


def identity_space(policy: MLPPolicy, seed: int = 0) -> SearchSpace:
  """Parameter space: theta = z, starting at member 0 of random pool `seed`."""
  center = np.asarray(policy.init(member_key(seed, 0)))
  return SearchSpace(lambda z: z, policy.num_params, policy.num_params, center, policy.init_std(),
                     name="parameter", fingerprint="identity")


def decoder_space(ae, params, codes: np.ndarray, name: str = "latent", start: np.ndarray | None = None) -> SearchSpace:
  """A trained autoencoder's latent space: theta = ae.decode(params, z); the scale is the
  standard deviation of the dataset's codes (N, k), the centre their mean, or `start`
  (k,) (e.g. the code of the dataset's best policy on the task)."""
  codes = np.asarray(codes, np.float32)
  scale = np.maximum(codes.std(axis=0), 1e-6)
  center = codes.mean(axis=0) if start is None else np.asarray(start, np.float32).reshape(ae.latent_dim)
  weights = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    weights.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return SearchSpace(lambda z: ae.decode(params, z), ae.latent_dim, ae.policy.num_params, center, scale, name=name,
                     fingerprint=f"decoder:{weights.hexdigest()[:16]}")


def linear_space(policy: MLPPolicy, dim: int, seed: int = 0) -> SearchSpace:
  """A toy latent space: theta = theta_0 + A z with theta_0 and the columns of A (P, dim)
  random members of pool `seed`; centre 0, scale 1."""
  if dim < 1:
    raise ValueError(f"latent dim must be >= 1, got {dim}")
  members = jax.vmap(lambda i: policy.init(member_key(seed, i)))(jnp.arange(dim + 1, dtype=jnp.uint32))
  origin, basis = members[0], members[1:].T
  return SearchSpace(lambda z: origin + basis @ z, dim, policy.num_params, np.zeros(dim), np.ones(dim),
                     name="linear", fingerprint=f"linear:{dim}:{seed}")


@dataclasses.dataclass(frozen=True)
class PGPEConfig:
  """PGPE's settings; `std_init` and `lr` are in units of the space's scale."""
  population: int = 64  # candidates per generation (even: antithetic pairs)
  episodes: int = 3  # episodes per candidate per generation
  std_init: float = 0.5
  lr: float = 0.1  # step size of the centre's optimizer
  optimizer: str = "adam"  # adam | sgd | clipup (evosax's default; lr then caps the speed)
  std_lr: float = 0.1
  std_max_change: float = 0.2  # per generation, relative
  center: str = "mean"  # mean: start at the space's centre; zero: at z = 0

  def check(self) -> None:
    """Raises ValueError naming any bad field."""
    check_int("population", self.population)
    check_int("episodes", self.episodes)
    for name in ("std_init", "lr", "std_lr", "std_max_change"):
      check_finite(name, getattr(self, name))
    if self.population < 2 or self.population % 2:
      raise ValueError(f"population must be even and >= 2, got {self.population}")
    if self.episodes < 1:
      raise ValueError(f"episodes must be >= 1, got {self.episodes}")
    if self.std_init <= 0 or self.lr <= 0 or self.std_lr < 0 or not 0 <= self.std_max_change < 1:
      raise ValueError(f"need std_init > 0, lr > 0, std_lr >= 0, 0 <= std_max_change < 1; got "
                       f"{self.std_init}, {self.lr}, {self.std_lr}, {self.std_max_change}")
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if self.center not in CENTERS:
      raise ValueError(f"unknown center {self.center!r}; valid: {', '.join(CENTERS)}")


def make_optimizer(config: PGPEConfig) -> optax.GradientTransformation:
  if config.optimizer == "adam":
    return optax.adam(config.lr)
  if config.optimizer == "sgd":
    return optax.sgd(config.lr, momentum=0.9)
  return clipup(learning_rate=config.lr / 2, max_velocity=config.lr)


def _slim_metrics(key, population, fitness, state, params) -> dict:
  return {}  # evosax's default copies the best solution and mean every generation


def evosax_fitness(values: jax.Array, maximize: bool) -> jax.Array:
  """What evosax, which minimises, must be told for `values` to be maximised or minimised."""
  return -values if maximize else values


def optimize(fitness_fn: Callable[[jax.Array], jax.Array], x0, config: PGPEConfig, generations: int,
             key: jax.Array, *, maximize: bool = True) -> tuple[jax.Array, jax.Array]:
  """PGPE on any batched function fitness_fn: (pop, k) -> (pop,), from x0 (k,) in its
  own coordinates (std_init and lr in those units).  Jit-compiled as one scan.
  Returns (final centre (k,), mean fitness per generation (generations,))."""
  config.check()
  x0 = jnp.asarray(x0, jnp.float32)
  strategy, params = make_strategy(x0.shape[0], config)

  @jax.jit
  def run(key):
    init_key, key = jax.random.split(key)
    state = strategy.init(init_key, x0, params)

    def generation(state, key):
      population, state = strategy.ask(key, state, params)
      fitness = fitness_fn(population)
      state, _ = strategy.tell(key, population, evosax_fitness(fitness, maximize), state, params)
      return state, fitness.mean()

    state, curve = jax.lax.scan(generation, state, jax.random.split(key, generations))
    return state.mean, curve

  return run(key)


def make_strategy(dim: int, config: PGPEConfig):
  """(evosax PGPE over R^dim, its params)."""
  strategy = evosax.algorithms.PGPE(config.population, jnp.zeros(dim), optimizer=make_optimizer(config),
                                    metrics_fn=_slim_metrics)
  params = strategy.default_params.replace(std_init=config.std_init, std_lr=config.std_lr,
                                           std_max_change=config.std_max_change)
  return strategy, params


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """A finished search of S seeds over G generations."""
  # (S, G) per generation: env_steps spent before it (int64), center_return (the centre it
  # started from, on its episodes), pop_mean, pop_max, std (mean PGPE std, in scale units);
  # NaN once a seed's budget is spent
  curves: dict
  final_z: np.ndarray  # (S, k) final centres
  final_thetas: np.ndarray  # (S, P) their parameters
  final_returns: np.ndarray  # (S,) on fresh evaluation keys (the protocol's seed)
  final_displacement: np.ndarray  # (S,) how far they moved along x (lsc.envs.x_position), mean over those episodes
  env_steps: np.ndarray  # (S,) charged to each seed
  generations: int
  timings: dict


CHUNK_STEPS = 250_000  # env steps per device call: progress every few seconds on 2 CPU cores
CHECKPOINT_EVERY_S = 30.0  # run_search rewrites its checkpoint at most this often (and at the end)


class Search:
  """PGPE on one env, task and search space, for `seeds` independent seeds at once.

  `run()` does the whole search; `init`, `chunk` and `finish` expose its pieces (the
  carry is a pytree of arrays: checkpoint it, resume from it).
  """

  def __init__(self, env, policy: MLPPolicy, space: SearchSpace, task: str, config: PGPEConfig = PGPEConfig(),
               *, budget: int, seeds: int = 1, seed: int = 0, maximize: bool = True,
               generations_per_chunk: int | None = None, mesh=None):
    config.check()
    space.check(policy)
    self.task = task_index(env.name, task)  # ValueError for an unknown task
    if check_int("seeds", seeds) < 1:
      raise ValueError(f"seeds must be >= 1, got {seeds}")
    check_seed("seed", seed)
    check_int("budget", budget)
    per_generation = config.population * config.episodes * env.episode_length
    if budget < per_generation:
      raise ValueError(f"budget {budget:,} env steps is less than one generation: up to "
                       f"{config.population} candidates x {config.episodes} episodes x "
                       f"{env.episode_length} steps = {per_generation:,}")
    if budget >= 2**31 - per_generation:
      raise ValueError(f"budget must be < {2**31 - per_generation:,} env steps per seed (int32 counters)")
    self.env, self.policy, self.space, self.config = env, policy, space, config
    self.budget, self.seeds, self.seed, self.maximize = int(budget), int(seeds), int(seed), maximize
    # a generation starts only if even full-length episodes keep it within the budget
    self.last_start = self.budget - per_generation
    self.max_generations = -(-self.budget // config.population)  # a generation costs >= population steps
    if generations_per_chunk is None:  # about CHUNK_STEPS env steps per device call
      generations_per_chunk = max(1, CHUNK_STEPS // (self.seeds * per_generation))
    self.generations_per_chunk = int(generations_per_chunk)
    self.strategy, self.params = make_strategy(space.dim, config)
    n = self.seeds * (config.population + 1)
    self._rollout = rollout_fn(env, policy, n, config.episodes, n_samples=0, mesh=mesh)

  # --- the compiled pieces ----------------------------------------------------------
  def _decode(self, u: jax.Array) -> jax.Array:
    center, scale = jnp.asarray(self.space.center), jnp.asarray(self.space.scale)
    return self.space.decode(center + scale * u)

  def init(self) -> dict:
    """The initial carry: evosax states (vmapped over seeds), key data, env steps (S,)."""
    start = self.space.center if self.config.center == "mean" else np.zeros(self.space.dim, np.float32)
    u0 = jnp.asarray((start - self.space.center) / self.space.scale, jnp.float32)
    keys = jax.random.split(jax.random.key(self.seed), self.seeds + 1)
    states = jax.vmap(lambda k: self.strategy.init(k, u0, self.params))(keys[1:])
    return {"state": states, "key": jax.random.key_data(keys[0]), "env_steps": jnp.zeros(self.seeds, jnp.int32),
            "generation": jnp.int32(0)}

  def _evaluate(self, candidates: jax.Array, episode_keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns on the task (S, C) and env steps charged (S, C) of candidates (S, C, k),
    seed s's on episode_keys[s] (E,): all seeds in one population rollout."""
    s, c, _ = candidates.shape
    e = self.config.episodes
    thetas = jax.vmap(jax.vmap(self._decode))(candidates).reshape(s * c, -1)
    reset_keys = jnp.broadcast_to(episode_keys[:, None], (s, c, e)).reshape(s * c, e)
    result = self._rollout(thetas, reset_keys)
    return result.returns[:, self.task].reshape(s, c), result.lengths.sum(axis=1).reshape(s, c)

  def generation_keys(self, carry: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(next carry key, PGPE keys (S,), episode keys (S, E)) of the coming generation."""
    key, gen_key = jax.random.split(jax.random.wrap_key_data(carry["key"]))
    seed_keys = jax.random.split(gen_key, self.seeds)
    ask_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(seed_keys)
    episode_keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, 1), self.config.episodes))(seed_keys)
    return key, ask_keys, episode_keys

  def _generation(self, carry: dict, _):
    """One generation of every seed: ask, evaluate candidates and centres, tell."""
    key, ask_keys, episode_keys = self.generation_keys(carry)
    populations, asked = jax.vmap(self.strategy.ask, in_axes=(0, 0, None))(ask_keys, carry["state"], self.params)
    candidates = jnp.concatenate([populations, carry["state"].mean[:, None]], axis=1)  # centre last
    returns, steps = self._evaluate(candidates, episode_keys)
    returns, center_return, steps = returns[:, :-1], returns[:, -1], steps[:, :-1].sum(axis=1)
    told, _ = jax.vmap(self.strategy.tell, in_axes=(0, 0, 0, 0, None))(
        ask_keys, populations, evosax_fitness(returns, self.maximize), asked, self.params)
    active = carry["env_steps"] <= self.last_start  # (S,): a seed without budget for a generation stays put
    state = jax.tree.map(lambda new, old: jnp.where(active.reshape(-1, *[1] * (new.ndim - 1)), new, old),
                         told, carry["state"])
    env_steps = carry["env_steps"] + jnp.where(active, steps, 0)
    metrics = {"env_steps": carry["env_steps"], "center_return": center_return, "pop_mean": returns.mean(axis=1),
               "pop_max": returns.max(axis=1), "std": state.std.mean(axis=1), "active": active}
    carry = {"state": state, "key": jax.random.key_data(key), "env_steps": env_steps,
             "generation": carry["generation"] + 1}
    return carry, metrics

  @functools.cached_property
  def _chunk_fn(self):
    @functools.partial(jax.jit, static_argnums=1)
    def chunk(carry, length):
      return jax.lax.scan(self._generation, carry, None, length=length)
    return chunk

  def chunk(self, carry: dict, length: int | None = None) -> tuple[dict, dict]:
    """Runs `length` generations (default generations_per_chunk): (carry, metrics of
    each generation, arrays (length, S))."""
    return self._chunk_fn(carry, length or self.generations_per_chunk)

  def done(self, carry: dict) -> bool:
    """True once no seed has budget left for another generation."""
    return bool(np.all(np.asarray(carry["env_steps"]) > self.last_start))

  def finish(self, carry: dict, metrics: list[dict], protocol: EvalProtocol, timings: dict) -> SearchResult:
    """The result: curves up to each seed's budget and the final centres evaluated under
    `protocol` (use a seed no search saw)."""
    cat = {k: np.concatenate([np.asarray(m[k]) for m in metrics]).T for k in metrics[0]}  # (S, G)
    active = cat.pop("active")
    curves = {k: np.where(active, v, np.nan) if k != "env_steps" else v.astype(np.int64) for k, v in cat.items()}
    centers = np.asarray(carry["state"].mean)
    final_z = self.space.center + self.space.scale * centers
    final_thetas = np.asarray(jax.jit(jax.vmap(self._decode))(jnp.asarray(centers)))
    start = time.perf_counter()
    final = evaluate(self.env, self.policy, final_thetas, protocol)
    timings = {**timings, "final_eval_s": time.perf_counter() - start}
    return SearchResult(curves=curves, final_z=final_z, final_thetas=final_thetas,
                        final_returns=np.asarray(final.returns[:, self.task]),
                        final_displacement=np.asarray(final.displacement).mean(axis=1),
                        env_steps=np.asarray(carry["env_steps"], np.int64),
                        generations=int(carry["generation"]), timings=timings)

  def run(self, protocol: EvalProtocol = EvalProtocol(), *, carry: dict | None = None,
          metrics: list[dict] | None = None,
          after_chunk: Callable[[dict, list[dict]], None] | None = None) -> SearchResult:
    """Runs chunks until every seed's budget is spent, then `finish`.  Resumes from
    (carry, metrics) when given; `after_chunk(carry, metrics)` runs after each chunk
    (progress, checkpoints)."""
    carry = self.init() if carry is None else carry
    metrics = [] if metrics is None else list(metrics)
    timings = {"compile_s": 0.0, "search_s": 0.0}
    start = time.perf_counter()
    compiled = self._chunk_fn.lower(carry, self.generations_per_chunk).compile()
    timings["compile_s"] = time.perf_counter() - start
    start = time.perf_counter()
    while not self.done(carry) and int(carry["generation"]) < self.max_generations:
      carry, chunk_metrics = compiled(carry)
      metrics.append(jax.tree.map(np.asarray, chunk_metrics))
      if after_chunk is not None:
        after_chunk(carry, metrics)
    timings["search_s"] = time.perf_counter() - start
    return self.finish(carry, metrics, protocol, timings)


# --- checkpoints, resume and artifacts ------------------------------------------------
KIND_STATE, KIND_RESULT = "search_state", "search"


def _fingerprint(array: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(array, np.float32).tobytes()).hexdigest()[:16]


def describe(search: Search) -> dict:
  """What a search's checkpoint is only valid for (its artifact identity)."""
  space = search.space
  return {**checkpoint.policy_identity(search.env, search.policy),
          "task": task_names(search.env.name)[search.task],
          "space": {"name": space.name, "dim": space.dim, "center": _fingerprint(space.center),
                    "scale": _fingerprint(space.scale), "weights": space.fingerprint},
          "pgpe": dataclasses.asdict(search.config), "budget": search.budget, "seeds": search.seeds,
          "seed": search.seed, "maximize": search.maximize}  # chunking changes only how many spent generations pad the curves


def save_state(path, search: Search, carry: dict, metrics: list[dict]) -> None:
  """Checkpoints a search between chunks (atomically)."""
  arrays = {f"carry_{i:03d}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(carry))}
  arrays.update({f"metric_{k}": np.concatenate([m[k] for m in metrics]) for k in metrics[0]})
  checkpoint.save_artifact(path, arrays, kind=KIND_STATE, config={}, identity=describe(search))


def load_state(path, search: Search) -> tuple[dict, list[dict]]:
  """(carry, metrics) of the checkpoint at `path`; ArtifactMismatch if it belongs to
  another search (or was written with other package versions), ArtifactDamaged if a
  file fails its checksum."""
  arrays, record = checkpoint.load_artifact(path, kind=KIND_STATE, expect=describe(search))
  checkpoint.check_versions(record, path)
  treedef = jax.tree.structure(search.init())
  carry = jax.tree.unflatten(treedef, [jnp.asarray(arrays[f"carry_{i:03d}"]) for i in range(treedef.num_leaves)])
  metrics = {k[len("metric_"):]: np.asarray(v) for k, v in arrays.items() if k.startswith("metric_")}
  return carry, [metrics]


def run_search(search: Search, protocol: EvalProtocol = EvalProtocol(), *, checkpoint_path=None,
               progress_fn: ProgressFn | None = None, overwrite: bool = False) -> SearchResult:
  """`search.run` with checkpoints: resumes from `checkpoint_path` when it holds this
  search's state (ArtifactMismatch naming the difference when it holds another's;
  `overwrite=True` starts afresh and replaces it); the checkpoint is written after the
  first chunk, then every CHECKPOINT_EVERY_S seconds and at the end.  `progress_fn` (see
  `lsc.progress`) gets after each chunk stage "search", the slowest seed's env steps of
  the budget, and the generation, mean centre return and generations per second."""
  carry = metrics = None
  if checkpoint_path is not None:
    checkpoint.check_output_path(checkpoint_path, KIND_STATE)  # before any compile
  if checkpoint_path is not None and checkpoint.is_artifact(checkpoint_path) and not overwrite:
    carry, metrics = checkpoint.resuming(load_state, checkpoint_path, search)
  start = [time.perf_counter(), int(carry["generation"]) if carry is not None else 0]
  saved = [None]  # when the checkpoint was last written

  def after_chunk(carry, metrics):
    now = time.perf_counter()
    if checkpoint_path is not None and (saved[0] is None or now - saved[0] >= CHECKPOINT_EVERY_S
                                        or search.done(carry)):
      save_state(checkpoint_path, search, carry, metrics)
      saved[0] = now
    if progress_fn is not None:
      generation = int(carry["generation"])
      steps = int(np.asarray(carry["env_steps"]).min())
      progress_fn("search", min(steps, search.budget), search.budget,
                  {"generation": generation, "return": float(np.nanmean(metrics[-1]["center_return"][-1])),
                   "gen/s": (generation - start[1]) / (time.perf_counter() - start[0])})

  return search.run(protocol, carry=carry, metrics=metrics, after_chunk=after_chunk)


def save_result(path, search: Search, result: SearchResult, config: dict | None = None) -> None:
  """Writes a finished search (curves, final centres and parameters, returns) as an artifact."""
  arrays = {**{f"curve_{k}": v for k, v in result.curves.items()}, "final_z": result.final_z,
            "final_thetas": result.final_thetas, "final_returns": result.final_returns,
            "final_displacement": result.final_displacement, "env_steps": result.env_steps}
  checkpoint.save_artifact(path, arrays, kind=KIND_RESULT,
                           config={**(config or {}), "generations": result.generations, "timings": result.timings},
                           identity=describe(search))
