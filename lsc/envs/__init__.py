"""Environments: `make_env(name, backend=..., episode_length=...)`.

All four follow Brax's `Env` protocol (reset/step on a `State` with Brax's fields), so
Brax's wrappers and training agents run on them unchanged.  Mountain Car is pure JAX
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

from lsc.envs.base import Env

# env name -> (module, class), imported when the env is first built
_CLASSES = {"mountain_car": ("lsc.envs.mountain_car", "MountainCar"), "reacher": ("lsc.envs.mujoco", "Reacher"),
            "hopper": ("lsc.envs.mujoco", "Hopper"), "halfcheetah": ("lsc.envs.mujoco", "HalfCheetah")}
ENV_NAMES = tuple(_CLASSES)
# mjx_warp: MJX with MuJoCo Warp's kernels (`lsc.envs.mjx_impl`; pip install -e '.[warp]')
BRAX_BACKENDS = ("mjx", "mjx_warp", "spring", "positional", "generalized")
# (observation size, action size) of each env, known without building it.
ENV_SIZES = {"mountain_car": (2, 1), "reacher": (11, 2), "hopper": (11, 3), "halfcheetah": (17, 6)}
DEFAULT_EPISODE_LENGTH = {"mountain_car": 999, "reacher": 50, "hopper": 1000, "halfcheetah": 1000}
# (low, high) per observation, where the env bounds them (Gymnasium's MountainCarContinuous
# observation space); the Brax envs' observations are unbounded.
OBS_BOUNDS = {"mountain_car": ((-1.2, -0.07), (0.6, 0.07))}


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


def _env_class(name: str):
  module, cls = _CLASSES[name]
  return getattr(import_quietly(module), cls)


def check_env_name(name: str) -> str:
  """Returns `name` if it is a known env, else raises ValueError listing the valid ones."""
  if name not in _CLASSES:
    raise ValueError(f"unknown env {name!r}; valid envs: {', '.join(ENV_NAMES)}")
  return name


def valid_backends(name: str) -> tuple[str, ...]:
  """The physics backends `name` can run on: ('jax',) for mountain_car, Brax's otherwise."""
  return ("jax",) if check_env_name(name) == "mountain_car" else BRAX_BACKENDS


def default_backend(name: str) -> str:
  """`jax` for mountain_car; for Brax envs `mjx_warp` on an NVIDIA GPU with warp-lang
  installed, `mjx` on other GPUs and TPUs, and `spring` on CPU."""
  if check_env_name(name) == "mountain_car":
    return "jax"
  if jax.default_backend() not in ("gpu", "cuda", "rocm", "tpu"):
    return "spring"
  mjx_impl = import_quietly("lsc.envs.mjx_impl")
  return "mjx_warp" if mjx_impl.cuda_available() and mjx_impl.warp_installed() else "mjx"


def obs_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(shift, scale) mapping env `name`'s observation bounds onto [-1, 1]: the midpoint
  and half-width of each coordinate.  ValueError for an env without known bounds."""
  if check_env_name(name) not in OBS_BOUNDS:
    raise ValueError(f"observation normalisation needs known observation bounds; "
                     f"envs that have them: {', '.join(OBS_BOUNDS)}")
  low, high = OBS_BOUNDS[name]
  return (tuple((h + l) / 2 for l, h in zip(low, high)), tuple((h - l) / 2 for l, h in zip(low, high)))


def x_position(env, state) -> jax.Array:
  """Where the agent is along x, a scalar: the car's position on mountain_car, body 0
  (the torso of hopper and halfcheetah, the first link of reacher) on the Brax envs."""
  if env.name == "mountain_car":
    return state.obs[0]
  return state.pipeline_state.x.pos[0, 0]


def make_env(name: str, backend: str | None = None, episode_length: int | None = None) -> Env:
  """Builds env `name` on `backend` (None: `default_backend(name)`).

  The returned env has `.name`, `.backend` and `.episode_length` (None: the env's
  default, 999 / 50 / 1000 / 1000).  Raises ValueError for unknown names, backends
  or a non-positive episode length, before anything is compiled.
  """
  check_env_name(name)
  backend = backend or default_backend(name)
  if backend not in valid_backends(name):
    raise ValueError(f"unknown backend {backend!r} for env {name!r}; valid backends: "
                     f"{', '.join(valid_backends(name))}")
  episode_length = DEFAULT_EPISODE_LENGTH[name] if episode_length is None else int(episode_length)
  if episode_length < 1:
    raise ValueError(f"episode_length must be >= 1, got {episode_length}")
  if backend == "mjx_warp":
    import_quietly("lsc.envs.mjx_impl").check_warp()  # before anything is built
  env_class = _env_class(name)
  if name == "mountain_car":
    return env_class(episode_length=episode_length)
  if backend != "mjx_warp":
    env = env_class(backend=backend)
  else:  # Brax's mjx system (the MJCF's own parameters), stepped by MuJoCo Warp
    env = env_class(backend="mjx")
    env.use_mjx_pipeline(import_quietly("lsc.envs.mjx_impl").MjxPipeline(env.sys.mj_model, "warp"), "mjx_warp")
  env.episode_length = episode_length
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


__all__ = ["ENV_NAMES", "BRAX_BACKENDS", "ENV_SIZES", "DEFAULT_EPISODE_LENGTH", "make_env", "for_worlds", "select_state",
           "default_backend", "valid_backends", "check_env_name", "x_position", "OBS_BOUNDS",
           "obs_normalization"]
