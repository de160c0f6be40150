"""One run across processes and hosts: JAX's multi-controller runtime (`jax.distributed`).

Every process runs the same program on its own devices; together they form one global
device mesh (`jax.devices()`), over which `lsc.sharding` splits a population.  What lsc
adds on top:

- `initialize`: the standard settings (coordinator address, number of processes,
  process id) from flags or the environment (`JAX_COORDINATOR_ADDRESS` is JAX's own;
  `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` are read here; on Slurm or Open MPI JAX
  finds all three itself with `--distributed auto`).  CPU processes exchange data over
  gloo.  Call before anything touches JAX (`lsc.setup_command_line` does).
- Process 0 writes every file (`on_main`), the others wait at a barrier until it has,
  then read what it wrote: a run's `--out` must be on a filesystem every host sees.
- Work split by rows (`row_range`, `gather_rows`): the pool's descriptors and the kNN
  novelty rows, each process its own contiguous block (each regenerates its own pool
  members), gathered on every process.  Rollouts, evaluations and searches shard their
  population over the global mesh (`lsc.sharding`); the autoencoder trains on every
  process alike (one device each), and what later stages read is process 0's file.

With one process (the default) every function here is a no-op: `on_main` runs its
function, barriers return at once.
"""

import argparse
import dataclasses
import os
import sys
from typing import Callable, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

from lsc import jax_setup

T = TypeVar("T")
NUM_PROCESSES_ENV, PROCESS_ID_ENV, COORDINATOR_ENV = "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_COORDINATOR_ADDRESS"


@dataclasses.dataclass(frozen=True)
class DistributedSettings:
  """How this process joins a multi-process run.  All None and `auto` False: a
  one-process run.  `auto`: let JAX detect the cluster (Slurm, Open MPI, ...)."""
  coordinator: str | None = None  # host:port of process 0's coordinator service
  num_processes: int | None = None
  process_id: int | None = None
  auto: bool = False

  @classmethod
  def from_env(cls, **overrides) -> "DistributedSettings":
    """Settings from the environment, `overrides` (not None) winning."""
    def number(name):
      value = os.environ.get(name)
      if value is None:
        return None
      try:
        return int(value)
      except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    found = {"coordinator": os.environ.get(COORDINATOR_ENV) or None, "num_processes": number(NUM_PROCESSES_ENV),
             "process_id": number(PROCESS_ID_ENV)}
    found.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**found)

  @property
  def wanted(self) -> bool:
    """Whether these settings ask for a multi-process run."""
    return self.auto or any(v is not None for v in (self.coordinator, self.num_processes, self.process_id))

  def check(self) -> None:
    """ValueError naming what is missing or out of range."""
    if not self.wanted or self.auto:
      return
    missing = [flag for flag, v in (("--coordinator", self.coordinator), ("--num-processes", self.num_processes),
                                    ("--process-id", self.process_id)) if v is None]
    if missing:
      raise ValueError(f"a multi-process run needs {', '.join(missing)} (or {COORDINATOR_ENV}, {NUM_PROCESSES_ENV}, "
                       f"{PROCESS_ID_ENV}), or --distributed auto on Slurm / Open MPI")
    if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
      raise ValueError(f"need num_processes >= 1 and 0 <= process_id < num_processes, got "
                       f"{self.num_processes} and {self.process_id}")
    if ":" not in self.coordinator:
      raise ValueError(f"coordinator must be host:port, got {self.coordinator!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The multi-process flags every lsc command line takes."""
  group = parser.add_argument_group("multi-process runs (jax.distributed; see docs/multiprocess.md)")
  group.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                     help=f"process 0's address, the same for every process (or {COORDINATOR_ENV})")
  group.add_argument("--num-processes", type=int, default=None, help=f"processes in the run (or {NUM_PROCESSES_ENV})")
  group.add_argument("--process-id", type=int, default=None, help=f"this process, 0..N-1 (or {PROCESS_ID_ENV})")
  group.add_argument("--distributed", choices=("auto",), default=None,
                     help="auto: JAX reads all three from the cluster (Slurm, Open MPI)")


def settings_from_args(args: argparse.Namespace) -> DistributedSettings:
  """The settings of a command line parsed with `add_arguments` (environment filled in)."""
  return DistributedSettings.from_env(coordinator=args.coordinator, num_processes=args.num_processes,
                                      process_id=args.process_id, auto=args.distributed == "auto" or None)


def setup_command_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """`lsc.setup_command_line` joined to the multi-process run `args` ask for (parsed by
  `parser`, which has `add_arguments`'s flags); a bad setting is the parser's error."""
  try:
    settings = settings_from_args(args)
    jax_setup.setup_command_line(lambda: _join(settings))
  except ValueError as error:
    parser.error(str(error))


def _join(settings: "DistributedSettings") -> None:
  """Joins the run `settings` ask for; its processes other than 0 print nothing (their
  stdout goes to /dev/null)."""
  if initialize(settings) and not is_main():
    sys.stdout = open(os.devnull, "w")


def initialize(settings: DistributedSettings) -> bool:
  """Joins the multi-process run `settings` ask for (before JAX's first computation);
  returns whether it did.  CPU processes exchange data over gloo."""
  settings.check()
  if not settings.wanted:
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(settings.coordinator, settings.num_processes, settings.process_id)
  return True


def is_main() -> bool:
  """Whether this is process 0 (the one that writes files and prints)."""
  return jax.process_index() == 0


def is_multi() -> bool:
  """Whether this process is one of several (a multi-process run)."""
  return jax.process_count() > 1


def barrier(name: str) -> None:
  """Every process waits here until all have arrived (one process: returns at once).
  Every process must pass the same barriers in the same order."""
  if is_multi():
    multihost_utils.sync_global_devices(name)


def on_main(fn: Callable[..., T], *args, **kwargs) -> T | None:
  """fn(*args, **kwargs) on process 0 only, then a barrier, so that every process can
  read what it wrote; returns fn's result on process 0 and None on the others.  If fn
  raises on process 0, the others do not wait for ever: two CPU processes (gloo) fail at
  the barrier about 30 s later (measured), with a DEADLINE_EXCEEDED error."""
  result = fn(*args, **kwargs) if is_main() else None
  barrier(f"lsc.on_main:{getattr(fn, '__qualname__', fn)}")
  return result


def agree(flag: bool) -> bool:
  """Process 0's `flag`, on every process (one process: `flag`): for decisions taken
  from something processes do not share, such as their clocks, so that all of them
  take the same branch and pass the same barriers."""
  if not is_multi():
    return flag
  return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def _rows(n: int, block: int, process: int, count: int) -> range:
  blocks = -(-n // block)
  return range(min(n, blocks * process // count * block), min(n, blocks * (process + 1) // count * block))


def row_range(n: int, block: int = 1) -> range:
  """This process's share of n rows: a contiguous run of whole blocks of `block` rows
  (the processes' shares differ by at most one block; one may be empty).  Splitting
  at the blocks a one-process run uses keeps every device call the same, so the
  results are bit-identical.  One process: range(n)."""
  return _rows(n, block, jax.process_index(), jax.process_count())


def gather_rows(local: np.ndarray, n: int, block: int = 1) -> np.ndarray:
  """Every process's `local` rows (this process's `row_range(n, block)`), stacked in
  process order, on every process: (n, ...).  One process: `local` itself."""
  if not is_multi():
    return local
  count = jax.process_count()
  ranges = [_rows(n, block, p, count) for p in range(count)]
  padded = np.zeros((max(map(len, ranges)), *local.shape[1:]), local.dtype)
  padded[:len(local)] = local
  everyone = np.asarray(multihost_utils.process_allgather(padded))  # (processes, rows, ...)
  return np.concatenate([everyone[p, :len(r)] for p, r in enumerate(ranges)])
