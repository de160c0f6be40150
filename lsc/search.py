"""Stage 4: an evolution strategy over a search space z -> theta = g(z), fully compiled.

A `SearchSpace` is a frozen decoder g: R^k -> R^P with the point a search starts from
(`center`, (k,)) and the natural spread of each coordinate (`scale`, (k,)).  The strategy
(an `lsc.strategies` config: PGPE, CMA-ES, OpenES, ... of `evosax.algorithms`) runs in
normalised coordinates u with z = center + scale * u, so `std_init` and the learning
rates are in units of that spread and mean the same in a 3-D latent space and in a
10^5-D parameter space:
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
mesh); near the end, one generation per call, so none runs once every budget is spent.
The space is an argument of that program.  Progress is reported between chunks;
`run_search` checkpoints after the first, then every CHECKPOINT_EVERY_S seconds.

Env steps are counted as the rollout engine charges them: steps until termination of
every candidate's episodes.  The centre is also evaluated every generation on the
same keys (the training curve); those steps are not charged, like the evaluation
episodes of PPO and SAC.  The learning curve every method is compared by is another:
the centre held at each point of a grid of env steps (`lsc.evaluation.eval_grid`),
kept in the carry as the search passes the point, and evaluated at the end on the
fixed episodes of `lsc.evaluation.CURVE_EVAL` (not charged either).  A seed whose budget is spent stops updating (its later
generations change nothing and cost nothing); the search ends when every seed's has.
A generation starts only if it fits in the budget even with full-length episodes, so
no seed ever exceeds `budget` (like the baselines); one falls short of it by less than
one generation.
"""

import dataclasses
import functools
import hashlib
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lsc import checkpoint
from lsc.autoencoder import Decoder
from lsc.config import to_dict
from lsc.evaluation import CURVE_EVAL, EvalProtocol, eval_grid, evaluate
from lsc.jax_setup import compile_seconds
from lsc.keys import FINAL_EVAL_SEED, key_record, seed_keys
from lsc.policy import MLPPolicy, member_key
from lsc.progress import ProgressFn
from lsc.rollout import default_mesh, rollout_fn
from lsc.distributed import agree
from lsc.sharding import gather, spans_processes
from lsc.strategies import PGPEConfig, StrategyConfig
from lsc.tasks import resolve_task, task_fingerprint, task_index, task_names
from lsc.validate import check_int



@functools.partial(jax.tree_util.register_dataclass, data_fields=["weights", "center", "scale"],
                   meta_fields=["decode_fn", "num_params", "name"])
@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """theta = decode_fn(weights, z): a search space as data.

  `weights` (a pytree of arrays: a decoder's parameters, a basis, or {}), `center` (k,)
  (where a search starts) and `scale` (k,) > 0 (the spread of each coordinate) are the
  pytree's leaves: a compiled program takes them as arguments, so a retrained decoder
  of the same shapes runs the program already compiled.  `decode_fn` (jit-safe, maps
  (weights, z (k,)) to theta (P,); hashable: a module-level function or a frozen
  dataclass such as `lsc.autoencoder.Decoder`), `num_params` and `name` are static."""
  weights: Any
  center: jax.Array
  scale: jax.Array
  decode_fn: Callable[[Any, jax.Array], jax.Array]
  num_params: int
  name: str = "latent"

  @property
  def dim(self) -> int:
    return int(np.shape(self.center)[-1])

  def decode(self, z: jax.Array) -> jax.Array:
    """theta (P,) of z (k,)."""
    return self.decode_fn(self.weights, z)

  def fingerprint(self) -> str:
    """A hash of everything the space computes with: its name and every array."""
    digest = hashlib.sha256(self.name.encode())
    for leaf in jax.tree.leaves((self.weights, self.center, self.scale)):
      leaf = np.ascontiguousarray(np.asarray(leaf))
      digest.update(f"{leaf.dtype}{leaf.shape}".encode())
      digest.update(leaf.tobytes())
    return digest.hexdigest()[:20]

  def check(self, policy: MLPPolicy) -> None:
    """Raises ValueError unless center and scale are k finite numbers (scale > 0) and
    decode maps (k,) to (policy.num_params,)."""
    for field in ("center", "scale"):
      value = np.asarray(getattr(self, field))
      if value.ndim != 1 or not np.isfinite(value).all():
        raise ValueError(f"{field} must be a vector of finite numbers, got shape {value.shape}")
    if np.shape(self.scale) != np.shape(self.center):
      raise ValueError(f"scale has shape {np.shape(self.scale)}, center {np.shape(self.center)}")
    if (np.asarray(self.scale) <= 0).any():
      raise ValueError("scale must be > 0 in every coordinate")
    out = jax.eval_shape(self.decode, jax.ShapeDtypeStruct((self.dim,), jnp.float32))
    if out.shape != (policy.num_params,) or self.num_params != policy.num_params:
      raise ValueError(f"the {self.name} space decodes {self.dim} numbers to shape {out.shape}, "
                       f"but the policy has {policy.num_params} parameters")


def make_space(decode_fn, weights, center, scale, num_params: int, name: str = "latent") -> SearchSpace:
  """A SearchSpace with its arrays as float32 device arrays."""
  as_f32 = lambda x: jnp.asarray(x, jnp.float32)
  return SearchSpace(jax.tree.map(as_f32, weights), as_f32(center), as_f32(scale), decode_fn, int(num_params), name)


def _identity(weights, z):
  return z


def _linear(weights, z):
  return weights["origin"] + weights["basis"] @ z


def euclidean_space(center, scale=1.0, name: str = "euclidean") -> SearchSpace:
  """R^k itself: theta = z, starting at `center` (k,) with spread `scale` (a number or
  (k,)); for a fitness of your own (see `search_step`)."""
  center = jnp.asarray(center, jnp.float32)
  return make_space(_identity, {}, center, jnp.broadcast_to(jnp.asarray(scale, jnp.float32), center.shape),
                    center.shape[-1], name)


def identity_space(policy: MLPPolicy, seed: int = 0) -> SearchSpace:
  """Parameter space: theta = z, starting at member 0 of random pool `seed`."""
  return euclidean_space(policy.init(member_key(seed, 0)), policy.init_std(), "parameter")


def decoder_space(ae, params, codes: np.ndarray, name: str = "latent", start: np.ndarray | None = None) -> SearchSpace:
  """A trained autoencoder's latent space: theta = ae.decode(params, z), the decoder's
  weights as the space's arrays; the scale is the standard deviation of the dataset's
  codes (N, k), the centre their mean, or `start` (k,) (e.g. the code of the dataset's
  best policy on the task)."""
  codes = np.asarray(codes, np.float32)
  scale = np.maximum(codes.std(axis=0), 1e-6)
  center = codes.mean(axis=0) if start is None else np.asarray(start, np.float32).reshape(ae.latent_dim)
  decoder = Decoder.of(ae)
  return make_space(decoder, decoder.weights(ae, params), center, scale, ae.policy.num_params, name)


def linear_space(policy: MLPPolicy, dim: int, seed: int = 0) -> SearchSpace:
  """A toy latent space: theta = theta_0 + A z with theta_0 and the columns of A (P, dim)
  random members of pool `seed`; centre 0, scale 1."""
  if dim < 1:
    raise ValueError(f"latent dim must be >= 1, got {dim}")
  members = jax.vmap(lambda i: policy.init(member_key(seed, i)))(jnp.arange(dim + 1, dtype=jnp.uint32))
  weights = {"origin": members[0], "basis": members[1:].T}
  return make_space(_linear, weights, np.zeros(dim), np.ones(dim), policy.num_params, "linear")


# How the controls' subspaces are built from a dataset (`random_subspace`,
# `principal_subspace`): in their methods' identity, so a change here recomputes their
# pipeline stages.  1: orthonormal directions through the origin, each scaled by the
# dataset's spread along it, from at most 4,000 rows.
SUBSPACE_FORMAT = 1


def subspace(origin, basis, scale, name: str = "subspace") -> SearchSpace:
  """theta = origin + basis @ z: the affine subspace through `origin` (P,) spanned by the
  columns of `basis` (P, k), a search starting at z = 0 (the origin) with spread `scale`
  (k,) per direction."""
  basis = np.asarray(basis, np.float32)
  return make_space(_linear, {"origin": origin, "basis": basis}, np.zeros(basis.shape[1]), scale, basis.shape[0],
                    name)


def _rows(thetas, max_rows: int) -> np.ndarray:
  """At most `max_rows` rows of thetas (N, P), evenly spaced, as float64 NumPy."""
  n = len(thetas)
  rows = np.unique(np.linspace(0, n - 1, min(n, max_rows)).round().astype(np.int64))
  return np.asarray(thetas[rows] if len(rows) < n else thetas, np.float64)


def _check_subspace(thetas, dim: int) -> None:
  if not 1 <= dim <= min(len(thetas) - 1, np.shape(thetas)[1]):
    raise ValueError(f"a subspace of {dim} dimensions needs 1 <= dim <= min(policies - 1, parameters) = "
                     f"{min(len(thetas) - 1, np.shape(thetas)[1])}")


def random_subspace(thetas, origin, dim: int, key: jax.Array, max_rows: int = 4_000) -> SearchSpace:
  """A random `dim`-dimensional subspace through `origin` (P,): orthonormal directions (QR
  of a Gaussian (P, dim) from `key`), each with the spread of the policies `thetas` (N, P)
  along it (the std of their projections; at most `max_rows` evenly spaced rows), the
  scale a latent space gets from its codes' spread.  The dimension control of a latent
  space of `dim` dimensions."""
  _check_subspace(thetas, dim)
  gaussian = np.asarray(jax.random.normal(key, (np.shape(thetas)[1], dim), jnp.float32), np.float64)
  basis, _ = np.linalg.qr(gaussian)
  spread = (_rows(thetas, max_rows) @ basis).std(axis=0)
  return subspace(origin, basis, np.maximum(spread, 1e-6))


def principal_subspace(thetas, origin, dim: int, max_rows: int = 4_000) -> SearchSpace:
  """The `dim` leading principal directions of the policies `thetas` (N, P) (at most
  `max_rows` evenly spaced rows enter the SVD), through `origin` (P,), each
  with their spread along it (singular value / sqrt(N)): the linear-compression control
  of a latent space of `dim` dimensions.  With N < P the leading spreads measured this way
  exceed the population's (on isotropic data several times `random_subspace`'s)."""
  _check_subspace(thetas, dim)
  rows = _rows(thetas, max_rows)
  centered = rows - rows.mean(axis=0)
  _, singular, vt = np.linalg.svd(centered, full_matrices=False)
  spread = singular[:dim] / np.sqrt(len(rows))
  return subspace(origin, vt[:dim].T, np.maximum(spread, 1e-6))


def evosax_fitness(values: jax.Array, maximize: bool) -> jax.Array:
  """What evosax, which minimises, must be told for `values` to be maximised or minimised."""
  return -values if maximize else values


# --- the pure pieces: one generation of one seed --------------------------------------
# A strategy (`lsc.strategies`) runs in normalised coordinates u, z = center + scale * u.
# The state is the evosax strategy's (its `mean` is the centre u); every function here is
# pure and jit-safe, and vmaps over seeds (keys and states) or anything else.

def search_init(key: jax.Array, space: SearchSpace, config: StrategyConfig, start=None):
  """The strategy state of one seed, centred at `start` (k,) in z coordinates (default:
  the space's centre, or 0 if config.center is "zero").  A bad config (a NaN step size,
  a space too large for the strategy, ...) is refused first, in Python: under jit,
  while tracing."""
  config.check()
  config.check_dim(space.dim, space.name)
  strategy, params = config.build(space.dim)
  if start is None:
    start = space.center if config.center == "mean" else jnp.zeros(space.dim, jnp.float32)
  return strategy.init(key, (jnp.asarray(start, jnp.float32) - space.center) / space.scale, params)


def search_ask(key: jax.Array, state, space: SearchSpace, config: StrategyConfig):
  """(thetas (C + 1, P): the C candidates then the centre, the asked state)."""
  strategy, params = config.build(space.dim)
  population, asked = strategy.ask(key, state, params)
  u = jnp.concatenate([population, state.mean[None]], axis=0)
  thetas = jax.vmap(lambda x: space.decode(space.center + space.scale * x))(u)
  return thetas, (population, asked)


def search_tell(key: jax.Array, asked, values: jax.Array, space: SearchSpace, config: StrategyConfig,
                maximize: bool = True):
  """The state after the candidates scored `values` (C,) (higher is better if `maximize`)."""
  strategy, params = config.build(space.dim)
  population, state = asked
  state, _ = strategy.tell(key, population, evosax_fitness(values, maximize), state, params)
  return config.bound(state)


def search_step(key: jax.Array, state, space: SearchSpace, config: StrategyConfig, fitness_fn, maximize: bool = True):
  """One generation: ask, score with fitness_fn(thetas (C + 1, P), key) -> (C + 1,)
  (candidates then the centre), tell.  Returns (state, the centre's value).  To jit or
  vmap it, close over `config` and `fitness_fn` (functools.partial)."""
  ask_key, fitness_key = jax.random.split(key)
  thetas, asked = search_ask(ask_key, state, space, config)
  values = fitness_fn(thetas, fitness_key)
  return search_tell(ask_key, asked, values[:-1], space, config, maximize), values[-1]


def search_center(state, space: SearchSpace) -> jax.Array:
  """The centre of a strategy's state in z coordinates (k,)."""
  return space.center + space.scale * state.mean


# --- the driver: an env task, several seeds, a budget, chunks ---------------------------

def check_budget(budget: int, config: StrategyConfig, episode_length: int) -> int:
  """Raises ValueError unless `budget` (env steps per seed) holds at least one generation
  and fits the int32 counters; returns the most steps a generation can cost."""
  check_int("budget", budget)
  per_generation = config.population * config.episodes * episode_length
  if budget < per_generation:
    raise ValueError(f"budget {budget:,} env steps is less than one generation: up to "
                     f"{config.population} candidates x {config.episodes} episodes x "
                     f"{episode_length} steps = {per_generation:,}")
  if budget >= 2**31 - per_generation:
    raise ValueError(f"budget must be < {2**31 - per_generation:,} env steps per seed (int32 counters)")
  return per_generation


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """A finished search of S seeds over G generations."""
  # (S, G) per generation: env_steps spent before it (int64), center_return (the centre it
  # started from, on its episodes), pop_mean, pop_max, std (the strategy's mean std, in scale units);
  # NaN once a seed's budget is spent
  curves: dict
  final_z: np.ndarray  # (S, k) final centres
  final_thetas: np.ndarray  # (S, P) their parameters
  final_returns: np.ndarray  # (S,) on fresh evaluation keys (the protocol's seed)
  grid: np.ndarray  # (S, P) int64: the env steps of this search at which its centre was kept
  eval_returns: np.ndarray  # (S, P) those centres' returns on the curve protocol's episodes; NaN before the search began
  final_displacement: np.ndarray  # (S,) how far they moved along x (the EnvSpec's x_position), mean over those episodes
  env_steps: np.ndarray  # (S,) charged to each seed
  generations: int  # generations run (every one had a seed with budget left)
  timings: dict


CHUNK_STEPS = 250_000  # env steps per device call: progress every few seconds on 2 CPU cores
CHECKPOINT_EVERY_S = 30.0  # run_search rewrites its checkpoint at most this often (and at the end)
SEARCH_EVAL = EvalProtocol(episodes=5, seed=FINAL_EVAL_SEED)  # final evaluation: no dataset or search key


class Search:
  """A strategy (`config`: PGPE by default) on one env, task and search space, for
  `seeds` independent seeds at once.

  `run()` does the whole search; `init`, `chunk` and `finish` expose its pieces (the
  carry is a pytree of arrays: checkpoint it, resume from it).  A generation of every
  seed is `search_ask` (vmapped over seeds), one population rollout of all seeds'
  candidates and centres, and `search_tell`; the space is an argument of the compiled
  chunk, so searches over spaces of equal shapes share one program.  `seed` is an int
  or a `jax.random` key; run s of the S draws every key from `lsc.keys.seed_keys(seed,
  S)[s]` alone, so it does not depend on S (nor, for an int, on where the runs start:
  seed=0, seeds=3 repeats seed=2, seeds=1 as its third run, up to float rounding:
  batches of other sizes may round differently).  `starts` (S, k): where
  each seed's search starts, in z coordinates (default: every seed at the space's
  centre, or 0 if config.center is "zero"), e.g. each seed's result of an earlier search.
  `env`: any env (`lsc.envs.as_env`); `task`: the name of one of its tasks, or a reward
  function of a `lsc.tasks.Transition` (or `Task`), which the env then scores too
  (`lsc.tasks.with_tasks`; `self.env` is that env).  `grid` (P,) or (S, P): the env
  steps of this search (per seed) at which it keeps its centre for the learning curve,
  evaluated under `curve` at the end (default `eval_grid(budget, 10)`; a point < 0, before
  the search began, e.g. a later phase's, keeps none: NaN).
  """

  def __init__(self, env, policy: MLPPolicy, space: SearchSpace, task, config: StrategyConfig = PGPEConfig(),
               *, budget: int, seeds: int = 1, seed: int | jax.Array = 0, maximize: bool = True,
               generations_per_chunk: int | None = None, mesh=None, starts=None, grid=None,
               curve: EvalProtocol = CURVE_EVAL):
    config.check()
    space.check(policy)
    config.check_dim(space.dim, space.name)
    env, task = resolve_task(env, task)
    self.task = task_index(env, task)  # ValueError for an unknown task
    if check_int("seeds", seeds) < 1:
      raise ValueError(f"seeds must be >= 1, got {seeds}")
    self.keys = seed_keys(seed, seeds)  # (S,): an int seed or a jax.random key, checked
    per_generation = check_budget(budget, config, env.episode_length)
    self.env, self.policy, self.space, self.config = env, policy, space, config
    self.budget, self.seeds, self.seed, self.maximize = int(budget), int(seeds), key_record(seed), maximize
    # a generation starts only if even full-length episodes keep it within the budget
    self.last_start = self.budget - per_generation
    self.per_generation = per_generation
    if generations_per_chunk is None:  # about CHUNK_STEPS env steps per device call
      generations_per_chunk = max(1, CHUNK_STEPS // (self.seeds * per_generation))
    self.generations_per_chunk = int(generations_per_chunk)
    self.mesh = default_mesh(env) if mesh is None else mesh
    if starts is not None:
      starts = np.asarray(starts, np.float32)
      if starts.shape != (self.seeds, space.dim) or not np.isfinite(starts).all():
        raise ValueError(f"starts must be {self.seeds} x {space.dim} finite numbers (one start per seed in the "
                         f"{space.name} space), got shape {starts.shape}")
    self.starts = starts
    grid = eval_grid(self.budget, 10) if grid is None else np.asarray(grid)
    grid = np.broadcast_to(grid, (self.seeds, len(grid))) if grid.ndim == 1 else grid
    if grid.ndim != 2 or grid.shape[0] != self.seeds or not np.issubdtype(grid.dtype, np.integer):
      raise ValueError(f"grid must be (P,) or ({self.seeds}, P) env steps, got {grid.dtype} {grid.shape}")
    self.grid, self.curve = np.clip(grid, -1, 2**31 - 1).astype(np.int64), curve
    self._chunk_fn = _chunk_program(env, policy, self.task, config, self.seeds, maximize, self.mesh)

  def place(self, carry: dict) -> dict:
    """`carry` as the compiled chunk returns it (strong dtypes, replicated over the
    mesh), so a fresh, a resumed and a running carry all hit one compiled program."""
    if spans_processes(self.mesh):  # every process holds the same carry (device_put's check fails on NaNs)
      return gather(jax.tree.map(np.asarray, carry), self.mesh)
    sharding = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
    return jax.device_put(jax.tree.map(lambda x: jnp.array(x, dtype=x.dtype), carry), sharding)

  def init(self) -> dict:
    """The initial carry: strategy states, key data (S, ...) (both per seed), env steps (S,),
    the generation count."""
    init_keys, keys = jax.vmap(jax.random.split, out_axes=1)(self.keys)
    if self.starts is None:
      states = jax.vmap(lambda k: search_init(k, self.space, self.config))(init_keys)
    else:
      states = jax.vmap(lambda k, z: search_init(k, self.space, self.config, z))(init_keys, jnp.asarray(self.starts))
    kept = jnp.full((self.seeds, self.grid.shape[1], self.space.dim), jnp.nan, jnp.float32)
    return self.place({"state": states, "key": jax.random.key_data(keys), "kept": kept,
                       "env_steps": jnp.zeros(self.seeds, jnp.int32), "generation": jnp.int32(0)})

  def chunk(self, carry: dict, length: int | None = None) -> tuple[dict, dict]:
    """Runs `length` generations (default generations_per_chunk), or one when fewer are
    sure to find a seed with budget left: (carry, metrics of each generation, NumPy
    (n, S)).  So no generation runs once every budget is spent, with two programs."""
    length = length or self.generations_per_chunk
    if length > 1 and self.sure_generations(carry) < length:
      length = 1
    carry, metrics = self._chunk_fn(carry, self.space, jnp.int32(self.last_start), jnp.asarray(self.grid, jnp.int32),
                                    length)
    return carry, {k: np.asarray(v) for k, v in gather(metrics, self.mesh).items()}

  def host(self, carry: dict) -> dict:
    """`carry` as NumPy arrays.  The carry itself goes to the next chunk as the chunk
    returned it (on a mesh that spans processes, partly held elsewhere), so that chunk
    runs the very program one process would."""
    return jax.tree.map(np.asarray, gather(carry, self.mesh))

  def sure_generations(self, carry: dict) -> int:
    """How many more generations some seed certainly has budget for (a generation costs
    at most per_generation env steps)."""
    steps = self.host(carry["env_steps"]).astype(np.int64)
    left = np.where(steps <= self.last_start, (self.last_start - steps) // self.per_generation + 1, 0)
    return int(left.max())

  def check_finite(self, carry: dict, metrics: dict) -> None:
    """Raises ValueError, naming the settings to change, once a seed's centre or
    std, the policy its centre decodes to, or a return of its centre is no longer
    finite: the search diverged, and nothing after it would be a result."""
    state = self.host(carry["state"])
    thetas = np.asarray(_decode_all(self.space, jnp.asarray(self.centres(state.mean))))
    bad = ~(np.isfinite(thetas).all(axis=1) & np.isfinite(state.std).reshape(self.seeds, -1).all(axis=1)
            & np.isfinite(np.where(metrics["active"], metrics["center_return"], 0.0)).all(axis=0))
    if bad.any():
      raise ValueError(f"the search diverged by generation {int(self.host(carry['generation']))}: seed(s) "
                       f"{', '.join(str(s) for s in np.flatnonzero(bad)[:5])} have a non-finite centre, std or return; "
                       f"lower {' or '.join(f'{k} ({v:g})' for k, v in self.config.step_sizes().items())}, or check the "
                       "space's scale")

  def centres(self, mean: np.ndarray) -> np.ndarray:
    """The space's coordinates (S, k) of the strategy's centres `mean` (S, k), which are in
    units of the space's scale."""
    with np.errstate(over="ignore", invalid="ignore"):
      return np.asarray(self.space.center) + np.asarray(self.space.scale) * mean

  def done(self, carry: dict) -> bool:
    """True once no seed has budget left for another generation."""
    return bool(np.all(self.host(carry["env_steps"]) > self.last_start))

  def finish(self, carry: dict, metrics: list[dict], protocol: EvalProtocol, timings: dict) -> SearchResult:
    """The result: curves up to each seed's budget and the final centres evaluated under
    `protocol` (use a seed no search saw)."""
    cat = {k: np.concatenate([np.asarray(m[k]) for m in metrics]).T for k in metrics[0]}  # (S, G)
    active = cat.pop("active")
    curves = {k: np.where(active, v, np.nan) if k != "env_steps" else v.astype(np.int64) for k, v in cat.items()}
    # on the host, so a resumed and an uninterrupted search decode the very same input
    carry = self.host(carry)
    final_z = self.centres(carry["state"].mean)
    final_thetas = np.asarray(_decode_all(self.space, jnp.asarray(final_z)))
    # the grid points at or past the last generation keep the final centre
    kept = keep_centres(carry["kept"], self.grid, carry["env_steps"], carry["state"].mean, np).reshape(-1, self.space.dim)
    # each distinct centre once (a short search, or a phase, keeps one centre at many
    # points); the points before the search began stay NaN
    missing = np.isnan(kept).any(axis=1)
    eval_returns = np.full(len(kept), np.nan)
    start = time.perf_counter()
    final = evaluate(self.env, self.policy, final_thetas, protocol)
    if not missing.all():
      centres, which = np.unique(kept[~missing], axis=0, return_inverse=True)
      centres = np.concatenate([centres, np.repeat(centres[-1:], -len(centres) % self.seeds, axis=0)])
      thetas = np.concatenate([_decode_all(self.space, jnp.asarray(self.centres(centres[i:i + self.seeds])))
                               for i in range(0, len(centres), self.seeds)])  # the final centres' program
      eval_returns[~missing] = evaluate_blocks(self.env, self.policy, thetas, self.curve, self.seeds)[
          which.reshape(-1), self.task]
    timings = {**timings, "final_eval_s": time.perf_counter() - start}  # the final policies' and the curve's
    eval_returns = eval_returns.reshape(self.grid.shape)
    return SearchResult(curves=curves, final_z=final_z, final_thetas=final_thetas, grid=self.grid,
                        eval_returns=eval_returns.astype(np.float64),
                        final_returns=np.asarray(final.returns[:, self.task]),
                        final_displacement=np.asarray(final.displacement).mean(axis=1),
                        env_steps=np.asarray(carry["env_steps"], np.int64),
                        generations=int(carry["generation"]), timings=timings)

  def run(self, protocol: EvalProtocol = SEARCH_EVAL, *, carry: dict | None = None,
          metrics: list[dict] | None = None,
          after_chunk: Callable[[dict, list[dict]], None] | None = None) -> SearchResult:
    """Runs chunks until every seed's budget is spent, then `finish`.  Resumes from
    (carry, metrics) when given; `after_chunk(carry, metrics)` runs after each chunk
    (progress, checkpoints)."""
    carry = self.init() if carry is None else carry
    metrics = [] if metrics is None else list(metrics)
    start, compiled = time.perf_counter(), compile_seconds()
    while not self.done(carry):
      carry, chunk_metrics = self.chunk(carry)
      self.check_finite(carry, chunk_metrics)
      metrics.append(chunk_metrics)
      if after_chunk is not None:
        after_chunk(carry, metrics)
    compile_s = compile_seconds() - compiled  # the first chunk's, unless already compiled
    timings = {"compile_s": compile_s, "search_s": time.perf_counter() - start - compile_s}
    return self.finish(carry, metrics, protocol, timings)


class Scores(NamedTuple):
  """What a population evaluation gives: returns (C, T), each candidate's mean return
  over its episodes on every task of the env; env_steps (C,), the env steps its
  episodes took (until termination: what a search is charged)."""
  returns: jax.Array
  env_steps: jax.Array


def make_fitness(env, policy: MLPPolicy, candidates: int, episodes: int, mesh=None) -> Callable:
  """The one population evaluation of every search: a jit-compatible
  `fitness(thetas (C, P), keys) -> Scores` for C = `candidates` policies of `policy`,
  each over E = `episodes` episodes reset from `keys`, (C, E) or (E,) shared by all
  (common random numbers).  For candidates z (C, k) of a space, pass
  `jax.vmap(space.decode)(z)`.  Sharded over `mesh` (default: every local device); every
  task is scored by the one rollout.  `env`: any env (`lsc.envs.as_env`)."""
  rollout = rollout_fn(env, policy, candidates, episodes, n_samples=0, mesh=mesh, nested=True)

  def fitness(thetas: jax.Array, keys: jax.Array) -> Scores:
    keys = jnp.broadcast_to(keys, (candidates, episodes)) if keys.ndim == 1 else keys
    result = rollout(thetas, keys)
    return Scores(result.returns, result.lengths.sum(axis=1))
  return fitness


@jax.jit
def _decode_all(space: SearchSpace, z: jax.Array) -> jax.Array:
  return jax.vmap(space.decode)(z)


def keep_centres(kept: jax.Array, grid: jax.Array, env_steps: jax.Array, mean: jax.Array, xp=jnp) -> jax.Array:
  """The learning curve's centres (S, P, k) after a generation starts with strategy means
  `mean` (S, k) having spent `env_steps` (S,): every grid point (S, P) not before
  `env_steps` keeps `mean`, so once the search ends each point holds the centre of the
  last generation that started at or before it.  `xp`: jax.numpy inside the compiled
  loop, numpy on the host (nothing to compile)."""
  now = xp.asarray(grid) >= xp.asarray(env_steps)[:, None]
  return xp.where(now[..., None], xp.asarray(mean)[:, None, :], kept)


def evaluate_blocks(env, policy: MLPPolicy, thetas: np.ndarray, protocol: EvalProtocol, block: int) -> np.ndarray:
  """Returns (N, n_tasks) of policies thetas (N, P) (N a multiple of `block`) under
  `protocol`, `block` policies per rollout: a search's S x P learning-curve centres in
  calls of the shape its S final policies are evaluated in, so they share one compiled
  program."""
  return np.concatenate([np.asarray(evaluate(env, policy, thetas[i:i + block], protocol).returns)
                         for i in range(0, len(thetas), block)])


def generation_keys(keys: jax.Array, episodes: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(next carry keys (S,), strategy keys (S,), episode keys (S, E)) of the coming generation,
  seed s's from its own carry key keys[s] (S,) only."""
  def one(key):
    key, gen_key = jax.random.split(key)
    return key, jax.random.fold_in(gen_key, 0), jax.random.split(jax.random.fold_in(gen_key, 1), episodes)
  return jax.vmap(one)(keys)


@functools.lru_cache(maxsize=32)
def _chunk_program(env, policy: MLPPolicy, task: int, config: StrategyConfig, seeds: int, maximize: bool, mesh):
  """The compiled chunk of a Search: chunk(carry, space, last_start, grid, length) runs
  `length` (static) generations of every seed (a seed with env_steps > last_start stays
  put), keeping its centre at the grid points (S, P) it passes; returns (carry, metrics
  (length, S)).
  Cached per env (by identity), policy, task, config, seeds and mesh: the space and the
  budget are arguments."""
  fitness = make_fitness(env, policy, seeds * (config.population + 1), config.episodes, mesh)

  def generation(carry, space, last_start, grid):
    kept = keep_centres(carry["kept"], grid, carry["env_steps"], carry["state"].mean)
    key, ask_keys, episode_keys = generation_keys(jax.random.wrap_key_data(carry["key"]), config.episodes)
    thetas, asked = jax.vmap(search_ask, in_axes=(0, 0, None, None))(ask_keys, carry["state"], space, config)
    c = config.population + 1
    reset_keys = jnp.broadcast_to(episode_keys[:, None], (seeds, c, config.episodes)).reshape(seeds * c, -1)
    scores = fitness(thetas.reshape(seeds * c, -1), reset_keys)
    returns = scores.returns[:, task].reshape(seeds, c)
    steps = scores.env_steps.reshape(seeds, c)[:, :-1].sum(axis=1)  # candidates only
    told = jax.vmap(search_tell, in_axes=(0, 0, 0, None, None, None))(
        ask_keys, asked, returns[:, :-1], space, config, maximize)
    active = carry["env_steps"] <= last_start  # (S,): a seed without budget for a generation stays put
    state = jax.tree.map(lambda new, old: jnp.where(active.reshape(-1, *[1] * (new.ndim - 1)), new, old),
                         told, carry["state"])
    metrics = {"env_steps": carry["env_steps"], "center_return": returns[:, -1],
               "pop_mean": returns[:, :-1].mean(axis=1), "pop_max": returns[:, :-1].max(axis=1),
               "std": state.std.reshape(seeds, -1).mean(axis=1), "active": active}
    carry = {"state": state, "key": jax.random.key_data(key), "kept": kept,
             "env_steps": carry["env_steps"] + jnp.where(active, steps, 0), "generation": carry["generation"] + 1}
    return carry, metrics

  @functools.partial(jax.jit, static_argnums=4)
  def chunk(carry, space, last_start, grid, length):
    return jax.lax.scan(lambda c, _: generation(c, space, last_start, grid), carry, None, length=length)

  return chunk


# --- checkpoints, resume and artifacts ------------------------------------------------
KIND_STATE, KIND_RESULT = "search_state", "search"


def describe(search: Search) -> dict:
  """What a search's checkpoint is only valid for (its artifact identity)."""
  space = search.space
  return {**checkpoint.policy_identity(search.env, search.policy),
          "task": task_names(search.env)[search.task],
          "reward": task_fingerprint(search.env, task_names(search.env)[search.task]),  # its code, not only its name
          "space": {"name": space.name, "dim": space.dim, "arrays": space.fingerprint()},
          "strategy": search.config.algorithm, "settings": to_dict(search.config), "budget": search.budget, "seeds": search.seeds,
          "seed": search.seed, "keys": "per_seed",  # `seed_keys`; earlier checkpoints split one key over the seeds
          "maximize": search.maximize,  # not the chunking: it changes no generation that runs
          "curve": {"grid": hashlib.sha256(np.ascontiguousarray(search.grid).tobytes()).hexdigest()[:20],
                    **dataclasses.asdict(search.curve)},
          **({} if search.starts is None else
             {"starts": hashlib.sha256(np.ascontiguousarray(search.starts).tobytes()).hexdigest()[:20]})}


def save_state(path, search: Search, carry: dict, metrics: list[dict]) -> None:
  """Checkpoints a search between chunks (atomically)."""
  arrays = {f"carry_{i:03d}": leaf for i, leaf in enumerate(jax.tree.leaves(search.host(carry)))}
  arrays.update({f"metric_{k}": np.concatenate([m[k] for m in metrics]) for k in metrics[0]})
  checkpoint.save_artifact(path, arrays, kind=KIND_STATE, config={}, identity=describe(search))


def load_state(path, search: Search) -> tuple[dict, list[dict]]:
  """(carry, metrics) of the checkpoint at `path`; ArtifactMismatch if it belongs to
  another search (or was written with other package versions), ArtifactDamaged if a
  file fails its checksum."""
  arrays, record = checkpoint.load_artifact(path, kind=KIND_STATE, expect=describe(search))
  checkpoint.check_versions(record, path)
  treedef = jax.tree.structure(search.init())
  carry = search.place(jax.tree.unflatten(treedef, [np.asarray(arrays[f"carry_{i:03d}"])
                                                    for i in range(treedef.num_leaves)]))
  metrics = {k[len("metric_"):]: np.asarray(v) for k, v in arrays.items() if k.startswith("metric_")}
  return carry, [metrics]


def run_search(search: Search, protocol: EvalProtocol = SEARCH_EVAL, *, checkpoint_path=None,
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
    now, done = time.perf_counter(), search.done(carry)
    # process 0's clock decides for every process of a multi-process run (the same barriers)
    if checkpoint_path is not None and agree(saved[0] is None or now - saved[0] >= CHECKPOINT_EVERY_S or done):
      save_state(checkpoint_path, search, carry, metrics)
      saved[0] = now
    if progress_fn is not None:
      generation, steps = int(search.host(carry["generation"])), int(search.host(carry["env_steps"]).min())
      progress_fn("search", min(steps, search.budget), search.budget,
                  {"generation": generation, "return": float(np.nanmean(metrics[-1]["center_return"][-1])),
                   "gen/s": (generation - start[1]) / (time.perf_counter() - start[0])})

  return search.run(protocol, carry=carry, metrics=metrics, after_chunk=after_chunk)


def save_result(path, search: Search, result: SearchResult, config: dict | None = None) -> None:
  """Writes a finished search (curves, final centres and parameters, returns) as an artifact."""
  arrays = {**{f"curve_{k}": v for k, v in result.curves.items()}, "final_z": result.final_z,
            "final_thetas": result.final_thetas, "final_returns": result.final_returns,
            "final_displacement": result.final_displacement, "env_steps": result.env_steps,
            "eval_grid": result.grid, "eval_returns": result.eval_returns}
  checkpoint.save_artifact(path, arrays, kind=KIND_RESULT,
                           config={**(config or {}), "generations": result.generations, "timings": result.timings},
                           identity=describe(search))
