"""Behaviour autoencoder: losses, shapes and scale, training, checkpoint/resume,
recovery metrics and their controls, bad input."""

import dataclasses
import functools
import json
import re
import shutil
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsc import checkpoint
from lsc.autoencoder import Autoencoder, behaviour_loss, parameter_loss
from lsc.config import to_dict
from lsc.envs import get_env_spec
from lsc.evaluation import EvalProtocol
from lsc.occupancy import OccupancyBatch, mmd2, occupancy_term
from lsc.metrics import latent_points, recovery_metrics, recovery_report, wasserstein_1d
from lsc.policy import MLPPolicy, make_policy, pool_thetas
from lsc.rollout import rollout
from lsc.training import (TrainConfig, Trainer, load_autoencoder, load_state, save_state, train, train_init,
                          train_step)


def permute_first_hidden_layer(policy: MLPPolicy, theta: jax.Array, perm: np.ndarray) -> jax.Array:
  """The same function with the first hidden layer's units reordered."""
  (k1, b1), (k2, b2), *rest = policy.unflatten(theta)
  layers = [(k1[:, perm], b1[perm]), (k2[perm, :], b2), *rest]
  return jnp.concatenate([part.reshape(-1) for layer in layers for part in layer])


def test_behaviour_loss_ignores_hidden_unit_permutations_the_parameter_loss_does_not():
  policy = MLPPolicy(2, 1, (8, 8))
  thetas = pool_thetas(policy, 0, jnp.arange(4))
  states = jax.random.uniform(jax.random.key(1), (32, 2), minval=-1, maxval=1)
  perm = np.random.default_rng(0).permutation(8)
  permuted = jax.vmap(lambda t: permute_first_hidden_layer(policy, t, perm))(thetas)
  scale = jnp.asarray(policy.init_std())
  assert float(behaviour_loss(policy, thetas, thetas, states)) == 0.0
  assert float(behaviour_loss(policy, thetas, permuted, states)) < 1e-10
  assert float(parameter_loss(thetas, thetas, scale)) == 0.0
  assert float(parameter_loss(thetas, permuted, scale)) > 0.1
  other = pool_thetas(policy, 0, jnp.arange(4, 8))
  assert float(behaviour_loss(policy, thetas, other, states)) > 1e-3


def test_train_step_is_pure_jittable_and_scannable():
  policy = MLPPolicy(2, 1, (8,))
  ae = Autoencoder(policy, 2, (16,), (16,))
  config = TrainConfig(latent_dim=2, lr=3e-3)
  thetas = pool_thetas(policy, 0, jnp.arange(32))
  states = jax.random.uniform(jax.random.key(1), (64, 2), minval=-1, maxval=1)
  step = jax.jit(functools.partial(train_step, ae=ae, config=config))
  state = train_init(jax.random.key(0), ae, config)
  once, first = step(state, thetas, states)
  assert int(once.step) == 1 and jax.tree.structure(once) == jax.tree.structure(state)
  # lax.scan of the same step: 200 steps lower the loss, and its first loss is the jitted one's
  final, losses = jax.lax.scan(lambda s, _: step(s, thetas, states), state, None, length=200)
  assert int(final.step) == 200 and float(losses[0]) == float(first) and float(losses[-1]) < 0.5 * float(first)


def test_encode_decode_shapes_and_scale(mc_policy):
  ae = Autoencoder(mc_policy, latent_dim=3)
  params = ae.init(jax.random.key(0))
  thetas = pool_thetas(mc_policy, 0, jnp.arange(5))
  z = ae.encode(params, thetas)
  decoded = ae.decode(params, z)
  assert z.shape == (5, 3) and decoded.shape == (5, mc_policy.num_params)
  # on the scale of the initialisation, not O(1)
  ratio = float(jnp.std(decoded) / jnp.std(thetas))
  assert 0.1 < ratio < 10.0, ratio
  with pytest.raises(ValueError, match="latent_dim must be >= 1"):
    Autoencoder(mc_policy, latent_dim=0)


@pytest.fixture(scope="module")
def small_dataset(mc_policy):
  """120 random medium policies with uniform probe states and visited-like states: the
  fields of an `lsc.dataset.Dataset` that training reads."""
  key = jax.random.key(3)
  low, high = (np.asarray(b, np.float32) for b in get_env_spec("mountain_car").obs_bounds)
  probe = np.asarray(jax.random.uniform(key, (64, 2), minval=low, maxval=high))
  visited = np.asarray(jax.random.uniform(jax.random.fold_in(key, 1), (120, 8, 2), minval=low, maxval=high))
  return types.SimpleNamespace(thetas=np.asarray(pool_thetas(mc_policy, 0, jnp.arange(120))), probe_states=probe,
                               visited_states=visited)


TINY = TrainConfig(latent_dim=2, encoder_widths=(32,), decoder_widths=(32,), batch_policies=16, batch_states=32,
                   lr=3e-3, steps=80, eval_every=20, checkpoint_every=20, patience=0)


def test_training_lowers_the_behaviour_loss(mountain_car, mc_policy, small_dataset):
  trainer = Trainer(mountain_car, mc_policy, small_dataset, TINY)
  loss = lambda params: float(trainer.val_losses["behaviour"](params, trainer.thetas[trainer.train_idx], trainer.probe))
  start = loss(trainer.init()["params"])
  state, codes, _ = train(trainer)
  assert state["history"]["step"] == [20, 40, 60, 80] and codes.shape == (120, 2)
  # on the policies it trained on (108 random policies are too few to generalise from)
  assert loss(state["params"]) < 0.5 * start, (start, loss(state["params"]))


def test_rollout_state_source_fills_the_buffer_with_decoded_policies_states(mountain_car, mc_policy,
                                                                            small_dataset, tmp_path):
  config = TrainConfig(latent_dim=1, encoder_widths=(16,), decoder_widths=(16,), batch_policies=8,
                       batch_states=16, steps=11, eval_every=11, states="rollout", rollout_every=5,
                       buffer_size=64, rollout_samples=4, patience=0)
  trainer = Trainer(mountain_car, mc_policy, small_dataset, config)
  initial = np.asarray(trainer.init()["buffer"])
  state = trainer.step_range(trainer.init(), 11)
  buffer = np.asarray(state["buffer"])
  changed = ~np.all(buffer == initial, axis=1)
  assert changed.sum() == 2 * 8 * 4  # two refreshes (steps 5 and 10) of 8 episodes x 4 states
  # their env steps are counted (episodes end at the goal or the episode length) and survive a resume
  assert 0 < state["env_steps"] <= 2 * 8 * mountain_car.episode_length
  assert trainer.init()["env_steps"] == 0
  half = trainer.step_range(trainer.init(), 6)
  assert 0 < half["env_steps"] < state["env_steps"]
  save_state(tmp_path / "ae", trainer, half, {})
  resumed, _ = load_state(tmp_path / "ae", trainer)
  assert resumed["env_steps"] == half["env_steps"]
  assert trainer.step_range(resumed, 11)["env_steps"] == state["env_steps"]
  assert np.all(buffer[:, 0] >= -1.2) and np.all(buffer[:, 0] <= 0.6)


def test_occupancy_term_is_zero_for_the_original_policy_and_reaches_the_decoder_through_the_dynamics(
    mountain_car, mc_policy, small_dataset, tmp_path):
  x = jnp.asarray(small_dataset.visited_states[0])
  scale = jnp.ones(2)
  assert float(mmd2(x, x, scale, 1.0)) == 0.0 and float(mmd2(x, x + 0.1, scale, 1.0)) > 0.0
  assert float(mmd2(x, x + 0.5, scale, 1.0)) > float(mmd2(x, x + 0.1, scale, 1.0))
  # a perfect reconstruction runs the original's very episodes: distance 0, both episodes' steps counted
  thetas, other = jnp.asarray(small_dataset.thetas[:2]), jnp.asarray(small_dataset.thetas[2:4])
  keys = jax.random.split(jax.random.key(7), 2)
  batch = OccupancyBatch(thetas, keys, jnp.asarray([0.5, 0.03]))
  term = lambda decoded: occupancy_term(mountain_car, mc_policy, 4, decoded, batch, 1.0)
  distance, spent = jax.jit(term)(thetas)
  episodes = [rollout(mountain_car, mc_policy, t, keys[:, None], n_samples=4).env_steps for t in (thetas, other)]
  assert abs(float(distance)) < 1e-6 and int(spent) == 2 * episodes[0]
  assert int(jax.jit(term)(other)[1]) == episodes[0] + episodes[1]
  # another policy is at a distance; cutting the gradient every 10 steps leaves it there, and its gradient (through
  # the car's dynamics) is finite and non-zero
  truncated = lambda decoded: occupancy_term(mountain_car, mc_policy, 4, decoded, batch, 1.0, grad_horizon=10)[0]
  assert float(term(other)[0]) > 0.0 and float(jax.jit(truncated)(other)) == float(jax.jit(term)(other)[0])
  grad = jax.jit(jax.grad(truncated))(other)
  assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0.0

  # in training: the episodes' env steps are counted (episodes end at the goal or the episode length) and resumed
  config = TrainConfig(latent_dim=1, encoder_widths=(16,), decoder_widths=(16,), batch_policies=8, batch_states=16,
                       steps=3, eval_every=3, patience=0, rollout_samples=4, occupancy_weight=0.1,
                       occupancy_policies=2)
  trainer = Trainer(mountain_car, mc_policy, small_dataset, config)
  state = trainer.step_range(trainer.init(), 3)
  assert 3 * 2 * 2 <= state["env_steps"] <= 3 * 2 * 2 * mountain_car.episode_length
  half = trainer.step_range(trainer.init(), 2)
  save_state(tmp_path / "ae", trainer, half, {})
  resumed, _ = load_state(tmp_path / "ae", trainer)
  assert resumed["env_steps"] == half["env_steps"] and trainer.step_range(resumed, 3)["env_steps"] == state["env_steps"]
  with pytest.raises(ValueError, match="occupancy_policies \\(9\\) must be <= batch_policies \\(8\\)"):
    dataclasses.replace(config, occupancy_policies=9).check()
  off = dataclasses.replace(config, occupancy_weight=0.0, occupancy_policies=9, occupancy_horizon=5)
  off.check()  # settings of a term that is off are not checked against the batch ...
  # ... nor recorded (records from before the term match), while a run with it on records every one
  assert not any(k.startswith("occupancy") for k in to_dict(off)) and to_dict(config)["occupancy_horizon"] == 10


def test_own_state_source_compares_each_policy_on_its_own_visited_states(mountain_car, mc_policy, small_dataset):
  policy = mc_policy
  thetas = jnp.asarray(small_dataset.thetas[:3])
  other = jnp.asarray(small_dataset.thetas[3:6])
  shared = jnp.asarray(small_dataset.probe_states[:5])
  # per-policy states equal to the shared ones give the shared loss; otherwise policy i sees only its own
  loss = float(behaviour_loss(policy, thetas, other, shared))
  assert float(behaviour_loss(policy, thetas, other, jnp.broadcast_to(shared, (3, 5, 2)))) == pytest.approx(loss)
  own = jnp.asarray(small_dataset.visited_states[:3, :5])
  by_hand = np.mean([np.sum((policy.apply(thetas[i], own[i]) - policy.apply(other[i], own[i])) ** 2, -1)
                     for i in range(3)])
  assert float(behaviour_loss(policy, thetas, other, own)) == pytest.approx(by_hand, rel=1e-5)

  config = dataclasses.replace(TINY, states="own", steps=40)
  trainer = Trainer(mountain_car, policy, small_dataset, config)
  state = trainer.init()
  rows = trainer._rows(7)
  states = np.asarray(trainer._states(state, 7, rows))
  assert states.shape == (len(rows), 32, 2)
  for i, row in enumerate(rows):  # first half: the policy's own visited states; second half: shared by the batch
    assert all(any(np.array_equal(s, v) for v in small_dataset.visited_states[row]) for s in states[i, :16])
    np.testing.assert_array_equal(states[i, 16:], states[0, 16:])
  own_loss = lambda params: float(behaviour_loss(policy, jnp.asarray(small_dataset.thetas), ae_rec(params),
                                                 jnp.asarray(small_dataset.visited_states)))
  ae_rec = lambda params: trainer.ae.reconstruct(params, jnp.asarray(small_dataset.thetas))
  start = own_loss(state["params"])
  trained = trainer.step_range(state, 40)
  assert own_loss(trained["params"]) < 0.5 * start
  with pytest.raises(ValueError, match="visited states"):
    Trainer(mountain_car, policy, types.SimpleNamespace(**{**vars(small_dataset),
                                                          "visited_states": small_dataset.visited_states[:5]}), config)


def test_actions_encoder_ignores_permutations_and_generalises_better(mountain_car, mc_policy, small_dataset):
  probe = small_dataset.probe_states
  ae = Autoencoder(mc_policy, 2, (16,), (16,), encoder_input="actions", probe=probe)
  assert ae.input_size == 64 * mc_policy.action_size
  params = ae.init(jax.random.key(0))
  thetas = jnp.asarray(small_dataset.thetas[:4])
  perm = np.random.default_rng(1).permutation(mc_policy.hidden[0])
  permuted = jax.vmap(lambda t: permute_first_hidden_layer(mc_policy, t, perm))(thetas)
  np.testing.assert_allclose(ae.encode(params, permuted), ae.encode(params, thetas), atol=1e-5)
  assert ae.encode(params, thetas[0]).shape == (2,)
  with pytest.raises(ValueError, match="needs the probe states"):
    Autoencoder(mc_policy, 2, encoder_input="actions")
  with pytest.raises(ValueError, match="unknown encoder input"):
    Autoencoder(mc_policy, 2, encoder_input="weights")
  # held-out policies: the parameter encoder memorises its 108, the action encoder does not
  val = {}
  for name in ("parameters", "actions"):
    trainer = Trainer(mountain_car, mc_policy, small_dataset, dataclasses.replace(TINY, encoder_input=name))
    state = trainer.step_range(trainer.init(), TINY.steps)
    val[name] = state["best_val"]
  assert val["actions"] < 0.7 * val["parameters"], val


def test_checkpoint_resume_continues_at_the_same_step_with_the_same_loss(mountain_car, mc_policy,
                                                                          small_dataset, tmp_path):
  trainer = Trainer(mountain_car, mc_policy, small_dataset, TINY)
  full, _, _ = train(trainer)
  path = tmp_path / "ae"

  def killed(stage, step, total, info):
    assert stage == "train" and total == TINY.steps and set(info) == {"loss", "val"}
    if step == 40:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    train(trainer, path, progress_fn=killed)
  resumed_state, record = load_state(path, trainer)
  assert resumed_state["step"] == 40 and not record["config"]["final"]
  resumed, codes, _ = train(trainer, path)
  assert resumed["history"] == full["history"]
  for a, b in zip(jax.tree.leaves(resumed["params"]), jax.tree.leaves(full["params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  arrays, record = checkpoint.load_artifact(path, kind="autoencoder")
  assert record["config"]["final"] and arrays["codes"].shape == (120, 2)
  trained = load_autoencoder(path)  # train() alone records what rebuilds the env and policy
  assert trained.ae.policy == mc_policy and trained.codes.shape == (120, 2)
  np.testing.assert_array_equal(trained.codes, codes)  # the codes train() returned, under the best parameters
  other = Trainer(mountain_car, mc_policy, small_dataset, TrainConfig(**{**TINY.__dict__, "lr": 1e-2}))
  with pytest.raises(checkpoint.ArtifactMismatch, match="lr"):
    load_state(path, other)


def test_compress_in_memory_writes_nothing_and_gives_the_numbers_and_digest_of_a_saved_run(
    mountain_car, mc_policy, small_dataset, tmp_path, monkeypatch):
  from lsc.compression import compress
  from lsc.config import EnvConfig, PolicyConfig
  from lsc.dataset import CollectConfig, Dataset, save_dataset
  n = len(small_dataset.thetas)  # members 0..119 of pool 0, as a 1200-member pool keeping 10 % would hold them
  config = CollectConfig(EnvConfig("mountain_car"), PolicyConfig("medium"), pool=1200, keep=0.1, n_probe=64).resolved()
  dataset = Dataset(thetas=small_dataset.thetas, indices=np.arange(n), descriptors=np.zeros((n, 64), np.float32),
                    novelty=np.zeros(n, np.float32), probe_states=small_dataset.probe_states,
                    visited_states=small_dataset.visited_states, returns=np.zeros((n, 4), np.float32),
                    random_indices=np.arange(n), random_returns=np.zeros((n, 4), np.float32),
                    pool_novelty=np.zeros(1200, np.float32), config=config,
                    identity={**checkpoint.policy_identity(mountain_car, mc_policy), "source": "filter"},
                    env_steps=0, env_steps_by_stage={}, timings={"probe_s": 1.0})
  save_dataset(tmp_path / "data", dataset)
  monkeypatch.chdir(tmp_path)
  memory = compress(dataset, TINY, protocol=EvalProtocol(1, 9))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no out: nothing written
  saved = compress(tmp_path / "data", TINY, tmp_path / "ae", protocol=EvalProtocol(1, 9))
  assert json.loads((tmp_path / "ae" / "recovery.json").read_text()) == saved.summary
  assert memory.summary["dataset"] is None and saved.summary["dataset"] == str(tmp_path / "data")
  same = lambda summary: {k: v for k, v in summary.items() if k not in ("dataset", "timings")}
  assert same(memory.summary) == same(saved.summary) and memory.history == saved.history
  assert memory.summary["recovery"] == saved.summary["recovery"] and set(memory.recovery) == {"trained", "untrained",
                                                                                              "random"}
  np.testing.assert_array_equal(memory.landscape["returns"], saved.landscape["returns"])
  loaded = load_autoencoder(tmp_path / "ae" / "model")  # what compress(...).autoencoder replaces
  assert saved.autoencoder.record == loaded.record
  for trained in (saved.autoencoder, loaded):
    assert trained.ae == memory.autoencoder.ae
    np.testing.assert_array_equal(trained.codes, memory.autoencoder.codes)
    for a, b in zip(jax.tree.leaves(trained.params), jax.tree.leaves(memory.autoencoder.params), strict=True):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # the in-memory dataset's digest is the one its artifact records: either resumes a run trained on the other
  assert memory.autoencoder.record["config"]["inputs"] == {"dataset": checkpoint.digest(tmp_path / "data")}
  assert loaded.record["config"]["inputs"] == memory.autoencoder.record["config"]["inputs"]
  assert memory.autoencoder.record["config"]["step"] == loaded.record["config"]["step"] == TINY.steps
  # the same training on the same dataset read from elsewhere: the same digest (it named the dataset's path)
  shutil.copytree(tmp_path / "data", tmp_path / "copy")
  compress(tmp_path / "copy", TINY, tmp_path / "elsewhere", protocol=EvalProtocol(1, 9))
  assert checkpoint.digest(tmp_path / "elsewhere" / "model") == checkpoint.digest(tmp_path / "ae" / "model")


def test_bad_datasets_are_refused(mountain_car, mc_policy, small_dataset):
  for thetas, fragment in [(small_dataset.thetas[:, :10], "must have shape \\(N, 1185\\)"),
                           (small_dataset.thetas[:0], "holds 0 policies"),
                           (np.where(np.arange(120)[:, None] == 7, np.nan, small_dataset.thetas),
                            "NaN or inf in 1 policies \\(first: row 7\\)"),
                           (np.where(np.arange(120)[:, None] == 9, 1e30, small_dataset.thetas),  # a novelty search's
                            "parameters have exploded: a parameter of row 9 is .* times its init std, beyond 10,000")]:
    with pytest.raises(ValueError, match=fragment):
      Trainer(mountain_car, mc_policy, types.SimpleNamespace(**{**vars(small_dataset), "thetas": thetas}), TINY)
  with pytest.raises(ValueError, match="unknown loss"):
    Trainer(mountain_car, mc_policy, small_dataset, TrainConfig(loss="actions"))
  with pytest.raises(ValueError, match="latent_dim must be >= 1"):
    Trainer(mountain_car, mc_policy, small_dataset, TrainConfig(latent_dim=0))


def test_recovery_metrics_on_hand_made_returns():
  a = np.array([0.0, 10.0, 5.0, 2.0])
  b = np.array([1.0, 9.0, 5.0, 2.0])
  c = np.array([-2.0, 4.0, 12.0])
  m = recovery_metrics(a, b, c)
  assert m["recovery"] == pytest.approx(14 / 10) and m["best_recovery"] == pytest.approx(12 / 10)
  assert m["error_median"] == pytest.approx(0.05) and m["error_p90"] == pytest.approx(0.1)
  assert m["wasserstein"] == pytest.approx(wasserstein_1d(a, b) / 10)
  assert wasserstein_1d([0, 1], [1, 2]) == pytest.approx(1.0)
  grid = latent_points(np.array([[0.0, 1.0], [2.0, 3.0]]), 9, jax.random.key(0))
  assert grid.shape == (9, 2) and grid.min(axis=0).tolist() == [0, 1] and grid.max(axis=0).tolist() == [2, 3]


def test_controls_run_through_the_same_code(mountain_car, small_dataset):
  policy = make_policy(mountain_car, "medium")
  ae = Autoencoder(policy, 1, (16,), (16,))
  params = ae.init(jax.random.key(5))  # an untrained "trained" model: it must match its control
  report = recovery_report(mountain_car, policy, ae, params, small_dataset.thetas[:16],
                           EvalProtocol(1, 9), pool_seed=0, seed=0)
  assert set(report) == {"trained", "untrained", "random", "landscape"}
  assert report["landscape"]["z"].shape == (16, 1) and report["landscape"]["returns"].shape == (16, 4)
  assert set(report["trained"]) == {"goal", "left", "height", "speed", "mean"}
  # the same code with the same initialisation key gives the same numbers
  untrained_again = recovery_report(mountain_car, policy, ae, ae.init(jax.random.fold_in(jax.random.key(0), 1)),
                                    small_dataset.thetas[:16], EvalProtocol(1, 9), pool_seed=0, seed=0)
  assert untrained_again["trained"]["speed"] == report["untrained"]["speed"]
  assert report["random"]["speed"]["error_median"] > 0


def test_training_from_pool_indices_gives_the_losses_of_the_stored_parameters(mountain_car, mc_policy,
                                                                               small_dataset):
  """A dataset that stores pool indices (`PoolMembers`, regenerated batch by batch)
  trains to the very parameters and losses of the same members stored."""
  from lsc.evaluation import PoolMembers
  members = PoolMembers(mc_policy, 0, np.arange(120))
  indexed = types.SimpleNamespace(**{**vars(small_dataset), "thetas": members})
  config = dataclasses.replace(TINY, steps=40)
  stored, _, _ = train(Trainer(mountain_car, mc_policy, small_dataset, config))
  regenerated, codes, _ = train(Trainer(mountain_car, mc_policy, indexed, config))
  assert regenerated["history"] == stored["history"] and codes.shape == (120, 2)
  for a, b in zip(jax.tree.leaves(regenerated["params"]), jax.tree.leaves(stored["params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(members[[3, 7]]), small_dataset.thetas[[3, 7]])


def test_a_diverged_or_unimproved_training_is_refused_and_never_saved(mountain_car, mc_policy, small_dataset,
                                                                      tmp_path):
  # lr 1e10: NaN from step 2; the checkpoint of step 5 (no evaluation there) is refused, so nothing is written
  diverging = Trainer(mountain_car, mc_policy, small_dataset, dataclasses.replace(TINY, lr=1e10, checkpoint_every=5))
  with pytest.raises(ValueError, match=r"training diverged by step 5: .*NaN or inf; lower the learning rate "
                                       r"\(train.lr / --lr, now 1e\+10\)"):
    train(diverging, tmp_path / "diverged")
  assert not checkpoint.is_artifact(tmp_path / "diverged")
  # finite but worse than the initial weights all along: early stopping would keep those; refused instead
  unimproved = Trainer(mountain_car, mc_policy, small_dataset, dataclasses.replace(TINY, lr=1.0))
  with pytest.raises(ValueError, match=r"did not improve on the initial weights: the best validation behaviour loss "
                                       r"\S+ is not below the initial \S+; lower train.lr / --lr \(now 1\)"):
    train(unimproved, tmp_path / "unimproved")
  with pytest.raises(ValueError, match="unfinished checkpoint"):
    load_autoencoder(tmp_path / "unimproved")
  # a checkpoint holding a diverged state (an older lsc could write one) is not resumed from
  trainer = Trainer(mountain_car, mc_policy, small_dataset, TINY)
  state = trainer.init()
  history = {"step": [20], "train": [np.nan], "val_behaviour": [np.nan], "val_parameter": [np.nan]}
  save_state(tmp_path / "nan", trainer, {**state, "params": jax.tree.map(lambda x: x * np.nan, state["params"]),
                                         "step": 20, "history": history}, {})
  with pytest.raises(ValueError, match="holds a diverged state .*--overwrite"):
    train(trainer, tmp_path / "nan")


def test_too_few_held_out_policies_are_refused_before_any_work_and_undefined_metrics_are_null(
    mountain_car, mc_policy, small_dataset):
  from lsc.compression import recovery_table
  from lsc import jsonfile
  from lsc.metrics import check_recovery_points
  with pytest.raises(ValueError, match=r"val_fraction 0.01 holds out 1 of the dataset's 120 policies; validation "
                                       r"and recovery need >= 2 for latent_dim 1: raise train.val_fraction"):
    Trainer(mountain_car, mc_policy, small_dataset, dataclasses.replace(TINY, latent_dim=1, val_fraction=0.01))
  with pytest.raises(ValueError, match="holds out 3 of the dataset's 32 policies; .* need >= 4 for latent_dim 2"):
    TrainConfig(latent_dim=2).check(dataset_size=32)  # a 2-D grid of 3 points is 1 point: no range
  with pytest.raises(ValueError, match="leave 4 to train on, not more than latent_dim 4"):
    TrainConfig(latent_dim=4, val_fraction=0.5).check(dataset_size=8)
  with pytest.raises(ValueError, match=r"recovery_points must be >= 4 .*got 3"):
    check_recovery_points(2, 3)
  ae = Autoencoder(mc_policy, 1, (16,), (16,))
  with pytest.raises(ValueError, match="recovery needs >= 2 held-out policies .*got 1"):
    recovery_report(mountain_car, mc_policy, ae, ae.init(jax.random.key(0)), small_dataset.thetas[:1],
                    EvalProtocol(1, 9), pool_seed=0)
  # a task on which every held-out policy returns the same has no range: null in strict JSON, n/a in the table
  undefined = recovery_metrics(np.ones(4), np.ones(4), np.arange(3.0))
  assert np.isnan(undefined["recovery"])
  report = {row: {"speed": undefined, "mean": undefined} for row in ("trained", "untrained", "random")}
  text = jsonfile.dumps({"recovery": report, "z": np.array([np.nan, 1.0])})
  assert json.loads(text)["recovery"]["trained"]["speed"]["recovery"] is None and json.loads(text)["z"] == [None, 1.0]
  assert "| trained | speed | n/a | n/a |" in recovery_table(json.loads(text)["recovery"], ["speed"])


def test_every_train_setting_is_checked_before_work():
  for changes, fragment in [({"activation": "foo"}, "unknown activation 'foo'; valid: elu, tanh, relu"),
                            ({"encoder_widths": 16}, "encoder_widths must be a list of layer widths"),
                            ({"decoder_widths": (16, 0)}, "decoder_widths width must be >= 1, got 0"),
                            ({"patience": -1}, "patience must be >= 0"),
                            ({"lr": 0.0}, "lr must be > 0, got 0.0"),
                            ({"states": "rollout", "buffer_size": 100}, "256 states into the buffer, more than its "
                                                                       "buffer_size 100")]:
    with pytest.raises(ValueError, match=re.escape(fragment)):
      dataclasses.replace(TINY, **changes).check()


def test_train_step_and_train_init_refuse_bad_shapes_and_learning_rates_before_tracing():
  policy = MLPPolicy(2, 1, (8,))  # 33 parameters
  ae = Autoencoder(policy, 2, (16,), (16,))
  config = TrainConfig(latent_dim=2, lr=3e-3)  # the compiled step of test_train_step_is_pure_jittable_and_scannable
  state = train_init(jax.random.key(0), ae, config)
  states = jnp.zeros((64, 2))
  for step in (functools.partial(train_step, ae=ae, config=config), jax.jit(functools.partial(train_step, ae=ae,
                                                                                              config=config))):
    with pytest.raises(ValueError, match="thetas have 57 columns, the autoencoder's policy has 33 parameters"):
      step(state, jnp.zeros((4, 57)), states)
    with pytest.raises(ValueError, match=re.escape("states must have shape (M, 2) or (B, M, 2)")):
      step(state, jnp.zeros((4, 33)), jnp.zeros((64, 3)))
    with pytest.raises(ValueError, match="must match the 4 policies of thetas, got 5"):
      step(state, jnp.zeros((4, 33)), jnp.zeros((5, 8, 2)))
  for lr in (float("nan"), float("inf"), 0.0, -1e-3):
    with pytest.raises(ValueError, match="lr must be"):
      train_init(jax.random.key(0), ae, dataclasses.replace(config, lr=lr))


def test_a_training_no_machine_could_hold_is_refused_in_one_line_before_compiling(mountain_car, mc_policy,
                                                                                 small_dataset, monkeypatch):
  import lsc.training
  import lsc.validate
  monkeypatch.setattr(lsc.validate, "memory_limit", lambda: 16 * 10**9)
  monkeypatch.setattr(lsc.training, "compiled_train_step", None)  # refused before the step is even built
  huge = dataclasses.replace(TINY, batch_states=10_000_000)
  with pytest.raises(ValueError, match=r"^training needs about \S+ GB of memory \(batch_policies 16 x batch_states "
                                       r"10,000,000 .*\), more than this machine's 16.0 GB; make it smaller$"):
    Trainer(mountain_car, mc_policy, small_dataset, huge)
  with pytest.raises(ValueError, match="training needs about"):  # the `actions` encoder on 10^8 probe states
    TINY.check(policy=mc_policy, n_probe=10**8)
  TINY.check(dataset_size=120, policy=mc_policy, n_probe=64)  # the tests' own size fits
