"""MJX physics with a chosen implementation, behind the `mjx_warp` backend.

Brax 0.14's `mjx` pipeline always runs MJX's JAX implementation.  `MjxPipeline` steps
the same MuJoCo model through `mujoco.mjx` with `impl='warp'` (MuJoCo Warp: CUDA
kernels on an NVIDIA GPU, and Warp's CPU kernels elsewhere) or `impl='jax'`, and hands
back Brax's `brax.mjx.base.State`, so the envs compute their observations, rewards and
task metrics with the very code they use on Brax's `mjx` backend.  With `impl='jax'` it
is bit-identical to Brax's pipeline (tested), which is how its glue is tested on a
machine without Warp.

Warp keeps one contact buffer for every world of a batched call (its `naconmax`), so a
pipeline is sized for a number of worlds: `worlds * contacts_per_world` contacts (the
env's `EnvSpec.contacts_per_world`, 16 on lsc's envs), where `worlds` is the most
episodes one vmapped call steps at once (`lsc.rollout` sizes it:
`lsc.envs.for_worlds`).  Constraint rows are per world (`njmax`).  Where a buffer
overflows, MuJoCo Warp drops contacts or constraints and the physics is wrong; here the
world's positions become NaN instead (for good), so a rollout cannot return such a
result as a number.  Measured on 64 worlds of random policies (300 steps): at most 1.5
contacts per world on hopper, 1.0 on halfcheetah, none on reacher; at most 14
constraint rows.

MuJoCo Warp prints a line whenever its solver stops at the model's iteration limit
(Brax's models allow 4).  MJX's JAX implementation stops there silently, and so does this
pipeline: that warning is switched off; the others stay on.
"""

import copy
import importlib.util
from typing import Any

import jax
import jax.numpy as jnp
from brax.base import Motion, Transform
from brax.mjx.base import State
from mujoco import mjx

WARP_REQUIREMENT = "warp-lang==1.18.0"  # what mujoco-mjx 3.17's `warp` extra pins
CONSTRAINTS_PER_WORLD = 64  # MuJoCo Warp's default njmax for these models
# MuJoCo Warp's OverflowType bits: NEFC, NJMAX_NNZ, BROADPHASE, NARROWPHASE, CCD (dropped
# constraints or contacts), and ITERATIONS, LS_ITERATIONS (the solver's iteration caps).
_DROPPED = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4)
_ITERATION_CAPS = (1 << 9) | (1 << 10)


def warp_installed() -> bool:
  """Whether the `warp` package (warp-lang) can be imported, without importing it."""
  return importlib.util.find_spec("warp") is not None


def cuda_available() -> bool:
  """Whether JAX sees an NVIDIA GPU: where Warp runs its CUDA kernels."""
  try:
    return len(jax.devices("cuda")) > 0
  except RuntimeError:
    return False


def check_warp() -> None:
  """Raises RuntimeError with the install command when warp-lang is missing."""
  from lsc.envs import BRAX_BACKENDS  # the package above, which loads this module on demand
  if not warp_installed():
    raise RuntimeError(
        "backend 'mjx_warp' runs MuJoCo Warp, which needs warp-lang: pip install -e '.[warp]' "
        f"({WARP_REQUIREMENT}; its CUDA kernels need an NVIDIA driver for CUDA 13, R580 or newer; "
        "without a GPU it runs Warp's CPU kernels). Or choose another backend: "
        + ", ".join(b for b in BRAX_BACKENDS if b != "mjx_warp"))


def _plain_data(state: State):
  """The `mujoco.mjx.Data` inside a Brax MJX state (its fields without Brax's q/qd/x/xd)."""
  return mjx.Data(**{f.name: getattr(state, f.name) for f in mjx.Data.fields()})


class MjxPipeline:
  """Init and step of one MuJoCo model through `mujoco.mjx` with implementation `impl`
  ('warp' or 'jax'), for batched calls over at most `worlds` worlds; on 'warp' their
  shared buffer holds `worlds * contacts_per_world` contacts.

  `init(q (nq,), qd (nv,)) -> State` and `step(state, ctrl (nu,)) -> State` (one physics
  step), each for one world and vmappable, are the functions of Brax's
  `brax.mjx.pipeline` with the model and data built here.  A plain Python object: the
  model's arrays enter a traced program as constants, as a Brax env's `sys` does.
  """

  def __init__(self, mj_model, impl: str, worlds: int = 1, contacts_per_world: int | None = None):
    if impl not in ("warp", "jax"):
      raise ValueError(f"impl must be 'warp' or 'jax', got {impl!r}")
    if worlds < 1:
      raise ValueError(f"worlds must be >= 1, got {worlds}")
    if impl == "warp" and (contacts_per_world is None or contacts_per_world < 1):
      raise ValueError(f"impl 'warp' needs contacts_per_world >= 1 (its contact buffer), got {contacts_per_world}")
    if impl == "warp":
      check_warp()
    self.impl, self.worlds, self.contacts_per_world = impl, int(worlds), contacts_per_world
    self.body_rootid = mj_model.body_rootid[1:]
    self.model = mjx.put_model(mj_model, impl=impl)
    sizes = {}
    if impl == "warp":
      import warp  # warp-lang: the optional `warp` extra, needed on this backend only
      from lsc.envs import _QUIET  # the package above (see check_warp)
      if _QUIET[0]:  # lsc's commands: no Warp banner and "Module ... load" lines
        warp.config.log_level = max(warp.config.log_level, 30)
      warn = self.model.opt._impl.warn_overflow & ~_ITERATION_CAPS
      self.model = self.model.tree_replace({"opt._impl.warn_overflow": warn})
      sizes = dict(naconmax=self.worlds * self.contacts_per_world, njmax=CONSTRAINTS_PER_WORLD)
    self.data = mjx.make_data(mj_model, impl=impl, **sizes)

  def _brax_state(self, data) -> State:
    """Brax's MJX state of `data`: link transforms and velocities as `brax.mjx.pipeline`
    computes them; no contacts (no lsc env reads them)."""
    x = Transform(pos=data.xpos[1:], rot=data.xquat[1:])
    cvel = Motion(vel=data.cvel[1:, 3:], ang=data.cvel[1:, :3])
    offset = Transform.create(pos=data.xpos[1:] - data.subtree_com[self.body_rootid])
    return State(q=data.qpos, qd=data.qvel, x=x, xd=offset.vmap().do(cvel), contact=None, **data.__dict__)

  def _guard(self, data):
    """`data` with NaN positions where Warp dropped contacts or constraints: its per-world
    overflow flags (which stay set), or more contacts in the batch than its buffer holds."""
    if self.impl != "warp":
      return data
    dropped = ((data._impl.overflow & _DROPPED) != 0) | (data._impl.nacon > self.worlds * self.contacts_per_world)
    return data.replace(qpos=jnp.where(dropped, jnp.nan, data.qpos))

  def init(self, q: jax.Array, qd: jax.Array) -> State:
    data = mjx.forward(self.model, self.data.replace(qpos=q, qvel=qd))
    return self._brax_state(self._guard(data))

  def step(self, state: State, ctrl: jax.Array) -> State:
    data = mjx.step(self.model, _plain_data(state).replace(ctrl=ctrl))
    return self._brax_state(self._guard(data))


class MjxImplEnv:
  """Mixin for the Brax envs of `lsc.envs.mujoco`: on backend `mjx_warp` the env is built
  on Brax's `mjx` system (the MJCF's own parameters) and steps through an `MjxPipeline`
  with impl 'warp'.  `for_worlds(n)` returns the env sized for batched calls over n
  worlds (itself on other backends)."""

  _mjx_pipeline: Any = None

  def use_mjx_pipeline(self, pipeline: MjxPipeline, backend: str) -> None:
    """Steps this env (built on Brax's `mjx` backend) through `pipeline` from now on, and
    names `backend` as its backend: `make_env` does it for `mjx_warp`; the tests install
    an impl='jax' pipeline to compare with Brax's."""
    self._mjx_pipeline, self._backend = pipeline, backend

  @property
  def worlds(self) -> int:
    """How many worlds one batched call may step (1 unless the env was sized)."""
    return self._mjx_pipeline.worlds if self._mjx_pipeline is not None else 1

  def for_worlds(self, worlds: int):
    """A copy of this env whose pipeline holds contacts for `worlds` worlds; itself when it
    already holds as many, or on a backend without a shared contact buffer."""
    if self._mjx_pipeline is None or worlds <= self.worlds:
      return self
    sized = copy.copy(self)
    pipeline = self._mjx_pipeline
    sized._mjx_pipeline = MjxPipeline(self.sys.mj_model, pipeline.impl, worlds, pipeline.contacts_per_world)
    return sized

  def config_key(self) -> tuple:
    return super().config_key() + ((self._mjx_pipeline.impl, self.worlds) if self._mjx_pipeline else ())

  def pipeline_init(self, q, qd, act=None, ctrl=None):
    if self._mjx_pipeline is None:
      return super().pipeline_init(q, qd, act, ctrl)
    return self._mjx_pipeline.init(q, qd)

  def pipeline_step(self, pipeline_state, action):
    if self._mjx_pipeline is None:
      return super().pipeline_step(pipeline_state, action)
    step = lambda state, _: (self._mjx_pipeline.step(state, action), None)
    return jax.lax.scan(step, pipeline_state, (), self._n_frames)[0]
