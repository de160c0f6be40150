"""Shared fixtures.  Compiled programs are shared across tests through session-scoped
envs and policies (a program is cached per env object) and JAX's persistent cache."""

import os

import jax
import pytest

from lsc import enable_compilation_cache, use_cpu_cores
from lsc.envs import make_env
from lsc.policy import make_policy

# the suite runs in two processes (pyproject.toml): on a GPU host neither may take 75 % of its memory
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Two CPU devices, as on the CI machine: every rollout in the suite takes the sharded path.
use_cpu_cores(2)
enable_compilation_cache()


@pytest.fixture
def env_registry(monkeypatch):
  """The env registry (`lsc.envs.registry`) with lsc's envs in it; what a test registers
  is gone after it."""
  from lsc.envs import registry
  monkeypatch.setattr(registry, "_SPECS", dict(registry._specs()))
  return registry


@pytest.fixture(scope="session")
def mountain_car():
  return make_env("mountain_car")


@pytest.fixture(scope="session")
def hopper():
  """Hopper on the CPU default backend, short episodes."""
  return make_env("hopper", backend="spring", episode_length=60)


@pytest.fixture(scope="session")
def hopper_policy(hopper):
  return make_policy(hopper, "medium")


@pytest.fixture(scope="session")
def mc_policy(mountain_car):
  return make_policy(mountain_car, "medium")


def keys(n: int, episodes: int = 1, seed: int = 0) -> jax.Array:
  """Distinct reset keys (n, episodes)."""
  return jax.random.split(jax.random.key(seed), n * episodes).reshape(n, episodes)
