"""Bring your own env and reward: the README's block runs the whole method on a Brax env
lsc does not ship and on a pure-JAX env of its own, through the public API; a user's
reward is checked before anything compiles."""

import json
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lsc
from lsc import tasks

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
MARK = "# bring your own env"


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
  """The README's block run in an empty directory: its variables, and that directory.
  What it registers is gone after this module."""
  from lsc.envs import registry
  (block,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if b.startswith(MARK)]
  before, where = dict(registry._specs()), tmp_path_factory.mktemp("byo")
  with pytest.MonkeyPatch.context() as patch:
    patch.chdir(where)
    scope = {"jax": jax, "jnp": jnp, "lsc": lsc}  # the README's first block imports them
    exec(compile(block, str(README), "exec"), scope)
    yield scope, where
  registry._SPECS.clear()
  registry._SPECS.update(before)


def test_readme_byo_block_runs_the_whole_method_on_a_brax_object_and_a_pure_jax_env(byo):
  scope, where = byo
  pendulum, point, found = scope["pendulum"], scope["point"], scope["found"]
  spec = lsc.get_env_spec("inverted_pendulum")  # sizes read from Brax's object, its reward the task
  assert (spec.observation_size, spec.action_size, spec.episode_length) == (4, 1, 100)
  assert pendulum.backend == "positional" and lsc.task_names(pendulum) == ("reward",)
  assert lsc.task_names("point_mass") == ("north_east",) and not list(where.iterdir())  # all in memory
  for result in found.values():
    assert result.final_returns.shape == (2,) and np.isfinite(result.final_returns).all()
    assert (result.env_steps <= 5_000).all()
  assert set(found) == {"inverted_pendulum", "point_mass"}
  # the pendulum earns 1 per step alive: its own reward reached the rollout
  small = lsc.make_policy(pendulum, "small")
  rolled = lsc.evaluate(pendulum, small, jax.vmap(small.init)(jax.random.split(jax.random.key(1), 6)))
  np.testing.assert_allclose(rolled.returns[:, 0], rolled.lengths.mean(axis=1), rtol=1e-6)
  # a reward passed as the task: scored beside the env's own, which it leaves unchanged
  elsewhere = scope["elsewhere"]
  assert elsewhere.final_returns.shape == (2,) and (elsewhere.final_returns <= 0).all()
  ae = scope["space_ae"].ae
  thetas = jax.vmap(ae.policy.init)(jax.random.split(jax.random.key(2), 6))
  both = lsc.evaluate(lsc.with_tasks(point, scope["south_west"]), ae.policy, thetas)
  alone = lsc.evaluate(point, ae.policy, thetas)
  assert both.returns.shape == (6, 2) and lsc.task_names(point) == ("north_east",)
  np.testing.assert_allclose(both.returns[:, 0], alone.returns[:, 0], rtol=1e-6)


def test_the_pipeline_runs_on_a_pure_jax_env_and_its_code_is_in_every_stage_key(byo, tmp_path):
  from lsc.pipeline import ExperimentConfig, SearchSettings, run
  scope, _ = byo
  config = ExperimentConfig(
      collect=lsc.CollectConfig(env=scope["point"], policy=lsc.PolicyConfig("small"), pool=64, keep=0.5, n_probe=32,
                                probe_policies=8, eval_episodes=1),
      train=scope["tiny"], search=SearchSettings(methods=("latent_pgpe", "param_pgpe"), budget=3_000, seeds=2,
                                                 n_evals=2, latent_start="best"),
      methods=lsc.MethodConfigs.from_plain({m: {"population": 4, "episodes": 1} for m in ("latent_pgpe", "param_pgpe")}),
      eval_episodes=2, recovery_points=4, recovery_episodes=1)
  results = run(config, tmp_path / "run", log=lambda line: None)
  assert results["config"]["collect"]["env"]["name"] == "point_mass" and set(results["curves"]) == {"north_east"}
  for outcome in results["curves"]["north_east"].values():
    assert np.isfinite(outcome["final_returns"]).all() and len(outcome["final_returns"]) == 2
  key = json.loads((tmp_path / "run" / "dataset" / "stage.json").read_text())["key"]
  assert key["rewards"] == tasks.fingerprint("point_mass")

  class Faster(type(scope["point"].inner)):  # another version of the env's code: other keys
    def step(self, state, action):
      return super().step(state, 2 * action)

  assert tasks.fingerprint(lsc.as_env(Faster(), name="faster", tasks=[scope["north_east"]])) != key["rewards"]


class Toy:
  """Two numbers drifting by the action: obs (2,), action (2,)."""
  observation_size, action_size = 2, 2

  def reset(self, key):
    return lsc.State(None, jax.random.normal(key, (2,)), jnp.zeros(()), jnp.zeros(()), {"speed": jnp.zeros(())})

  def step(self, state, action):
    return state.replace(obs=state.obs + action, metrics={"speed": jnp.linalg.norm(action)})


def vector(t):
  return t.next_obs  # one number per coordinate, not per step


def height(t):
  return t.metrics["height"]


def speed(t):
  return t.metrics["speed"]


SCALE = 2.0


def scaled(t):
  return SCALE * t.metrics["speed"]


def test_a_users_reward_is_checked_before_anything_compiles(env_registry):
  toy = lsc.as_env(Toy(), episode_length=5, tasks=[speed])
  policy = lsc.make_policy(toy, "small")
  thetas = jnp.zeros((3, policy.num_params))
  with pytest.raises(ValueError, match=r"task 'vector' of env 'toy' \(vector, .*test_byo_env.py:\d+\) returns "
                                       r"ShapeDtypeStruct of shape \(2,\).*one real number per transition"):
    lsc.evaluate(lsc.with_tasks(toy, vector), policy, thetas)
  with pytest.raises(ValueError, match=r"task 'height' .* fails on a transition: KeyError: 'height'.*metrics \{speed\}"):
    lsc.Search(toy, policy, lsc.identity_space(policy), height, budget=100)
  with pytest.raises(ValueError, match="has a task 'speed' already"):
    lsc.with_tasks(toy, lsc.Task("speed", height))
  with pytest.raises(ValueError, match="env name 'mountain_car' is taken"):
    lsc.as_env(Toy(), name="mountain_car")
  with pytest.raises(TypeError, match="lacks reset, step"):
    lsc.as_env(object())
  # adopted again as it is: its settings stay; given settings: replaced
  assert lsc.as_env(toy.inner) == toy and lsc.as_env(toy.inner).episode_length == 5
  mine = lsc.as_env(Toy(), name="mine", tasks=[speed], episode_length=9)  # any name: kept when given again
  assert lsc.as_env(mine.inner).name == "mine" and lsc.as_env(mine.inner).episode_length == 9
  assert lsc.task_names(lsc.as_env(mine, name="yours")) == ("speed",) and "toy" in lsc.env_names()
  # a reward's fingerprint holds its code and constants, never a memory address
  assert "0x" not in tasks._value_text((speed, height, [1.0, "a"]))
  assert tasks._code_text(eval("lambda t: t.obs[0] - 0.5")) != tasks._code_text(eval("lambda t: t.obs[0] - 0.7"))
  before = tasks._code_text(scaled)  # ... and the module-level numbers it reads
  globals()["SCALE"] = 3.0
  try:
    assert tasks._code_text(scaled) != before
  finally:
    globals()["SCALE"] = 2.0
  longer = lsc.as_env(toy, episode_length=7)
  assert longer.episode_length == 7 and lsc.task_names(longer) == ("speed",) and longer.name == "toy"


def test_a_search_is_not_resumed_under_another_reward_of_the_same_name(env_registry, tmp_path):
  toy = lsc.as_env(Toy(), episode_length=5, tasks=[globals()["speed"]])
  policy = lsc.make_policy(toy, "small")
  run = dict(budget=120, seeds=1, policy=policy, configs={"param_pgpe": lsc.PGPEConfig(population=4, episodes=1)})
  first = lsc.run_method("param_pgpe", toy, "speed", tmp_path, **run)

  faster = lsc.tasks.Task("speed", lambda t: 2.0 * t.metrics["speed"])  # the same name, another formula
  with pytest.raises(Exception, match="reward"):
    lsc.run_method("param_pgpe", lsc.as_env(toy, tasks=[faster]), "speed", tmp_path, **run)
  again = lsc.run_method("param_pgpe", toy, "speed", tmp_path, **run)  # the same reward: resumed, the same numbers
  np.testing.assert_array_equal(again.final_returns, first.final_returns)


class Looping(Toy):
  """Toy whose step settles its observation in a while loop: JAX runs it, but cannot
  differentiate it in reverse mode."""

  def step(self, state, action):
    obs = jax.lax.while_loop(lambda x: jnp.abs(x).sum() > 1e3, lambda x: 0.5 * x, state.obs + action)
    return state.replace(obs=obs, metrics={"speed": jnp.linalg.norm(action)})


def test_the_occupancy_term_refuses_an_env_it_cannot_differentiate_or_hold_before_anything_compiles(env_registry, tmp_path,
                                                                                                  monkeypatch):
  from lsc.occupancy import check_differentiable, check_env, occupancy_memory
  toy = lsc.as_env(Toy(), episode_length=5, tasks=[speed])
  policy = lsc.make_policy(toy, "small")
  check_differentiable(toy, policy)  # a step JAX differentiates: nothing to say
  # what its backward pass keeps: 8 policies x 5 steps x a 20-byte state (obs 2, reward, done, speed), twice
  assert occupancy_memory(toy, 8)[0] == 2 * 8 * 5 * 20
  monkeypatch.setattr(lsc.validate, "memory_limit", lambda: 1_000)
  with pytest.raises(ValueError, match=r"the occupancy term's backward pass needs about .*occupancy_policies 8 x "
                                       r"episode_length 5 env states of 20 bytes"):
    check_env(toy, policy, 8)
  monkeypatch.undo()
  check_differentiable(toy, policy, grad_horizon=2)
  looping = lsc.as_env(Looping(), name="looping", episode_length=5, tasks=[speed])
  with pytest.raises(ValueError, match=r"env 'looping' through its step, and JAX cannot: .*while_loop.*"
                                       r"train\.occupancy_weight=0"):
    check_differentiable(looping, policy)
  # a pipeline refuses it before it collects anything
  from lsc.pipeline import ExperimentConfig, SearchSettings, run
  config = ExperimentConfig(
      collect=lsc.CollectConfig(env=looping, policy=lsc.PolicyConfig("small"), pool=64, keep=0.5, n_probe=8,
                                probe_policies=2, eval_episodes=1),
      train=lsc.TrainConfig(latent_dim=1, encoder_widths=(8,), decoder_widths=(8,), steps=2, eval_every=1,
                            batch_policies=8, batch_states=8, occupancy_weight=1.0, occupancy_policies=1),
      search=SearchSettings(methods=("latent_pgpe",), budget=5_000, seeds=1, n_evals=1))
  with pytest.raises(ValueError, match="JAX cannot"):
    run(config, tmp_path / "run", log=lambda line: None)
  assert not (tmp_path / "run" / "dataset").exists()
