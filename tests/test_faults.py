"""Fault injection: foreign outputs, stale or damaged stages, kills at the moments that
matter (`lsc.faults`), flipped and truncated bytes, two writers.  Each numbered finding
of the reliability issue has a test here; all run tiny Mountain Car configs, and the
kills run in subprocesses (SIGKILL, as an out-of-memory kill would)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from lsc import pipeline
from experiments.presets import PRESETS
from lsc.config import override
from lsc import checkpoint, cli, rundir, store
from lsc.dataset import load_dataset

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLLECT = ["collect", "--env", "mountain_car", "--policy", "small", "--pool", "200", "--keep", "0.2", "--n-probe", "16",
           "--episodes", "1"]
TRAIN = ["train", "--steps", "50", "--batch-policies", "8", "--batch-states", "16", "--widths", "16"]
SEARCH = ["search", "--env", "mountain_car", "--task", "speed", "--method", "latent_pgpe", "--policy", "small",
          "--population", "8", "--episodes", "1", "--budget", "20000", "--eval-episodes", "1"]


def killed_at(point: str, *args, log: list | None = None) -> int:
  """Runs `args` (an lsc command, or `-m experiments.X ...`) in a subprocess that kills
  itself at fault point `point`; returns its exit code (its output lines go to `log`)."""
  command = list(args) if args[0] == "-m" else ["-m", "lsc.cli", *args]
  done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env={**os.environ, "LSC_KILL_AT": point})
  if log is not None:
    log.extend(done.stdout.splitlines())
  return done.returncode


def arrays_of(path) -> dict:
  arrays, _ = checkpoint.load_artifact(path)
  return {k: np.asarray(v) for k, v in arrays.items() if isinstance(v, np.ndarray)}


def assert_same_arrays(a, b):
  a, b = arrays_of(a), arrays_of(b)
  assert sorted(a) == sorted(b)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def cli_error(capsys, *argv) -> str:
  """The one-line error of an lsc command that must be refused."""
  capsys.readouterr()
  assert cli.main(list(argv)) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  return err


@pytest.fixture(scope="module")
def work(tmp_path_factory):
  """Two datasets (seeds 0, 1), a model trained on the first and a search with it."""
  root = tmp_path_factory.mktemp("faults")
  for seed in (0, 1):
    assert cli.main([*COLLECT, "--seed", str(seed), "--out", str(root / f"d{seed}")]) == 0
  assert cli.main([*TRAIN, "--dataset", str(root / "d0"), "--out", str(root / "a0")]) == 0
  assert cli.main([*SEARCH, "--decoder", str(root / "a0"), "--out", str(root / "s0")]) == 0
  return root


def test_an_out_holding_foreign_files_is_left_untouched(work, tmp_path, capsys, monkeypatch):
  # finding 1: `lsc collect --out runs` deleted runs/old; `--out .` emptied the directory
  (tmp_path / "runs" / "old").mkdir(parents=True)
  (tmp_path / "runs" / "old" / "a").write_text("x")
  monkeypatch.chdir(tmp_path)
  assert "is not an lsc artifact (it holds old)" in cli_error(capsys, *COLLECT, "--out", "runs")
  assert cli_error(capsys, *COLLECT, "--out", ".")
  foreign = str(tmp_path / "runs")
  for argv in (["rollout", "--env", "mountain_car", "--pool", "8", "--out", foreign],
               [*TRAIN, "--dataset", str(work / "d0"), "--out", foreign],
               [*SEARCH, "--decoder", "linear:2", "--out", foreign]):
    assert "lsc did not write" in cli_error(capsys, *argv)
  with pytest.raises(checkpoint.ForeignPath):
    pipeline.run(PRESETS["mountain_car"]["smoke"](), tmp_path / "runs", log=lambda *a: None)
  # an artifact that also holds a file of the user's is not replaced either
  shutil.copytree(work / "d0", tmp_path / "d")
  (tmp_path / "d" / "notes.txt").write_text("mine")
  assert "also holds files lsc did not write (notes.txt)" in cli_error(capsys, *COLLECT, "--out", "d")
  assert (tmp_path / "runs" / "old" / "a").read_text() == "x" and (tmp_path / "d" / "notes.txt").exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "runs"]


def test_training_resumes_only_on_the_dataset_it_was_trained_on(work, tmp_path, capsys):
  # finding 2: `lsc train --dataset B --out A`, A trained on C, kept C's model and claimed B
  shutil.copytree(work / "a0", tmp_path / "a")
  before = (tmp_path / "a" / "recovery.json").read_text()
  err = cli_error(capsys, *TRAIN, "--dataset", str(work / "d1"), "--out", str(tmp_path / "a"))
  assert "trained on other inputs" in err
  assert (tmp_path / "a" / "recovery.json").read_text() == before
  assert cli.main([*TRAIN, "--dataset", str(work / "d1"), "--out", str(tmp_path / "a"), "--overwrite"]) == 0
  assert json.loads((tmp_path / "a" / "recovery.json").read_text())["dataset"] == str(work / "d1")
  record = checkpoint.read_record(tmp_path / "a" / "model")
  assert record["config"]["inputs"] == {"dataset": checkpoint.digest(work / "d1")}


def test_damaged_artifacts_and_checkpoints_are_refused_naming_the_file(work, tmp_path, capsys):
  # finding 4: 64 flipped bytes in a model loaded silently; a damaged search checkpoint was resumed
  for name in ("d0", "a0/model", "s0/state", "s0/result"):
    path = tmp_path / name.replace("/", "_")
    shutil.copytree(work / name, path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    assert len(files) >= 5
    for file in files:
      data = bytearray(file.read_bytes())
      flipped = bytearray(data)
      flipped[len(data) // 2] ^= 0xFF
      file.write_bytes(flipped)
      with pytest.raises(checkpoint.ArtifactDamaged) as error:
        checkpoint.load_artifact(path)
      if file.name != checkpoint.CHECKSUMS:
        assert str(file.relative_to(path)) in str(error.value)
      file.write_bytes(data)
    checkpoint.load_artifact(path)  # restored: loads again
  # through the command line: a search resumed on a damaged checkpoint, or with a damaged decoder
  shutil.copytree(work / "s0", tmp_path / "s")
  (tmp_path / "s" / "state" / "record" / "metadata").write_text("{}")
  assert "is damaged: record/metadata" in cli_error(capsys, *SEARCH, "--decoder", str(work / "a0"),
                                                     "--out", str(tmp_path / "s"))
  shutil.copytree(work / "a0", tmp_path / "a")
  data = next(p for p in (tmp_path / "a" / "model" / "arrays").rglob("*") if p.parent.name == "d")
  data.write_bytes(data.read_bytes()[:-64] + bytes(64))
  assert "does not match its checksum" in cli_error(capsys, *SEARCH, "--decoder", str(tmp_path / "a"),
                                                    "--out", str(tmp_path / "s2"))


def test_a_truncated_large_array_is_named(work, tmp_path, monkeypatch):
  monkeypatch.setattr(checkpoint, "LARGE_BYTES", 1024)  # the dataset's thetas and descriptors go to large/
  arrays, record = checkpoint.load_artifact(work / "d0")
  path = checkpoint.save_artifact(tmp_path / "d", arrays, kind="dataset", config=record["config"],
                                  identity=record["identity"])
  large = path / "large" / "thetas.npy"
  with open(large, "r+b") as f:
    f.truncate(large.stat().st_size // 2)
  with pytest.raises(checkpoint.ArtifactDamaged, match=r"large/thetas.npy has \d+ bytes, \d+ were written"):
    load_dataset(path)


def test_collect_killed_while_publishing_keeps_or_rebuilds_the_artifact(work, tmp_path, capsys, monkeypatch):
  shutil.copytree(work / "d0", tmp_path / "d")
  argv = [*COLLECT, "--seed", "0", "--overwrite", "--out", str(tmp_path / "d")]
  # killed with the new artifact staged: the old one is still in place, whole
  assert killed_at("artifact_staged", *argv) == -signal.SIGKILL
  assert any(p.name.startswith(".d.tmp-") for p in tmp_path.iterdir())
  assert_same_arrays(tmp_path / "d", work / "d0")
  # killed with the old one moved aside: nothing at d, and the rerun rebuilds it bit for bit
  assert killed_at("artifact_retired", *argv) == -signal.SIGKILL
  assert not (tmp_path / "d").exists() and any(p.name.startswith(".d.old-") for p in tmp_path.iterdir())
  assert cli.main(argv) == 0
  assert_same_arrays(tmp_path / "d", work / "d0")
  assert sorted(p.name for p in tmp_path.iterdir()) == [".d.lock", "d"]  # staging cleaned
  # a rebuild of the same settings is the same content: the same digest, so what was
  # trained on the old one still counts as trained on it
  assert checkpoint.digest(tmp_path / "d") == checkpoint.digest(work / "d0")
  # and without --overwrite the same settings reuse it; other settings are refused
  capsys.readouterr()
  assert cli.main([a for a in argv if a != "--overwrite"]) == 0
  assert "already holds this dataset" in capsys.readouterr().out
  assert "made with other settings (collect.seed 0 there, 1 here)" in cli_error(capsys, *COLLECT, "--seed", "1",
                                                                               "--out", str(tmp_path / "d"))
  # the same settings scored on an edited task formula: its collected returns are stale, so refused too
  monkeypatch.setattr(store, "fingerprint", lambda env: "edited")
  assert "made with other settings (rewards" in cli_error(capsys, *argv[:-3], "--out", str(tmp_path / "d"))


def test_search_takes_the_policy_from_the_autoencoder(work, tmp_path, capsys):
  # `lsc search --decoder AE` ignored the autoencoder's policy and needed --policy ... again
  argv = [a for a in SEARCH if a not in ("--policy", "small")]
  assert cli.main([*argv, "--decoder", str(work / "a0"), "--out", str(tmp_path / "s")]) == 0
  assert_same_arrays(tmp_path / "s" / "result", work / "s0" / "result")
  assert "--policy 'medium', but the autoencoder" in cli_error(capsys, *argv, "--policy", "medium", "--decoder",
                                                                str(work / "a0"), "--out", str(tmp_path / "s2"))


def test_a_path_too_long_for_lsc_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
  # a 230-character --out ran the whole collect, then failed at save: "File name too long"
  import lsc.dataset

  def collect(*args, **kwargs):
    raise AssertionError("the collect ran")
  monkeypatch.setattr(lsc.dataset, "collect", collect)
  err = cli_error(capsys, *COLLECT, "--out", str(tmp_path / ("d" * 230)))
  assert "has a name of 230 bytes" in err and "(NAME_MAX)" in err
  deep = str(tmp_path / "/".join(["x" * 200] * 20))  # every name fits, the whole path does not
  assert "(PATH_MAX)" in cli_error(capsys, *COLLECT, "--out", deep)
  assert "(PATH_MAX)" in cli_error(capsys, *SEARCH, "--decoder", "linear:2", "--out", deep)
  assert not any(tmp_path.iterdir())


def test_train_and_search_killed_while_saving_resume_to_the_same_result(work, tmp_path):
  train = [*TRAIN, "--dataset", str(work / "d0"), "--out", str(tmp_path / "a")]
  assert killed_at("artifact_staged", *train) == -signal.SIGKILL
  assert cli.main(train) == 0
  assert_same_arrays(tmp_path / "a" / "model", work / "a0" / "model")
  search = [*SEARCH, "--decoder", str(work / "a0"), "--out", str(tmp_path / "s")]
  assert killed_at("artifact_staged", *search) == -signal.SIGKILL
  assert cli.main(search) == 0
  assert_same_arrays(tmp_path / "s" / "result", work / "s0" / "result")


def quiet(*args):
  pass


def untimed(tree):
  """`tree` without its wall-clock timings (the rest of a rerun's results is bit-identical)."""
  if isinstance(tree, dict):
    return {k: untimed(v) for k, v in tree.items() if k != "timings"}
  return tree


def test_a_pipeline_killed_between_a_result_and_its_marker_never_reuses_a_stale_stage(tmp_path):
  # finding 3: killed after the model was final but before stage.json, then rerun with
  # another collect.seed, the pipeline reused the seed-0 model
  sets = ["search.methods=[latent_pgpe]"]
  config = override(PRESETS["mountain_car"]["smoke"](), sets)
  out = tmp_path / "p"
  assert killed_at("stage_result:autoencoder", "-m", "experiments.mountain_car", "--preset", "smoke",
                   "--out", str(out), "--set", *sets) == -signal.SIGKILL
  assert not json.loads((out / "autoencoder" / "stage.json").read_text())["complete"]
  resumed = pipeline.run(config, out, log=quiet)  # same settings: the same result as a clean run
  clean = pipeline.run(config, tmp_path / "clean", log=quiet)
  for field in ("recovery", "curves", "dataset_best"):
    assert json.dumps(untimed(resumed[field])) == json.dumps(untimed(clean[field])), field
  reseeded = pipeline.run(override(config, ["collect.seed=1"]), out, log=quiet)
  assert set(reseeded["timings"]["stages_s"]) == {"dataset", "autoencoder", "search/speed_latent_pgpe"}
  model = checkpoint.read_record(out / "autoencoder" / "model")
  assert model["config"]["inputs"] == {"dataset": checkpoint.digest(out / "dataset" / "artifact")}
  assert untimed(reseeded["curves"]) != untimed(resumed["curves"])
  # a stage whose outcome was truncated is recomputed, and only it, even after a kill
  # while removing it (rmtree deleted stage.json first: every later run refused the --out)
  outcome = out / "search" / "speed_latent_pgpe" / "outcome.json"
  outcome.write_text(outcome.read_text()[:40])
  logged = []
  assert killed_at("stage_retired:search/speed_latent_pgpe", "-m", "experiments.mountain_car", "--preset", "smoke",
                   "--out", str(out), "--set", *sets, "collect.seed=1", log=logged) == -signal.SIGKILL
  assert any("outcome.json does not match its checksum; recomputing it" in line for line in logged)
  assert [p.name.split("-")[0] for p in (out / "search").iterdir()] == [".speed_latent_pgpe.old"]
  again = pipeline.run(override(config, ["collect.seed=1"]), out, log=quiet)
  assert set(again["timings"]["stages_s"]) == {"search/speed_latent_pgpe"}
  assert untimed(again["curves"]) == untimed(reseeded["curves"])
  assert sorted(p.name for p in (out / "search").iterdir()) == ["speed_latent_pgpe"]  # the leftover removed


def test_a_stage_left_half_removed_without_its_marker_is_recomputed(work, tmp_path):
  # an older lsc removed a stale stage with rmtree, stage.json first: killed midway, it left
  # a directory without its marker, and every later run refused the --out as foreign
  stage = tmp_path / "autoencoder"
  shutil.copytree(work / "a0", stage, ignore=shutil.ignore_patterns(".lsc*", "metrics.jsonl"))
  shutil.copytree(work / "s0" / "result", stage / "latent" / "result")  # a phase of a two-phase method
  shutil.rmtree(stage / "model" / "record")
  (stage / "recovery.json").unlink()
  logged = []
  stages = store.Stages(tmp_path, log=logged.append)
  compute = lambda directory: (directory / "recovery.json").write_text("1") and "computed"
  assert stages.run("autoencoder", {}, compute, lambda directory: None) == "computed"
  assert "no stage.json, only what a stage writes" in logged[-1]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["autoencoder"]
  # the same with a file of the user's in an artifact: refused, untouched
  shutil.copytree(work / "a0" / "model", tmp_path / "t" / "model")
  (tmp_path / "t" / "model" / "notes.txt").write_text("mine")
  with pytest.raises(checkpoint.ForeignPath):
    stages.run("t", {}, compute, lambda directory: None)
  assert (tmp_path / "t" / "model" / "notes.txt").exists()
  # leftovers beside stages this run never reaches (another task's, method's) are removed too
  dead = subprocess.Popen(["true"])
  dead.wait()
  leftovers = [tmp_path / "search" / f".speed_ppo.old-{dead.pid}-0123abcd", tmp_path / f".dataset.tmp-{dead.pid}-89abcdef"]
  for leftover in leftovers:
    (leftover / "x").mkdir(parents=True)
  assert sorted(stages.clean_leftovers()) == sorted(leftovers) and not any(p.exists() for p in leftovers)


def test_stages_recompute_what_is_incomplete_changed_or_damaged(tmp_path):
  logged = []
  stages = store.Stages(tmp_path, log=logged.append)
  calls = []

  def compute(directory, value="1"):
    calls.append(value)
    (directory / "x.json").write_text(value)
    return value

  def load(directory):
    return json.loads((directory / "x.json").read_text())

  def interrupted(directory):
    (directory / "partial").write_text("half")
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):  # killed inside the stage ...
    stages.run("s", {"steps": 1}, interrupted, load)
  assert stages.run("s", {"steps": 2}, compute, load) == "1"  # ... rerun with other settings: from scratch
  assert not (tmp_path / "s" / "partial").exists() and calls == ["1"] and stages.resumed == []
  assert store.Stages(tmp_path).run("s", {"steps": 2}, compute, load) == 1  # complete: reused
  assert calls == ["1"]
  (tmp_path / "s" / "x.json").unlink()  # deleted: recomputed with one line saying why
  assert stages.run("s", {"steps": 2}, compute, load) == "1" and calls == ["1", "1"]
  assert logged[-1].strip() == "s: x.json is missing; recomputing it"
  (tmp_path / "s" / "x.json").write_text("2")  # changed: recomputed
  stages.run("s", {"steps": 2}, compute, load)
  assert calls == ["1", "1", "1"] and "x.json does not match its checksum" in logged[-1]
  (tmp_path / "t").mkdir()  # a directory lsc did not mark: refused, untouched
  (tmp_path / "t" / "mine").write_text("x")
  with pytest.raises(checkpoint.ForeignPath):
    stages.run("t", {}, compute, load)
  assert (tmp_path / "t" / "mine").exists()
  with pytest.raises(KeyboardInterrupt):  # killed, then rerun with its settings: resumed, and its time
    stages.run("r", {"steps": 1}, interrupted, load)  # (the last process's only) said to be so
  assert stages.run("r", {"steps": 1}, compute, load) == "1" and stages.resumed == ["r"]
  reader = store.Stages(tmp_path)
  assert reader.run("r", {"steps": 1}, compute, load) == 1 and reader.resumed == ["r"]  # reused, still said


def test_a_second_writer_is_refused(work, tmp_path, capsys):
  out = tmp_path / "s"
  with rundir.lock(rundir.claim(out, "search")):
    assert "another lsc process is writing" in cli_error(capsys, *SEARCH, "--decoder", "linear:2", "--out", str(out))
  with rundir.artifact_lock(tmp_path / "d"):
    assert "another lsc process is writing" in cli_error(capsys, *COLLECT, "--out", str(tmp_path / "d"))
  with rundir.lock(rundir.claim(tmp_path / "p", "pipeline")):
    with pytest.raises(rundir.OutputLocked):
      pipeline.run(PRESETS["mountain_car"]["smoke"](), tmp_path / "p", log=quiet)
  assert not (tmp_path / "d").exists() and sorted(p.name for p in out.iterdir()) == [".lsc-run.json", ".lsc.lock"]
