"""One artifact format for every stage: a directory written by Orbax.

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
`load_artifact(path, kind=..., expect={...})` compares the record with what the
caller needs and refuses a mismatch with a message naming every differing field.
"""

import datetime
import importlib.metadata
import pathlib
import platform
import shutil
import uuid

import jax
import numpy as np
import orbax.checkpoint as ocp

from lsc.config import flatten

LARGE_BYTES = 64 * 2**20
PACKAGES = ("lsc", "jax", "jaxlib", "flax", "optax", "chex", "brax", "mujoco", "mujoco-mjx",
            "evosax", "orbax-checkpoint", "numpy")
FORMAT_VERSION = 2


class ArtifactMismatch(ValueError):
  """An artifact exists but was made for another env, backend, policy, ..."""


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
  return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


def save_artifact(path, arrays: dict, *, kind: str, config: dict, identity: dict) -> pathlib.Path:
  """Atomically writes `arrays` (a pytree of arrays) with their record to directory `path`,
  replacing any artifact already there.  Returns the path."""
  path = pathlib.Path(path).absolute()
  path.parent.mkdir(parents=True, exist_ok=True)
  record = {"format": FORMAT_VERSION, "kind": kind, "identity": identity, "config": config,
            "versions": versions(), "platform": jax.default_backend(),
            "devices": [d.device_kind for d in jax.devices()][:1] + [f"x{jax.device_count()}"],
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  large = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray) and v.nbytes >= LARGE_BYTES}
  record["large_arrays"] = sorted(large)
  token = uuid.uuid4().hex[:8]
  staging = path.with_name(f".{path.name}.tmp-{token}")
  small = {k: v for k, v in arrays.items() if k not in large}
  items = {"record": ocp.args.JsonSave(record)}
  if small:  # Orbax refuses an empty tree
    items["arrays"] = ocp.args.StandardSave(small)
  _checkpointer().save(staging, ocp.args.Composite(**items))
  if large:
    (staging / "large").mkdir()
    for name, value in large.items():
      np.save(staging / "large" / f"{name}.npy", value, allow_pickle=False)
  if path.exists():
    retired = path.with_name(f".{path.name}.old-{token}")
    path.rename(retired)
    staging.rename(path)
    shutil.rmtree(retired)
  else:
    staging.rename(path)
  return path


def is_artifact(path) -> bool:
  """True if `path` holds a complete artifact."""
  path = pathlib.Path(path)
  return (path / "record").is_dir()


def read_record(path) -> dict:
  """The JSON record of the artifact at `path` (cheap: no arrays are read)."""
  path = pathlib.Path(path).absolute()
  if not is_artifact(path):
    raise FileNotFoundError(f"no lsc artifact at {path}")
  return _checkpointer().restore(path, ocp.args.Composite(record=ocp.args.JsonRestore())).record


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


def load_artifact(path, *, kind: str | None = None, expect: dict | None = None) -> tuple[dict, dict]:
  """Loads (arrays, record) from `path` after checking the record (see `check_record`).
  Large arrays come back as read-only memory maps."""
  path = pathlib.Path(path).absolute()
  record = read_record(path)
  check_record(record, path, kind, expect)
  arrays = {}
  if (path / "arrays").is_dir():
    arrays.update(_checkpointer().restore(path, ocp.args.Composite(arrays=ocp.args.StandardRestore())).arrays)
  for name in record.get("large_arrays", []):
    arrays[name] = np.load(path / "large" / f"{name}.npy", mmap_mode="r")
  return arrays, record


def policy_identity(env, policy) -> dict:
  """What parameter arrays of `policy` on `env` are only valid for: env name, backend,
  episode length and the policy's shape and input normalisation.  Stages put this in
  their artifacts' identity."""
  normalization = None if policy.obs_scale is None else [list(policy.obs_shift), list(policy.obs_scale)]
  return {"env": env.name, "backend": env.backend, "episode_length": env.episode_length,
          "policy": {"obs_size": policy.obs_size, "action_size": policy.action_size,
                     "hidden": list(policy.hidden), "activation": policy.activation,
                     "num_params": policy.num_params, "obs_normalization": normalization}}
