"""Config files and overrides; the artifact format."""

import dataclasses
import json
import os
import subprocess

import jax.numpy as jnp
import numpy as np
import pytest

from lsc import checkpoint, config
from lsc.config import EnvConfig, PolicyConfig
from lsc.envs import make_env
from lsc.policy import make_policy


@dataclasses.dataclass(frozen=True)
class StageConfig:
  env: EnvConfig = EnvConfig("hopper")
  policy: PolicyConfig = PolicyConfig()
  pool: int = 1000
  keep: float = 0.1


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_round_trips_through_files(tmp_path, suffix):
  cfg = StageConfig(env=EnvConfig("reacher", "spring", 50), policy=PolicyConfig(hidden=(8, 8)), pool=7)
  config.save(cfg, tmp_path / f"cfg{suffix}")
  assert config.load(StageConfig, tmp_path / f"cfg{suffix}") == cfg


def test_overrides_and_strict_keys(tmp_path):
  cfg = config.override(StageConfig(), ["pool=20", "env.name=mountain_car", "policy.hidden=[3, 2]", "keep=1"])
  assert cfg.pool == 20 and cfg.env.name == "mountain_car" and cfg.policy.hidden == (3, 2)
  assert cfg.keep == 1.0 and isinstance(cfg.keep, float)
  with pytest.raises(ValueError, match="unknown setting 'pol'; valid keys: env, policy, pool, keep"):
    config.override(cfg, ["pol=3"])
  with pytest.raises(ValueError, match="key=value"):
    config.override(cfg, ["pool"])
  (tmp_path / "bad.yaml").write_text("pool: 3\nseeds: 2\n")
  with pytest.raises(ValueError, match="unknown key"):
    config.load(StageConfig, tmp_path / "bad.yaml")
  with pytest.raises(ValueError, match="expected int"):
    config.from_dict(StageConfig, {"pool": "many"})


def test_resolved_configs_fill_defaults():
  assert EnvConfig("hopper").resolved().episode_length == 1000
  assert EnvConfig("mountain_car").resolved().backend == "jax"
  assert PolicyConfig("large").resolved("mountain_car").hidden == (400, 300)


@pytest.fixture(scope="module")
def identity():
  env = make_env("mountain_car")
  return checkpoint.policy_identity(env, make_policy(env, "small"))


def test_artifact_round_trips(tmp_path, identity):
  arrays = {"thetas": np.arange(12, dtype=np.float32).reshape(3, 4), "meta": {"idx": jnp.arange(3)}}
  path = checkpoint.save_artifact(tmp_path / "a", arrays, kind="dataset", config={"pool": 3},
                                  identity=identity)
  loaded, record = checkpoint.load_artifact(path, kind="dataset", expect=identity)
  np.testing.assert_array_equal(loaded["thetas"], arrays["thetas"])
  np.testing.assert_array_equal(loaded["meta"]["idx"], [0, 1, 2])
  assert record["config"] == {"pool": 3} and record["versions"]["jax"] == "0.11.2"
  assert record["identity"]["policy"]["num_params"] == 17
  # overwriting replaces it whole and leaves no staging directories behind
  checkpoint.save_artifact(path, {"thetas": np.zeros(2)}, kind="dataset", config={}, identity=identity)
  assert checkpoint.load_artifact(path)[0]["thetas"].shape == (2,)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_large_arrays_bypass_orbax_and_load_memory_mapped(tmp_path, identity, monkeypatch):
  monkeypatch.setattr(checkpoint, "LARGE_BYTES", 40)
  big = np.arange(12, dtype=np.float32).reshape(3, 4)  # 48 bytes: large
  path = checkpoint.save_artifact(tmp_path / "a", {"thetas": big, "idx": np.arange(3, dtype=np.int8)},
                                  kind="dataset", config={}, identity=identity)
  assert sorted(p.name for p in (path / "large").iterdir()) == ["thetas.npy"]
  loaded, record = checkpoint.load_artifact(path)
  assert record["large_arrays"] == ["thetas"] and isinstance(loaded["thetas"], np.memmap)
  np.testing.assert_array_equal(loaded["thetas"], big)
  np.testing.assert_array_equal(loaded["idx"], [0, 1, 2])
  # nothing left for Orbax but the record
  path = checkpoint.save_artifact(tmp_path / "b", {"thetas": big}, kind="dataset", config={}, identity=identity)
  np.testing.assert_array_equal(checkpoint.load_artifact(path)[0]["thetas"], big)


def test_an_artifact_without_checksums_is_refused_and_replaceable(tmp_path, identity):
  # deleting checksums.json and the record's `format` made it load as a legacy artifact, unverified
  path = checkpoint.save_artifact(tmp_path / "a", {"x": np.zeros(3)}, kind="dataset", config={}, identity=identity)
  (path / checkpoint.CHECKSUMS).unlink()
  metadata = path / "record" / "metadata"
  record = json.loads(metadata.read_text())
  del record["format"]
  metadata.write_text(json.dumps(record))
  for read in (checkpoint.load_artifact, checkpoint.read_record, checkpoint.verify, checkpoint.digest):
    with pytest.raises(checkpoint.ArtifactDamaged, match="has no checksums.json, so its content cannot be verified"):
      read(path)
  checkpoint.save_artifact(path, {"x": np.ones(2)}, kind="dataset", config={}, identity=identity)  # only lsc's names
  np.testing.assert_array_equal(checkpoint.load_artifact(path)[0]["x"], [1, 1])
  # nor is an emptied checksum list a way around the check
  table = json.loads((path / checkpoint.CHECKSUMS).read_text())
  (path / checkpoint.CHECKSUMS).write_text(json.dumps({"sha256": {}}))
  with pytest.raises(checkpoint.ArtifactDamaged, match="lists none of its record's files"):
    checkpoint.load_artifact(path)
  record_only = {k: v for k, v in table["sha256"].items() if k.startswith("record/")}
  (path / checkpoint.CHECKSUMS).write_text(json.dumps({"sha256": record_only}))
  with pytest.raises(checkpoint.ArtifactDamaged, match="_CHECKPOINT_METADATA is not in its checksums.json"):
    checkpoint.load_artifact(path)


def test_leftovers_of_killed_saves_are_removed_orbax_ones_too(tmp_path, identity):
  # Orbax saves lsc's staging directory to `<staging>.orbax-checkpoint-tmp` first: a kill left it forever
  from orbax.checkpoint._src.path import atomicity_types
  assert checkpoint.ORBAX_TMP == atomicity_types.TMP_DIR_SUFFIX
  dead = subprocess.Popen(["true"])  # a process that has ended
  dead.wait()
  names = {"dead": f".a.tmp-{dead.pid}-0123abcd{checkpoint.ORBAX_TMP}",
           "live": f".a.tmp-{os.getppid()}-0123abcd{checkpoint.ORBAX_TMP}",
           "other": f".b.tmp-{dead.pid}-0123abcd{checkpoint.ORBAX_TMP}"}
  for name in names.values():
    (tmp_path / name / "arrays.orbax-checkpoint-tmp").mkdir(parents=True)
  checkpoint.save_artifact(tmp_path / "a", {"x": np.zeros(1)}, kind="dataset", config={}, identity=identity)
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["live"], names["other"], "a"])


def test_mismatched_artifact_is_refused_clearly(tmp_path, identity):
  path = checkpoint.save_artifact(tmp_path / "a", {"x": np.zeros(1)}, kind="dataset", config={},
                                  identity=identity)
  other = make_env("hopper", episode_length=10)
  expect = checkpoint.policy_identity(other, make_policy(other, "small"))
  with pytest.raises(checkpoint.ArtifactMismatch) as error:
    checkpoint.load_artifact(path, kind="autoencoder", expect=expect)
  message = str(error.value)
  for fragment in ("kind: artifact is a 'dataset', expected a 'autoencoder'",
                   "env: artifact has 'mountain_car', expected 'hopper'",
                   "backend: artifact has 'jax'", "policy.num_params: artifact has 17, expected 36"):
    assert fragment in message
  with pytest.raises(FileNotFoundError, match="no lsc artifact"):
    checkpoint.load_artifact(tmp_path / "missing")


def test_normalize_obs_is_recorded_only_when_set_and_is_part_of_the_identity(tmp_path):
  assert "normalize_obs" not in config.to_dict(PolicyConfig())  # records from before the field still match
  data = config.to_dict(PolicyConfig(normalize_obs=True))
  assert data["normalize_obs"] is True and config.from_dict(PolicyConfig, data) == PolicyConfig(normalize_obs=True)
  env = make_env("mountain_car")
  plain, normed = make_policy(env, "small"), make_policy(env, "small", normalize_obs=True)
  old = checkpoint.policy_identity(env, plain)
  del old["policy"]["obs_normalization"]  # an artifact written before normalisation existed
  path = checkpoint.save_artifact(tmp_path / "old", {"x": np.zeros(1)}, kind="dataset", config={}, identity=old)
  checkpoint.load_artifact(path, expect=checkpoint.policy_identity(env, plain))  # still loads
  with pytest.raises(checkpoint.ArtifactMismatch, match="policy.obs_normalization: artifact has '<missing>'"):
    checkpoint.load_artifact(path, expect=checkpoint.policy_identity(env, normed))
  new = checkpoint.save_artifact(tmp_path / "new", {"x": np.zeros(1)}, kind="dataset", config={},
                                 identity=checkpoint.policy_identity(env, normed))
  with pytest.raises(checkpoint.ArtifactMismatch, match="policy.obs_normalization"):
    checkpoint.load_artifact(new, expect=checkpoint.policy_identity(env, plain))


def test_a_field_left_out_of_records_can_still_be_overridden():
  changed = config.override(StageConfig(), ["policy.normalize_obs=true"])
  assert changed.policy.normalize_obs is True


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_every_preset_round_trips_as_equal_dataclasses(tmp_path, suffix):
  from lsc.pipeline import ExperimentConfig
  from experiments.presets import PRESETS
  for env, presets in PRESETS.items():
    for name, make in presets.items():
      path = tmp_path / f"{env}-{name}{suffix}"
      config.save(make(), path)
      assert config.load(ExperimentConfig, path) == make(), (env, name)


def test_one_override_path_for_files_sets_and_flags():
  from experiments.presets import PRESETS
  smoke = PRESETS["mountain_car"]["smoke"]()
  nested = config.override(smoke, {"search": {"budget": 24_000}, "collect.env.episode_length": 50})
  dotted = config.override(smoke, ["search.budget=24000", "collect.env.episode_length=50"])
  assert nested == dotted and nested.search.budget == 24_000 and nested.collect.env.episode_length == 50
  assert config.override(smoke, {"tasks": "goal"}).tasks == ("goal",)
  with pytest.raises(ValueError, match="unknown setting 'search.budget.x': 'search.budget' is not a config section"):
    config.override(smoke, ["search.budget.x=1"])
  with pytest.raises(ValueError, match="setting 'collect' is a config section: set its keys, e.g. collect.env.name=..."):
    config.override(smoke, {"collect": 3})


def test_an_identical_recompute_has_an_identical_digest(tmp_path, identity, monkeypatch):
  # the digest was the hash of the checksum list, which named Orbax's random file names and
  # hashed the record's creation time and timings: every recompute looked like other inputs
  monkeypatch.setattr(checkpoint, "LARGE_BYTES", 64)  # `big` goes to large/, `x` through Orbax
  arrays = lambda shift: {"x": np.arange(3.0) + shift, "big": np.ones((8, 8), np.float32), "tree": {"y": np.zeros(2)}}
  save = lambda name, shift, seconds: checkpoint.digest(checkpoint.save_artifact(
      tmp_path / name, arrays(shift), kind="dataset", config={"pool": 8, "timings": {"total_s": seconds}},
      identity=identity))
  first, again = save("a", 0, 1.0), save("b", 0, 2.5)
  assert first == again and (tmp_path / "a" / "large").is_dir()
  assert save("c", 1, 1.0) != first  # other numbers
  monkeypatch.setattr(checkpoint, "LARGE_BYTES", 2**30)  # the same arrays written another way: the same content
  assert save("d", 0, 1.0) == first
