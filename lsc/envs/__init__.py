"""Environments: `make_env(name, backend=..., episode_length=...)`.

An env is one `EnvSpec` in the registry (`lsc.envs.registry`: `register_env`,
`get_env_spec`, `env_names`), which everything else reads; lsc's six are registered in
`lsc.envs.builtin`.  Any other object with Brax's env protocol (a Brax env, a pure-JAX
env of your own) becomes an lsc env by `as_env(obj, ...)` (`lsc.envs.foreign`), which
every entry point that takes an env calls; `env_spec(env)` is what lsc reads of any env.
All six follow Brax's `Env` protocol (reset/step on a `State`
with Brax's fields), so Brax's wrappers and training agents run on them unchanged.  Mountain Car is pure JAX
(`lsc.envs.base`): building it imports neither Brax nor MuJoCo; the Brax envs
(`lsc.envs.mujoco`) are imported when first built.  Termination belongs to the env;
the time limit does not: `env.episode_length` is the truncation horizon that rollouts
and `brax.envs.wrappers.training.EpisodeWrapper` apply.

Physics backends of the Brax envs: `mjx` (Brax's MJX pipeline, MJX's JAX implementation)
and `mjx_warp` (the same model through MuJoCo Warp, `lsc.envs.mjx_impl`), the default
on an NVIDIA GPU where warp-lang is installed, else `mjx` on GPU/TPU.  On CPU MJX is
far too slow (2 cores, 256 envs x 100 steps: halfcheetah 1.5k env-steps/s on mjx,
3.0k generalized, 3.7k positional, 8.6k spring; hopper 2.7k / 9.4k / 22.6k / 109k),
so the CPU default is `spring`.  Brax retunes halfcheetah and reacher for spring and
positional (shorter timestep, more substeps, other gears): results from different
backends are not comparable, which is why the backend is part of every artifact.
"""

import contextlib
import importlib
import io
import sys

import jax
import jax.numpy as jnp

from lsc.envs.base import Env, State
from lsc.envs.foreign import ForeignEnv, as_env, with_spec
from lsc.envs.registry import PROBE_MODES, EnvSpec, env_names, get_env_spec, register_env

# mjx_warp: MJX with MuJoCo Warp's kernels (`lsc.envs.mjx_impl`; pip install -e '.[warp]')
BRAX_BACKENDS = ("mjx", "mjx_warp", "spring", "positional", "generalized")

_QUIET = [False]  # set by quiet_imports(): entry points only, so tests still see everything


def quiet_imports() -> None:
  """Silences what the physics dependencies print that a user cannot act on: MuJoCo
  MJX's "Failed to import warp" lines (no Warp installed) and MuJoCo's deprecation
  warning about Brax's `settotalmass` model attribute.  Other MuJoCo warnings still
  reach stderr.  Called by lsc's command lines."""
  _QUIET[0] = True


def _mujoco_warning(message: str) -> None:
  if "settotalmass" not in message:
    print(f"MuJoCo warning: {message}", file=sys.stderr)


def import_quietly(module: str):
  """`importlib.import_module(module)`, with what the physics libraries print on import
  (MJX's "Failed to import warp" lines) swallowed once `quiet_imports()` was called,
  and MuJoCo's warnings routed through `_mujoco_warning` once MuJoCo is loaded."""
  if _QUIET[0] and module not in sys.modules:
    with contextlib.redirect_stdout(io.StringIO()):
      importlib.import_module(module)
    if "mujoco" in sys.modules:
      sys.modules["mujoco"].set_mju_user_warning(_mujoco_warning)
  return importlib.import_module(module)


def _constructor(spec: EnvSpec):
  """`spec.make` as a callable: its "module:attr" imported (quietly) on first use."""
  if callable(spec.make):
    return spec.make
  module, _, attr = spec.make.partition(":")
  return getattr(import_quietly(module), attr)


def brax_backend() -> str:
  """The default backend of a Brax env here: `mjx_warp` on an NVIDIA GPU with warp-lang
  installed, `mjx` on other GPUs and TPUs, and `spring` on CPU."""
  if jax.default_backend() not in ("gpu", "cuda", "rocm", "tpu"):
    return "spring"
  mjx_impl = import_quietly("lsc.envs.mjx_impl")
  return "mjx_warp" if mjx_impl.cuda_available() and mjx_impl.warp_installed() else "mjx"


def env_spec(env) -> EnvSpec:
  """The spec of `env`: a registered env's name, an lsc env (the spec it was built with,
  which `lsc.tasks.with_tasks` may have extended), or any env object (`as_env` adopts it)."""
  if isinstance(env, str):
    return get_env_spec(env)
  spec = getattr(env, "spec", None)
  return spec if isinstance(spec, EnvSpec) else as_env(env).spec


def default_backend(name: str) -> str:
  """The backend env `name` runs on unless told otherwise: its spec's `choose_backend()`
  (`brax_backend` for lsc's Brax envs), else its first backend (`jax` for mountain_car)."""
  spec = get_env_spec(name)
  return spec.choose_backend() if spec.choose_backend is not None else spec.backends[0]


def obs_normalization(env) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(shift, scale) mapping the observation bounds of `env` (an env or a registered name)
  onto [-1, 1]: the midpoint and half-width of each coordinate, (O,) each.  ValueError
  for an env without bounds."""
  bounds = env_spec(env).obs_bounds
  if bounds is None:
    bounded = [n for n in env_names() if get_env_spec(n).obs_bounds is not None]
    raise ValueError(f"observation normalisation needs known observation bounds; "
                     f"envs that have them: {', '.join(bounded)}")
  low, high = bounds
  return (tuple((h + l) / 2 for l, h in zip(low, high)), tuple((h - l) / 2 for l, h in zip(low, high)))


def make_env(name: str, backend: str | None = None, episode_length: int | None = None) -> Env:
  """Builds env `name` on `backend` (None: `default_backend(name)`).

  The returned env has `.name`, `.backend` and `.episode_length` (None: the spec's
  default: 999 for mountain_car, 50 for reacher, 1000 for the others).  Raises ValueError for unknown names,
  backends or a non-positive episode length, before anything is compiled.  On
  `mjx_warp` the env is built on `mjx` (the MJCF's own parameters) and stepped by
  MuJoCo Warp, its contact buffer sized by the spec's `contacts_per_world`.
  """
  spec = get_env_spec(name)
  backend = backend or default_backend(name)
  if backend not in spec.backends:
    raise ValueError(f"unknown backend {backend!r} for env {name!r}; valid backends: {', '.join(spec.backends)}")
  episode_length = spec.episode_length if episode_length is None else int(episode_length)
  if episode_length < 1:
    raise ValueError(f"episode_length must be >= 1, got {episode_length}")
  if backend == "mjx_warp":
    import_quietly("lsc.envs.mjx_impl").check_warp()  # before anything is built
  env = _constructor(spec)(backend="mjx" if backend == "mjx_warp" else backend, episode_length=episode_length)
  env.name, env.spec = spec.name, spec
  if backend == "mjx_warp":
    pipeline = import_quietly("lsc.envs.mjx_impl").MjxPipeline(env.sys.mj_model, "warp",
                                                                contacts_per_world=spec.contacts_per_world)
    env.use_mjx_pipeline(pipeline, "mjx_warp")
  return env


def select_state(keep_new: jax.Array, new, old):
  """`where(keep_new, new, old)` over two env States (one episode's, inside a vmap; or
  with a `keep_new` that broadcasts against every leaf).  MJX physics data merges through
  `mujoco.mjx.Data.where`: the same selection on every per-world field, while MuJoCo
  Warp's buffers shared by the whole batch (contacts) keep `old`'s; collision detection
  refills them at every step."""
  pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(keep_new, x, y), a, b)
  ps_new, ps_old = new.pipeline_state, old.pipeline_state
  rest = pick(new.replace(pipeline_state=None), old.replace(pipeline_state=None))
  physics = ps_old.where(keep_new, ps_new) if hasattr(ps_old, "where") else pick(ps_new, ps_old)
  return rest.replace(pipeline_state=physics)


def for_worlds(env, worlds: int):
  """`env` sized for one batched (vmapped) call over `worlds` episodes: itself, except on
  `mjx_warp`, whose contact buffer is shared by the batch (`lsc.envs.mjx_impl`).
  Wrappers are not looked through: size the env before wrapping it."""
  # the class, not the instance: a Brax wrapper forwards attributes and would hand back the unwrapped env
  return env.for_worlds(worlds) if hasattr(type(env), "for_worlds") else env


__all__ = ["EnvSpec", "register_env", "get_env_spec", "env_names", "env_spec", "as_env", "with_spec", "ForeignEnv",
           "Env", "State", "PROBE_MODES", "BRAX_BACKENDS", "make_env",
           "for_worlds", "select_state", "default_backend", "brax_backend", "obs_normalization"]
