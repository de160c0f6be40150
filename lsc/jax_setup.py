"""Process-level JAX settings that entry points (CLI, experiments, tests) opt into."""

import os
import pathlib
import warnings

import jax

DEFAULT_CACHE_DIR = pathlib.Path(
    os.environ.get("LSC_CACHE_DIR", pathlib.Path.home() / ".cache" / "lsc")
) / "jax"


def enable_compilation_cache(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Turns on JAX's persistent compilation cache and returns its directory.

  A program compiled once (a Brax rollout takes 5-30 s on 2 CPU cores) is then
  loaded from disk by later processes.  `JAX_COMPILATION_CACHE_DIR`, if set,
  wins over `cache_dir`; the default is `~/.cache/lsc/jax` (or `$LSC_CACHE_DIR/jax`).
  """
  path = pathlib.Path(
      os.environ.get("JAX_COMPILATION_CACHE_DIR") or cache_dir or DEFAULT_CACHE_DIR
  )
  path.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def use_cpu_cores(n: int | None = None) -> int:
  """Exposes the host's cores as `n` JAX CPU devices (default: all of them).

  XLA runs one small program on about one core; a population sharded over one CPU
  device per core (`lsc.sharding`) uses them all (2 cores: mountain_car 9.2M ->
  16M env-steps/s).  Call before JAX's first computation; later it is a no-op.  An
  explicit `--xla_force_host_platform_device_count` in XLA_FLAGS wins.  On a GPU
  machine this only affects the unused CPU backend.  Returns the CPU device count.
  """
  _request_cpu_devices(n)
  return len(jax.devices("cpu"))


def _request_cpu_devices(n: int | None = None) -> None:
  """`use_cpu_cores` without starting JAX (so `jax.distributed` can still initialize)."""
  n = n or os.cpu_count() or 1
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return
  try:
    jax.config.update("jax_num_cpu_devices", n)
  except RuntimeError:
    warnings.warn(f"use_cpu_cores({n}) called after JAX started: keeping "
                  f"{len(jax.devices('cpu'))} CPU device(s)", stacklevel=3)


_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_compile_seconds = [0.0]


def _on_duration(event: str, duration: float, **kwargs) -> None:
  if event in _COMPILE_EVENTS:
    _compile_seconds[0] += duration


jax.monitoring.register_event_duration_secs_listener(_on_duration)


def compile_seconds() -> float:
  """Seconds this process has spent tracing, lowering and compiling JAX programs so far
  (JAX's own monitoring events): the difference across a call is its compile time."""
  return _compile_seconds[0]


# dependency warnings a user of lsc cannot act on: (message regex, category)
DEPENDENCY_NOISE = (
    ("Brax System, piplines and environments are not actively being maintained", UserWarning),
    ("JAXopt is no longer maintained", DeprecationWarning),
    ("Accessing `.*` directly from `Data` is deprecated", DeprecationWarning),
)


def quiet_dependencies() -> None:
  """Filters DEPENDENCY_NOISE and the physics libraries' import-time prints
  (`lsc.envs.quiet_imports`).  For command lines only: tests keep every warning."""
  from lsc.envs import quiet_imports  # lsc.envs (jax.numpy, flax) stays out of `import lsc`, which loads this module
  for message, category in DEPENDENCY_NOISE:
    warnings.filterwarnings("ignore", message=message, category=category)
  quiet_imports()


def setup_command_line(join=None) -> None:
  """What every lsc command line does first: one JAX device per CPU core
  (`use_cpu_cores`), then `join()` if given (`lsc.distributed.setup_command_line` joins
  a multi-process run there, between the device request and JAX's first computation),
  dependency noise filtered (`quiet_dependencies`) and the persistent compilation cache
  on (`enable_compilation_cache`).  Call before anything touches JAX."""
  _request_cpu_devices()
  if join is not None:
    join()
  quiet_dependencies()
  enable_compilation_cache()


def release_executables(fraction: float = 0.5) -> bool:
  """Drops JAX's in-memory caches (`jax.clear_caches`) if this process holds more than
  `fraction` of the kernel's memory-map limit (Linux: the lines of /proc/self/maps
  against vm.max_map_count; elsewhere it does nothing).  Compiled CPU executables stay
  mapped while the caches hold them, and a long run of many programs (a pipeline of
  dozens of searches, a sweep) otherwise dies at the limit with LLVM's "Cannot allocate
  memory"; a program needed again comes back from the persistent cache.  Returns
  whether it dropped them."""
  try:
    limit = int(pathlib.Path("/proc/sys/vm/max_map_count").read_text())
    with open("/proc/self/maps", "rb") as maps:
      used = sum(1 for _ in maps)
  except (OSError, ValueError):
    return False
  if used <= fraction * limit:
    return False
  jax.clear_caches()
  return True


def cpu_ids() -> dict[str, str]:
  """The host's first processor's "model name", "cpu family" and "model" from
  /proc/cpuinfo, those it gives, in that order ({} where unread): one name covers
  several chips, and chips of one name can round differently (XLA compiles for the
  host's instruction set)."""
  try:
    lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
  except OSError:
    return {}
  info = {}
  for line in lines:
    if not line.strip():  # the first processor's block is enough
      break
    key, _, value = line.partition(":")
    info.setdefault(key.strip(), value.strip())
  return {k: info[k] for k in ("model name", "cpu family", "model") if info.get(k)}
