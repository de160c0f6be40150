"""Training the behaviour autoencoder on a dataset: state sources, validation, early
stopping, checkpoints and resume.

State sources for the behaviour loss (`states`; default `own`, measured best in
experiments/RESULTS.md):
  `dataset`  a fresh batch every step from the dataset's probe states and the states
             its policies visited (fixed pool);
  `rollout`  the same pool seeds an on-device ring buffer; every `rollout_every` steps
             the current batch's *decoded* policies run one episode each (the shared
             rollout engine, compiled once) and the states they reach replace the
             buffer's oldest, so the decoder is also trained where its own policies go.
             These episodes are env steps spent on the compression (reward-free): the
             state's `env_steps` counts them, the artifact records them and the fair race
             charges them with the dataset's (`lsc.comparison`);
  `own`      each policy is compared on its own states: half of the M states are drawn
             (with replacement) from the states that policy visited when the dataset was
             evaluated, half from the shared pool as `dataset` draws them.  A policy's
             behaviour matters where it goes; in a chaotic env a small action error on
             its own trajectory compounds, while states it never visits cost it nothing.
             Reward-free: the visited states are samples of the evaluation rollouts.

The occupancy term (`occupancy_weight` > 0; off by default) adds to the loss, for
`occupancy_policies` of the batch's policies, the distance between the states each and
its decoded policy visit in an episode from the same reset, differentiated through the
env back `occupancy_horizon` steps (`lsc.occupancy`).  Those episodes are env steps
spent on the compression, counted in the state's `env_steps` as the `rollout` source's
are.

Every random choice of step t (policy batch, state batch, rollout keys) is derived from
(seed, t), so a run resumed from a checkpoint continues exactly as an uninterrupted one.
Policy batches are gathered on the host (the dataset may be a memory map larger than
the device), or, for a dataset that stores pool indices (`CollectConfig.store`),
regenerated on device from (seed, index) batch by batch, so that the memory training
needs does not grow with the dataset.  The held-out validation policies are scored
every `eval_every` steps on the probe states, with both losses; early stopping watches
the training loss's kind.  A run that diverges (a non-finite loss, parameter or Adam
moment, checked at every evaluation and before every checkpoint) or ends no better than
its initial weights is refused, never saved.

The pure pieces under `Trainer`: `train_init(key, ae, config)` and
`train_step(state, thetas, states, ae, config)`, one Adam step on a `TrainState` pytree
(with the occupancy term: `env` and an `lsc.occupancy.OccupancyBatch` too).
"""

import dataclasses
import functools
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from lsc import checkpoint
from lsc.config import EnvConfig, PolicyConfig, from_dict, to_dict
from lsc.distributed import agree, is_multi
from lsc.autoencoder import (ACTIVATIONS, ENCODER_INPUTS, LOSSES, Autoencoder, check_thetas,
                             make_eval_loss, make_loss_fn)
from lsc.metrics import min_held_out
from lsc.occupancy import OccupancyBatch, check_env, occupancy_term
from lsc.progress import ProgressFn
from lsc.rollout import rollout_fn
from lsc.validate import check_finite, check_int, check_memory, check_seed

STATE_SOURCES = ("dataset", "rollout", "own")
KIND = "autoencoder"


def _occupancy_off(config) -> bool:
  return not config.occupied


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Autoencoder architecture and training settings."""
  latent_dim: int = 2
  encoder_widths: tuple[int, ...] = (128,)
  decoder_widths: tuple[int, ...] = (128,)
  activation: str = "elu"
  encoder_input: str = "actions"  # actions | parameters (lsc.autoencoder)
  loss: str = "behaviour"  # behaviour | parameter
  states: str = "own"  # own | dataset | rollout (see the module docstring; own measured best, experiments/RESULTS.md)
  batch_policies: int = 64
  batch_states: int = 256
  lr: float = 1e-3
  steps: int = 3000
  val_fraction: float = 0.1
  eval_every: int = 100
  patience: int = 10  # evaluations without improvement before stopping; 0: never stop early
  rollout_every: int = 50
  buffer_size: int = 8192
  rollout_samples: int = 16  # states kept per decoded-policy episode
  checkpoint_every: int = 500
  seed: int = 0
  # the occupancy term (lsc.occupancy), added after artifacts existed: off (0) by default, and then its
  # settings are left out of records (so records from before it match); with it on, all are recorded.
  # Its episodes keep rollout_samples states each.
  occupancy_weight: float = dataclasses.field(default=0.0, metadata={"omit_default": True})
  occupancy_policies: int = dataclasses.field(default=8, metadata={"omit_default": _occupancy_off})  # per step
  occupancy_bandwidth: float = dataclasses.field(default=1.0, metadata={"omit_default": _occupancy_off})  # state stds
  # steps a gradient reaches back through the dynamics (0: the whole episode, which measured worse)
  occupancy_horizon: int = dataclasses.field(default=10, metadata={"omit_default": _occupancy_off})

  @property
  def occupied(self) -> bool:
    """Whether the loss has the occupancy term (occupancy_weight > 0)."""
    return self.occupancy_weight > 0

  def check(self, num_params: int | None = None, dataset_size: int | None = None, policy=None,
            n_probe: int | None = None) -> None:
    """Raises ValueError naming any bad field, before any work.  What is known of the
    inputs adds checks: `num_params` (the policy's size; `policy.num_params` when a
    policy is given) refuses a latent_dim larger than it (a code no smaller than the
    parameters); `dataset_size` (the dataset's K policies) too few held-out policies for
    validation and recovery (`lsc.metrics.min_held_out`) and too few training policies
    for the code; `policy` (an `MLPPolicy`: its shape alone) with `n_probe` (the
    dataset's probe states, read by the `actions` encoder input and validation) the
    memory training needs (`train_memory`; the occupancy term's episodes, which need the
    env, are checked where it is known: `lsc.occupancy.check_env`).  `lsc.dataset.training_inputs` gives all
    four from a dataset's record, `CollectConfig.training_inputs` from its config."""
    check_int("latent_dim", self.latent_dim)
    if self.latent_dim < 1:
      raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
    if policy is not None and num_params is None:
      num_params = policy.num_params
    if num_params is not None and self.latent_dim > num_params:
      raise ValueError(f"latent_dim must be <= the policy's {num_params:,} parameters, got {self.latent_dim:,}")
    for name in ("encoder_widths", "decoder_widths"):
      widths = getattr(self, name)
      if not isinstance(widths, (tuple, list)):
        raise ValueError(f"{name} must be a list of layer widths (integers >= 1; empty: linear), got {widths!r}")
      for width in widths:
        check_int(f"{name} width", width, low=1)
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    check_int("patience", self.patience)
    check_finite("lr", self.lr)
    check_finite("val_fraction", self.val_fraction)
    check_finite("occupancy_weight", self.occupancy_weight)
    check_finite("occupancy_bandwidth", self.occupancy_bandwidth)
    if self.occupancy_weight < 0:
      raise ValueError(f"occupancy_weight must be >= 0 (0: no occupancy term), got {self.occupancy_weight}")
    if self.occupancy_bandwidth <= 0:
      raise ValueError(f"occupancy_bandwidth must be > 0, got {self.occupancy_bandwidth}")
    check_int("occupancy_horizon", self.occupancy_horizon)
    if self.occupancy_horizon < 0:
      raise ValueError(f"occupancy_horizon must be >= 0 (0: the whole episode), got {self.occupancy_horizon}")
    check_seed("seed", self.seed)
    if self.loss not in LOSSES:
      raise ValueError(f"unknown loss {self.loss!r}; valid losses: {', '.join(LOSSES)}")
    if self.encoder_input not in ENCODER_INPUTS:
      raise ValueError(f"unknown encoder input {self.encoder_input!r}; valid: {', '.join(ENCODER_INPUTS)}")
    if self.states not in STATE_SOURCES:
      raise ValueError(f"unknown state source {self.states!r}; valid: {', '.join(STATE_SOURCES)}")
    if not 0.0 < self.val_fraction < 1.0:
      raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
    for name in ("batch_policies", "batch_states", "steps", "eval_every", "rollout_every", "buffer_size",
                 "rollout_samples", "checkpoint_every", "occupancy_policies"):
      check_int(name, getattr(self, name))
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.lr <= 0:
      raise ValueError(f"lr must be > 0, got {self.lr}")
    if self.patience < 0:
      raise ValueError(f"patience must be >= 0 (0: never stop early), got {self.patience}")
    if self.states == "rollout" and self.batch_policies * self.rollout_samples > self.buffer_size:
      raise ValueError(f"a rollout refresh writes batch_policies x rollout_samples = "
                       f"{self.batch_policies * self.rollout_samples:,} states into the buffer, more than its "
                       f"buffer_size {self.buffer_size:,}; raise buffer_size or lower rollout_samples")
    if self.occupied and self.occupancy_policies > self.batch_policies:
      raise ValueError(f"occupancy_policies ({self.occupancy_policies}) must be <= batch_policies "
                       f"({self.batch_policies}): the occupancy term runs a subset of the batch")
    if dataset_size is not None:
      self._check_dataset_size(check_int("dataset_size", dataset_size))
    if policy is not None:
      check_memory("training", *train_memory(self, policy, dataset_size, n_probe))

  def _check_dataset_size(self, n: int) -> None:
    """Refuses a dataset of n policies too small for these settings."""
    if n < 2:
      raise ValueError(f"the dataset holds {n} policies; training needs at least 2: raise its size "
                       f"(collect.pool / --pool, collect.keep / --keep)")
    need = min_held_out(self.latent_dim)
    n_val = held_out_count(n, self.val_fraction)
    if n_val < need:
      raise ValueError(f"val_fraction {self.val_fraction:g} holds out {n_val} of the dataset's {n:,} policies; "
                       f"validation and recovery need >= {need} for latent_dim {self.latent_dim}: raise "
                       f"train.val_fraction or the dataset's size (collect.pool / --pool, collect.keep / --keep)")
    if n - n_val <= self.latent_dim:
      raise ValueError(f"the dataset's {n:,} policies leave {n - n_val} to train on, not more than latent_dim "
                       f"{self.latent_dim} (such a code fits any {n - n_val} policies); lower train.latent_dim / "
                       f"--latent-dim or raise the dataset's size (collect.pool / --pool, collect.keep / --keep)")

  def autoencoder(self, policy, probe=None) -> Autoencoder:
    """The autoencoder of these settings for `policy`; `probe` (M, O): the dataset's
    probe states, used only by the `actions` encoder input."""
    return Autoencoder(policy, self.latent_dim, self.encoder_widths, self.decoder_widths, self.activation,
                       self.encoder_input, probe if self.encoder_input == "actions" else None)


def train_memory(config: TrainConfig, policy, dataset_size: int | None = None,
                 n_probe: int | None = None) -> tuple[int, str]:
  """(bytes, what they hold): an estimate of the arrays one training step and the
  validation hold at once, for `policy` (an `MLPPolicy`, P parameters, O observation
  and A action dims, hidden layers of H units in all), B = batch_policies, M =
  batch_states states, n_probe probe states (unknown: 256) and V = min(512, held-out)
  validation policies (unknown: 512), in float32:
    autoencoder   its W weights 6 times (parameters, best parameters, gradients, Adam's
                  two moments, the update);
    batch         B x P four times (the policies, their reconstructions, the gradients
                  of both);
    behaviour     B x M x (H + A) three times (both policies' activations kept for the
                  backward pass, their gradients) and B x M x O states (`own`: each
                  policy's, gathered);
    encoder       with `actions` input, B x n_probe x (H + A) (the policies run on the
                  probe) and the encoder's layer activations;
    buffer        buffer_size x O states;
    validation    V x P policies twice and V x n_probe x (H + A) twice (both losses).
  Not exact (XLA fuses and rematerialises): the order of magnitude that refuses a run
  no machine could hold before anything compiles."""
  p, o, a = policy.num_params, policy.obs_size, policy.action_size
  hidden = sum(policy.hidden) + a
  probe = 256 if n_probe is None else n_probe
  b, m = config.batch_policies, config.batch_states
  n_in = probe * a if config.encoder_input == "actions" else p
  sizes = [n_in, *config.encoder_widths, config.latent_dim]
  weights = sum(i * j + j for i, j in zip(sizes[:-1], sizes[1:]))
  sizes = [config.latent_dim, *config.decoder_widths, p]
  weights += sum(i * j + j for i, j in zip(sizes[:-1], sizes[1:]))
  v = 512 if dataset_size is None else min(512, held_out_count(dataset_size, config.val_fraction))
  floats = {
      "autoencoder": 6 * weights,
      "batch": 4 * b * p,
      "behaviour": 3 * b * m * hidden + b * m * o,
      "encoder": (b * probe * hidden if config.encoder_input == "actions" else 0)
                 + 2 * b * (sum(config.encoder_widths) + sum(config.decoder_widths) + n_in),
      "buffer": config.buffer_size * o,
      "validation": 2 * v * p + 2 * v * probe * hidden,
  }
  return 4 * sum(floats.values()), (f"batch_policies {b:,} x batch_states {m:,} x {hidden:,} activations x 3, "
                                    f"{weights:,} autoencoder weights x 6, buffer_size {config.buffer_size:,}, "
                                    f"{probe:,} probe states")


class TrainState(NamedTuple):
  """The autoencoder's training state, a pytree: parameters, Adam's state, steps taken,
  env steps the occupancy term's episodes took (train_step adds each step's)."""
  params: dict
  opt_state: Any
  step: jax.Array  # () int32
  env_steps: Any = 0  # () int32


def train_init(key: jax.Array, ae: Autoencoder, config: TrainConfig) -> TrainState:
  """The state before step 0: `ae.init(key)` and a fresh Adam (lr `config.lr`); a bad
  config (a NaN, infinite or non-positive lr, ...) is refused first (`TrainConfig.check`)."""
  config.check()
  params = ae.init(key)
  return TrainState(params, optax.adam(config.lr).init(params), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def train_step(state: TrainState, thetas: jax.Array, states: jax.Array, ae: Autoencoder, config: TrainConfig,
               env=None, occupancy: OccupancyBatch | None = None) -> tuple[TrainState, jax.Array]:
  """One Adam step on `config.loss` for a batch of policies thetas (B, P) and states
  (M, O) (the behaviour loss compares actions there), plus `config.occupancy_weight`
  times the occupancy term of `occupancy`'s policies in `env` when the weight is > 0:
  (new state, the loss before the step).  The state's env_steps grows by the occupancy
  episodes' steps.  Pure: jit it closing over `ae`, `config` and `env`
  (`jax.jit(functools.partial(train_step, ae=ae, config=config, env=env))`), vmap or
  scan it.  Shapes that do not fit `ae` are refused while tracing (the loss's
  `check_batch`: Python on the static shapes, nothing in the compiled step)."""
  action_loss = make_loss_fn(ae, config.loss)
  occupied = config.occupied
  if occupied and (env is None or occupancy is None):
    raise ValueError("the occupancy term (occupancy_weight > 0) needs the env and an OccupancyBatch")

  def loss_fn(params):
    value = action_loss(params, thetas, states)
    if not occupied:
      return value, jnp.zeros((), jnp.int32)
    decoded = ae.reconstruct(params, occupancy.thetas)
    distance, spent = occupancy_term(env, ae.policy, config.rollout_samples, decoded, occupancy,
                                     config.occupancy_bandwidth, config.occupancy_horizon or None)
    return value + config.occupancy_weight * distance, spent

  (value, spent), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optax.adam(config.lr).update(grads, state.opt_state, state.params)
  return TrainState(optax.apply_updates(state.params, updates), opt_state, state.step + 1,
                    state.env_steps + spent), value


@functools.lru_cache(maxsize=32)
def compiled_train_step(ae: Autoencoder, config: TrainConfig, env=None):
  """`train_step` jit-compiled for (ae, config, env), cached: one program per
  autoencoder, loss settings and (with the occupancy term) env."""
  return jax.jit(functools.partial(train_step, ae=ae, config=config, env=env))


def held_out_count(n: int, val_fraction: float) -> int:
  """How many of a dataset's n >= 2 policies `split` holds out: round(val_fraction * n),
  at least 1 and at most n - 1."""
  return min(n - 1, max(1, int(round(val_fraction * n))))


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, validation) row indices of a dataset of n policies, both non-empty, sorted."""
  order = np.random.default_rng(seed).permutation(n)
  n_val = held_out_count(n, val_fraction)
  return np.sort(order[n_val:]), np.sort(order[:n_val])


def state_pool(dataset) -> np.ndarray:
  """The states of an `lsc.dataset.Dataset`: probe states and every visited sample,
  (M + K * V, O)."""
  probe = np.asarray(dataset.probe_states, np.float32)
  visited = np.asarray(dataset.visited_states, np.float32).reshape(-1, probe.shape[1])
  return np.concatenate([probe, visited])


@jax.jit
def _all_finite(tree) -> jax.Array:
  """() bool: no leaf of `tree` holds NaN or inf."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _sample_states(buffer: jax.Array, key: jax.Array, m: int) -> jax.Array:
  return buffer[jax.random.randint(key, (m,), 0, buffer.shape[0])]


class Trainer:
  """Trains `config.autoencoder(policy)` on a dataset (an `lsc.dataset.Dataset`).

  `run()` trains to the end (or early stop) and returns the final state; `init`,
  `step_range` and the checkpoint helpers expose the pieces.  The state is a dict:
  params, opt_state, buffer (states), best_params, step, best_val, bad_evals, history,
  env_steps (the `rollout` source's and the occupancy term's episodes so far; 0 for
  neither).
  """

  def __init__(self, env, policy, dataset: dict, config: TrainConfig):
    # sizes and memory first: check_thetas reads every parameter (a memory-mapped dataset whole)
    config.check(dataset_size=len(dataset.thetas), policy=policy, n_probe=len(dataset.probe_states))
    self.env, self.policy, self.config = env, policy, config
    self.thetas = check_thetas(dataset.thetas, policy)
    self.train_idx, self.val_idx = split(len(self.thetas), config.val_fraction, config.seed)
    self.states = state_pool(dataset)
    if config.states == "own":
      self.visited = np.asarray(dataset.visited_states, np.float32)  # (K, E * V, O)
      if self.visited.ndim != 3 or self.visited.shape[:1] != self.thetas.shape[:1] or not self.visited.shape[1]:
        raise ValueError(f"state source 'own' needs each policy's visited states (K={len(self.thetas)}, V >= 1, O), "
                         f"got {self.visited.shape}")
    if self.states.shape[1] != policy.obs_size:
      raise ValueError(f"dataset states have {self.states.shape[1]} dims, the policy observes {policy.obs_size}")
    self.probe = jnp.asarray(dataset.probe_states, jnp.float32)
    self.val_thetas = jnp.asarray(self.thetas[self.val_idx[:512]])
    self.ae = config.autoencoder(policy, dataset.probe_states)
    self.train_step = compiled_train_step(self.ae, config, env if config.occupied else None)
    if config.occupied:  # an env it cannot differentiate or hold refused now; the kernel's per-dimension scale
      check_env(env, policy, config.occupancy_policies, config.occupancy_horizon or None)
      self.state_scale = jnp.asarray(np.std(self.states, axis=0) + 1e-6, jnp.float32)
    self.val_losses = {name: make_eval_loss(self.ae, name) for name in LOSSES}
    self.key = jax.random.key(config.seed)
    if config.states == "rollout":
      self._rollout = rollout_fn(env, policy, config.batch_policies, 1, config.rollout_samples)
      self._decode_batch = jax.jit(self.ae.reconstruct)

  def init(self) -> dict:
    """The state before step 0."""
    initial = train_init(jax.random.fold_in(self.key, 0), self.ae, self.config)
    params = initial.params
    rng = np.random.default_rng(self.config.seed)
    buffer = self.states[rng.integers(0, len(self.states), self.config.buffer_size)]
    return {"params": params, "opt_state": initial.opt_state, "buffer": jnp.asarray(buffer),
            "best_params": params, "step": 0, "best_val": float("inf"), "bad_evals": 0, "env_steps": 0,
            "history": {"step": [], "train": [], "val_behaviour": [], "val_parameter": []}}

  def _rows(self, step: int) -> np.ndarray:
    """The training rows of step `step`'s policy batch, sorted."""
    rng = np.random.default_rng([self.config.seed, step])
    return np.sort(rng.choice(self.train_idx, min(self.config.batch_policies, len(self.train_idx)), replace=False))

  def _states(self, state: dict, step: int, rows: np.ndarray) -> jax.Array:
    """Step `step`'s behaviour-loss states for the batch `rows`: (M, O) from the buffer,
    or for `own` (B, M, O), each policy's own visited states then a shared half from the
    buffer."""
    key = jax.random.fold_in(self.key, 2 * step + 2)
    m = self.config.batch_states
    if self.config.states != "own":
      return _sample_states(state["buffer"], key, m)
    own, shared = m // 2, m - m // 2
    visited = jnp.asarray(self.visited[rows])  # (B, V, O)
    picks = jax.random.randint(jax.random.fold_in(key, 1), (visited.shape[0], own), 0, visited.shape[1])
    mine = jnp.take_along_axis(visited, picks[..., None], axis=1)
    common = jnp.broadcast_to(_sample_states(state["buffer"], key, shared), (visited.shape[0], shared, visited.shape[2]))
    return jnp.concatenate([mine, common], axis=1)

  def _occupancy(self, step: int, rows: np.ndarray, thetas: jax.Array) -> OccupancyBatch | None:
    """Step `step`'s occupancy batch: `occupancy_policies` of the batch `rows` (policies
    thetas), drawn from (seed, step), with fresh reset keys; None without the occupancy
    term."""
    if not self.config.occupied:
      return None
    n = min(self.config.occupancy_policies, len(rows))
    picks = np.sort(np.random.default_rng([self.config.seed, step, 1]).choice(len(rows), n, replace=False))
    keys = jax.random.split(jax.random.fold_in(jax.random.fold_in(self.key, 2 * step + 1), 1), n)
    return OccupancyBatch(thetas[picks], keys, self.state_scale)

  def _refresh_buffer(self, state: dict, thetas: jax.Array, step: int) -> tuple[jax.Array, int]:
    """Rolls out the decoded batch and writes the states it visited into the ring buffer:
    (the new buffer, the env steps the episodes took, padding members included)."""
    decoded = self._decode_batch(state["params"], thetas)
    n = decoded.shape[0]
    if n < self.config.batch_policies:  # the compiled rollout has a fixed population size
      decoded = jnp.concatenate([decoded, jnp.broadcast_to(decoded[:1], (self.config.batch_policies - n, decoded.shape[1]))])
    keys = jax.random.split(jax.random.fold_in(self.key, 2 * step + 1), self.config.batch_policies)[:, None]
    result = self._rollout(decoded, keys)
    visited = result.obs_samples.reshape(-1, self.policy.obs_size)
    visited = jnp.asarray(np.asarray(visited))  # this process's copy (a multi-process rollout spans them all)
    start = (step // self.config.rollout_every) * len(visited) % self.config.buffer_size
    slots = (start + jnp.arange(len(visited))) % self.config.buffer_size
    return state["buffer"].at[slots].set(visited), result.env_steps

  def evaluate(self, params) -> dict:
    """Validation losses of `params` on the held-out policies and the probe states."""
    return {name: float(loss(params, self.val_thetas, self.probe)) for name, loss in self.val_losses.items()}

  def check_diverged(self, state: dict, train_loss: float | None = None, val: dict | None = None) -> None:
    """Refuses a diverged training state: a non-finite training loss `train_loss` or
    validation loss in `val` ({loss: value}), or NaN or inf in the parameters or Adam's
    state.  ValueError naming the step and the learning rate to lower."""
    what = None
    if train_loss is not None and not math.isfinite(train_loss):
      what = f"the training {self.config.loss} loss is {train_loss}"
    for name, value in (val or {}).items():
      if what is None and not math.isfinite(value):
        what = f"the validation {name} loss is {value}"
    if what is None and not bool(_all_finite((state["params"], state["opt_state"]))):
      what = "the autoencoder's parameters or Adam's state hold NaN or inf"
    if what is not None:
      raise ValueError(f"training diverged by step {state['step']}: {what}; lower the learning rate "
                       f"(train.lr / --lr, now {self.config.lr:g})")

  def step_range(self, state: dict, stop: int, progress_fn=None, checkpoint_fn=None) -> dict:
    """Trains from state["step"] up to `stop` (or an early stop); returns the new state.
    At every evaluation and before every checkpoint a diverged state is refused
    (`check_diverged`), so no checkpoint holds one."""
    config = self.config
    state = dict(state)
    pending = []  # the occupancy episodes' env steps since the last count, on device (no sync per step)

    def count():
      if pending:
        state["env_steps"] += sum(int(x) for x in jax.device_get(pending))
        pending.clear()

    while state["step"] < stop and not (config.patience and state["bad_evals"] >= config.patience):
      step = state["step"]
      rows = self._rows(step)
      thetas = jnp.asarray(self.thetas[rows], jnp.float32)  # stored: read from the (mapped) file; indices: regenerated
      if config.states == "rollout" and step % config.rollout_every == 0 and step > 0:
        state["buffer"], spent = self._refresh_buffer(state, thetas, step)
        state["env_steps"] += spent
      states = self._states(state, step, rows)
      occupancy = self._occupancy(step, rows, thetas)
      trained, loss = self.train_step(TrainState(state["params"], state["opt_state"], jnp.int32(step), jnp.int32(0)),
                                      thetas, states, occupancy=occupancy)
      state["params"], state["opt_state"] = trained.params, trained.opt_state
      if occupancy is not None:
        pending.append(trained.env_steps)
      state["step"] = step + 1
      checked = state["step"] % config.eval_every == 0 or state["step"] == stop
      if checked or state["step"] % config.checkpoint_every == 0:
        count()
      if checked:
        val = self.evaluate(state["params"])
        self.check_diverged(state, float(loss), val)
        history = state["history"]
        for name, value in (("step", state["step"]), ("train", float(loss)),
                            ("val_behaviour", val["behaviour"]), ("val_parameter", val["parameter"])):
          history[name] = history[name] + [value]
        watched = val[config.loss]
        # process 0's verdict for every process of a multi-process run: the same steps, checkpoints and barriers
        if agree(watched < state["best_val"]):
          state["best_val"], state["best_params"], state["bad_evals"] = watched, state["params"], 0
        else:
          state["bad_evals"] += 1
      if checkpoint_fn is not None and state["step"] % config.checkpoint_every == 0:
        if not checked:
          self.check_diverged(state)  # a checkpoint never holds a diverged state
        checkpoint_fn(state)
      if progress_fn is not None and state["step"] % config.eval_every == 0:
        history = state["history"]
        progress_fn("train", state["step"], stop, {"loss": history["train"][-1],
                                                   "val": history[f"val_{config.loss}"][-1]})
    count()
    return state

  def codes(self, params) -> np.ndarray:
    """Codes of every dataset policy, (N, latent_dim), encoded in blocks."""
    encode = jax.jit(self.ae.encode)
    out = [np.asarray(encode(params, jnp.asarray(self.thetas[i:i + 1024], jnp.float32)))
           for i in range(0, len(self.thetas), 1024)]
    return np.concatenate(out)


# --- artifacts ------------------------------------------------------------------------

def identity(trainer: Trainer) -> dict:
  return {**checkpoint.policy_identity(trainer.env, trainer.policy), "latent_dim": trainer.config.latent_dim}


def save_state(path, trainer: Trainer, state: dict, record_config: dict, *, final: bool = False,
               codes: np.ndarray | None = None) -> None:
  """Writes the training state (params, optimizer, buffer, best params, history) as an
  `autoencoder` artifact; `final` marks a finished run, whose `codes` are stored."""
  arrays = {"params": state["params"], "best_params": state["best_params"], "probe": trainer.probe,
            "opt_state": {f"{i:03d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state["opt_state"]))},
            "buffer": np.asarray(state["buffer"]),
            "history": {k: np.asarray(v, np.float64) for k, v in state["history"].items()}}
  if codes is not None:
    arrays["codes"] = codes
  checkpoint.save_artifact(path, jax.tree.map(np.asarray, arrays), kind=KIND,
                           config=state_record(trainer, state, record_config, final), identity=identity(trainer))


def state_record(trainer: Trainer, state: dict, record_config: dict, final: bool) -> dict:
  """An `autoencoder` artifact's record config: `record_config` (dataset, env, policy,
  inputs, timings) with the training settings and the state's progress."""
  return {**record_config, "train": to_dict(trainer.config), "step": state["step"], "best_val": state["best_val"],
          "bad_evals": state["bad_evals"], "env_steps": state["env_steps"], "final": final}


def load_state(path, trainer: Trainer, inputs: dict | None = None) -> tuple[dict, dict]:
  """(state, record) of the artifact at `path`; ArtifactMismatch naming what differs if it
  was trained with another config, on other inputs (`inputs`: e.g. {"dataset": digest}),
  with other package versions, or for another env / policy / latent size."""
  arrays, record = checkpoint.load_artifact(path, kind=KIND, expect=identity(trainer))
  saved, wanted = record["config"]["train"], to_dict(trainer.config)
  if saved != wanted:
    changed = sorted(k for k in wanted if saved.get(k) != wanted[k])
    raise checkpoint.ArtifactMismatch(f"artifact {path} was trained with other settings: "
                                      + ", ".join(f"{k} ({saved.get(k)!r} there, {wanted[k]!r} here)" for k in changed))
  if inputs is not None and record["config"].get("inputs") != inputs:
    raise checkpoint.ArtifactMismatch(f"artifact {path} was trained on other inputs: {record['config'].get('inputs')} "
                                      f"there, {inputs} here")
  checkpoint.check_versions(record, path)
  template = trainer.init()
  to_device = lambda tree: jax.tree.map(jnp.asarray, tree)
  opt_leaves = [arrays["opt_state"][f"{i:03d}"] for i in range(len(arrays["opt_state"]))]
  state = {"params": to_device(arrays["params"]), "best_params": to_device(arrays["best_params"]),
           "opt_state": jax.tree.unflatten(jax.tree.structure(template["opt_state"]), [jnp.asarray(x) for x in opt_leaves]),
           "buffer": jnp.asarray(arrays["buffer"]), "step": int(record["config"]["step"]),
           "best_val": float(record["config"]["best_val"]), "bad_evals": int(record["config"]["bad_evals"]),
           "env_steps": _env_steps(record, path),
           "history": {k: [int(x) if k == "step" else float(x) for x in np.asarray(v)] for k, v in arrays["history"].items()}}
  return state, record


def _env_steps(record: dict, path) -> int:
  """The env steps an autoencoder artifact's training spent (its `rollout` and occupancy
  episodes); an artifact from before they were recorded spent none unless it trained on
  rollouts."""
  config = record["config"]
  if "env_steps" in config:
    return int(config["env_steps"])
  if config["train"].get("states") == "rollout":
    raise ValueError(f"the autoencoder at {path} trained on rollouts but records no env steps (made before they "
                     f"were counted): retrain it (--overwrite) so that its env steps can be charged")
  return 0


def train(trainer: Trainer, out=None, record_config: dict | None = None,
          progress_fn: ProgressFn | None = None, overwrite: bool = False) -> tuple[dict, np.ndarray, dict]:
  """Trains to the end, resuming from the artifact at `out` if it holds a run of the
  same config, inputs (`record_config["inputs"]`) and versions (ArtifactMismatch naming
  the difference otherwise; `overwrite=True` starts afresh and replaces it),
  checkpointing there every `checkpoint_every` steps and writing the final artifact
  (with the dataset's codes under the best parameters).  Returns (final state, codes
  (N, latent_dim), timings); `train_s` sums the training time of every call that
  worked on this artifact.  Never saves a failed run: a diverged state
  (`Trainer.check_diverged`, also of a checkpoint resumed from) or a best validation
  loss not below the initial weights' raises ValueError naming the setting to change,
  and no final artifact is written."""
  env, policy = trainer.env, trainer.policy  # recorded so that load_autoencoder can rebuild them
  record_config = {"env": {"name": env.name, "backend": env.backend, "episode_length": env.episode_length},
                   "policy": {"preset": "custom", "hidden": list(policy.hidden), "activation": policy.activation,
                              "init_scheme": policy.init_scheme, "normalize_obs": policy.obs_scale is not None},
                   **(record_config or {})}
  state, before = trainer.init(), 0.0
  if out is not None:
    checkpoint.check_output_path(out, KIND)  # refuses a foreign path before any training
  initial_val = trainer.evaluate(state["params"])[trainer.config.loss]  # what the trained model must beat
  if out is not None and checkpoint.is_artifact(out) and not overwrite:
    state, record = checkpoint.resuming(load_state, out, trainer, record_config.get("inputs"))
    before = record["config"].get("timings", {}).get("train_s", 0.0)  # time spent by earlier calls
    try:
      trainer.check_diverged(state)
    except ValueError as error:
      raise ValueError(f"the checkpoint at {out} holds a diverged state ({error}); overwrite=True "
                       f"(--overwrite) starts afresh") from None
  start = time.perf_counter()
  elapsed = lambda: {"train_s": before + time.perf_counter() - start}
  save = None if out is None else (lambda s: save_state(out, trainer, s, {**record_config, "timings": elapsed()}))
  state = trainer.step_range(state, trainer.config.steps, progress_fn, save)
  config = trainer.config
  if not state["best_val"] < initial_val:  # early stopping kept nothing better than the initial weights
    raise ValueError(f"training did not improve on the initial weights: the best validation {config.loss} loss "
                     f"{state['best_val']:.4g} is not below the initial {initial_val:.4g}; lower train.lr / --lr "
                     f"(now {config.lr:g}) or raise train.steps / --steps (now {config.steps})")
  if is_multi():  # every process goes on with process 0's parameters (bit-equal where ops are deterministic)
    state["best_params"] = multihost_utils.broadcast_one_to_all(state["best_params"])
  timings = elapsed()
  codes = trainer.codes(state["best_params"])
  if out is not None:
    save_state(out, trainer, state, {**record_config, "timings": timings}, final=True, codes=codes)
  return state, codes, timings


@dataclasses.dataclass(frozen=True)
class TrainedAutoencoder:
  """A finished autoencoder artifact: `lsc.decoder_space(t.ae, t.params, t.codes)` is
  its latent search space."""
  ae: Autoencoder  # its policy rebuilt from the record
  params: dict  # the best parameters (lowest validation loss)
  codes: np.ndarray  # (N, k): the codes of the dataset's N policies under them
  record: dict  # the artifact's record: config, identity, versions, digest

  @property
  def env_steps(self) -> int:
    """The env steps its training spent (the `rollout` state source's and the occupancy
    term's episodes)."""
    return _env_steps(self.record, "this autoencoder")


def load_autoencoder(path) -> TrainedAutoencoder:
  """The finished `autoencoder` artifact at `path`; its env and policy are rebuilt from
  its record."""
  arrays, record = checkpoint.load_artifact(path, kind=KIND)
  config = record["config"]
  if not config.get("final"):
    raise ValueError(f"the autoencoder at {path} is an unfinished checkpoint (step {config['step']}); "
                     f"finish it with `lsc train` first")
  env = from_dict(EnvConfig, config["env"]).build()
  policy = from_dict(PolicyConfig, config["policy"]).build(env)
  ae = from_dict(TrainConfig, config["train"]).autoencoder(policy, arrays.get("probe"))
  return TrainedAutoencoder(ae, jax.tree.map(jnp.asarray, arrays["best_params"]), np.asarray(arrays["codes"]),
                            record)
