"""One artifact format for every stage: a directory written by Orbax, with checksums.

An artifact holds a pytree of arrays and a JSON record: `kind` (which stage wrote
it), the full `config`, `identity` (what the arrays only make sense for: env,
backend, policy shape, ...), package `versions`, the JAX platform and the time.
It is written to a temporary sibling and renamed into place, so a reader sees either
the old complete artifact or the new complete one, never a partial one.

Top-level NumPy arrays of LARGE_BYTES or more (a dataset's kept parameters: 4.9 GB
for 10^4 large Mountain Car policies) bypass Orbax: its save holds about two extra
copies of every array (measured: 4.9 GB of parameters raised the peak by 7.7 GB),
so they are written with `np.save` straight from the caller's array into `large/`
and loaded back memory-mapped (read-only, paged in on use).

Integrity: the last file written into the staging directory is `checksums.json`, the
size and SHA-256 of every other file (large arrays are hashed while they are written,
never held twice).  Every load streams the files through the hash and refuses a
damaged artifact naming the damaged file (`ArtifactDamaged`), and one without
`checksums.json` (nothing could be verified).  `checksums.json` also holds the content
digest (`content_digest`: kind, identity, config without wall-clock timings, arrays'
bytes; no file names, times or versions), which `digest(path)` returns and provenance
records name: an identical recompute has an identical digest.

Nothing lost: `save_artifact` replaces only an lsc artifact of the same kind whose
every file is one lsc wrote (listed in its checksums); any other existing path is
refused (`ForeignPath`), and staging directories left by a killed write to the same
path (lsc's and Orbax's own) are removed by the next write.  A path too long for the
names lsc and Orbax derive from it is refused before any work (`check_length`).
`load_artifact(path, kind=..., expect={...})` compares the record with what the
caller needs and refuses a mismatch with a message naming every differing field.
"""

import datetime
import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import shutil
import uuid

import jax
import numpy as np
import orbax.checkpoint as ocp

from lsc import faults
from lsc.config import flatten
from lsc.distributed import barrier, on_main

LARGE_BYTES = 64 * 2**20
PACKAGES = ("lsc", "jax", "jaxlib", "flax", "optax", "chex", "brax", "mujoco", "mujoco-mjx",
            "evosax", "orbax-checkpoint", "numpy")
FORMAT_VERSION = 3  # 3: checksums.json (artifacts without one are refused)
CHECKSUMS = "checksums.json"
# what Orbax and lsc write at the top of an artifact
_ENTRIES = {"_CHECKPOINT_METADATA", "commit_success.txt", "record", "arrays", "large", CHECKSUMS}
ORBAX_TMP = ".orbax-checkpoint-tmp"  # Orbax saves to `<path>.orbax-checkpoint-tmp`, then renames it
# the longest name derived from an artifact's name n: `.n.tmp-<pid>-<hex8>` + ORBAX_TMP (pids under 10 digits)
_DERIVED = len(".") + len(".tmp-") + 10 + len("-") + 8 + len(ORBAX_TMP)
# the deepest file below an artifact's staging directory: Orbax's
# `arrays.orbax-checkpoint-tmp/ocdbt.process_0/d/<32 hex>` is 78 characters; room for its temporaries
ARTIFACT_DEPTH = 128


class ArtifactMismatch(ValueError):
  """An artifact exists but was made for another env, backend, policy, ..."""


class ArtifactDamaged(ValueError):
  """An artifact's files do not match the checksums written with it."""


class ForeignPath(ValueError):
  """An output path holds something lsc did not write (or another kind of artifact)."""


def versions() -> dict[str, str]:
  """Installed versions of the packages results depend on, plus Python's."""
  found = {"python": platform.python_version()}
  for name in PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = "not installed"
  return found


def _checkpointer() -> ocp.Checkpointer:
  """Orbax for this process alone: in a multi-process run (`lsc.distributed`) process 0
  writes and every process reads by itself, so Orbax's own barriers must not span them."""
  alone = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(), active_processes={jax.process_index()})
  handler = ocp.CompositeCheckpointHandler(composite_options=ocp.CompositeOptions(multiprocessing_options=alone))
  return ocp.Checkpointer(handler, multiprocessing_options=alone)


# --- checksums ------------------------------------------------------------------------

def file_sha256(path) -> str:
  """SHA-256 (hex) of a file, streamed in 16 MB chunks."""
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


class _HashingWriter:
  """A write-only file wrapper that hashes what passes through (np.save writes to it in
  chunks of about 16 MB, so a large array is hashed as it is written)."""

  def __init__(self, f):
    self.f, self.hash, self.size = f, hashlib.sha256(), 0

  def write(self, data) -> int:
    data = memoryview(data).cast("B")
    self.hash.update(data)
    self.size += len(data)
    return self.f.write(data)


def _save_large(path: pathlib.Path, value: np.ndarray) -> tuple[int, str]:
  """np.save of `value` to `path`; returns (size, sha256) computed while writing."""
  with open(path, "wb") as f:
    writer = _HashingWriter(f)
    np.lib.format.write_array(writer, np.ascontiguousarray(value), allow_pickle=False)
  return writer.size, writer.hash.hexdigest()


def _files(root: pathlib.Path) -> list[str]:
  return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _write_checksums(root: pathlib.Path, known: dict[str, tuple[int, str]], content: str) -> None:
  """Writes root/checksums.json: {"sha256": {relative path: [size, sha256]} of every file
  under root, "content": the artifact's content digest (`content_digest`)}."""
  table = {}
  for rel in _files(root):
    table[rel] = list(known[rel]) if rel in known else [(root / rel).stat().st_size, file_sha256(root / rel)]
  (root / CHECKSUMS).write_text(json.dumps({"sha256": table, "content": content}, indent=1, sort_keys=True))


# record config keys (at any depth) that vary between identical computations: wall-clock timings, and where
# an input was read from (the input itself is named by its digest)
VOLATILE = ("timings", "dataset_path")


def _stable(value):
  """`value` (a record's config) without its VOLATILE keys, at any depth."""
  if isinstance(value, dict):
    return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
  if isinstance(value, (list, tuple)):
    return [_stable(v) for v in value]
  return value


def content_digest(kind: str, identity: dict, config: dict, arrays: dict, large: dict[str, str]) -> str:
  """The SHA-256 of what an artifact holds, not of how it was written: its kind, identity,
  config (without VOLATILE keys such as wall-clock timings) and format version, and each
  array's path in the tree and the hash of its .npy serialisation (dtype, shape, bytes;
  `large`: {name: sha256} of the large arrays' .npy files, already hashed as written), so
  an array hashes alike whichever way it was stored.  Unlike the files' hashes
  it leaves out the record's creation time, the package versions and the names Orbax
  draws at random, so an identical recompute has an identical digest."""
  h = hashlib.sha256(json.dumps({"format": FORMAT_VERSION, "kind": kind, "identity": identity,
                                 "config": _stable(config)}, sort_keys=True, default=str).encode())
  leaves = jax.tree_util.tree_flatten_with_path(arrays)[0]
  for path, leaf in leaves:
    name = jax.tree_util.keystr(path)
    top = path[0].key if hasattr(path[0], "key") else None
    h.update(f"{name} {large[top] if top in large else _npy_sha256(leaf)}".encode())
  return h.hexdigest()


class _Discard:
  """A write-only sink that keeps nothing (for hashing what np.save would write)."""

  def write(self, data) -> int:
    return len(memoryview(data).cast("B"))


def _npy_sha256(value) -> str:
  """The SHA-256 of the .npy file np.save writes for `value` (dtype, shape and bytes),
  computed without writing it: what `_save_large` hashes for a large array."""
  writer = _HashingWriter(_Discard())
  np.lib.format.write_array(writer, np.ascontiguousarray(np.asarray(value)), allow_pickle=False)
  return writer.hash.hexdigest()


def _checksum_bytes(path: pathlib.Path) -> bytes:
  """The bytes of the artifact's checksums.json; ArtifactDamaged if there is none (an
  artifact without it cannot be verified, whatever its record says)."""
  try:
    return (path / CHECKSUMS).read_bytes()
  except FileNotFoundError:
    raise ArtifactDamaged(f"artifact {path} has no {CHECKSUMS}, so its content cannot be verified; "
                          f"recreate it") from None


def _checksums(path: pathlib.Path) -> dict[str, list]:
  """The checksum table of the artifact at `path`; ArtifactDamaged if it is missing or
  unreadable."""
  data = _checksum_bytes(path)
  try:
    table = json.loads(data)["sha256"]
    if not isinstance(table, dict):
      raise TypeError(f"a {type(table).__name__}, not a table")
    return table
  except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
    raise ArtifactDamaged(f"artifact {path} is damaged: {CHECKSUMS} is unreadable ({error})") from None


def verify(path, prefix: str = "") -> None:
  """Checks the size and SHA-256 of every file of the artifact at `path` (only those
  under `prefix`, e.g. "record/", if given) against its checksums; raises ArtifactDamaged
  naming the first damaged or missing file, or saying it has no checksums."""
  path = pathlib.Path(path).absolute()
  table = _checksums(path)
  if not any(rel.startswith("record/") for rel in table):  # every save lists its record's files
    raise ArtifactDamaged(f"artifact {path} is damaged: {CHECKSUMS} lists none of its record's files")
  if not prefix:
    unlisted = [rel for rel in _files(path) if rel != CHECKSUMS and rel not in table]
    if unlisted:
      raise ArtifactDamaged(f"artifact {path} is damaged: {unlisted[0]} is not in its {CHECKSUMS}")
  for rel, (size, sha) in table.items():
    if not rel.startswith(prefix):
      continue
    file = path / rel
    if not file.is_file():
      raise ArtifactDamaged(f"artifact {path} is damaged: {rel} is missing")
    if file.stat().st_size != size:
      raise ArtifactDamaged(f"artifact {path} is damaged: {rel} has {file.stat().st_size} bytes, "
                            f"{size} were written")
    if file_sha256(file) != sha:
      raise ArtifactDamaged(f"artifact {path} is damaged: {rel} does not match its checksum")


def digest(path) -> str:
  """A short hash naming the exact content of the artifact at `path`: its content digest
  (`content_digest`, the same for an identical recompute), or for an artifact written
  before lsc recorded one, the hash of its checksum list.  Does not verify the files;
  ArtifactDamaged if it has no checksums."""
  path = pathlib.Path(path).absolute()
  data = _checksum_bytes(path)
  try:
    content = json.loads(data).get("content")
  except (ValueError, AttributeError, UnicodeDecodeError):
    content = None
  if isinstance(content, str):
    return content[:20]
  return hashlib.sha256(data).hexdigest()[:20]


# --- replacing what is there ----------------------------------------------------------

def _raw_record(path: pathlib.Path) -> dict:
  """The record as the JSON file Orbax wrote (no Orbax, no verification); {} if unreadable."""
  try:
    return json.loads((path / "record" / "metadata").read_text())
  except (OSError, ValueError, UnicodeDecodeError):
    return {}


def check_creatable(path: pathlib.Path, what: str) -> None:
  """Raises ForeignPath unless the absent `path` can be created: its nearest existing
  ancestor is a writable directory.  `what` names the path in the message."""
  parent = path.parent
  while not parent.exists():
    parent = parent.parent
  if not parent.is_dir():
    raise ForeignPath(f"cannot create {what}{path}: {parent} is a file")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ForeignPath(f"cannot create {what}{path}: {parent} is not writable")


def _limit(directory: str, name: str, default: int) -> int:
  """os.pathconf(directory, name), or `default` where the system does not say."""
  try:
    value = os.pathconf(directory, name)
  except (OSError, ValueError):
    return default
  return value if value and value > 0 else default


def check_length(path, what: str, below: int | None = None) -> None:
  """Raises ForeignPath if `path` is too long for what lsc writes there, before any work:
  with `below` None, an artifact at `path`, whose name plus the suffixes of lsc's and
  Orbax's temporary names for it (`.<name>.tmp-<pid>-<hex8>.orbax-checkpoint-tmp`) must
  fit the file system's NAME_MAX and whose deepest file its PATH_MAX; otherwise a
  directory holding artifacts up to `below` characters below it (a run directory).
  `what` names the path in the message."""
  path = pathlib.Path(path).absolute()
  existing = path.parent
  while not os.path.isdir(existing) and existing != existing.parent:
    existing = existing.parent
  name_max = _limit(str(existing), "PC_NAME_MAX", 255)
  path_max = _limit(str(existing), "PC_PATH_MAX", 4096)
  for part in path.parts[1:-1]:
    if len(os.fsencode(part)) > name_max:
      raise ForeignPath(f"{what}{path} has a directory name of {len(os.fsencode(part))} bytes; the file system "
                        f"allows {name_max} (NAME_MAX): choose a shorter path")
  name = len(os.fsencode(path.name))
  suffix = _DERIVED if below is None else 0
  if name + suffix > name_max:
    raise ForeignPath(f"{what}{path} has a name of {name} bytes; lsc's temporary names for it add {suffix} and the "
                      f"file system allows {name_max} (NAME_MAX): choose a name of at most {name_max - suffix} bytes")
  deepest = len(os.fsencode(str(path))) + (0 if below is None else 1 + below) + _DERIVED + 1 + ARTIFACT_DEPTH
  if deepest >= path_max:
    raise ForeignPath(f"{what}{path} is too long: the deepest file lsc writes below it needs up to {deepest} bytes and "
                      f"the file system allows {path_max - 1} (PATH_MAX): choose a shorter path")


def holds_only_artifact_names(path) -> bool:
  """True if `path` is a directory holding nothing but the names lsc and Orbax write at
  the top of an artifact: an artifact, possibly damaged or partly deleted, never a
  directory of the user's (unless it copies those names)."""
  path = pathlib.Path(path)
  return path.is_dir() and not path.is_symlink() and all(e.name in _ENTRIES for e in path.iterdir())


def check_output_path(path, kind: str) -> None:
  """Raises ForeignPath unless `path` may receive an artifact of `kind`: its name and
  length leave room for lsc's temporary names (`check_length`) and it does not exist
  (and can be created), is an empty directory, or is an lsc artifact of the same kind
  holding only files lsc wrote (listed in its checksums; with those damaged or missing,
  only the names lsc writes).  Called before any work, and again on save."""
  path = pathlib.Path(path).absolute()
  check_length(path, "")
  if path.is_symlink() or (path.exists() and not path.is_dir()):
    raise ForeignPath(f"{path} exists and is not a directory; lsc writes an artifact directory there")
  if not path.exists():
    check_creatable(path, "")
    return
  entries = list(path.iterdir())
  if not entries:
    return
  if not (path / "record").is_dir():
    names = ", ".join(sorted(e.name for e in entries)[:3])
    raise ForeignPath(f"{path} exists and is not an lsc artifact (it holds {names}{', ...' if len(entries) > 3 else ''});"
                      f" lsc never replaces files it did not write: choose another output path")
  try:
    table = _checksums(path)
  except ArtifactDamaged:
    table = None  # a missing or damaged checksum list: fall back to the names lsc writes
  try:
    verify(path, "record/")
    found = _raw_record(path).get("kind")
  except ArtifactDamaged:
    found = kind  # lsc's, with a damaged record (which kind it was is lost): replaceable if only lsc's files
  if found != kind:
    raise ForeignPath(f"{path} holds a {found!r} artifact, not a {kind!r} one; choose another output path")
  if table is not None:
    foreign = [rel for rel in _files(path) if rel != CHECKSUMS and rel not in table]
  else:
    foreign = [e.name for e in entries if e.name not in _ENTRIES]
  if foreign:
    raise ForeignPath(f"the artifact {path} also holds files lsc did not write ({', '.join(foreign[:3])}"
                      f"{', ...' if len(foreign) > 3 else ''}); move them away or choose another output path")
  if not os.access(path.parent, os.W_OK | os.X_OK):
    raise ForeignPath(f"cannot replace {path}: {path.parent} is not writable")


# lsc's staging and retired directories, `.<name>.tmp-<pid>-<hex8>` and `.<name>.old-<pid>-<hex8>`,
# and the temporary directory Orbax saves a staging directory to before renaming it
_STAGING = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?:(?P<pid>\d+)-)?[0-9a-f]{8}"
                      rf"(?:{re.escape(ORBAX_TMP)}(?:-\d+)?)?$")


def is_staging(name: str) -> str | None:
  """The name of the artifact or stage that `name` stages or retires, if it is one lsc
  gives a staging or retired directory (or Orbax its temporary directory while lsc
  saves an artifact); None otherwise.  See `clean_staging`."""
  match = _STAGING.match(name)
  return None if match is None else match["name"]


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def clean_staging(path) -> list[pathlib.Path]:
  """Removes the staging and retired directories that killed writes to (or removals of)
  `path` left beside it (`.<name>.tmp-*`, `.<name>.old-*`, and Orbax's temporary
  `.<name>.tmp-*.orbax-checkpoint-tmp`), except those of a live process; returns them."""
  path = pathlib.Path(path).absolute()
  removed = []
  if not path.parent.is_dir():
    return removed
  for entry in path.parent.iterdir():
    match = _STAGING.match(entry.name)
    if not match or match["name"] != path.name or not entry.is_dir() or entry.is_symlink():
      continue
    pid = match["pid"]
    if pid is not None and int(pid) != os.getpid() and _pid_alive(int(pid)):
      continue
    shutil.rmtree(entry, ignore_errors=True)
    removed.append(entry)
  return removed


def save_artifact(path, arrays: dict, *, kind: str, config: dict, identity: dict) -> pathlib.Path:
  """Atomically writes `arrays` (a pytree of arrays) with their record and checksums to
  directory `path`, replacing an artifact of the same kind already there (ForeignPath
  for anything else, see `check_output_path`).  Returns the path.  In a multi-process
  run process 0 writes it and every process returns once it is written."""
  path = pathlib.Path(path).absolute()
  check_output_path(path, kind)
  barrier("save_artifact checked")  # no process checks while process 0 replaces it
  on_main(_write_artifact, path, arrays, kind, config, identity)
  return path


def _write_artifact(path: pathlib.Path, arrays: dict, kind: str, config: dict, identity: dict) -> None:
  """`save_artifact`'s writing."""
  path.parent.mkdir(parents=True, exist_ok=True)
  clean_staging(path)
  record = {"format": FORMAT_VERSION, "kind": kind, "identity": identity, "config": config,
            "versions": versions(), "platform": jax.default_backend(),
            "devices": [d.device_kind for d in jax.devices()][:1] + [f"x{jax.device_count()}"],
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  large = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray) and v.nbytes >= LARGE_BYTES}
  record["large_arrays"] = sorted(large)
  token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
  staging = path.with_name(f".{path.name}.tmp-{token}")
  try:
    small = {k: v for k, v in arrays.items() if k not in large}
    items = {"record": ocp.args.JsonSave(record)}
    if small:  # Orbax refuses an empty tree
      items["arrays"] = ocp.args.StandardSave(small)
    _checkpointer().save(staging, ocp.args.Composite(**items))
    known = {}
    if large:
      (staging / "large").mkdir()
      for name, value in large.items():
        known[f"large/{name}.npy"] = _save_large(staging / "large" / f"{name}.npy", value)
    content = content_digest(kind, identity, config, arrays,
                             {name: known[f"large/{name}.npy"][1] for name in large})
    _write_checksums(staging, known, content)
    faults.point("artifact_staged")
    if path.exists():
      if any(path.iterdir()):
        retired = path.with_name(f".{path.name}.old-{token}")
        path.rename(retired)
        faults.point("artifact_retired")
        staging.rename(path)
        shutil.rmtree(retired)
      else:
        path.rmdir()
        staging.rename(path)
    else:
      staging.rename(path)
  finally:
    if staging.exists():
      shutil.rmtree(staging, ignore_errors=True)


# --- reading --------------------------------------------------------------------------

def is_artifact(path) -> bool:
  """True if `path` holds an artifact (complete when written; `verify` checks its files)."""
  path = pathlib.Path(path)
  return (path / "record").is_dir()


def read_record(path) -> dict:
  """The JSON record of the artifact at `path` (cheap: only the record's files are
  verified and read; ArtifactDamaged if they are damaged or the artifact has no checksums)."""
  path = pathlib.Path(path).absolute()
  if not is_artifact(path):
    raise FileNotFoundError(f"no lsc artifact at {path}")
  verify(path, "record/")
  try:
    return _checkpointer().restore(path, ocp.args.Composite(record=ocp.args.JsonRestore())).record
  except Exception as error:  # Orbax raises many types for damaged metadata
    raise ArtifactDamaged(f"artifact {path} is damaged: its record cannot be read ({error})") from None


def _as_list(value):
  return list(value) if isinstance(value, tuple) else value


def check_record(record: dict, path, kind: str | None = None, expect: dict | None = None) -> None:
  """Raises ArtifactMismatch if `record` is not of `kind` or its identity differs from
  `expect` (nested dicts compare field by field; lists and tuples alike)."""
  problems = []
  if kind is not None and record.get("kind") != kind:
    problems.append(f"kind: artifact is a {record.get('kind')!r}, expected a {kind!r}")
  have = flatten(record.get("identity", {}))
  for key, want in flatten(expect or {}).items():
    got = have.get(key, None if want is None else "<missing>")  # None: a field newer than the artifact, unset
    if _as_list(got) != _as_list(want):
      problems.append(f"{key}: artifact has {got!r}, expected {want!r}")
  if problems:
    raise ArtifactMismatch(f"artifact {path} does not match: " + "; ".join(problems))


def check_versions(record: dict, path) -> None:
  """Raises ArtifactMismatch if the artifact was written with other package versions
  than the installed ones (a resumed run would not continue the same computation)."""
  here = versions()
  moved = sorted(k for k in here if record.get("versions", {}).get(k) != here[k])
  if moved:
    raise ArtifactMismatch(f"artifact {path} was written with other package versions: "
                           + ", ".join(f"{k} {record.get('versions', {}).get(k)} there, {here[k]} here" for k in moved))


def load_artifact(path, *, kind: str | None = None, expect: dict | None = None) -> tuple[dict, dict]:
  """Loads (arrays, record) from `path` after checking the record (see `check_record`)
  and every file's checksum (ArtifactDamaged names a damaged file, or says the artifact
  has no checksums and so cannot be verified).  Large arrays come
  back as read-only memory maps.  The record gains `digest` (see `digest`)."""
  path = pathlib.Path(path).absolute()
  record = read_record(path)
  check_record(record, path, kind, expect)
  verify(path)
  arrays = {}
  try:
    if (path / "arrays").is_dir():
      arrays.update(_checkpointer().restore(path, ocp.args.Composite(arrays=ocp.args.StandardRestore())).arrays)
    for name in record.get("large_arrays", []):
      arrays[name] = np.load(path / "large" / f"{name}.npy", mmap_mode="r")
  except Exception as error:  # verified files Orbax cannot read: changed since, or another Orbax's
    raise ArtifactDamaged(f"artifact {path} is damaged: {type(error).__name__}: {error}") from None
  record["digest"] = digest(path)
  return arrays, record


def resuming(load_fn, path, *args):
  """`load_fn(path, *args)` for a run about to resume from the artifact at `path`; a
  mismatch or damage is re-raised saying how to start afresh instead."""
  try:
    return load_fn(path, *args)
  except (ArtifactMismatch, ArtifactDamaged) as error:
    raise type(error)(f"{error}; overwrite=True (--overwrite) replaces it with a fresh run") from None


def policy_identity(env, policy) -> dict:
  """What parameter arrays of `policy` on `env` are only valid for: env name, backend,
  episode length and the policy's shape and input normalisation.  Stages put this in
  their artifacts' identity."""
  return {"env": env.name, "backend": env.backend, "episode_length": env.episode_length,
          "policy": policy_shape(policy)}


def policy_shape(policy) -> dict:
  """The policy part of `policy_identity`: its sizes, activation and input normalisation."""
  normalization = None if policy.obs_scale is None else [list(policy.obs_shift), list(policy.obs_scale)]
  return {"obs_size": policy.obs_size, "action_size": policy.action_size, "hidden": list(policy.hidden),
          "activation": policy.activation, "num_params": policy.num_params, "obs_normalization": normalization}
