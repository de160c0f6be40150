"""Stages 1-2: probe states, descriptors, the kept dataset, its artifact, `lsc collect`."""

import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from lsc import checkpoint
from lsc.config import EnvConfig, PolicyConfig
from lsc.dataset import (PROBE_MEMBERS, CollectConfig, Dataset, collect, descriptors, load_dataset, pool_descriptors,
                         rollout_probe_states, save_dataset, training_inputs)
from lsc.envs import make_env
from lsc.evaluation import EvalProtocol, evaluate, evaluate_members
from lsc.policy import make_policy, pool_thetas

TINY = CollectConfig(env=EnvConfig("mountain_car", episode_length=200), policy=PolicyConfig("small"),
                     pool=300, keep=0.1, n_neighbors=5, n_probe=32, eval_episodes=2, seed=3)


@pytest.fixture(scope="module")
def dataset():
  return collect(TINY)


def test_dataset_has_the_requested_size_and_fields(dataset):
  assert dataset.thetas.shape == (30, 17) and len(set(dataset.indices.tolist())) == 30
  assert dataset.descriptors.shape == (30, 32) and dataset.probe_states.shape == (32, 2)
  assert dataset.returns.shape == (30, 4) and dataset.visited_states.shape == (30, 32, 2)
  assert dataset.pool_novelty.shape == (300,)
  # the kept members are the most novel of the pool, and regenerate from (seed, index)
  assert dataset.novelty.min() >= np.sort(dataset.pool_novelty)[-30]
  policy = make_policy(make_env("mountain_car"), "small")
  np.testing.assert_array_equal(dataset.thetas, pool_thetas(policy, 3, jnp.asarray(dataset.indices)))
  assert dataset.env_steps > 0


def test_kept_members_are_more_diverse_than_random_ones(dataset):
  policy = make_policy(make_env("mountain_car"), "small")
  pool = pool_descriptors(policy, 3, 300, dataset.probe_states, block_size=128)
  np.testing.assert_allclose(pool[dataset.indices], dataset.descriptors, atol=1e-6)

  def mean_pairwise(x):
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    return d[np.triu_indices(len(x), 1)].mean()

  random_subset = np.random.default_rng(0).choice(300, 30, replace=False)
  assert mean_pairwise(dataset.descriptors) > mean_pairwise(pool[random_subset])


def test_uniform_probe_states_lie_inside_the_bounds(dataset):
  probe = dataset.probe_states
  assert np.all(probe >= [-1.2, -0.07]) and np.all(probe <= [0.6, 0.07])
  assert probe[:, 0].max() - probe[:, 0].min() > 1.0  # they cover the range


def test_descriptors_are_actions_on_probe_states():
  policy = make_policy(make_env("mountain_car"), "medium")
  thetas = pool_thetas(policy, 0, jnp.arange(3))
  probe = jnp.array([[-0.5, 0.0], [0.1, 0.05]])
  d = descriptors(policy, thetas, probe)
  assert d.shape == (3, 2)
  np.testing.assert_allclose(d[1, 1], policy.apply(thetas[1], probe[1])[0], rtol=1e-6)


def test_rollout_probe_states_were_visited_by_probe_members_of_no_pool(hopper, hopper_policy):
  probe, steps = rollout_probe_states(hopper, hopper_policy, 11, 40, 8)
  assert probe.shape == (40, 11) and len(np.unique(probe, axis=0)) == 40 and steps > 0
  seen = lambda members: evaluate_members(hopper, hopper_policy, 11, members, EvalProtocol(1, 11),
                                          n_samples=5).obs_samples.reshape(-1, 11)
  probe_states, pool_states = seen(PROBE_MEMBERS + np.arange(8)), seen(np.arange(8))
  assert all(np.any(np.all(probe_states == s, axis=1)) for s in probe)
  # the pool's own members never serve as probe policies (collect once probed with pool seed + 1's)
  assert not any(np.any(np.all(pool_states == s, axis=1)) for s in probe)


def test_the_default_evaluation_seeds_are_distinct():
  from lsc.compression import RECOVERY_PROTOCOL
  from lsc.search import SEARCH_EVAL, Search
  seeds = {CollectConfig().eval_seed, RECOVERY_PROTOCOL.seed, SEARCH_EVAL.seed}
  assert len(seeds) == 3 and Search.run.__defaults__[0] is SEARCH_EVAL


def test_artifact_round_trips_and_refuses_other_envs_and_shapes(dataset, tmp_path):
  save_dataset(tmp_path / "ds", dataset)
  env = make_env("mountain_car", episode_length=200)
  loaded, record = load_dataset(tmp_path / "ds", env, make_policy(env, "small"))
  for name in loaded.ARRAYS:
    np.testing.assert_array_equal(getattr(loaded, name), getattr(dataset, name))
  assert loaded.config == dataset.config and loaded.env_steps == dataset.env_steps
  assert loaded.env_steps_by_stage == dataset.env_steps_by_stage and loaded.identity == dataset.identity
  assert record["config"]["pool"] == 300 and record["config"]["tasks"] == ["goal", "left", "height", "speed"]
  with pytest.raises(checkpoint.ArtifactMismatch, match="policy.num_params: artifact has 17, expected 1185"):
    load_dataset(tmp_path / "ds", env, make_policy(env, "medium"))
  hopper = make_env("hopper", backend="spring")
  with pytest.raises(checkpoint.ArtifactMismatch, match="env: artifact has 'mountain_car'.*backend"):
    load_dataset(tmp_path / "ds", hopper)


def test_interrupted_collect_leaves_no_artifact_and_a_rerun_completes(tmp_path):
  path = tmp_path / "ds"

  def interrupt(stage, done, total, info):
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    save_dataset(path, collect(TINY, interrupt))
  assert not checkpoint.is_artifact(path) and not path.exists()
  save_dataset(path, collect(TINY))
  assert checkpoint.is_artifact(path)


@pytest.mark.parametrize("args,fragment", [
    (["--pool", "10", "--n-neighbors", "10"], "n_neighbors must be in [1, pool size - 1] = [1, 9], got 10"),
    (["--keep", "0"], "keep must be a fraction in (0, 1], got 0.0"),
    (["--keep", "1.5"], "keep must be a fraction in (0, 1], got 1.5"),
    (["--n-probe", "0"], "n_probe, probe_policies and eval_episodes must be >= 1"),
    (["--probe", "grid"], "unknown probe mode 'grid'; valid modes: uniform, rollout"),
    (["--env", "cartpole"], "unknown env 'cartpole'; valid envs"),
    (["--generations", "1", "--mutation-std", "1e30"], "mutation_std must be <= 10 (init stds per parameter"),
])
def test_collect_bad_input_is_a_one_line_error(args, fragment, tmp_path):
  argv = ["collect", "--env", "mountain_car", "--out", str(tmp_path / "x"), *args]
  done = subprocess.run([sys.executable, "-m", "lsc.cli", *argv], capture_output=True, text=True, timeout=300)
  assert done.returncode == 2 and fragment in done.stderr
  assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_n_random_sets_how_many_random_members_are_evaluated():
  import dataclasses
  dataset = collect(dataclasses.replace(TINY, n_random=3))
  assert dataset.random_indices.shape == (3,) and dataset.random_returns.shape[0] == 3
  assert len(np.unique(dataset.random_indices)) == 3
  with pytest.raises(ValueError, match="n_random must be in \\[1, pool size"):
    dataclasses.replace(TINY, n_random=0).resolved()


def test_iterated_novelty_search_is_reward_free_keeps_its_archive_and_is_the_filter_at_zero_generations(
    dataset, monkeypatch):
  import dataclasses

  import lsc.evaluation
  import lsc.rollout
  import lsc.tasks
  from lsc.novelty_search import Archive, most_novel_of, novelty_search, offspring_of, search_key
  policy = make_policy(make_env("mountain_car"), "small")
  archive = Archive(dataset.thetas, dataset.descriptors, dataset.novelty, dataset.indices)

  def no_rewards(*args, **kwargs):
    raise AssertionError("the novelty search computed a task reward / rolled out an episode")

  with monkeypatch.context() as patch:  # any reward or episode would go through one of these
    for module, name in [(lsc.tasks, "task_rewards"), (lsc.rollout, "rollout"), (lsc.rollout, "rollout_fn"),
                         (lsc.evaluation, "rollout"), (lsc.evaluation, "evaluate")]:
      patch.setattr(module, name, no_rewards)
    searched = novelty_search(policy, archive, dataset.probe_states, 3, 4, 20, 0.5, 5)
    children = offspring_of(policy, archive, dataset.probe_states, search_key(3), 20, 0.5)
    first = most_novel_of(archive, children, 5)
  # the archive keeps its size; its members' descriptors are their actions on the probe
  assert len(searched) == len(archive) == 30 and (searched.indices == -1).any()
  np.testing.assert_allclose(searched.descriptors, descriptors(policy, jnp.asarray(searched.thetas),
                                                               jnp.asarray(dataset.probe_states)), atol=1e-5)
  # one generation: exact kNN novelty among archive + children (brute force here), the 30 most novel kept
  merged = np.concatenate([archive.descriptors, children.descriptors])
  distances = np.sqrt(((merged[:, None] - merged[None]) ** 2).sum(-1))
  np.fill_diagonal(distances, np.inf)
  scores = np.sort(distances, axis=1)[:, :5].mean(axis=1)
  np.testing.assert_allclose(first.novelty, np.sort(scores)[::-1][:30], rtol=1e-4)
  assert first.novelty.mean() > archive.novelty.mean()  # not vacuous: children displaced members
  # zero generations: the archive itself, and collect() is the one-shot filter
  assert novelty_search(policy, archive, dataset.probe_states, 3, 0, 20, 0.5, 5) is archive
  same = collect(dataclasses.replace(TINY, generations=0, offspring=7, mutation_std=0.5))
  for name in Dataset.ARRAYS:
    np.testing.assert_array_equal(getattr(same, name), getattr(dataset, name))


def test_a_novelty_search_dataset_is_evaluated_as_the_filter_is_and_records_its_source(dataset, tmp_path):
  import dataclasses
  searched = collect(dataclasses.replace(TINY, generations=2, mutation_std=0.5))
  assert searched.thetas.shape == dataset.thetas.shape and searched.returns.shape == dataset.returns.shape
  assert searched.env_steps_by_stage["kept"] > 0 and (searched.indices == -1).any()
  assert searched.novelty.mean() > dataset.novelty.mean() * 0.5  # scored among archive + children
  save_dataset(tmp_path / "d", searched)
  loaded, record = load_dataset(tmp_path / "d")
  assert record["identity"]["source"] == "novelty_search" and loaded.config.generations == 2
  np.testing.assert_array_equal(loaded.thetas, searched.thetas)
  policy = make_policy(make_env("mountain_car", episode_length=200), "small")
  fresh = evaluate(make_env("mountain_car", episode_length=200), policy, searched.thetas,
                   EvalProtocol(2, TINY.eval_seed))
  np.testing.assert_allclose(fresh.returns, searched.returns, rtol=1e-5)
  # the union: the filter's members first, then the search's own policies, each evaluated as in its source
  union = collect(dataclasses.replace(TINY, generations=2, mutation_std=0.5, union=True))
  new = searched.indices == -1
  assert len(union.thetas) == len(dataset.thetas) + new.sum() <= 2 * len(dataset.thetas)
  np.testing.assert_array_equal(union.thetas, np.concatenate([dataset.thetas, searched.thetas[new]]))
  np.testing.assert_array_equal(union.indices[:len(dataset.thetas)], dataset.indices)
  np.testing.assert_allclose(union.returns, np.concatenate([dataset.returns, searched.returns[new]]), rtol=1e-5)
  save_dataset(tmp_path / "u", union)
  record = checkpoint.read_record(tmp_path / "u")
  assert record["identity"]["source"] == "union"
  assert training_inputs(record)["dataset_size"] == len(union.thetas)
  assert "dataset_size" not in checkpoint.read_record(tmp_path / "d")["config"]  # other records unchanged


def test_a_dataset_can_store_pool_indices_instead_of_parameters(dataset, tmp_path, monkeypatch):
  """store "indices": the same dataset, its parameters regenerated where read; the
  artifact holds no parameters, and a member checksum that no longer matches is refused."""
  import dataclasses

  from lsc.evaluation import PoolMembers
  indexed = collect(dataclasses.replace(TINY, store="indices"))
  assert isinstance(indexed.thetas, PoolMembers) and indexed.thetas.shape == dataset.thetas.shape
  np.testing.assert_array_equal(np.asarray(indexed.thetas), dataset.thetas)
  np.testing.assert_array_equal(indexed.returns, dataset.returns)
  save_dataset(tmp_path / "ds", indexed)
  arrays, record = checkpoint.load_artifact(tmp_path / "ds")
  assert "thetas" not in arrays and record["config"]["store"] == "indices"
  loaded, _ = load_dataset(tmp_path / "ds")
  np.testing.assert_array_equal(np.asarray(loaded.thetas[np.arange(5)]), dataset.thetas[:5])
  with pytest.raises(ValueError, match="a novelty search"):
    dataclasses.replace(TINY, store="indices", generations=1).resolved()
  monkeypatch.setattr(PoolMembers, "checksum", lambda self, rows=256: "0" * 20)  # as if JAX's RNG had changed
  with pytest.raises(checkpoint.ArtifactMismatch, match="regenerated here differ"):
    load_dataset(tmp_path / "ds")


@pytest.mark.parametrize("changes,fragment", [
    ({"visited_per_episode": 0}, "visited_per_episode must be >= 1"),
    ({"policy": PolicyConfig("small", activation="foo")}, "unknown activation 'foo'; valid: tanh, relu"),
    ({"policy": PolicyConfig("small", init_scheme="zeros")}, "unknown init_scheme 'zeros'"),
    ({"env": EnvConfig("mountain_car", backend="spring")}, "unknown backend 'spring' for mountain_car; valid: jax"),
    ({"probe": "rollout", "n_probe": 500, "probe_policies": 2}, "n_probe 500 distinct states cannot come from "
                                                                 "probe_policies 2 episodes of 200 steps"),
    ({"generations": 1, "offspring": 4, "n_neighbors": 40}, "n_neighbors must be < the 34 members a novelty search "
                                                             "generation scores"),
    ({"generations": 1, "mutation_std": 1e30}, "mutation_std must be <= 10"),
    ({"union": True}, "union joins the filter's members and a novelty search's: it needs generations > 0"),
])
def test_every_collect_setting_is_checked_before_work(changes, fragment):
  import dataclasses
  with pytest.raises(ValueError, match=re.escape(fragment)):
    dataclasses.replace(TINY, **changes).resolved()


def test_exploding_parameters_are_refused_where_the_search_makes_them_and_never_saved(dataset, tmp_path):
  import dataclasses

  from lsc.novelty_search import Archive, novelty_search
  policy = make_policy(make_env("mountain_car"), "small")
  archive = Archive(dataset.thetas, dataset.descriptors, dataset.novelty, dataset.indices)
  with pytest.raises(ValueError, match=r"the novelty search's children have exploded: a parameter of row \d+ is "
                                       r"\S+ times its init std, beyond 10,000; lower collect.mutation_std / "
                                       r"--mutation-std \(now 1e\+30\)"):
    novelty_search(policy, archive, dataset.probe_states, 3, 1, 20, 1e30, 5)
  for thetas, fragment in [(dataset.thetas * 1e30, "the dataset's parameters have exploded"),
                           (np.where(np.arange(30)[:, None] == 4, np.inf, dataset.thetas),
                            "the dataset's parameters hold NaN or inf in 1 policies (first: row 4)")]:
    with pytest.raises(ValueError, match=re.escape(fragment)):
      save_dataset(tmp_path / "ds", dataclasses.replace(dataset, thetas=thetas))
    assert not checkpoint.is_artifact(tmp_path / "ds")


def test_a_collect_no_machine_could_hold_is_refused_before_work(monkeypatch):
  import dataclasses

  import lsc.validate
  monkeypatch.setattr(lsc.validate, "memory_limit", lambda: 16 * 10**9)
  # 10^8 probe states: the descriptors of a 2-member pool are small, describing them is not
  with pytest.raises(ValueError, match=r"^collect needs about \S+ GB of memory \(descriptors 2 x n_probe "
                                       r"100,000,000 .* 2 x 100,000,000 x 65 activations"):
    dataclasses.replace(TINY, policy=PolicyConfig("medium"), pool=2, n_neighbors=1, n_probe=10**8).resolved()
  inputs = TINY.resolved().training_inputs()  # what a training on it is checked against, known before collecting
  assert inputs["dataset_size"] == 30 and inputs["num_params"] == 17 and inputs["n_probe"] == 32


def test_a_dataset_key_reads_back_from_its_record_whatever_is_set():
  # `lsc collect --store indices` (or with a novelty search) once refused its own dataset on a
  # rerun: fields left out of the record at their defaults were read back as None
  from lsc import store
  from lsc.config import to_dict
  for extra in ({}, {"store": "indices"}, {"generations": 5, "offspring": 10, "mutation_std": 0.2}):
    config = CollectConfig(pool=64, **extra).resolved()
    # what `lsc.dataset._record_config` writes: the config's fields (as to_dict leaves them) and more
    record = {"config": {**to_dict(config), "env_steps": 1, "tasks": [], "rewards": store.fingerprint("mountain_car"),
                         "novelty_kernel": store.KERNEL_VERSION}}
    assert store.differences(store.recorded_dataset_key(record), store.dataset_key(config)) == {}, extra
    other = store.dataset_key(CollectConfig(pool=64, **{**extra, "seed": 1}).resolved())
    assert set(store.differences(store.recorded_dataset_key(record), other)) == {"collect.seed"}
  # a dataset written before its record held the rewards' fingerprint says so (it once read
  # "rewards None there"), and a field recorded as None is not mistaken for one never recorded
  del record["config"]["rewards"]
  said = store.describe(store.differences(store.recorded_dataset_key(record), store.dataset_key(config)))
  assert said.startswith("rewards") and " not recorded there, " in said, said
  assert store.describe(store.differences({"max": None}, {"max": 3})) == "max None there, 3 here"
