"""The population axis, sharded over a 1-D device mesh.

Every population-wide stage splits its N policies evenly over the mesh's devices and
runs the same per-device program on each slice (`shard_population`), so work scales
with the number of devices and needs no communication.  On one device this is a
no-op.  Several CPU devices can be faked with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` (set before jax is imported);
multi-host runs call `jax.distributed.initialize()` first and pass all devices.
"""

from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

POP_AXIS = "pop"


def population_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named `pop` over `devices` (default: all of them)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (POP_AXIS,))


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
