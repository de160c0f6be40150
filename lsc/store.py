"""The store: when a result computed earlier may stand for one asked for now.

One rule serves the pipelines, the command line and Python alike: a result is reused
only under an identical *key*, and recomputed under any other.  A key is plain JSON:
the complete config of what computed it (every field, defaults included), the content
digests of the artifacts it read, the task formulas it was scored on
(`lsc.tasks.fingerprint`) and the package versions.  Digests are of content only
(`lsc.checkpoint.digest`), so an identical recompute has the identical digest and the
stages downstream of it are reused.

- `Stages`: a pipeline's stage directories under its --out, each with its key in
  `stage.json`; a changed key recomputes that stage and, through the digests in their
  keys, everything downstream of it.
- `dataset_key` / `recorded_dataset_key`: a dataset's key, as it is asked for and as its
  artifact records it: the pipeline's dataset stage and `lsc collect --out D` compare
  the same thing.
- `differences`: the fields where two keys differ, for the message that says why a
  result is recomputed or refused.

The other artifacts a user names (`lsc train --out`, `lsc search --out`) record their
complete identity themselves and are checked against it when resumed
(`lsc.checkpoint.check_record`): the same rule, held by the artifact.
"""

import dataclasses
import fnmatch
import json
import os
import pathlib
import shutil
import time

from lsc import checkpoint, faults
from lsc.config import flatten, to_dict
from lsc.dataset import CollectConfig
from lsc.distributed import barrier, on_main
from lsc.methods import METHODS, Sequence
from lsc.novelty import KERNEL_VERSION
from lsc.tasks import fingerprint


class _Absent:
  """The value of a field a key lacks (e.g. one written before lsc recorded the field)."""

  def __repr__(self) -> str:
    return "not recorded"


ABSENT = _Absent()


def differences(have: dict, want: dict) -> dict[str, tuple]:
  """{dotted field: (value in `have`, value in `want`)} for every field of two nested
  keys that differs (lists and tuples alike; a field one of them lacks is `ABSENT` there)."""
  plain = lambda v: list(v) if isinstance(v, tuple) else v
  a, b = flatten(json.loads(json.dumps(have))), flatten(json.loads(json.dumps(want)))
  return {k: (a.get(k, ABSENT), b.get(k, ABSENT)) for k in sorted({*a, *b})
          if plain(a.get(k, ABSENT)) != plain(b.get(k, ABSENT))}


def describe(changed: dict[str, tuple], limit: int = 3) -> str:
  """`differences` in words: "field X there, Y here" for up to `limit` fields (a field
  an older key lacks reads "not recorded there")."""
  words = [f"{k} {there!r} there, {here!r} here" for k, (there, here) in list(changed.items())[:limit]]
  return "; ".join(words) + ("; ..." if len(changed) > limit else "")


def dataset_key(config) -> dict:
  """The key of the dataset `lsc.collect(config)` computes (`config` a resolved
  CollectConfig): its settings, the env's task formulas (the collected returns are
  scored on them) and the novelty kernel's version."""
  return {"collect": to_dict(config), "rewards": fingerprint(config.env.name), "novelty_kernel": KERNEL_VERSION}


def recorded_dataset_key(record: dict) -> dict:
  """The `dataset_key` a dataset artifact's record (`checkpoint.read_record`) holds
  (without what an older lsc did not record)."""
  saved = record.get("config", {})
  # the CollectConfig fields the record holds: `to_dict` leaves out those marked omit_default
  # at their defaults, so a field the record lacks was at its default when collected
  collect = {f.name: saved[f.name] for f in dataclasses.fields(CollectConfig) if f.name in saved}
  return {"collect": collect, **{k: saved[k] for k in ("rewards", "novelty_kernel") if k in saved}}


def search_stage(task: str, method: str) -> str:
  """The stage of `method`'s search on `task`: its name in a run's timings and its folder
  under the run (search/<task>_<method>)."""
  return f"search/{task}_{method}"


def phase_dirs() -> set[str]:
  """The subdirectories the registered sequences write their phases into."""
  return {sub for method in METHODS.values() if isinstance(method, Sequence) for sub in method.dirs}


class Stages:
  """Stage bookkeeping in an output directory: run a stage, resume it or reuse it.

  A stage's directory holds `stage.json`: the stage's key (its config, the digests of
  the artifacts it reads and the package versions), whether it is complete, and the
  checksum of every file it wrote.  The marker is written, atomically, *before* the
  stage starts (incomplete) and again after it ends (complete), so a kill at any
  moment leaves either a stage that resumes under the same key or one that is
  recomputed under another: never a stale result that looks finished.  A complete
  stage whose files fail their checksums is recomputed (and, through the digests in
  their keys, everything that read it).  A stage is removed by renaming its directory
  aside first (`_remove`), so a kill while removing never leaves a directory without
  its marker; one that has none but holds only what stages write (left so by an older
  lsc) is recomputed too, anything else refused."""

  # what stages write in their directories (fnmatch patterns): files, artifacts (the
  # dataset's, the autoencoder's model, a method's result and checkpoints) and the
  # directories of a two-phase method's phases, which hold the same
  FILES = ("stage.json", "recovery.json", "training.png", "landscape.png", "outcome.json")
  ARTIFACTS = ("artifact", "model", "result", "state", "state_seed*")

  def __init__(self, out: pathlib.Path, log=print, metrics=None):
    self.out, self.log, self.metrics = out, log, metrics  # metrics: a MetricsLog scoped to the running stage
    self.timings: dict[str, float] = {}  # stages computed by this run
    self.recorded: dict[str, float] = {}  # every stage, reused ones with the time they took when computed
    self.reused: list[str] = []
    self.resumed: list[str] = []  # stages whose recorded time is only the last process's (one before was cut off)

  @staticmethod
  def _read_marker(directory: pathlib.Path) -> dict | None:
    try:
      marker = json.loads((directory / "stage.json").read_text())
    except (OSError, ValueError):
      return None
    return marker if isinstance(marker, dict) and "key" in marker else None

  @staticmethod
  def _write_marker(directory: pathlib.Path, marker: dict) -> None:

    def write():
      tmp = directory / f".stage.json.tmp-{os.getpid()}"
      tmp.write_text(json.dumps(marker, indent=1))
      os.replace(tmp, directory / "stage.json")
    on_main(write)

  def clean_leftovers(self) -> list[pathlib.Path]:
    """Removes what killed removals and writes left beside any stage of `out` (`.<stage>.old-*`,
    `.<stage>.tmp-*`; a dead process's only), not only beside the stages this run reaches:
    a later run with other tasks or methods would never clean them.  Returns them."""

    def clean():  # on process 0 alone: one barrier, whatever each process sees
      removed = []
      for parent in (self.out, self.out / "search"):
        staged = {checkpoint.is_staging(e.name) for e in parent.iterdir()} - {None} if parent.is_dir() else set()
        for name in sorted(staged):
          removed += checkpoint.clean_staging(parent / name)
      return removed
    return on_main(clean) or []

  def _remove(self, directory: pathlib.Path) -> None:
    """Removes a stage's directory, crash-safe: one rename moves it aside, to the hidden
    `.<name>.old-<pid>-<hex8>`, then that is deleted; a kill leaves the whole stage or
    that leftover, which the next run deletes (`lsc.checkpoint.clean_staging`)."""
    barrier("stage remove")  # every process has read what is removed

    def remove():
      retired = directory.with_name(f".{directory.name}.old-{os.getpid()}-{os.urandom(4).hex()}")
      directory.rename(retired)
      faults.point("stage_retired", directory.relative_to(self.out).as_posix())
      shutil.rmtree(retired)
    on_main(remove)

  @classmethod
  def _only_stage_files(cls, directory: pathlib.Path) -> bool:
    """True if `directory` holds nothing but what a stage writes, whole, damaged or
    partly deleted: its files, artifacts holding only the names lsc writes at the top
    of one, its phases' directories holding the same, and lsc's temporaries."""
    for entry in directory.iterdir():
      name = entry.name
      if entry.is_symlink():
        return False
      if name.startswith(".stage.json.tmp-") or checkpoint.is_staging(name):
        continue
      if entry.is_file() and any(fnmatch.fnmatch(name, p) for p in cls.FILES):
        continue
      if any(fnmatch.fnmatch(name, p) for p in cls.ARTIFACTS) and checkpoint.holds_only_artifact_names(entry):
        continue
      if name in phase_dirs() and entry.is_dir() and cls._only_stage_files(entry):
        continue
      return False
    return True

  @staticmethod
  def _files(directory: pathlib.Path) -> dict[str, str]:
    """{entry: checksum} of what a stage wrote: an artifact's digest, a file's SHA-256."""
    found = {}
    for entry in sorted(directory.iterdir()):
      if entry.name == "stage.json" or entry.name.startswith("."):
        continue
      if checkpoint.is_artifact(entry):
        found[entry.name] = "artifact:" + checkpoint.digest(entry)
      elif entry.is_file():
        found[entry.name] = checkpoint.file_sha256(entry)
      elif entry.is_dir():  # a two-phase method's phases
        found.update({f"{entry.name}/{name}": value for name, value in Stages._files(entry).items()})
    return found

  @staticmethod
  def _check(directory: pathlib.Path, files: dict[str, str]) -> str | None:
    """What is wrong with a complete stage's files, or None."""
    for name, want in files.items():
      entry = directory / name
      if not entry.exists():
        return f"{name} is missing"
      if want.startswith("artifact:"):
        try:
          checkpoint.verify(entry)
        except checkpoint.ArtifactDamaged as error:
          return str(error)
        if "artifact:" + checkpoint.digest(entry) != want:
          return f"{name} is not the artifact this stage wrote"
      elif not entry.is_file() or checkpoint.file_sha256(entry) != want:
        return f"{name} does not match its checksum"
    return None

  def _start(self, directory: pathlib.Path, key: dict) -> None:
    """Creates the stage's directory with an incomplete marker holding `key`."""
    barrier("stage start")  # every process has read the old marker
    directory.mkdir(parents=True, exist_ok=True)
    self._write_marker(directory, {"key": key, "complete": False})

  def digest(self, name: str, entry: str) -> str:
    """The checksum a complete stage recorded for one of its outputs (its provenance
    for the stages that read it)."""
    return self._read_marker(self.out / name)["files"][entry]

  def run(self, name: str, key: dict, compute, load):
    """compute(directory) runs (or resumes) the stage into `directory`; load(directory)
    reads a finished one.  The stage is reused when its marker holds `key` and says it
    is complete and its files pass their checksums."""
    directory = self.out / name
    if self.metrics is not None:
      self.metrics.scope = name
    key = json.loads(json.dumps({**key, "versions": checkpoint.versions()}))
    barrier(f"stage {name}")  # every process reads the same marker
    on_main(checkpoint.clean_staging, directory)  # what a removal killed midway left
    marker = self._read_marker(directory)
    if marker is not None and marker["key"] == key and marker.get("complete"):
      problem = self._check(directory, marker["files"])
      if problem is None:
        try:
          result = load(directory)
        except (OSError, ValueError, KeyError) as error:
          problem = f"{type(error).__name__}: {error}"
        else:
          self.reused.append(name)
          self.recorded[name] = marker.get("seconds", 0.0)
          if marker.get("resumed"):
            self.resumed.append(name)
          return result
      self.log(f"      {name}: {problem}; recomputing it")
      self._remove(directory)
    elif marker is not None and marker["key"] != key:  # another config ran (or was running) here: start afresh
      self.log(f"      {name}: its key changed ({describe(differences(marker['key'], key))}); recomputing it")
      self._remove(directory)
    elif marker is None and directory.exists() and any(directory.iterdir()):
      if (directory / "stage.json").exists():
        self._remove(directory)  # a marker lsc wrote but cannot read (damaged, or an older format)
      elif self._only_stage_files(directory):
        self.log(f"      {name}: no stage.json, only what a stage writes (a removal was cut short); recomputing it")
        self._remove(directory)
      else:
        raise checkpoint.ForeignPath(f"{directory} holds files lsc did not write; choose another --out")
    resumed = marker is not None and marker["key"] == key and not marker.get("complete")  # an interrupted run's
    self._start(directory, key)
    start = time.perf_counter()
    try:
      result = compute(directory)
    except (checkpoint.ArtifactDamaged, checkpoint.ArtifactMismatch) as error:  # an interrupted run's checkpoint, damaged or of older code
      self.log(f"      {name}: {error}; recomputing it")
      self._remove(directory)
      self._start(directory, key)
      resumed = False
      result = compute(directory)
    self.timings[name] = self.recorded[name] = time.perf_counter() - start
    if resumed:
      self.resumed.append(name)
    faults.point("stage_result", name)
    self._write_marker(directory, {"key": key, "complete": True, "seconds": self.timings[name], "resumed": resumed,
                                   "files": self._files(directory)})
    return result


