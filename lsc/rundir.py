"""Run directories: the `--out` of `lsc rollout/train/search` and of the pipelines.

A run directory is lsc's when it holds the marker `.lsc-run.json` (written when it is
first claimed) or only names its kind writes.  `claim(path, kind)` refuses anything
else before any work starts, so lsc never writes into, or deletes from, a directory of
the user's, and a path too long for what a run writes below it; `lock(path)` refuses
a second process writing to the same place.
"""

import contextlib
import datetime
import fcntl
import fnmatch
import json
import os
import pathlib
import socket

from lsc.checkpoint import ForeignPath, check_creatable, check_length, is_staging
from lsc.distributed import is_main, on_main

MARKER = ".lsc-run.json"
LOCK = ".lsc.lock"
# what each kind of run writes at the top of its directory (fnmatch patterns)
WRITES = {
    "rollout": ("pool_returns", "summary.json", "returns.png", "metrics.jsonl", "tensorboard"),
    "train": ("model", "recovery.json", "training.png", "landscape.png", "metrics.jsonl", "tensorboard"),
    "search": ("state", "state_seed*", "result", "latent", "param", "outcome.json", "curves.png", "summary.json",
               "metrics.jsonl", "tensorboard"),
    "pipeline": ("dataset", "autoencoder", "search", "results.json", "summary.md", "curves_*.png",
                 "training.png", "landscape.png", "metrics.jsonl", "tensorboard"),
}
# the deepest artifact a run writes below its directory, in characters (a pipeline's
# search/<task>_<method>/latent/state_seed<n> is under 60)
DEPTH = 64


class OutputLocked(ValueError):
  """Another live process is writing to the same output."""


def _ours(name: str, kind: str) -> bool:
  if name in (MARKER, LOCK) or (name.startswith(".") and (".tmp-" in name or name.endswith(".lock"))):
    return True
  if is_staging(name):  # a stage or artifact moved aside to be removed (see lsc.checkpoint.clean_staging)
    return True
  return any(fnmatch.fnmatch(name, pattern) for pattern in WRITES[kind])


def check(path, kind: str) -> None:
  """Raises ForeignPath unless `path` can be (or already is) a run directory of `kind`:
  short enough for the artifacts a run writes below it (see `DEPTH`,
  `lsc.checkpoint.check_length`), and absent with a creatable parent, empty, marked as a
  `kind` run, or holding only what a `kind` run writes."""
  if kind not in WRITES:
    raise ValueError(f"unknown run kind {kind!r}; valid: {', '.join(WRITES)}")
  path = pathlib.Path(path).absolute()
  check_length(path, "--out ", below=DEPTH)
  if path.exists() and not path.is_dir():
    raise ForeignPath(f"--out {path} exists and is not a directory")
  if not path.exists():
    check_creatable(path, "--out ")
    return
  if not os.access(path, os.W_OK | os.X_OK):
    raise ForeignPath(f"--out {path} is not writable")
  marker = path / MARKER
  if marker.exists():
    try:
      found = json.loads(marker.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
      found = None
    if found != kind:
      raise ForeignPath(f"--out {path} is an lsc {found!r} run directory, not a {kind!r} one; choose another --out")
    return
  foreign = sorted(e.name for e in path.iterdir() if not _ours(e.name, kind))
  if foreign:
    raise ForeignPath(f"--out {path} holds files lsc did not write ({', '.join(foreign[:3])}"
                      f"{', ...' if len(foreign) > 3 else ''}); lsc never writes into or deletes from such a "
                      f"directory: choose a new or empty one")


def claim(path, kind: str) -> pathlib.Path:
  """`check`, then creates the directory and its marker; returns the absolute path."""
  check(path, kind)
  path = pathlib.Path(path).absolute()
  on_main(_mark, path, kind)
  return path


def _mark(path: pathlib.Path, kind: str) -> None:
  path.mkdir(parents=True, exist_ok=True)
  marker = path / MARKER
  if not marker.exists():
    tmp = path / f".{MARKER}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"kind": kind, "created": _now()}))
    os.replace(tmp, marker)


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def lock(path, name: str = LOCK):
  """Holds an exclusive lock on `path`/`name` (an flock, released by the kernel when the
  process dies, so a killed run never leaves a stale lock); OutputLocked names the
  holder if another process has it.  In a multi-process run process 0 holds it for all."""
  path = pathlib.Path(path).absolute()
  if not is_main():
    yield path
    return
  path.mkdir(parents=True, exist_ok=True)
  file = path / name
  fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
      raise OutputLocked(f"another lsc process is writing to {path} ({holder}); wait for it to finish") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {_now()}".encode(), 0)
    yield path
  finally:
    os.close(fd)  # releases the flock


@contextlib.contextmanager
def artifact_lock(path):
  """`lock` for an artifact path (e.g. `lsc collect --out`): the lock file sits beside
  the artifact, `.<name>.lock`, since the artifact directory itself is replaced whole."""
  path = pathlib.Path(path).absolute()
  with lock(path.parent, f".{path.name}.lock"):
    yield path
