"""Compatibility shims between the pinned JAX and the libraries built on it.

brax 0.14.2's training agents (PPO, SAC, APG, `brax.training.pmap`) replicate their
training state over devices with `jax.device_put_replicated`, which JAX deprecated and
then removed (it raises AttributeError on jax 0.11.2).  `ensure_device_put_replicated()`
installs an equivalent under that name when, and only when, JAX lacks it.

Nothing here touches JAX at import time: the shim is installed by the code that needs
it (`lsc.baselines`), after the entry point has configured JAX's devices
(`lsc.jax_setup.use_cpu_cores`).
"""

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

REPLICA_AXIS = "replica"


def device_put_replicated(x: Any, devices: Sequence[jax.Device]) -> Any:
  """The old `jax.device_put_replicated`: every leaf of pytree `x`, shape S, becomes an
  array of shape (len(devices), *S) whose slice i is a copy of the leaf held on
  devices[i].

  The result is sharded over a 1-D mesh of `devices` along its leading axis (one
  slice per device), which is what `jax.pmap` over those devices expects as input
  and what Brax's `_unpmap` (`x.addressable_shards[0].data.squeeze(0)`) reads back.
  Not jit-safe (it places data on devices).
  """
  devices = list(devices)
  if not devices:
    raise ValueError("device_put_replicated needs a non-empty sequence of devices")
  sharding = NamedSharding(Mesh(np.asarray(devices), (REPLICA_AXIS,)), PartitionSpec(REPLICA_AXIS))

  def replicate(leaf):
    leaf = jnp.asarray(leaf)
    copies = [jax.device_put(leaf[None], device) for device in devices]
    return jax.make_array_from_single_device_arrays((len(devices), *leaf.shape), sharding, copies)

  return jax.tree.map(replicate, x)


def has_device_put_replicated() -> bool:
  """Whether `jax.device_put_replicated` resolves (JAX's own or an installed shim)."""
  try:
    getattr(jax, "device_put_replicated")
  except AttributeError:
    return False
  return True


def ensure_device_put_replicated() -> bool:
  """Makes `jax.device_put_replicated` available, installing `device_put_replicated`
  above if JAX has none.  Idempotent; returns True only if this call installed it."""
  if has_device_put_replicated():
    return False
  jax.device_put_replicated = device_put_replicated
  return True
