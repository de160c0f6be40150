"""Process-level JAX settings that entry points (CLI, experiments, tests) opt into."""

import os
import pathlib

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
