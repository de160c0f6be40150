"""The population axis, sharded over a 1-D device mesh.

Every population-wide stage splits its N policies evenly over the mesh's devices and
runs the same per-device program on each slice (`shard_population`), so work scales
with the number of devices and needs no communication.  On one device this is a
no-op.  Several CPU devices can be faked with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` (set before jax is imported);
a multi-process run (`lsc.distributed`) spans every process's devices, and its results
come back whole on every process (`gather`).
"""

import functools
from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

POP_AXIS = "pop"


def population_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named `pop` over `devices` (default: all of them)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (POP_AXIS,))


def spans_processes(mesh: Mesh) -> bool:
  """Whether some of the mesh's devices belong to other processes."""
  return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def gather(tree, mesh: Mesh):
  """`tree`, the outputs of a program on `mesh` (or host arrays equal on every process),
  whole on every device when the mesh spans processes (so that every process can read
  them); otherwise `tree` itself.  A program of its own that copies and computes
  nothing, so the program that made `tree` partitions its work as it would in one
  process: the values are bit-identical."""
  return _gather_fn(mesh)(tree) if spans_processes(mesh) else tree


@functools.lru_cache(maxsize=8)
def _gather_fn(mesh: Mesh):
  return jax.jit(lambda tree: tree, out_shardings=NamedSharding(mesh, PartitionSpec()))


def shard_population(fn: Callable, mesh: Mesh) -> Callable:
  """Runs `fn` on each device's slice of the leading (population) axis of every
  argument and output.  The leading axis must be divisible by the mesh size."""
  spec = PartitionSpec(POP_AXIS)
  return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)


def chunk_layout(n: int, n_devices: int, chunk_size: int) -> tuple[int, int]:
  """(chunk, n_chunks) per device so that n_devices * n_chunks * chunk >= n.

  The chunk shrinks to the per-device population when that is smaller, so a
  population of 1 is never padded to a whole chunk.
  """
  per_device = -(-n // n_devices)
  chunk = max(1, min(chunk_size, per_device))
  return chunk, -(-per_device // chunk)
