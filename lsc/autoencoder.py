"""Stage 3: the behaviour autoencoder, encoder f: R^P -> R^k and decoder g: R^k -> R^P.

Both are MLPs (Flax).  The decoder emits s * out, where s (P,) is the init
distribution's standard deviation per parameter (`MLPPolicy.init_std`, ~0.05 for a
400-unit layer), so decoded parameters are on the scale of the initialisation from the
first step.  What the encoder reads (`encoder_input`):
  `parameters`  theta / s (P,), the paper's encoder: every layer of the policy weighs
                the same, but the map must be learnt from the raw weights, which carry
                the hidden-unit permutation symmetry and, for large policies, far more
                dimensions than there are training policies (it memorises them);
  `actions`     pi_theta(probe) flattened (M * A,): the policy's actions on the
                dataset's M probe states.  Still a function of theta alone (the policy's
                forward pass is the encoder's fixed first stage), but invariant to
                hidden-unit permutations and of size independent of P.

Cost.  With P parameters, encoder widths (h1, ...) and decoder widths (..., hL), the
first encoder layer holds P*h1 weights (M*A*h1 with `actions` input) and the last
decoder layer hL*P; everything else is negligible.  Memory (float32, with Adam's two
moments): ~16 * P * (h1 + hL) bytes, e.g. 0.5 GB for the large Mountain Car policy
(P = 121,801) at 128 + 128, half that with `actions` input.  One training step on a
batch of B policies costs ~6 * B * P * (h1 + hL) FLOPs for the two big layers (forward
+ backward), plus, for the behaviour loss, ~6 * B * M * P for running the B original
and B decoded policies on M states (and ~2 * B * M_probe * P for `actions` input).

Losses (both means over a batch of B policies):
  behaviour  mean over the batch and a fresh batch of M states of
             ||pi_theta(s) - pi_g(f(theta))(s)||^2 (summed over action dimensions);
             the states are shared by the batch, or each policy's own
             (`lsc.training`'s state sources);
  parameter  mean over the batch of ||(theta - g(f(theta))) / s||^2 / P: the paper's
             ablation, in the same normalised units as the network's input.
"""

import dataclasses
import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lsc.evaluation import PoolMembers
from lsc.policy import MLPPolicy, check_parameters, descriptors

LOSSES = ("behaviour", "parameter")
ENCODER_INPUTS = ("parameters", "actions")
ACTIVATIONS = {"elu": nn.elu, "tanh": jnp.tanh, "relu": nn.relu}


class MLP(nn.Module):
  """Dense layers of `widths` with `activation`, then a linear layer of `out` units."""
  widths: Sequence[int]
  out: int
  activation: str = "elu"

  @nn.compact
  def __call__(self, x):
    for width in self.widths:
      x = ACTIVATIONS[self.activation](nn.Dense(width)(x))
    return nn.Dense(self.out)(x)


class _Networks(nn.Module):
  num_params: int
  latent_dim: int
  encoder_widths: Sequence[int]
  decoder_widths: Sequence[int]
  activation: str

  def setup(self):
    self.encoder = MLP(self.encoder_widths, self.latent_dim, self.activation)
    self.decoder = MLP(self.decoder_widths, self.num_params, self.activation)

  def __call__(self, x):  # used by init: touches both networks
    return self.decoder(self.encoder(x))

  def encode(self, x):
    return self.encoder(x)

  def decode(self, z):
    return self.decoder(z)


@dataclasses.dataclass(frozen=True)
class Autoencoder:
  """A behaviour autoencoder for `policy`; parameters live in a separate pytree.
  Hashable, so jitted functions may close over it."""
  policy: MLPPolicy
  latent_dim: int
  encoder_widths: tuple[int, ...] = (128,)
  decoder_widths: tuple[int, ...] = (128,)
  activation: str = "elu"
  encoder_input: str | None = None  # actions | parameters; None: actions given a probe (as TrainConfig), else parameters
  probe: tuple | None = None  # (M, O) probe states as nested tuples; needed for `actions`

  def __post_init__(self):
    if self.encoder_input is None:
      object.__setattr__(self, "encoder_input", "parameters" if self.probe is None else "actions")
    object.__setattr__(self, "encoder_widths", tuple(int(w) for w in self.encoder_widths))
    object.__setattr__(self, "decoder_widths", tuple(int(w) for w in self.decoder_widths))
    if self.encoder_input not in ENCODER_INPUTS:
      raise ValueError(f"unknown encoder input {self.encoder_input!r}; valid: {', '.join(ENCODER_INPUTS)}")
    if self.probe is not None:
      probe = np.asarray(self.probe, np.float32)
      if probe.ndim != 2 or probe.shape[1] != self.policy.obs_size or not len(probe):
        raise ValueError(f"probe states must have shape (M >= 1, {self.policy.obs_size}), got {probe.shape}")
      object.__setattr__(self, "probe", tuple(map(tuple, probe.tolist())))
    elif self.encoder_input == "actions":
      raise ValueError("encoder_input 'actions' needs the probe states (the dataset's `probe_states`)")
    if self.latent_dim < 1:
      raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
    if any(w < 1 for w in self.encoder_widths + self.decoder_widths):
      raise ValueError(f"layer widths must be >= 1, got {self.encoder_widths}, {self.decoder_widths}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")

  @property
  def _nets(self) -> _Networks:
    return _Networks(self.policy.num_params, self.latent_dim, self.encoder_widths, self.decoder_widths,
                     self.activation)

  @property
  def scale(self) -> jax.Array:
    """s (P,): the init distribution's std per parameter."""
    return jnp.asarray(self.policy.init_std())

  @property
  def input_size(self) -> int:
    """Size of the encoder's input: P, or M * A for `actions`."""
    if self.encoder_input == "actions":
      return len(self.probe) * self.policy.action_size
    return self.policy.num_params

  def init(self, key: jax.Array) -> dict:
    """Fresh network parameters (a Flax variable dict)."""
    return self._nets.init(key, jnp.zeros((1, self.input_size)))

  def encoder_features(self, thetas: jax.Array) -> jax.Array:
    """What the encoder reads of thetas (..., P): (..., input_size)."""
    if self.encoder_input == "parameters":
      return thetas / self.scale
    flat = thetas.reshape(-1, thetas.shape[-1])
    actions = descriptors(self.policy, flat, jnp.asarray(self.probe, jnp.float32))
    return actions.reshape(*thetas.shape[:-1], -1)

  def encode(self, params: dict, thetas: jax.Array) -> jax.Array:
    """Codes of thetas (..., P): (..., latent_dim)."""
    return self._nets.apply(params, self.encoder_features(thetas), method=_Networks.encode)

  def decode(self, params: dict, z: jax.Array) -> jax.Array:
    """Policy parameters decoded from z (..., latent_dim): (..., P)."""
    return self.scale * self._nets.apply(params, z, method=_Networks.decode)

  def reconstruct(self, params: dict, thetas: jax.Array) -> jax.Array:
    """g(f(thetas)): (..., P)."""
    return self.decode(params, self.encode(params, thetas))

  def num_weights(self, params: dict) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))


@dataclasses.dataclass(frozen=True)
class Decoder:
  """An autoencoder's decoder as a pure function of its weights: decoder(weights, z) is
  theta (..., P) for z (..., k), with weights = `Decoder.weights(ae, params)` (the
  decoder's parameters and the policy's per-parameter scale).  Equal for every
  autoencoder of the same policy size, decoder widths and activation, so their search
  spaces share one compiled program (`lsc.search.decoder_space`)."""
  num_params: int
  widths: tuple[int, ...]
  activation: str

  @classmethod
  def of(cls, ae: Autoencoder) -> "Decoder":
    return cls(ae.policy.num_params, ae.decoder_widths, ae.activation)

  @staticmethod
  def weights(ae: Autoencoder, params: dict) -> dict:
    """The arrays the decoder computes with: {"params": its layers, "scale": (P,)}."""
    return {"params": params["params"]["decoder"], "scale": ae.scale}

  def __call__(self, weights: dict, z: jax.Array) -> jax.Array:
    net = MLP(self.widths, self.num_params, self.activation)
    return weights["scale"] * net.apply({"params": weights["params"]}, z)


def behaviour_loss(policy: MLPPolicy, thetas: jax.Array, thetas_hat: jax.Array, states: jax.Array) -> jax.Array:
  """Mean over policies thetas (B, P) and states of ||pi_theta(s) - pi_theta_hat(s)||^2:
  states (M, O) shared by every policy, or (B, M, O), M states of each policy's own."""
  act = jax.vmap(policy.apply, in_axes=(0, None if states.ndim == 2 else 0))
  diff = act(thetas, states) - act(thetas_hat, states)  # (B, M, A)
  return jnp.mean(jnp.sum(diff ** 2, axis=-1))


def parameter_loss(thetas: jax.Array, thetas_hat: jax.Array, scale: jax.Array) -> jax.Array:
  """Mean over policies (B, P) of ||(theta - theta_hat) / scale||^2 / P."""
  return jnp.mean(((thetas - thetas_hat) / scale) ** 2)


def check_batch(ae: Autoencoder, thetas, states) -> None:
  """Refuses a batch whose static shapes do not fit `ae`: thetas (B, P) with P the
  policy's parameters, states (M, O) or (B, M, O) with O its observation size.  Reads
  shapes only, so under jit it runs once, while tracing, and costs the compiled step
  nothing."""
  p, o = ae.policy.num_params, ae.policy.obs_size
  if len(thetas.shape) != 2:
    raise ValueError(f"thetas must be a batch of shape (B, {p}), got shape {tuple(thetas.shape)}")
  if thetas.shape[1] != p:
    raise ValueError(f"thetas have {thetas.shape[1]} columns, the autoencoder's policy has {p} parameters")
  if len(states.shape) not in (2, 3) or states.shape[-1] != o:
    raise ValueError(f"states must have shape (M, {o}) or (B, M, {o}) (the policy observes {o} dims), "
                     f"got {tuple(states.shape)}")
  if len(states.shape) == 3 and states.shape[0] != thetas.shape[0]:
    raise ValueError(f"per-policy states (B, M, O) must match the {thetas.shape[0]} policies of thetas, "
                     f"got {states.shape[0]} policies' states")


def make_loss_fn(ae: Autoencoder, loss: str) -> Callable:
  """loss_fn(params, thetas (B, P), states (M, O) or (B, M, O)) -> scalar, jit-safe;
  shapes that do not fit `ae` are refused while tracing (`check_batch`)."""
  if loss not in LOSSES:
    raise ValueError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")

  def loss_fn(params, thetas, states):
    check_batch(ae, thetas, states)
    thetas_hat = ae.reconstruct(params, thetas)
    if loss == "behaviour":
      return behaviour_loss(ae.policy, thetas, thetas_hat, states)
    return parameter_loss(thetas, thetas_hat, ae.scale)

  return loss_fn


@functools.lru_cache(maxsize=32)
def make_eval_loss(ae: Autoencoder, loss: str):
  """A jitted loss(params, thetas, states) (no gradient), for validation."""
  return jax.jit(make_loss_fn(ae, loss))


def check_thetas(thetas, policy: MLPPolicy) -> np.ndarray:
  """thetas as a float32 array (N, P) after checking shape, size, finiteness and
  magnitude (`check_parameters`; pool members regenerated where they are read,
  `lsc.evaluation.PoolMembers`, are returned as they are: sane by construction)."""
  thetas = thetas if isinstance(thetas, PoolMembers) else np.asarray(thetas)
  if thetas.ndim != 2 or thetas.shape[1] != policy.num_params:
    raise ValueError(f"dataset parameters must have shape (N, {policy.num_params}), got {thetas.shape}")
  if len(thetas) < 2:
    raise ValueError(f"the dataset holds {len(thetas)} policies; training needs at least 2")
  if isinstance(thetas, PoolMembers):
    return thetas
  check_parameters(thetas, policy, "the dataset's parameters",
                   "collect it again (with a smaller collect.mutation_std / --mutation-std if they exploded)")
  return thetas
