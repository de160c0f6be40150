"""Tasks: per-step rewards as pure functions of a transition.

A task never changes the dynamics or the termination of its env, so one rollout of a
population scores every task of the env at once (`task_rewards`).  Each task's
docstring states its formula; primes denote the state after the step, `a` the action
the policy emitted.  Rewards of tasks whose env terminates early are chosen so that
ending the episode is never a shortcut for a policy that does the task: they are non-negative
per step (mountain_car `left`, `height`, `speed`, hopper `jump`) or carry a per-step
alive bonus (hopper `forward`, `backward`).  Hopper's bonus is 0.1, a tenth of
Hopper-v5's: with 1 per step, standing still for 1,000 steps earns 1,000, more than
most gaits a CPU-sized search finds, so every method converged on standing and "first
to the threshold" measured the starting point (experiments/RESULTS.md).  At 0.1
standing earns 100 and moving is what pays, while the bonus still exceeds the largest
control cost (3e-3), so jumping's reward stays positive and falling never pays a
policy that moves the task's way.  Walker2d and Ant follow the same rule (bonus 0.1;
Ant's control cost a fiftieth of Ant-v5's, at most 0.08 per step, below the bonus).

A task of your own is any such function (`Task(name, reward)`, or the function itself,
named by its `__name__`): given to `lsc.as_env(obj, tasks=...)`, added to an env by
`with_tasks`, or passed as the `task` of a search or `lsc.run_method`.  `check_rewards`
runs it on an abstract transition before anything compiles.  `lsc.baselines.TaskReward(env,
task)` turns any task into the env's reward, for Brax's agents.
"""

import dataclasses
import functools
import hashlib
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from lsc.envs import as_env, env_spec, with_spec
from lsc.envs import mountain_car as mc


@struct.dataclass
class Transition:
  """One env step: obs (O,), action (A,), next_obs (O,), metrics of the next state
  (dict of scalars, see each env's docstring), done (scalar, 1.0 = terminated) and the
  env's own reward for the step (scalar; what `ENV_REWARD` scores)."""
  obs: jax.Array
  action: jax.Array
  next_obs: jax.Array
  metrics: dict
  done: jax.Array
  reward: jax.Array


RewardFn = Callable[[Transition], jax.Array]


@dataclasses.dataclass(frozen=True)
class Task:
  """A named reward function; an env's `EnvSpec.tasks` lists its own."""
  name: str
  reward: RewardFn

  @property
  def doc(self) -> str:
    return (self.reward.__doc__ or "").strip()


def env_reward(t: Transition) -> jax.Array:
  """r = the env's own reward for the step (State.reward)."""
  return t.reward


ENV_REWARD = Task("reward", env_reward)  # an adopted env's task unless it is given others (`lsc.as_env`)


# --- mountain_car ------------------------------------------------------------------
VALLEY_BOTTOM = -jnp.pi / 6  # argmin of the height sin(3x)


def mountain_car_goal(t: Transition) -> jax.Array:
  """Gymnasium's reward: r = 100 * terminated - 0.1 * a^2 (a unclipped).
  Terminated means x' >= 0.45 and v' >= 0; the episode then ends."""
  return 100.0 * t.done - 0.1 * t.action[0] ** 2


def mountain_car_left(t: Transition) -> jax.Array:
  """Reach the left edge: r = clip((x_b - x') / (x_b + 1.2), 0, 1), x_b = -pi/6 the valley
  bottom: 0 right of the bottom, 1 at the left wall x = -1.2.  Non-negative, so reaching
  the goal (which ends the episode) only forfeits reward."""
  return jnp.clip((VALLEY_BOTTOM - t.metrics["position"]) / (VALLEY_BOTTOM - mc.MIN_POSITION), 0.0, 1.0)


def mountain_car_height(t: Transition) -> jax.Array:
  """Height reached: r = (1 + sin(3 x')) / 2 in [0, 1], summed over the episode.  The top
  of the right hill (x = pi/6) lies past the goal, so the optimum climbs high on
  either side without crossing x = 0.45 moving right (which would end the episode)."""
  return 0.5 * (1.0 + jnp.sin(3.0 * t.metrics["position"]))


def mountain_car_speed(t: Transition) -> jax.Array:
  """Speed: r = |v'| / 0.07 in [0, 1]; swinging fast without ending the episode at the goal."""
  return jnp.abs(t.metrics["velocity"]) / mc.MAX_SPEED


# --- reacher -----------------------------------------------------------------------
REACH_POINTS = {"ne": (0.1, 0.1), "nw": (-0.1, 0.1), "sw": (-0.1, -0.1), "se": (0.1, -0.1)}


def _reach(point: tuple[float, float]) -> RewardFn:
  px, py = point

  def reward(t: Transition) -> jax.Array:
    return -jnp.sqrt((t.metrics["tip_x"] - px) ** 2 + (t.metrics["tip_y"] - py) ** 2)

  reward.__doc__ = (f"r = -|tip' - ({px}, {py})|, the fingertip's distance to a fixed point "
                    "(the arm reaches radius 0.21).")
  return reward


# --- hopper and walker2d ------------------------------------------------------------
# Both end when unhealthy; the alive bonus is a tenth of their v5 envs' (see the module
# docstring), which exceeds the largest control cost (hopper 3e-3, walker2d 6e-3).
HOPPER_ALIVE = 0.1  # per healthy step


def upright_forward(t: Transition) -> jax.Array:
  """Hopper-v5's and Walker2d-v5's reward with a tenth of their alive bonus:
  r = x_velocity + 0.1 (healthy) - 1e-3 |a|^2."""
  return t.metrics["x_velocity"] + HOPPER_ALIVE * t.metrics["healthy_reward"] - t.metrics["ctrl_cost"]


def upright_backward(t: Transition) -> jax.Array:
  """r = -x_velocity + 0.1 (healthy) - 1e-3 |a|^2."""
  return -t.metrics["x_velocity"] + HOPPER_ALIVE * t.metrics["healthy_reward"] - t.metrics["ctrl_cost"]


def upright_jump(t: Transition) -> jax.Array:
  """r = max(z_velocity, 0) + 0.1 (healthy) - 1e-3 |a|^2: upward speed of the torso, so
  repeated jumps score and standing still earns the alive bonus only."""
  return (jnp.maximum(t.metrics["z_velocity"], 0.0) + HOPPER_ALIVE * t.metrics["healthy_reward"]
          - t.metrics["ctrl_cost"])


# --- halfcheetah -------------------------------------------------------------------
def halfcheetah_forward(t: Transition) -> jax.Array:
  """Gymnasium HalfCheetah-v5's reward: r = x_velocity - 0.1 |a|^2."""
  return t.metrics["x_velocity"] - t.metrics["ctrl_cost"]


def halfcheetah_backward(t: Transition) -> jax.Array:
  """r = -x_velocity - 0.1 |a|^2."""
  return -t.metrics["x_velocity"] - t.metrics["ctrl_cost"]


def halfcheetah_frontflip(t: Transition) -> jax.Array:
  """r = pitch_rate - 0.1 |a|^2 (torso angular velocity about y, positive = nose down)."""
  return t.metrics["pitch_rate"] - t.metrics["ctrl_cost"]


def halfcheetah_backflip(t: Transition) -> jax.Array:
  """r = -pitch_rate - 0.1 |a|^2."""
  return -t.metrics["pitch_rate"] - t.metrics["ctrl_cost"]


# --- ant ---------------------------------------------------------------------------
# Ant ends when unhealthy (torso outside 0.2 < z < 1): the same 0.1 alive bonus, with a
# fiftieth of Ant-v5's control cost 0.5 |a|^2, so that the bonus exceeds the largest
# cost (8 actions in [-1, 1]: 0.01 * 8 = 0.08) and ending the episode never pays.
ANT_CTRL_SCALE = 0.02  # of the env's ctrl_cost = 0.5 |a|^2


def _ant_move(velocity: str, sign: float, direction: str) -> RewardFn:
  def reward(t: Transition) -> jax.Array:
    return (sign * t.metrics[velocity] + HOPPER_ALIVE * t.metrics["healthy_reward"]
            - ANT_CTRL_SCALE * t.metrics["ctrl_cost"])

  reward.__doc__ = (f"r = {'-' if sign < 0 else ''}{velocity} + 0.1 (healthy) - 0.01 |a|^2: the torso's "
                    f"speed towards {direction}.")
  return reward


ANT_MOVES = {"forward": ("x_velocity", 1.0, "+x"), "backward": ("x_velocity", -1.0, "-x"),
             "left": ("y_velocity", 1.0, "+y"), "right": ("y_velocity", -1.0, "-y")}


# Each env's tasks, in the order of the columns of its rollout returns; its `EnvSpec`
# (`lsc.envs.builtin`) holds them.
MOUNTAIN_CAR_TASKS = (Task("goal", mountain_car_goal), Task("left", mountain_car_left),
                      Task("height", mountain_car_height), Task("speed", mountain_car_speed))
REACHER_TASKS = tuple(Task(f"reach_{q}", _reach(p)) for q, p in REACH_POINTS.items())
HOPPER_TASKS = (Task("forward", upright_forward), Task("backward", upright_backward), Task("jump", upright_jump))
HALFCHEETAH_TASKS = (Task("forward", halfcheetah_forward), Task("backward", halfcheetah_backward),
                     Task("frontflip", halfcheetah_frontflip), Task("backflip", halfcheetah_backflip))
WALKER2D_TASKS = HOPPER_TASKS  # the same metrics (`lsc.envs.mujoco.TorsoHeight`), the same formulas
ANT_TASKS = tuple(Task(name, _ant_move(*move)) for name, move in ANT_MOVES.items())


def as_tasks(tasks) -> tuple[Task, ...]:
  """`tasks` as a tuple of `Task`s: None gives the env's own reward (`ENV_REWARD`); a
  `Task` or a reward function (named by its `__name__`) gives one; a sequence, one each."""
  if tasks is None:
    return (ENV_REWARD,)
  if isinstance(tasks, Task) or callable(tasks):
    tasks = (tasks,)
  out = []
  for task in tasks:
    if isinstance(task, Task):
      out.append(task)
    elif callable(task):
      name = getattr(task, "__name__", None)
      if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"reward {task!r} has no usable __name__ to name its task; pass lsc.tasks.Task(name, reward)")
      out.append(Task(name, task))
    else:
      raise TypeError(f"a task is an lsc.tasks.Task or a reward function of a Transition, got {task!r}")
  return tuple(out)


def _value_text(value) -> str:
  """A value a reward closes over or is applied to, as text that is the same in every
  process: plain numbers and strings as themselves, containers element by element,
  functions by their code, anything else by its type (never a repr with an address)."""
  if isinstance(value, (bool, int, float, str, type(None))):
    return repr(value)
  if isinstance(value, (tuple, list)):
    return "(" + ", ".join(_value_text(v) for v in value) + ")"
  if callable(value) and not isinstance(value, type):
    return _code_text(value)
  return type(value).__qualname__


def _code_text(fn) -> str:
  """What determines what reward function `fn` computes, as text: its source (else its
  bytecode, constants and names) and the values it closes over or is partially applied
  to (`_value_text`), and the plain module-level values (numbers, strings) it reads by
  name; functions it calls are not followed."""
  if isinstance(fn, functools.partial):
    keywords = sorted((k, _value_text(v)) for k, v in fn.keywords.items())
    return f"{_code_text(fn.func)} {_value_text(fn.args)} {keywords}"
  code = getattr(fn, "__code__", None)
  try:
    text = inspect.getsource(fn)
  except Exception:  # no source file (a REPL, exec), or one that no longer parses there
    text = (f"{code.co_code.hex()} {_value_text(code.co_consts)} {code.co_names}" if code is not None
            else type(fn).__qualname__)
  cells = [c.cell_contents for c in getattr(fn, "__closure__", None) or ()]
  # the plain module-level values it reads by name (e.g. HOPPER_ALIVE), not other functions
  names = getattr(code, "co_names", ())
  plain = sorted((n, repr(v)) for n, v in getattr(fn, "__globals__", {}).items()
                 if n in names and isinstance(v, (bool, int, float, str)))
  return text + _value_text(cells) + repr(plain)


def task_fingerprint(env, task_name: str) -> str:
  """A short hash of one task of `env`: its name, formula and code (`fingerprint`'s,
  for one task): in a search's or baseline's identity, so that a checkpoint made under
  another reward of the same name is never resumed."""
  return hashlib.sha256(_task_text(get_task(env, task_name)).encode()).hexdigest()[:12]


def _task_text(task: Task) -> str:
  """What determines a task's rewards, as text: its name, formula and code."""
  return f"{task.name}: {task.doc}\n{_code_text(task.reward)}"


def fingerprint(env) -> str:
  """A short hash of the tasks of `env` (an env or a registered name): their names,
  formulas (docstrings) and code, and for an env adopted by `lsc.as_env` its class's
  `reset` and `step` code too, so that results computed under other rewards or another
  version of a user's env are recomputed, never reused (settings an adopted object holds
  in its attributes are not seen: give a changed object another name).  Part of every
  pipeline stage's key."""
  spec = env_spec(env)
  text = "\n".join(_task_text(t) for t in spec.tasks)
  adopted = getattr(spec.make, "inner", None)  # `lsc.envs.foreign`: the object given to as_env
  if adopted is not None:
    text += "".join(f"\n{_code_text(getattr(type(adopted), m))}" for m in ("reset", "step"))
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def task_names(env) -> tuple[str, ...]:
  """Names of the tasks of `env` (an env or a registered name), in the order of the
  columns of rollout returns."""
  return tuple(t.name for t in env_spec(env).tasks)


def get_task(env, task_name: str) -> Task:
  """The task `task_name` of `env`; ValueError listing the valid names otherwise."""
  spec = env_spec(env)
  for task in spec.tasks:
    if task.name == task_name:
      return task
  raise ValueError(f"unknown task {task_name!r} for env {spec.name!r}; valid tasks: "
                   f"{', '.join(t.name for t in spec.tasks)}")


def task_index(env, task_name: str) -> int:
  """Column of `task_name` in the (N, n_tasks) returns of a rollout of `env`."""
  get_task(env, task_name)
  return task_names(env).index(task_name)


def with_tasks(env, *tasks):
  """`env` (any env) scoring `tasks` too (`Task`s or reward functions, named by their
  `__name__`), after its own: a copy, not registered, that rollouts, searches and
  `lsc.run_method` take.  A task of the same name and reward is not added twice; one of
  the same name and another reward is refused."""
  env = as_env(env)
  spec = env_spec(env)
  own = {t.name: t for t in spec.tasks}
  added = []
  for task in as_tasks(tasks):
    if task.name in own and own[task.name].reward is not task.reward:
      raise ValueError(f"env {spec.name!r} has a task {task.name!r} already; name yours otherwise "
                       f"(lsc.tasks.Task(name, reward))")
    if task.name not in own and task.name not in (t.name for t in added):
      added.append(task)
  return with_spec(env, dataclasses.replace(spec, tasks=spec.tasks + tuple(added))) if added else env


def resolve_task(env, task) -> tuple:
  """(env, task name) for a `task` given as a name of one of `env`'s tasks, or as a
  `Task` or reward function (then `env` scores it too: `with_tasks`); every task of the
  env checked (`check_rewards`)."""
  if isinstance(task, str):
    get_task(env, task)
    env = as_env(env)
  else:
    (task,) = as_tasks(task)
    env, task = with_tasks(env, task), task.name
  check_rewards(env)
  return env, task


def task_rewards(env) -> Callable[[Transition], jax.Array]:
  """A jit-safe function: Transition -> rewards of every task of `env` (an env or a
  registered name), (n_tasks,)."""
  tasks = env_spec(env).tasks

  def rewards(t: Transition) -> jax.Array:
    return jnp.stack([jnp.asarray(task.reward(t), jnp.float32) for task in tasks])

  return rewards


def _where(fn) -> str:
  name = getattr(fn, "__qualname__", None) or repr(fn)
  code = getattr(fn, "__code__", None)
  return f"{name}, {code.co_filename}:{code.co_firstlineno}" if code is not None else name


@functools.lru_cache(maxsize=256)
def check_rewards(env) -> None:
  """Runs every task of `env` (an lsc env) on an abstract transition of it
  (`jax.eval_shape`: traced, never compiled) and raises ValueError naming the task and its
  function if one fails or returns anything but one real number per transition."""
  spec = env_spec(env)
  state = jax.eval_shape(env.reset, jax.random.key(0))
  action = jax.ShapeDtypeStruct((spec.action_size,), jnp.float32)
  nxt = jax.eval_shape(env.step, state, action)
  t = Transition(state.obs, action, nxt.obs, dict(nxt.metrics), nxt.done, nxt.reward)
  fields = (f"obs {tuple(t.obs.shape)}, action {tuple(action.shape)}, next_obs {tuple(t.next_obs.shape)}, "
            f"done (), reward (), metrics {{{', '.join(sorted(t.metrics))}}}")
  for task in spec.tasks:
    where = f"task {task.name!r} of env {spec.name!r} ({_where(task.reward)})"
    try:
      out = jax.eval_shape(task.reward, t)
    except Exception as error:
      raise ValueError(f"{where} fails on a transition: {type(error).__name__}: {error}.  "
                       f"A Transition holds {fields}") from error
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or dtype is None or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
                                            or dtype == jnp.bool_):
      raise ValueError(f"{where} returns {type(out).__name__} of shape {shape} and dtype {dtype}; a reward is "
                       "one real number per transition (shape ()): reduce it, e.g. with jnp.sum")
