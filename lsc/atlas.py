"""See what a behaviour space holds: an atlas of the policies a trained autoencoder
decodes, drawn as what they do.

`draw_atlas(trained, out)` picks a grid of codes, decodes each into a policy
theta = g(z), evaluates it on every task of its env (`lsc.evaluation.evaluate`) and
runs one episode of it, then draws one panel per policy, labelled with its returns.

Which codes.  latent_dim 1: a row of `grid` codes evenly spaced from the 2nd to the
98th percentile of the dataset's codes; latent_dim 2: a grid x grid lattice over the
same range of each coordinate (z1 left to right, z2 bottom to top), decoded as they
are, in between the dataset's codes too.  latent_dim > 2: a lattice over the plane of
the codes' two leading principal components (the same percentiles of their
projections), each lattice point replaced by the dataset code whose projection lies
nearest it, no code used twice.  A plane through the mean code would decode points
that lie far from the codes in the k - 2 other directions (the mean code of a
16-dimensional space decodes an average, poor policy), so the panels show the decoder's
images of codes it was trained on, laid out by where they lie in the codes' main
directions of spread.

What a panel shows.  MuJoCo envs (any env with `env.sys.mj_model`, lsc's Brax envs):
the body in `frames` frames evenly spaced over the episode after its start (every
policy starts alike) up to its end (an episode that terminates early, a hopper that
falls, ends there), the pose of each computed by MuJoCo's forward kinematics
(`mujoco.mj_kinematics`) from the generalised positions q of the simulator's state (the
layout of the model's qpos), every geom projected orthographically onto the view's
plane as its exact outline (capsules as two circles and the band between them, spheres
as circles, boxes, cylinders, ellipsoids and meshes as the convex hull of their
projected corners or surface points; planes left out, a ground line drawn instead).
Side views (x-z; hopper, halfcheetah, walker2d, ant) lay the frames out as a filmstrip,
left to right then down (wrapped so that a panel is about 1.6 times as wide as tall),
each frame centred on the torso, its step below it and the distance the torso moved in
the label; the reacher's top view (x-y) overlays its frames (stroboscopic, later frames
more opaque) on its arena, with the four `reach_*` points marked.  Bodies have the same
colour in every frame and panel.  Spring's q is derived from its maximal coordinates,
whose joints are stiff springs, so the kinematics of q can differ from spring's own
link positions by a few cm (measured: 1 cm on hopper, 4 cm on halfcheetah); MJX's q is
exact.
Other envs (Mountain Car): the episode's trajectory, position over time (the goal and
the left wall dashed); an env lsc knows nothing of: its first observation coordinates.

The label's returns are `evaluate`'s, the mean over `episodes` episodes (3 by
default: one episode of a chaotic env is a noisy measure); the episode drawn is the
protocol's first (the same reset key as `evaluate`'s episode 0), rerun by a small
program of its own (`trajectory_fn`: `lsc.rollout` never returns trajectories), and the
label's last line (`drawn: x ... m`, `ended at step ...`) is that episode's.  The two
programs batch the policies differently, which changes float rounding; on a chaotic env
(HalfCheetah on spring: the same policy's return already differs between rollouts on
one and on two devices) the rerun can drift away from the evaluated episode, so the
distance drawn need not match the `forward` return.  Mountain Car's reruns match.
"""

import dataclasses
import functools
import io
import math
import pathlib
import textwrap
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lsc.config import EnvConfig, from_dict
from lsc.distributed import on_main
from lsc.envs import as_env, for_worlds, select_state
from lsc.evaluation import EvalProtocol, evaluate
from lsc.policy import MLPPolicy, check_finite
from lsc.plots import pyplot
from lsc.tasks import REACH_POINTS, task_names
from lsc.validate import check_int, check_seed

MAX_STORED_FRAMES = 250  # states kept per episode by the trajectory program (every k steps)
PERCENTILES = (2.0, 98.0)  # the range of the codes the lattice spans
TITLE_SIZE, CAPTION_SIZE, LABEL_SIZE = 9.0, 6.5, 6.2  # font sizes (points)


@dataclasses.dataclass(frozen=True)
class View:
  """How a MuJoCo env is drawn: `plane` side (x-z) or top (x-y); `layout` filmstrip
  (frames in rows, left to right then down, each centred on its torso) or overlay
  (frames in place, later ones more opaque); bodies named in `skip_bodies` left out;
  `marks` ((label, (x, y)), ...) points drawn on every panel."""
  plane: str = "side"
  layout: str = "filmstrip"
  skip_bodies: tuple[str, ...] = ()
  marks: tuple[tuple[str, tuple[float, float]], ...] = ()


# lsc's Reacher pins its target body at the origin: no target of any task, so it is not drawn
VIEWS = {"reacher": View("top", "overlay", ("target",), tuple((f"reach_{k}", p) for k, p in REACH_POINTS.items()))}
# how an env without a MuJoCo model is drawn: (observation index, its name, dashed lines {label: value}, y limits)
TRACES = {"mountain_car": (0, "position", {"goal": 0.45, "left wall": -1.2}, (-1.25, 0.65))}


# --- which codes -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LatentGrid:
  """The codes of an atlas and where they sit: `codes` (rows * cols, k), row by row
  from the top; column c lies at `x_values[c]` of `x_label`, row r at `y_values[r]` of
  `y_label` (None for one row)."""
  codes: np.ndarray
  rows: int
  cols: int
  x_label: str
  x_values: np.ndarray
  y_label: str | None
  y_values: np.ndarray
  description: str


def latent_grid(codes, grid: int) -> LatentGrid:
  """The codes an atlas of the dataset codes `codes` (N, k) draws, `grid` per side (see
  the module docstring: a row for k = 1, a lattice for k = 2, the dataset codes nearest
  a lattice on their two leading principal components for k > 2)."""
  check_int("grid", grid, low=1)
  codes = np.asarray(codes, np.float64)
  if codes.ndim != 2 or len(codes) < 1 or not np.isfinite(codes).all():
    raise ValueError(f"codes must be a finite (N >= 1, latent_dim) array, got shape {codes.shape}")
  k = codes.shape[1]
  span = lambda x: (np.full(1, np.median(x)) if grid == 1 else np.linspace(*np.percentile(x, PERCENTILES), grid))
  if k == 1:
    xs = span(codes[:, 0])
    return LatentGrid(xs[:, None], 1, grid, "z1", xs, None, np.zeros(1),
                      f"{grid} codes evenly spaced over the dataset codes' {_range_text()}")
  if k == 2:
    xs, ys = span(codes[:, 0]), span(codes[:, 1])[::-1]  # the top row holds the largest z2
    lattice = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    return LatentGrid(lattice, grid, grid, "z1", xs, "z2", ys,
                      f"a {grid} x {grid} lattice over the dataset codes' {_range_text()} of each coordinate")
  mean = codes.mean(axis=0)
  _, singular, vt = np.linalg.svd(codes - mean, full_matrices=False)
  axes = vt[:2].T * np.where(vt[:2].sum(axis=1) < 0, -1.0, 1.0)  # a fixed sign for each direction
  explained = float((singular[:2] ** 2).sum() / max((singular ** 2).sum(), 1e-30))
  proj = (codes - mean) @ axes
  xs, ys = span(proj[:, 0]), span(proj[:, 1])[::-1]
  lattice = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
  chosen = _nearest_distinct(lattice, proj)
  return LatentGrid(codes[chosen], grid, grid, "PC1", xs, "PC2", ys,
                    f"the dataset codes nearest a {grid} x {grid} lattice over their projections onto their 2 leading "
                    f"principal components ({100 * explained:.0f}% of their variance; {_range_text()})")


def _range_text() -> str:
  return f"{_ordinal(PERCENTILES[0])} to {_ordinal(PERCENTILES[1])} percentiles"


def _ordinal(x: float) -> str:
  n = int(x)
  suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
  return f"{x:g}{suffix}"


def _nearest_distinct(targets: np.ndarray, points: np.ndarray) -> np.ndarray:
  """For each target (G, 2), the index of the nearest of `points` (N, 2) not taken by a
  target served before it (targets nearest a point first); once all N are taken, the
  nearest again."""
  dist = np.stack([np.hypot(*(points - target).T) for target in targets])  # (G, N), a row at a time
  chosen, taken = np.zeros(len(targets), np.int64), set()
  for g in np.argsort(dist.min(axis=1), kind="stable"):
    nearest = np.argsort(dist[g], kind="stable")[:len(taken) + 1]  # holds a free point while any is left
    free = [j for j in nearest if j not in taken]
    chosen[g] = free[0] if free else nearest[0]
    taken.add(int(chosen[g]))
  return chosen


# --- one episode of each policy ---------------------------------------------------------

class Trajectories(NamedTuple):
  """One episode of each of N policies, a state every `every` steps (frame i is the
  state after i * every steps; it stays frozen after the episode ends): `obs`
  (N, F, O), `q` (N, F, nq) the simulator's generalised positions ((N, F, 0) for an env
  without them), `length` (N,) the steps until termination (the episode length if none)."""
  obs: np.ndarray
  q: np.ndarray
  length: np.ndarray
  every: int


def frame_every(episode_length: int) -> int:
  """Steps between two stored states of an episode: at most MAX_STORED_FRAMES + 1 kept."""
  return max(1, math.ceil(episode_length / MAX_STORED_FRAMES))


def _positions(pipeline_state) -> jax.Array:
  """q of a simulator state (Brax's `q`, MuJoCo's `qpos`), (0,) for an env without one."""
  for name in ("q", "qpos"):
    value = getattr(pipeline_state, name, None)
    if value is not None:
      return value
  return jnp.zeros((0,), jnp.float32)


def trajectory_fn(env, policy: MLPPolicy, n: int, every: int) -> Callable:
  """A jitted fn(thetas (n, P), key) -> (obs (n, F, O), q (n, F, nq), length (n,)): one
  episode of `env.episode_length` steps of each policy from the same reset key, as
  `lsc.rollout` runs an episode from `key` (so `key` = the protocol's first episode key
  draws `evaluate`'s first episode), frames every `every` steps (F = 1 + T // every).
  Cached per (env, policy, n, every)."""
  env = as_env(env)
  return _trajectory_fn(env, policy, int(n), int(every))


@functools.lru_cache(maxsize=16)
def _trajectory_fn(env, policy, n, every):
  sized = for_worlds(env, n)
  horizon = env.episode_length
  n_frames, rest = divmod(horizon, every)

  def episode(theta, key):
    reset_key, _ = jax.random.split(key)  # lsc.rollout's split: its reset key
    state = sized.reset(reset_key)
    layers = policy.unflatten(theta)

    def step(carry, _):
      state, alive, length = carry
      nxt = sized.step(state, policy.apply_layers(layers, state.obs))
      length = length + alive.astype(jnp.int32)
      return (select_state(alive, nxt, state), alive & (nxt.done == 0), length), None

    def frame(carry, _):
      carry, _ = jax.lax.scan(step, carry, None, length=every)
      return carry, (carry[0].obs, _positions(carry[0].pipeline_state))

    carry = (state, jnp.bool_(True), jnp.int32(0))
    carry, (obs, q) = jax.lax.scan(frame, carry, None, length=n_frames)
    if rest:  # the steps after the last frame: the episode's length counts them
      carry, _ = jax.lax.scan(step, carry, None, length=rest)
    obs = jnp.concatenate([state.obs[None], obs])
    q = jnp.concatenate([_positions(state.pipeline_state)[None], q])
    return obs, q, carry[2]

  return jax.jit(jax.vmap(episode, in_axes=(0, None)))


def trajectories(env, policy: MLPPolicy, thetas, key: jax.Array, every: int | None = None) -> Trajectories:
  """One episode of each policy of thetas (N, P) from reset key `key` (see
  `trajectory_fn`), a state every `every` steps (default `frame_every`)."""
  env = as_env(env)
  thetas = jnp.asarray(thetas, jnp.float32)
  if thetas.ndim != 2 or thetas.shape[1] != policy.num_params:
    raise ValueError(f"thetas must have shape (N, {policy.num_params}) for this policy, got {thetas.shape}")
  check_finite(thetas)
  every = frame_every(env.episode_length) if every is None else check_int("every", every, low=1)
  obs, q, length = trajectory_fn(env, policy, len(thetas), every)(thetas, key)
  return Trajectories(np.asarray(obs), np.asarray(q), np.asarray(length), every)


# --- MuJoCo bodies as outlines ------------------------------------------------------------

def _turn(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
  """The z component of (b - a) x (c - a): > 0 for a left turn a -> b -> c."""
  return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _hull(points: np.ndarray) -> np.ndarray:
  """Convex hull (Andrew's monotone chain) of 2-D points (n, 2), counter-clockwise."""
  pts = np.unique(np.round(points, 9), axis=0)
  if len(pts) < 3:
    return pts

  def half(seq):
    out = []
    for p in seq:
      while len(out) >= 2 and _turn(out[-2], out[-1], p) <= 0:
        out.pop()
      out.append(p)
    return out[:-1]

  return np.array(half(pts) + half(pts[::-1]))


def _circle(center: np.ndarray, radius: float, n: int = 24) -> np.ndarray:
  angle = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
  return center + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


_SPHERE = None


def _unit_sphere() -> np.ndarray:
  """~200 points spread over the unit sphere (a Fibonacci lattice)."""
  global _SPHERE
  if _SPHERE is None:
    i = np.arange(200) + 0.5
    polar, azimuth = np.arccos(1 - 2 * i / 200), np.pi * (1 + 5 ** 0.5) * i
    _SPHERE = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)
  return _SPHERE


def _geom_outline(model, data, g: int, axes: list[int]) -> np.ndarray | None:
  """The outline of geom g projected on world coordinates `axes` (two of x, y, z): a
  polygon (n, 2), or None for a plane, a height field or a type without a shape."""
  import mujoco
  kind, size = int(model.geom_type[g]), model.geom_size[g]
  pos, rot = data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3)
  project = lambda local: (pos + local @ rot.T)[:, axes]  # local (n, 3) -> the plane (n, 2)
  types = mujoco.mjtGeom
  if kind == types.mjGEOM_SPHERE:
    return _circle(pos[axes], size[0])
  if kind == types.mjGEOM_CAPSULE:  # a sphere's projection is a circle of its radius, whatever the rotation
    ends = project(np.array([[0.0, 0.0, -size[1]], [0.0, 0.0, size[1]]]))
    return _hull(np.concatenate([_circle(ends[0], size[0]), _circle(ends[1], size[0])]))
  if kind == types.mjGEOM_BOX:
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T * size
    return _hull(project(corners))
  if kind == types.mjGEOM_CYLINDER:
    angle = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
    rim = np.stack([size[0] * np.cos(angle), size[0] * np.sin(angle), np.zeros_like(angle)], axis=1)
    return _hull(project(np.concatenate([rim + [0, 0, -size[1]], rim + [0, 0, size[1]]])))
  if kind == types.mjGEOM_ELLIPSOID:
    return _hull(project(_unit_sphere() * size))
  if kind == types.mjGEOM_MESH and model.geom_dataid[g] >= 0:
    mesh = int(model.geom_dataid[g])
    start, count = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
    return _hull(project(model.mesh_vert[start:start + count]))
  return None


def body_outlines(model, q, plane: str = "side", skip_bodies: tuple[str, ...] = (), data=None,
                  moving_only: bool = True) -> list[tuple[np.ndarray, int]]:
  """The geoms of MuJoCo model `model` posed at generalised positions q (nq,), by
  `mujoco.mj_kinematics`, each projected on the `plane` (side: x-z, top: x-y): a list of
  (polygon (n, 2), body id).  Planes and height fields, the bodies named in
  `skip_bodies` and, with `moving_only`, the world body's geoms are left out.  `data`: a
  `mujoco.MjData` of `model` to reuse."""
  import mujoco
  if plane not in ("side", "top"):
    raise ValueError(f"plane must be side or top, got {plane!r}")
  q = np.asarray(q, np.float64)
  if q.shape != (model.nq,):
    raise ValueError(f"q must have shape ({model.nq},) for this model, got {q.shape}")
  data = mujoco.MjData(model) if data is None else data
  data.qpos[:] = q
  mujoco.mj_kinematics(model, data)
  skip = {mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) for name in skip_bodies}
  axes = [0, 2] if plane == "side" else [0, 1]
  out = []
  for g in range(model.ngeom):
    body = int(model.geom_bodyid[g])
    if body in skip or (moving_only and body == 0):
      continue
    outline = _geom_outline(model, data, g, axes)
    if outline is not None and len(outline) >= 3:
      out.append((outline, body))
  return out


def _torso_x(model, data, q) -> float:
  """x of the first moving body (the torso) at q, NaN for a q that is not finite."""
  import mujoco
  if not np.isfinite(q).all():
    return float("nan")
  data.qpos[:] = q
  mujoco.mj_kinematics(model, data)
  return float(data.xpos[1, 0])


def _ground_height(model) -> float:
  """The height of the model's lowest plane (its floor), 0 if it has none."""
  import mujoco
  planes = [model.geom_pos[g][2] for g in range(model.ngeom)
            if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE and model.geom_bodyid[g] == 0]
  return float(min(planes)) if planes else 0.0


def _body_colors(model) -> dict[int, tuple]:
  """A colour per body: the first moving body (the torso) dark, the others a palette."""
  import matplotlib
  palette = matplotlib.colormaps["tab10"].colors
  moving = sorted({int(b) for b in model.geom_bodyid if b != 0})
  return {b: (0.2, 0.2, 0.25) if i == 0 else palette[(i - 1) % len(palette)] for i, b in enumerate(moving)}


# --- drawing ----------------------------------------------------------------------------

def frame_indices(length: int, every: int, frames: int) -> np.ndarray:
  """Which stored frames a panel draws: `frames` evenly spaced over the episode, after
  its start (every policy starts alike) up to its end (fewer for an episode shorter
  than that)."""
  last = int(length) // every
  return np.unique(np.round(np.linspace(0, last, frames + 1)[1:]).astype(int))


def _number(x: float) -> str:
  return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _label_lines(names, returns, extra: str = "") -> list[str]:
  """A panel's label: its returns, two tasks a line, then `extra`."""
  items = [f"{n} {_number(r)}" for n, r in zip(names, returns)]
  return ["   ".join(items[i:i + 2]) for i in range(0, len(items), 2)] + ([extra] if extra else [])


class _BodyPanels:
  """Every panel's outlines of a MuJoCo env, computed before any is drawn so that all
  panels share one scale and one layout: a filmstrip's frames in `frame_rows` rows of
  `frame_cols`, left to right then top to bottom, or an overlay."""

  ASPECT = 1.6  # the panel shape (width / height) a filmstrip's rows of frames aim at

  def __init__(self, model, traj: Trajectories, frames: int, view: View):
    import mujoco
    self.model, self.view, self.every = model, view, traj.every
    data = mujoco.MjData(model)
    self.colors = _body_colors(model)
    self.ground = _ground_height(model)
    self.panels = []  # per policy, per frame drawn: (step, anchor x, [(polygon, body), ...])
    self.moved = []  # per policy: how far its torso (the first moving body) moved along x, start to end
    for q, length in zip(traj.q, traj.length):
      ends = [_torso_x(model, data, q[0]), _torso_x(model, data, q[int(length) // traj.every])]
      self.moved.append(ends[1] - ends[0])
      shots = []
      for i in frame_indices(length, traj.every, frames):
        if not np.isfinite(q[i]).all():  # a simulation that blew up: its frames stop there
          break
        outlines = body_outlines(model, q[i], view.plane, view.skip_bodies, data)
        shots.append((int(i) * traj.every, float(data.xpos[1, 0]), outlines))
      self.panels.append(shots)
    self.background = []
    if view.plane == "top":
      world = body_outlines(model, np.asarray(model.qpos0), "top", view.skip_bodies, data, moving_only=False)
      self.background = [poly for poly, body in world if body == 0]
    centred = view.layout == "filmstrip"
    xs = [poly[:, 0] - (anchor if centred else 0.0) for shots in self.panels for _, anchor, outlines in shots
          for poly, _ in outlines]
    ys = [poly[:, 1] for shots in self.panels for _, _, outlines in shots for poly, _ in outlines]
    xs += [poly[:, 0] for poly in self.background] + [np.array([x for _, (x, _) in view.marks])]
    ys += [poly[:, 1] for poly in self.background] + [np.array([y for _, (_, y) in view.marks])]
    xs, ys = np.concatenate([np.zeros(1), *xs]), np.concatenate([np.full(1, self.ground), *ys])
    self.x_range, self.y_range = (float(xs.min()), float(xs.max())), (float(ys.min()), float(ys.max()))
    if view.plane == "side":
      self.y_range = (min(self.y_range[0], self.ground), max(self.y_range[1], self.ground + 0.1))
    span_x = max(self.x_range[1] - self.x_range[0], 1e-3)
    self.span_y = max(self.y_range[1] - self.y_range[0], 1e-3)
    self.cell_w = 1.1 * span_x + 0.05 * self.span_y  # one frame's cell: the widest pose and a gap
    self.cell_h = 1.25 * self.span_y  # room below the ground for the frame's time
    n = max(1, max(len(shots) for shots in self.panels))
    if centred:
      shapes = {(math.ceil(n / c), c) for c in range(1, n + 1)}  # (rows, columns) with no empty row
      aspect = lambda shape: shape[1] * self.cell_w / (shape[0] * self.cell_h)
      self.frame_rows, self.frame_cols = min(shapes, key=lambda shape: abs(math.log(aspect(shape) / self.ASPECT)))
      self.width, self.height = self.frame_cols * self.cell_w, self.frame_rows * self.cell_h
    else:
      self.frame_rows = self.frame_cols = 1
      self.width, self.height = 1.15 * span_x, 1.15 * self.span_y

  def draw(self, ax, p: int) -> None:
    from matplotlib.collections import LineCollection, PolyCollection
    shots, view = self.panels[p], self.view
    if view.layout == "filmstrip":
      polys, colors, ground = [], [], []
      for f, (step, anchor, outlines) in enumerate(shots):
        row, col = divmod(f, self.frame_cols)
        left = col * self.cell_w
        base = (self.frame_rows - 1 - row) * self.cell_h + 0.17 * self.span_y  # this cell's ground height
        shift = np.array([left + 0.05 * self.cell_w - self.x_range[0] - anchor, base - self.ground])
        polys += [poly + shift for poly, _ in outlines]
        colors += [self.colors[body] for _, body in outlines]
        ground.append([(left + 0.02 * self.cell_w, base), (left + 0.98 * self.cell_w, base)])
        ax.text(left + 0.03 * self.cell_w, base - 0.04 * self.span_y, f"t {step}", fontsize=4.5, color="0.45",
                va="top", ha="left")
      ax.add_collection(LineCollection(ground, colors="0.55", linewidths=0.7))
      ax.add_collection(PolyCollection(polys, facecolors=colors, edgecolors="none"))
      ax.set_xlim(0, self.width)
      ax.set_ylim(0, self.height)
    else:
      ax.add_collection(PolyCollection(self.background, facecolors="0.85", edgecolors="none"))
      for f, (_, _, outlines) in enumerate(shots):
        alpha = 0.12 + 0.88 * (f + 1) / len(shots)
        ax.add_collection(PolyCollection([poly for poly, _ in outlines], alpha=alpha, edgecolors="none",
                                         facecolors=[self.colors[body] for _, body in outlines]))
      for name, (x, y) in view.marks:
        ax.plot([x], [y], marker="x", color="crimson", markersize=3.5, markeredgewidth=0.9)
        ax.annotate(name.split("_")[-1], (x, y), xytext=(2, 2), textcoords="offset points", fontsize=5,
                    color="crimson")
      middle = [(self.x_range[0] + self.x_range[1]) / 2, (self.y_range[0] + self.y_range[1]) / 2]
      ax.set_xlim(middle[0] - self.width / 2, middle[0] + self.width / 2)
      ax.set_ylim(middle[1] - self.height / 2, middle[1] + self.height / 2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])

  def size(self) -> tuple[float, float]:
    """(width, height) of a panel in inches: about 5 square inches of the data's shape."""
    aspect = self.width / self.height
    return float(np.clip(math.sqrt(5.0 * aspect), 1.0, 4.5)), float(np.clip(math.sqrt(5.0 / aspect), 1.0, 4.5))


class _TracePanels:
  """Every panel's trajectory of an env without a MuJoCo model: one observation
  coordinate (`TRACES`), or the first four, over time."""

  def __init__(self, env_name: str, traj: Trajectories):
    self.traj = traj
    self.index, self.name, self.lines, self.ylim = TRACES.get(env_name, (None, "observation", {}, None))
    if self.ylim is None:
      columns = traj.obs[..., :4] if self.index is None else traj.obs[..., self.index]
      low, high = float(np.nanmin(columns)), float(np.nanmax(columns))
      pad = 0.05 * max(high - low, 1e-6)
      self.ylim = (low - pad, high + pad)

  def draw(self, ax, p: int) -> None:
    traj = self.traj
    last = int(traj.length[p]) // traj.every
    t = np.arange(last + 1) * traj.every
    values = traj.obs[p, :last + 1]
    for c in ([self.index] if self.index is not None else range(min(4, values.shape[1]))):
      ax.plot(t, values[:, c], linewidth=0.8, color="tab:blue" if self.index is not None else f"C{c}")
    for value in self.lines.values():
      ax.axhline(value, color="0.55", linestyle="--", linewidth=0.6)
    ax.set_xlim(0, (traj.obs.shape[1] - 1) * traj.every)
    ax.set_ylim(*self.ylim)
    ax.tick_params(labelsize=5.5, length=2, pad=1)

  def size(self) -> tuple[float, float]:
    return 2.0, 1.2


def draw_atlas(trained, out, *, env=None, grid: int = 5, frames: int = 4, episodes: int = 3, seed: int = 0,
               episode_length: int | None = None, backend: str | None = None, dpi: int = 90,
               log: Callable[[str], None] | None = None) -> pathlib.Path:
  """Draws the atlas of trained autoencoder `trained` (an `lsc.TrainedAutoencoder`,
  `lsc.load_autoencoder(path)`) to the PNG `out` and returns its path: `grid` codes
  per side (`latent_grid`), each decoded, evaluated over `episodes` episodes of the
  protocol of `seed` (`lsc.EvalProtocol(episodes, seed)`; the label shows the mean
  return on every task) and drawn from its first episode (`frames` frames on a MuJoCo
  env).  `env`: the env to run (default: the one of the autoencoder's record, on
  `backend` and with `episode_length` steps where given, its record's otherwise).
  `log(line)` is told of each stage.  Bad settings raise ValueError before any work."""
  check_int("grid", grid, low=1)
  check_int("frames", frames, low=1)
  check_int("dpi", dpi, low=10)
  check_seed("seed", seed)
  protocol = EvalProtocol(episodes, seed)
  points = latent_grid(trained.codes, grid)
  say = log or (lambda line: None)
  env = _atlas_env(trained, env, episode_length, backend)
  policy = trained.ae.policy
  names = task_names(env)

  say(f"atlas: {env.name} on {env.backend}, {len(points.codes)} codes of a {trained.ae.latent_dim}-D autoencoder, "
      f"episodes of {env.episode_length} steps")
  thetas = jax.jit(trained.ae.decode)(trained.params, jnp.asarray(points.codes, jnp.float32))
  check_finite(thetas)
  result = evaluate(env, policy, thetas, protocol, n_samples=0)
  returns = np.asarray(result.returns)
  say(f"evaluated the decoded policies over {episodes} episode(s) each: {result.env_steps:,} env steps")
  traj = trajectories(env, policy, thetas, protocol.episode_keys()[0])
  say("ran the episodes drawn; drawing")

  model = getattr(getattr(env, "sys", None), "mj_model", None)
  if model is not None and traj.q.shape[-1] == model.nq:
    view = VIEWS.get(env.name, View())
    panels = _BodyPanels(model, traj, frames, view)
  else:
    view, panels = None, _TracePanels(env.name, traj)
  labels = []
  for p in range(len(points.codes)):
    drawn = [f"x {panels.moved[p]:+.2f} m"] if view is not None and view.plane == "side" else []
    if traj.length[p] < env.episode_length:
      drawn.append(f"ended at step {traj.length[p]}")
    labels.append(_label_lines(names, returns[p], "drawn: " + ", ".join(drawn) if drawn else ""))
  title = (f"{env.name} ({env.backend}): {len(points.codes)} policies of a {trained.ae.latent_dim}-D behaviour space; "
           f"{_what(view, env.name, frames)}")
  caption = _caption(points, protocol, env.episode_length, view is not None)
  fig = _figure(points, panels, labels, view is None, title, caption)
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  on_main(_save, fig, out, dpi)
  pyplot().close(fig)
  say(f"wrote {out}")
  return out


def _save(fig, out: pathlib.Path, dpi: int) -> None:
  """Writes `fig` to `out`; a PNG with a palette of 256 colours (a third of the bytes of
  full colour; the atlas has a few dozen colours and their antialiased edges)."""
  if out.suffix.lower() != ".png":
    fig.savefig(out, dpi=dpi)
    return
  from PIL import Image  # matplotlib's own dependency
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=dpi)
  buffer.seek(0)
  with Image.open(buffer) as image:
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def _figure(points: LatentGrid, panels, labels: list[list[str]], ticks: bool, title: str, caption: str):
  """The figure of an atlas: `title` and `caption` above one axes per code, laid out in
  inches (the panels' size, a label's lines above each, the lattice's coordinates along
  the left and bottom), each drawn and labelled.  `ticks`: the outer panels keep their
  tick labels."""
  plt = pyplot()
  rows, cols = points.rows, points.cols
  panel_w, panel_h = panels.size()
  title_h = 0.08 + _line_height(LABEL_SIZE) * max(len(lines) for lines in labels)
  gap = 0.12
  left, bottom = (0.62 if ticks else 0.32), (0.45 if ticks else 0.3)
  fig_w = left + cols * panel_w + (cols - 1) * gap + 0.12
  title, caption = _wrap(title, fig_w - 0.3, TITLE_SIZE), _wrap(caption, fig_w - 0.3, CAPTION_SIZE)
  title_lines, caption_lines = title.count("\n") + 1, caption.count("\n") + 1
  header = 0.12 + _line_height(TITLE_SIZE) * title_lines + 0.06 + _line_height(CAPTION_SIZE) * caption_lines + 0.1
  fig_h = header + rows * (title_h + panel_h) + bottom
  fig = plt.figure(figsize=(fig_w, fig_h))
  fig.text(0.5, 1 - 0.12 / fig_h, title, fontsize=TITLE_SIZE, ha="center", va="top")
  fig.text(0.5, 1 - (0.18 + _line_height(TITLE_SIZE) * title_lines) / fig_h, caption, fontsize=CAPTION_SIZE,
           ha="center", va="top", color="0.25")
  for p in range(rows * cols):
    r, c = divmod(p, cols)
    x0, y0 = left + c * (panel_w + gap), bottom + (rows - 1 - r) * (title_h + panel_h)
    ax = fig.add_axes((x0 / fig_w, y0 / fig_h, panel_w / fig_w, panel_h / fig_h))
    panels.draw(ax, p)
    ax.set_title("\n".join(labels[p]), fontsize=LABEL_SIZE, pad=2, linespacing=1.15)
    for spine in ax.spines.values():
      spine.set_color("0.75")
      spine.set_linewidth(0.6)
    if ticks:
      if r < rows - 1:
        ax.tick_params(labelbottom=False)
      if c > 0:
        ax.tick_params(labelleft=False)
    if r == rows - 1:
      ax.set_xlabel(f"{points.x_label} = {points.x_values[c]:.3g}", fontsize=7, labelpad=2)
    if c == 0 and points.y_label is not None:
      ax.set_ylabel(f"{points.y_label} = {points.y_values[r]:.3g}", fontsize=7, labelpad=2)
  return fig


def _line_height(points: float) -> float:
  """The height in inches of a line of text of `points` size."""
  return points / 72 * 1.25


def _wrap(text: str, width: float, points: float) -> str:
  """`text` broken into lines that fit `width` inches at `points` size (about half an
  em a character)."""
  return textwrap.fill(text, max(20, int(width * 72 / (0.5 * points))))


def _what(view: View | None, env_name: str, frames: int) -> str:
  if view is None:
    if env_name not in TRACES:
      return "its first observation coordinates over one episode"
    _, name, lines, _ = TRACES[env_name]
    dashed = ", ".join(f"{label} {value:g}" for label, value in lines.items())
    return f"{name} over one episode" + (f" (dashed: {dashed})" if dashed else "")
  if view.layout == "filmstrip":
    return f"{frames} frames of one episode each (side view; left to right, then down)"
  return f"{frames} frames of one episode each, overlaid (top view; later frames darker)"


def _caption(points: LatentGrid, protocol: EvalProtocol, episode_length: int, body: bool) -> str:
  mean = "mean return" if protocol.episodes > 1 else "return"
  drawn = ("; then of the episode drawn (the first, rerun): how far the torso moved along x, and where it ended "
           "early" if body else "; the episode drawn is the first")
  episodes = f"{protocol.episodes} episodes" if protocol.episodes > 1 else "one episode"
  return (f"Codes: {points.description}.  Labels: {mean} on every task over {episodes} of "
          f"{episode_length} steps (evaluation seed {protocol.seed}){drawn}.")


def _atlas_env(trained, env, episode_length: int | None, backend: str | None):
  """The env an atlas runs: `env` as given (it must be the record's env), or rebuilt
  from the autoencoder's record with `episode_length` and `backend` where given."""
  recorded = trained.record.get("config", {}).get("env")
  if env is not None:
    if episode_length is not None or backend is not None:
      raise ValueError("episode_length and backend choose how the record's env is rebuilt; with env given, "
                       "build it with them")
    env = as_env(env)
    if recorded is not None and recorded.get("name") != env.name:
      raise ValueError(f"the autoencoder was trained on {recorded.get('name')!r}, not on {env.name!r}")
    return env
  if recorded is None:
    raise ValueError("the autoencoder's record names no env; pass env=")
  config = from_dict(EnvConfig, recorded)
  config = dataclasses.replace(config, backend=backend or config.backend,
                               episode_length=config.episode_length if episode_length is None else episode_length)
  return config.resolved().build()
