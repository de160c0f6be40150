"""Env construction, the registry of env specs, names and sizes, and the quantities tasks read."""

import dataclasses
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax import base

import lsc
from lsc.config import EnvConfig, PolicyConfig
from lsc.envs import EnvSpec, default_backend, env_names, get_env_spec, make_env
from lsc.tasks import task_names


def test_unknown_names_raise_listing_the_valid_ones():
  with pytest.raises(ValueError, match="valid envs: mountain_car, reacher, hopper, halfcheetah, walker2d, ant"):
    make_env("humanoid")
  with pytest.raises(ValueError, match="valid backends: mjx, mjx_warp, spring, positional, generalized"):
    make_env("hopper", backend="physx")
  with pytest.raises(ValueError, match="valid backends: jax"):
    make_env("mountain_car", backend="mjx")
  with pytest.raises(ValueError, match="episode_length"):
    make_env("reacher", episode_length=0)


MOUNTAIN_CAR_PATH = """
import sys
import lsc
env = lsc.make_env("mountain_car", episode_length=50)
assert env == lsc.make_env("mountain_car", episode_length=50)  # equal by settings: programs are shared
dataset = lsc.collect(lsc.CollectConfig(lsc.EnvConfig("mountain_car", episode_length=50), lsc.PolicyConfig("small"),
                                        pool=16, keep=0.5, n_probe=8, eval_episodes=1))
policy = lsc.make_policy(env, "small")
search = lsc.Search(env, policy, lsc.linear_space(policy, 2), "speed", lsc.PGPEConfig(population=4, episodes=1),
                    budget=200)
result = search.run(lsc.EvalProtocol(1))
assert result.generations == 1, result.generations
from lsc.methods import METHODS  # checking every method's settings and budget loads no training code
for method in METHODS.values():
  method.check(lsc.MethodConfigs(), 10**6, 50, dims={"latent": 2, "parameter": policy.num_params})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("brax", "mujoco"))
assert not heavy, heavy
"""


def test_the_mountain_car_path_imports_neither_brax_nor_mujoco():
  done = subprocess.run([sys.executable, "-c", MOUNTAIN_CAR_PATH], capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "warp" not in done.stdout + done.stderr


def test_an_entry_point_loads_brax_agents_without_mjx_import_noise():
  code = ("import lsc, lsc.envs; lsc.quiet_dependencies(); lsc.envs.import_quietly('lsc.baselines'); "
          "import lsc.baselines; print('loaded')")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert done.returncode == 0 and done.stdout == "loaded\n", done.stdout + done.stderr[-2000:]


def test_defaults_on_this_machine():
  assert default_backend("mountain_car") == "jax"
  expected = "mjx" if jax.default_backend() in ("gpu", "tpu") else "spring"
  assert default_backend("hopper") == expected
  env = make_env("reacher")
  assert env.backend == expected and env.episode_length == 50


@pytest.mark.parametrize("name", env_names())
def test_sizes_and_attributes(name):
  env = make_env(name)
  spec = get_env_spec(name)
  assert (env.observation_size, env.action_size) == (spec.observation_size, spec.action_size)
  assert env.name == name and env.unwrapped is env and env.episode_length == spec.episode_length


def test_a_registered_env_is_known_everywhere(env_registry):
  spec = dataclasses.replace(get_env_spec("mountain_car"), name="car_copy", episode_length=40)
  assert lsc.register_env(spec) is spec and env_names()[-1] == "car_copy"
  env = make_env("car_copy")
  assert env.name == "car_copy" and env.episode_length == 40 and env.backend == "jax"
  assert env != make_env("mountain_car", episode_length=40)  # its own programs: the name picks the tasks
  assert task_names("car_copy") == task_names("mountain_car")
  assert EnvConfig("car_copy").resolved() == EnvConfig("car_copy", "jax", 40)
  assert PolicyConfig("small").num_params("car_copy") == 17  # mountain_car's own small preset
  with pytest.raises(ValueError, match="'car_copy' is registered already; pass replace=True"):
    lsc.register_env(spec)
  lsc.register_env(dataclasses.replace(spec, episode_length=30), replace=True)
  assert make_env("car_copy").episode_length == 30


def test_unknown_env_lists_the_registered_ones(env_registry):
  lsc.register_env(dataclasses.replace(get_env_spec("mountain_car"), name="car_copy"))
  with pytest.raises(ValueError, match="unknown env 'humanoid'; valid envs: mountain_car, reacher, hopper, "
                                       "halfcheetah, walker2d, ant, car_copy"):
    get_env_spec("humanoid")
  with pytest.raises(ValueError, match="valid envs: .*car_copy"):
    EnvConfig("humanoid").resolved()


def test_env_specs_refuse_what_cannot_be_right():
  car = get_env_spec("mountain_car")
  for change, message in [({"name": ""}, "name must be a non-empty string"),
                          ({"make": "no_colon"}, "make must be 'module:attr' or a callable"),
                          ({"action_size": 0}, "action_size must be an int >= 1"),
                          ({"tasks": ()}, "tasks must be a non-empty tuple"),
                          ({"tasks": car.tasks[:1] * 2}, "task names must be distinct"),
                          ({"probe": "grid"}, "unknown probe mode 'grid'; valid modes: uniform, rollout"),
                          ({"obs_bounds": None}, "probe 'uniform' needs obs_bounds"),
                          ({"obs_bounds": ((0.0,), (1.0,))}, "obs_bounds must be .low, high. of 2 values"),
                          ({"locomotion": True, "x_position": None}, "a locomotion env needs x_position"),
                          ({"backends": ("jax", "mjx_warp")}, "contacts_per_world .mjx_warp's contact buffer. must be"),
                          ({"hidden": {"small": (0,)}}, "hidden sizes of preset 'small' must be ints >= 1")]:
    with pytest.raises(ValueError, match=message):
      dataclasses.replace(car, **change)
  with pytest.raises(TypeError, match="register_env takes an EnvSpec"):
    lsc.register_env("mountain_car")
  assert isinstance(car, EnvSpec) and car.locomotion is False and get_env_spec("hopper").locomotion


def test_reacher_target_is_fixed_and_hidden_in_plain_sight():
  env = make_env("reacher")
  states = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 8))
  obs = np.asarray(states.obs)
  assert np.all(obs[:, 4:6] == 0)  # target coordinates: always the origin
  tip = np.stack([states.metrics["tip_x"], states.metrics["tip_y"]], 1)
  np.testing.assert_allclose(obs[:, 8:10], tip, atol=1e-6)  # tip - target = tip
  assert np.all(np.linalg.norm(tip, axis=1) > 0.15)  # the arm starts stretched out


def test_halfcheetah_pitch_rate_positive_means_nose_down():
  env = make_env("halfcheetah")
  state = env.reset(jax.random.key(0))
  qd = jnp.zeros(env.sys.qd_size()).at[2].set(3.0)  # spin about the rooty hinge
  pipeline_state = env.pipeline_init(env.sys.init_q, qd)
  state = state.replace(pipeline_state=pipeline_state)
  nxt = jax.jit(env.step)(state, jnp.zeros(6))
  assert float(nxt.metrics["pitch_rate"]) > 0
  nose = base.Transform(pos=jnp.zeros(3), rot=nxt.pipeline_state.x.rot[0]).do(
      base.Transform.create(pos=jnp.array([1.0, 0.0, 0.0]))).pos
  assert float(nose[2]) < 0  # the torso's forward axis now points down


def test_mujoco_warp_gets_the_solver_brax_chose_for_mjx():
  """mjx_warp builds its model from `sys.mj_model`; Brax's Ant retunes its MJX solver
  (1 iteration, 4 line-search steps), which must reach that model too."""
  env = make_env("ant", backend="mjx", episode_length=10)
  options = env.sys.mj_model.opt
  assert (options.iterations, options.ls_iterations) == (1, 4)
  assert (options.solver, options.disableflags) == (int(env.sys.opt.solver), int(env.sys.opt.disableflags))
