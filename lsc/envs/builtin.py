"""lsc's six envs, registered like any other (`lsc.envs.registry` imports this module
on its first use).  The Brax envs are named by "module:Class", so registering them
imports neither Brax nor MuJoCo."""

from lsc import tasks
from lsc.envs import BRAX_BACKENDS, brax_backend
from lsc.envs import mountain_car as mc
from lsc.envs.registry import EnvSpec, register_env

# mjx_warp's contact buffer per episode: the MJCFs allow at most 5 colliding geom pairs
# (halfcheetah) x 2 contacts; measured at most 1.5 per world (`lsc.envs.mjx_impl`).
# Enough for walker2d and ant too: walker2d.xml lets 3 capsules touch the floor (torso
# and both feet, at most 2 contacts each: 6), ant.xml its 4 foot spheres (1 each: 4);
# no other pair of their geoms collides (MJX allocates 6 and 4 contacts for them).
BRAX_CONTACTS_PER_WORLD = 16


def car_position(state):
  """The car's position, obs[0]: a scalar."""
  return state.obs[0]


def body0_x(state):
  """x of body 0 (the torso of hopper, halfcheetah, walker2d and ant, the first link of
  reacher): a scalar."""
  return state.pipeline_state.x.pos[0, 0]


def brax_spec(name: str, cls: str, observation_size: int, action_size: int, episode_length: int, env_tasks: tuple,
              locomotion: bool) -> EnvSpec:
  """The spec of one of lsc's Brax envs (`lsc.envs.mujoco`): Brax's backends, probe
  states from rollouts (unbounded observations), body 0's x."""
  return EnvSpec(name, f"lsc.envs.mujoco:{cls}", observation_size, action_size, episode_length, env_tasks,
                 backends=BRAX_BACKENDS, choose_backend=brax_backend, probe="rollout", x_position=body0_x,
                 locomotion=locomotion, contacts_per_world=BRAX_CONTACTS_PER_WORLD)


# Gymnasium's MountainCarContinuous observation space bounds it; a policy of 17
# parameters (one hidden layer of 4) is its smallest sensible one.
register_env(EnvSpec("mountain_car", mc.MountainCar, 2, 1, 999, tasks.MOUNTAIN_CAR_TASKS, probe="uniform",
                     obs_bounds=((mc.MIN_POSITION, -mc.MAX_SPEED), (mc.MAX_POSITION, mc.MAX_SPEED)),
                     x_position=car_position, hidden={"small": (4,)}))
register_env(brax_spec("reacher", "Reacher", 11, 2, 50, tasks.REACHER_TASKS, locomotion=False))
register_env(brax_spec("hopper", "Hopper", 11, 3, 1000, tasks.HOPPER_TASKS, locomotion=True))
register_env(brax_spec("halfcheetah", "HalfCheetah", 17, 6, 1000, tasks.HALFCHEETAH_TASKS, locomotion=True))
register_env(brax_spec("walker2d", "Walker2d", 17, 6, 1000, tasks.WALKER2D_TASKS, locomotion=True))
register_env(brax_spec("ant", "Ant", 27, 8, 1000, tasks.ANT_TASKS, locomotion=True))
