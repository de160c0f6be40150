"""Training the behaviour autoencoder on a dataset: state sources, validation, early
stopping, checkpoints and resume.

State sources for the behaviour loss (`states`; default `own`, measured best in
experiments/RESULTS.md):
  `dataset`  a fresh batch every step from the dataset's probe states and the states
             its policies visited (fixed pool);
  `rollout`  the same pool seeds an on-device ring buffer; every `rollout_every` steps
             the current batch's *decoded* policies run one episode each (the shared
             rollout engine, compiled once) and the states they reach replace the
             buffer's oldest, so the decoder is also trained where its own policies go;
  `own`      each policy is compared on its own states: half of the M states are drawn
             (with replacement) from the states that policy visited when the dataset was
             evaluated, half from the shared pool as `dataset` draws them.  A policy's
             behaviour matters where it goes; in a chaotic env a small action error on
             its own trajectory compounds, while states it never visits cost it nothing.
             Reward-free: the visited states are samples of the evaluation rollouts.

Every random choice of step t (policy batch, state batch, rollout keys) is derived from
(seed, t), so a run resumed from a checkpoint continues exactly as an uninterrupted one.
Policy batches are gathered on the host (the dataset may be a memory map larger than
the device), or, for a dataset that stores pool indices (`CollectConfig.store`),
regenerated on device from (seed, index) batch by batch, so that the memory training
needs does not grow with the dataset.  The held-out validation policies are scored
every `eval_every` steps on the probe states, with both losses; early stopping watches
the training loss's kind.

The pure pieces under `Trainer`: `train_init(key, ae, config)` and
`train_step(state, thetas, states, ae, config)`, one Adam step on a `TrainState` pytree.
"""

import dataclasses
import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lsc import checkpoint
from lsc.config import EnvConfig, PolicyConfig, from_dict, to_dict
from lsc.distributed import agree, is_multi
from lsc.autoencoder import ENCODER_INPUTS, LOSSES, Autoencoder, check_thetas, make_eval_loss, make_loss_fn
from lsc.progress import ProgressFn
from lsc.rollout import rollout_fn
from lsc.validate import check_finite, check_int, check_seed

STATE_SOURCES = ("dataset", "rollout", "own")
KIND = "autoencoder"


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

  def check(self, num_params: int | None = None) -> None:
    """Raises ValueError naming any bad field; with `num_params` (the policy's size, once
    known) also a latent_dim larger than it (a code no smaller than the parameters)."""
    check_int("latent_dim", self.latent_dim)
    if self.latent_dim < 1:
      raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
    if num_params is not None and self.latent_dim > num_params:
      raise ValueError(f"latent_dim must be <= the policy's {num_params:,} parameters, got {self.latent_dim:,}")
    check_int("patience", self.patience)
    for width in (*self.encoder_widths, *self.decoder_widths):
      check_int("encoder/decoder width", width, low=1)
    check_finite("lr", self.lr)
    check_finite("val_fraction", self.val_fraction)
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
                 "rollout_samples", "checkpoint_every"):
      check_int(name, getattr(self, name))
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.lr <= 0 or self.patience < 0:
      raise ValueError(f"need lr > 0 and patience >= 0, got {self.lr}, {self.patience}")

  def autoencoder(self, policy, probe=None) -> Autoencoder:
    """The autoencoder of these settings for `policy`; `probe` (M, O): the dataset's
    probe states, used only by the `actions` encoder input."""
    return Autoencoder(policy, self.latent_dim, self.encoder_widths, self.decoder_widths, self.activation,
                       self.encoder_input, probe if self.encoder_input == "actions" else None)


class TrainState(NamedTuple):
  """The autoencoder's training state, a pytree: parameters, Adam's state, steps taken."""
  params: dict
  opt_state: Any
  step: jax.Array  # () int32


def train_init(key: jax.Array, ae: Autoencoder, config: TrainConfig) -> TrainState:
  """The state before step 0: `ae.init(key)` and a fresh Adam (lr `config.lr`)."""
  params = ae.init(key)
  return TrainState(params, optax.adam(config.lr).init(params), jnp.zeros((), jnp.int32))


def train_step(state: TrainState, thetas: jax.Array, states: jax.Array, ae: Autoencoder,
               config: TrainConfig) -> tuple[TrainState, jax.Array]:
  """One Adam step on `config.loss` for a batch of policies thetas (B, P) and states
  (M, O) (the behaviour loss compares actions there): (new state, the loss before the
  step).  Pure: jit it closing over `ae` and `config`
  (`jax.jit(functools.partial(train_step, ae=ae, config=config))`), vmap or scan it."""
  value, grads = jax.value_and_grad(make_loss_fn(ae, config.loss))(state.params, thetas, states)
  updates, opt_state = optax.adam(config.lr).update(grads, state.opt_state, state.params)
  return TrainState(optax.apply_updates(state.params, updates), opt_state, state.step + 1), value


@functools.lru_cache(maxsize=32)
def compiled_train_step(ae: Autoencoder, config: TrainConfig):
  """`train_step` jit-compiled for (ae, config), cached: one program per autoencoder and
  loss settings."""
  return jax.jit(functools.partial(train_step, ae=ae, config=config))


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, validation) row indices of a dataset of n policies, both non-empty, sorted."""
  order = np.random.default_rng(seed).permutation(n)
  n_val = min(n - 1, max(1, int(round(val_fraction * n))))
  return np.sort(order[n_val:]), np.sort(order[:n_val])


def state_pool(dataset) -> np.ndarray:
  """The states of an `lsc.dataset.Dataset`: probe states and every visited sample,
  (M + K * V, O)."""
  probe = np.asarray(dataset.probe_states, np.float32)
  visited = np.asarray(dataset.visited_states, np.float32).reshape(-1, probe.shape[1])
  return np.concatenate([probe, visited])


def _sample_states(buffer: jax.Array, key: jax.Array, m: int) -> jax.Array:
  return buffer[jax.random.randint(key, (m,), 0, buffer.shape[0])]


class Trainer:
  """Trains `config.autoencoder(policy)` on a dataset (an `lsc.dataset.Dataset`).

  `run()` trains to the end (or early stop) and returns the final state; `init`,
  `step_range` and the checkpoint helpers expose the pieces.  The state is a dict:
  params, opt_state, buffer (states), best_params, step, best_val, bad_evals, history.
  """

  def __init__(self, env, policy, dataset: dict, config: TrainConfig):
    config.check(policy.num_params)
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
    self.train_step = compiled_train_step(self.ae, config)
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
            "best_params": params, "step": 0, "best_val": float("inf"), "bad_evals": 0,
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

  def _refresh_buffer(self, state: dict, thetas: jax.Array, step: int) -> jax.Array:
    """Rolls out the decoded batch and writes the states it visited into the ring buffer."""
    decoded = self._decode_batch(state["params"], thetas)
    n = decoded.shape[0]
    if n < self.config.batch_policies:  # the compiled rollout has a fixed population size
      decoded = jnp.concatenate([decoded, jnp.broadcast_to(decoded[:1], (self.config.batch_policies - n, decoded.shape[1]))])
    keys = jax.random.split(jax.random.fold_in(self.key, 2 * step + 1), self.config.batch_policies)[:, None]
    visited = self._rollout(decoded, keys).obs_samples.reshape(-1, self.policy.obs_size)
    visited = jnp.asarray(np.asarray(visited))  # this process's copy (a multi-process rollout spans them all)
    start = (step // self.config.rollout_every) * len(visited) % self.config.buffer_size
    slots = (start + jnp.arange(len(visited))) % self.config.buffer_size
    return state["buffer"].at[slots].set(visited)

  def evaluate(self, params) -> dict:
    """Validation losses of `params` on the held-out policies and the probe states."""
    return {name: float(loss(params, self.val_thetas, self.probe)) for name, loss in self.val_losses.items()}

  def step_range(self, state: dict, stop: int, progress_fn=None, checkpoint_fn=None) -> dict:
    """Trains from state["step"] up to `stop` (or an early stop); returns the new state."""
    config = self.config
    state = dict(state)
    while state["step"] < stop and not (config.patience and state["bad_evals"] >= config.patience):
      step = state["step"]
      rows = self._rows(step)
      thetas = jnp.asarray(self.thetas[rows], jnp.float32)  # stored: read from the (mapped) file; indices: regenerated
      if config.states == "rollout" and step % config.rollout_every == 0 and step > 0:
        state["buffer"] = self._refresh_buffer(state, thetas, step)
      states = self._states(state, step, rows)
      trained, loss = self.train_step(TrainState(state["params"], state["opt_state"], jnp.int32(step)), thetas, states)
      state["params"], state["opt_state"] = trained.params, trained.opt_state
      state["step"] = step + 1
      if state["step"] % config.eval_every == 0 or state["step"] == stop:
        val = self.evaluate(state["params"])
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
        checkpoint_fn(state)
      if progress_fn is not None and state["step"] % config.eval_every == 0:
        history = state["history"]
        progress_fn("train", state["step"], stop, {"loss": history["train"][-1],
                                                   "val": history[f"val_{config.loss}"][-1]})
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
  config = {**record_config, "train": to_dict(trainer.config), "step": state["step"],
            "best_val": state["best_val"], "bad_evals": state["bad_evals"], "final": final}
  checkpoint.save_artifact(path, jax.tree.map(np.asarray, arrays), kind=KIND, config=config,
                           identity=identity(trainer))


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
           "history": {k: [int(x) if k == "step" else float(x) for x in np.asarray(v)] for k, v in arrays["history"].items()}}
  return state, record


def train(trainer: Trainer, out=None, record_config: dict | None = None,
          progress_fn: ProgressFn | None = None, overwrite: bool = False) -> tuple[dict, np.ndarray, dict]:
  """Trains to the end, resuming from the artifact at `out` if it holds a run of the
  same config, inputs (`record_config["inputs"]`) and versions (ArtifactMismatch naming
  the difference otherwise; `overwrite=True` starts afresh and replaces it),
  checkpointing there every `checkpoint_every` steps and writing the final artifact
  (with the dataset's codes under the best parameters).  Returns (final state, codes
  (N, latent_dim), timings); `train_s` sums the training time of every call that
  worked on this artifact."""
  env, policy = trainer.env, trainer.policy  # recorded so that load_autoencoder can rebuild them
  record_config = {"env": {"name": env.name, "backend": env.backend, "episode_length": env.episode_length},
                   "policy": {"preset": "custom", "hidden": list(policy.hidden), "activation": policy.activation,
                              "init_scheme": policy.init_scheme, "normalize_obs": policy.obs_scale is not None},
                   **(record_config or {})}
  state, before = trainer.init(), 0.0
  if out is not None:
    checkpoint.check_output_path(out, KIND)  # refuses a foreign path before any training
  if out is not None and checkpoint.is_artifact(out) and not overwrite:
    state, record = checkpoint.resuming(load_state, out, trainer, record_config.get("inputs"))
    before = record["config"].get("timings", {}).get("train_s", 0.0)  # time spent by earlier calls
  start = time.perf_counter()
  elapsed = lambda: {"train_s": before + time.perf_counter() - start}
  save = None if out is None else (lambda s: save_state(out, trainer, s, {**record_config, "timings": elapsed()}))
  state = trainer.step_range(state, trainer.config.steps, progress_fn, save)
  if is_multi():  # every process goes on with process 0's parameters (bit-equal where ops are deterministic)
    from jax.experimental import multihost_utils
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
