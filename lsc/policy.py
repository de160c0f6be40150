"""Deterministic MLP policies over one flat parameter vector theta in R^P.

A population is one (N, P) array.  The layout of theta is, layer by layer, the kernel
(fan_in x fan_out, row-major) then the bias.  Hidden layers use `activation`; the
output is squashed by tanh onto the action bounds [low, high].

Initialisation (`init`):
  `uniform`       PyTorch's nn.Linear default: kernel and bias ~ U(-1/sqrt(fan_in), +).
                  The default: non-zero biases give random policies that are not odd
                  functions of the observation, so a random pool is more diverse.
  `lecun_normal`  Flax's nn.Dense default: kernel ~ truncated normal of variance
                  1/fan_in, bias = 0.

Observation normalisation (`obs_shift`, `obs_scale`, optional): the network sees
(obs - shift) / scale.  On Mountain Car the velocity spans +-0.07 against the position's
[-1.2, 0.6], so a randomly initialised network all but ignores it, and without
velocity feedback a policy cannot pump energy: none of 20,000 random medium policies
reached the goal, 16 did once both inputs were scaled to [-1, 1] (its `EnvSpec.obs_bounds`).

Pool member i of seed s is `init(fold_in(key(s), i))`: any member of a pool of 10^6
can be regenerated from (s, i) without storing the pool (`pool_thetas`).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from lsc.envs import as_env, env_spec, obs_normalization

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
INITS = ("uniform", "lecun_normal")
# Hidden sizes per preset, where an env's spec does not set its own (`EnvSpec.hidden`:
# mountain_car's small is one hidden layer of 4, 17 parameters); `small` is the smallest
# sensible network, linear on the Brax envs.
PRESET_HIDDEN = {"small": (), "medium": (32, 32), "large": (400, 300)}
PRESETS = tuple(PRESET_HIDDEN)


# The largest |theta_i| / s_i (s: the init std, `MLPPolicy.init_std`) a dataset may hold.  A pool
# member lies within sqrt(3) (uniform init) or 2.3 (truncated normal) of it; a novelty search's
# lineage drifts ~ mutation_std * sqrt(generations) further, a few times that at the extremes of
# K x P draws: ~6,000 for the largest mutation_std collect accepts (10) after 10,000 generations.
# Beyond 1e4 the parameters have exploded: the policy's tanh units all saturate (the decoder,
# which emits s * out with out O(1) at init, cannot reach them) and squares overflow float32 at
# |theta| ~ 1e19.
MAX_PARAMETER_SCALE = 1e4

@dataclasses.dataclass(frozen=True)
class MLPPolicy:
  """Static description of an MLP policy; all arrays live in theta (P,).

  Hashable, so jitted functions may close over it.  `apply` and `init` are jit-safe.
  """
  obs_size: int
  action_size: int
  hidden: tuple[int, ...] = (32, 32)
  activation: str = "tanh"
  init_scheme: str = "uniform"
  action_low: float = -1.0
  action_high: float = 1.0
  obs_shift: tuple[float, ...] | None = None  # the network sees (obs - obs_shift) / obs_scale
  obs_scale: tuple[float, ...] | None = None

  def __post_init__(self):
    object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
    if (self.obs_shift is None) != (self.obs_scale is None):
      raise ValueError("obs_shift and obs_scale go together: give both or neither")
    if self.obs_scale is not None:
      object.__setattr__(self, "obs_shift", tuple(float(v) for v in self.obs_shift))
      object.__setattr__(self, "obs_scale", tuple(float(v) for v in self.obs_scale))
      if len(self.obs_shift) != self.obs_size or len(self.obs_scale) != self.obs_size:
        raise ValueError(f"obs_shift and obs_scale need {self.obs_size} values each, got "
                         f"{len(self.obs_shift)} and {len(self.obs_scale)}")
      if min(self.obs_scale) <= 0:
        raise ValueError(f"obs_scale must be > 0, got {self.obs_scale}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if self.init_scheme not in INITS:
      raise ValueError(f"unknown init_scheme {self.init_scheme!r}; valid: {', '.join(INITS)}")
    if any(h < 1 for h in self.hidden) or self.obs_size < 1 or self.action_size < 1:
      raise ValueError(f"layer sizes must be >= 1, got obs {self.obs_size}, hidden "
                       f"{self.hidden}, action {self.action_size}")
    if not self.action_low < self.action_high:
      raise ValueError(f"action bounds must satisfy low < high, got {self.action_low}, {self.action_high}")

  @property
  def layer_sizes(self) -> tuple[int, ...]:
    return (self.obs_size, *self.hidden, self.action_size)

  @property
  def layer_shapes(self) -> tuple[tuple[int, int], ...]:
    """(fan_in, fan_out) of each dense layer."""
    sizes = self.layer_sizes
    return tuple(zip(sizes[:-1], sizes[1:]))

  @property
  def num_params(self) -> int:
    return sum(i * o + o for i, o in self.layer_shapes)

  def unflatten(self, theta: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
    """theta (P,) -> [(kernel (fan_in, fan_out), bias (fan_out,)), ...]."""
    layers, offset = [], 0
    for fan_in, fan_out in self.layer_shapes:
      kernel = theta[offset:offset + fan_in * fan_out].reshape(fan_in, fan_out)
      offset += fan_in * fan_out
      layers.append((kernel, theta[offset:offset + fan_out]))
      offset += fan_out
    return layers

  def apply(self, theta: jax.Array, obs: jax.Array) -> jax.Array:
    """Action for obs (..., obs_size) under theta (P,): (..., action_size), in bounds."""
    return self.apply_layers(self.unflatten(theta), obs)

  def apply_layers(self, layers, obs: jax.Array) -> jax.Array:
    """`apply` on already unflattened layers: hot loops unflatten once, outside the loop."""
    squashed = jnp.tanh(self.pre_squash_layers(layers, obs))
    return self.action_low + 0.5 * (squashed + 1.0) * (self.action_high - self.action_low)

  def pre_squash(self, theta: jax.Array, obs: jax.Array) -> jax.Array:
    """The output layer before tanh for obs (..., obs_size) under theta (P,): (...,
    action_size); with bounds [-1, 1] the action is its tanh (how an RL agent's actor
    that is this policy emits it: `lsc.baselines.PolicyActor`)."""
    return self.pre_squash_layers(self.unflatten(theta), obs)

  def pre_squash_layers(self, layers, obs: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    x = obs
    if self.obs_scale is not None:
      x = (x - jnp.asarray(self.obs_shift, jnp.float32)) / jnp.asarray(self.obs_scale, jnp.float32)
    for kernel, bias in layers[:-1]:
      x = act(x @ kernel + bias)
    kernel, bias = layers[-1]
    return x @ kernel + bias

  def init_std(self) -> np.ndarray:
    """Standard deviation of each parameter under the init distribution, (P,) float32:
    the natural scale of parameter space.  (lecun_normal biases start at 0; they get
    their layer's kernel std.)"""
    parts = []
    for fan_in, fan_out in self.layer_shapes:
      std = 1.0 / math.sqrt((3.0 if self.init_scheme == "uniform" else 1.0) * fan_in)
      parts.append(np.full(fan_in * fan_out + fan_out, std, np.float32))
    return np.concatenate(parts)

  def init(self, key: jax.Array) -> jax.Array:
    """One parameter vector (P,) float32 drawn from the init distribution."""
    parts = []
    for fan_in, fan_out in self.layer_shapes:
      key, key_kernel, key_bias = jax.random.split(key, 3)
      if self.init_scheme == "uniform":
        bound = 1.0 / math.sqrt(fan_in)
        kernel = jax.random.uniform(key_kernel, (fan_in * fan_out,), jnp.float32, -bound, bound)
        bias = jax.random.uniform(key_bias, (fan_out,), jnp.float32, -bound, bound)
      else:
        # Flax's lecun_normal: truncated normal on [-2, 2], rescaled to variance 1/fan_in.
        std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
        kernel = std * jax.random.truncated_normal(key_kernel, -2.0, 2.0, (fan_in * fan_out,), jnp.float32)
        bias = jnp.zeros((fan_out,), jnp.float32)
      parts += [kernel, bias]
    return jnp.concatenate(parts)


def preset_hidden(env, preset: str) -> tuple[int, ...]:
  """Hidden sizes of `preset` ('small' | 'medium' | 'large') for `env` (an env or a
  registered name): its spec's own (`EnvSpec.hidden`) where it sets them, else
  `PRESET_HIDDEN`'s."""
  if preset not in PRESET_HIDDEN:
    raise ValueError(f"unknown policy preset {preset!r}; valid presets: {', '.join(PRESETS)}")
  spec = env_spec(env)
  own = spec.hidden
  if set(own) - set(PRESETS):
    raise ValueError(f"env {spec.name!r} sets hidden sizes of unknown presets {sorted(set(own) - set(PRESETS))}; "
                     f"valid presets: {', '.join(PRESETS)}")
  return tuple(own.get(preset, PRESET_HIDDEN[preset]))


def make_policy(env, preset: str | None = "medium", hidden: tuple[int, ...] | None = None,
                normalize_obs: bool = False, **kwargs) -> MLPPolicy:
  """The policy for `env` (any env, `lsc.envs.as_env`), from a preset or hidden sizes.

  `hidden`, if given, overrides the preset.  `normalize_obs` maps the env's known
  observation bounds (`EnvSpec.obs_bounds`) onto [-1, 1] before the first layer; an env
  without known bounds raises ValueError.  Extra kwargs go to MLPPolicy.
  """
  env = as_env(env)
  if hidden is None:
    hidden = preset_hidden(env, preset)
  if normalize_obs:
    kwargs["obs_shift"], kwargs["obs_scale"] = obs_normalization(env)
  return MLPPolicy(obs_size=int(env.observation_size), action_size=int(env.action_size),
                   hidden=tuple(hidden), **kwargs)


def member_key(seed: int, index) -> jax.Array:
  """The key of pool member `index` of pool `seed`: fold_in(key(seed), index)."""
  return jax.random.fold_in(jax.random.key(seed), index)


def pool_thetas(policy: MLPPolicy, seed: int, indices) -> jax.Array:
  """Parameters of pool members `indices` (K,) of pool `seed`: (K, P).  Jit-safe in indices.

  Row k equals `policy.init(member_key(seed, indices[k]))`, whatever other indices are
  asked for, so a pool is never stored: it is regenerated by index.
  """
  indices = jnp.asarray(indices, jnp.uint32)
  return jax.vmap(lambda i: policy.init(member_key(seed, i)))(indices)


def check_finite(thetas) -> None:
  """Raises ValueError if thetas (N, P) hold NaN or inf, naming the first bad row."""
  thetas = np.asarray(thetas)
  bad = ~np.isfinite(thetas).all(axis=tuple(range(1, thetas.ndim)))
  if bad.any():
    raise ValueError(f"{int(bad.sum())} parameter vector(s) hold NaN or inf "
                     f"(first: row {int(np.argmax(bad))})")


def check_fits(policy, env) -> None:
  """Raises ValueError, naming both sides, unless `policy` reads `env`'s observations
  and writes its actions (checked before anything is traced: a mismatch inside a
  compiled rollout fails only after the compile, with XLA's shape error)."""
  want = (int(env.observation_size), int(env.action_size))
  if (policy.obs_size, policy.action_size) != want:
    raise ValueError(f"the policy maps {policy.obs_size} observations to {policy.action_size} actions, but env "
                     f"{getattr(env, 'name', type(env).__name__)!r} has {want[0]} observations and {want[1]} actions; "
                     f"build the policy for this env (lsc.make_policy(env, ...))")


def descriptors(policy: MLPPolicy, thetas: jax.Array, probe: jax.Array) -> jax.Array:
  """Behaviour descriptors: actions of thetas (N, P) on probe (M, O), flattened: (N, M*A).
  Jit-safe."""
  return jax.vmap(lambda theta: policy.apply(theta, probe).reshape(-1))(thetas)


def scan_parameters(thetas, policy: MLPPolicy) -> dict:
  """What is wrong with thetas (N, P) of `policy`, read in row blocks of ~64 MB (a memory
  mapped dataset is never copied whole): {"nonfinite": rows holding NaN or inf,
  "first_nonfinite": the first (-1: none), "scale": the largest |theta_i| / s_i over the
  finite rows (s: `policy.init_std()`), "scale_row": its row}."""
  inverse = 1.0 / policy.init_std()
  block = max(1, 2**24 // max(1, policy.num_params))
  found = {"nonfinite": 0, "first_nonfinite": -1, "scale": 0.0, "scale_row": -1}
  for start in range(0, len(thetas), block):
    rows = np.asarray(thetas[start:start + block], np.float32)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
      if found["first_nonfinite"] < 0:
        found["first_nonfinite"] = start + int(np.argmax(~finite))
      found["nonfinite"] += int((~finite).sum())
    if finite.any():
      scales = np.abs(np.where(finite[:, None], rows, 0.0) * inverse).max(axis=1)  # bad rows count 0
      row = int(np.argmax(scales))
      if scales[row] > found["scale"]:
        found["scale"], found["scale_row"] = float(scales[row]), start + row
  return found


def check_parameters(thetas, policy: MLPPolicy, what: str, fix: str) -> None:
  """Refuses thetas (N, P) holding NaN or inf or parameters beyond MAX_PARAMETER_SCALE
  init stds: ValueError naming `what` they are, the first bad row and `fix`, the
  setting to change."""
  found = scan_parameters(thetas, policy)
  if found["nonfinite"]:
    raise ValueError(f"{what} hold NaN or inf in {found['nonfinite']} policies (first: row "
                     f"{found['first_nonfinite']}); {fix}")
  if found["scale"] > MAX_PARAMETER_SCALE:
    raise ValueError(f"{what} have exploded: a parameter of row {found['scale_row']} is {found['scale']:.3g} "
                     f"times its init std, beyond {MAX_PARAMETER_SCALE:,.0f}; {fix}")
