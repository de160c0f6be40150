"""The compiled search: sign convention, latent/parameter search on mountain_car, env-step
accounting, resume from a checkpoint, bad input; other strategies (CMA-ES, one registered
here) through `run_method`; the shared fitness; method settings by name."""

import contextlib
import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsc import checkpoint
from lsc.config import to_dict
from lsc.evaluation import CURVE_EVAL, EvalProtocol, eval_grid, evaluate, on_grid
from lsc.methods import (METHODS, MethodConfigs, SearchMethod, Sequence, SequenceConfig, get_method, load_outcome,
                         Run, register, run_grid, run_method)
from lsc.policy import MLPPolicy, make_policy, member_key
from lsc.search import (Search, describe, euclidean_space, generation_keys, identity_space, keep_centres, linear_space,
                        make_fitness, make_space, principal_subspace, random_subspace, run_search, search_ask,
                        search_center, search_init, search_step)
from lsc.strategies import CMAESConfig, PGPEConfig, SepCMAESConfig, StrategyConfig
from lsc.tasks import task_index, task_names

TARGET = jnp.array([1.0, -2.0, 0.5])
FRESH = EvalProtocol(episodes=5, seed=424_242)  # evaluation keys no search saw


def concave(thetas, key):
  return -jnp.sum((thetas - TARGET) ** 2, axis=1)


def pgpe(fitness_fn, config, generations, key, maximize):
  """`search_step` scanned over generations from 0 in R^3: (final centre, centre values)."""
  space = euclidean_space(jnp.zeros(3))
  step = functools.partial(search_step, config=config, fitness_fn=fitness_fn, maximize=maximize)
  init_key, key = jax.random.split(key)
  state, values = jax.lax.scan(lambda state, k: step(k, state, space), search_init(init_key, space, config),
                               jax.random.split(key, generations))
  return search_center(state, space), values


@pytest.mark.parametrize("optimizer", ["adam", "clipup"])
def test_pgpe_maximises_concave_and_minimises_convex(optimizer):
  config = PGPEConfig(population=32, std_init=0.5, lr=0.1, optimizer=optimizer)
  run = jax.jit(pgpe, static_argnums=(0, 1, 2, 4))
  best, curve = run(concave, config, 200, jax.random.key(0), True)
  assert float(jnp.linalg.norm(best - TARGET)) < 0.2 and curve[-1] > curve[0]
  convex = lambda thetas, key: -concave(thetas, key)
  best, curve = run(convex, config, 200, jax.random.key(0), False)
  assert float(jnp.linalg.norm(best - TARGET)) < 0.2 and curve[-1] < curve[0]
  # told to maximise a convex bowl, it climbs away from the minimum
  away, _ = run(convex, config, 50, jax.random.key(0), True)
  assert float(jnp.linalg.norm(away - TARGET)) > float(jnp.linalg.norm(TARGET)) + 0.5


def test_each_seed_draws_its_own_keys_and_a_key_is_accepted_where_a_seed_is(mountain_car, small_policy):
  space = linear_space(small_policy, 2)
  make = lambda seed, seeds=2: Search(mountain_car, small_policy, space, "speed",
                                      PGPEConfig(population=4, episodes=1), budget=12_000, seeds=seeds, seed=seed)
  run = lambda search: search.chunk(search.init(), 2)[1]["center_return"]  # (2 generations, S)
  # run s of an int seed is seed + s's, whatever the number of runs or where they start:
  # the same keys, so the same numbers up to float rounding (batches of other sizes)
  three, two, third = run(make(5, 3)), run(make(5, 2)), run(make(7, 1))
  np.testing.assert_allclose(three[:, :2], two, rtol=1e-4)
  np.testing.assert_allclose(three[:, 2:], third, rtol=1e-4)
  assert not np.allclose(three[:, 0], three[:, 1], rtol=1e-2)
  by_key, by_data = make(jax.random.key(7)), make(jax.random.key_data(jax.random.key(7)))
  for a, b in zip(jax.tree.leaves(by_key.init()), jax.tree.leaves(by_data.init())):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(run(by_key)[:, :1], run(make(jax.random.key(7), 1)), rtol=1e-4)
  assert describe(by_key)["seed"] == np.asarray(jax.random.key_data(jax.random.key(7))).tolist()
  assert describe(by_key) != describe(make(jax.random.key(8)))


def test_search_step_vmapped_over_seeds_equals_separate_runs():
  config = PGPEConfig(population=8, std_init=0.5, lr=0.1)
  space = euclidean_space(jnp.zeros(3))
  step = jax.jit(functools.partial(search_step, config=config, fitness_fn=concave))
  keys = jax.random.split(jax.random.key(3), 3)
  states = jax.vmap(search_init, in_axes=(0, None, None))(keys, space, config)
  batched = jax.jit(jax.vmap(step, in_axes=(0, 0, None)))
  for generation in range(4):
    gen_keys = jax.vmap(lambda k: jax.random.fold_in(k, generation))(keys)
    states, values = batched(gen_keys, states, space)
  for seed in range(3):
    state = search_init(keys[seed], space, config)
    for generation in range(4):
      state, value = step(jax.random.fold_in(keys[seed], generation), state, space)
    np.testing.assert_allclose(search_center(state, space), search_center(jax.tree.map(lambda x: x[seed], states),
                                                                          space), rtol=1e-6)
    np.testing.assert_allclose(value, values[seed], rtol=1e-6)


@pytest.fixture(scope="module")
def small_policy(mountain_car):
  return make_policy(mountain_car, "small")


SMALL = PGPEConfig(population=16, episodes=2, std_init=1.0, lr=0.2)


@pytest.fixture(scope="module")
def goal_search(mountain_car, small_policy):
  """Parameter-space PGPE on mountain_car `goal`, two seeds."""
  return Search(mountain_car, small_policy, identity_space(small_policy), "goal", SMALL,
                budget=600_000, seeds=2, generations_per_chunk=6)


def test_search_improves_the_centre_on_fresh_keys(mountain_car, small_policy, goal_search):
  result = goal_search.run(FRESH)
  assert result.final_thetas.shape == (2, small_policy.num_params) and result.generations >= 12
  start = evaluate(mountain_car, small_policy, identity_space(small_policy).center[None], FRESH).returns[0, 0]
  evaluated = evaluate(mountain_car, small_policy, result.final_thetas, FRESH)
  final = evaluated.returns[:, 0]
  np.testing.assert_allclose(final, result.final_returns, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(evaluated.displacement).mean(1), result.final_displacement, atol=1e-5)
  assert np.all(final > start + 5.0), (start, final)
  per_generation = SMALL.population * SMALL.episodes * mountain_car.episode_length
  assert np.all(result.env_steps <= 600_000) and np.all(result.env_steps > 600_000 - per_generation)
  steps = result.curves["env_steps"]
  assert np.all(np.diff(steps, axis=1) >= 0) and np.all(steps[:, 0] == 0)
  # the learning curve: the centre held at each grid point, on the curve's own episodes;
  # step 0 is the start, the last point (the budget) the final centre
  np.testing.assert_array_equal(result.grid, np.broadcast_to(eval_grid(600_000, 10), (2, 11)))
  at = lambda thetas: evaluate(mountain_car, small_policy, thetas, CURVE_EVAL).returns[:, 0]
  np.testing.assert_allclose(result.eval_returns[:, 0], at(identity_space(small_policy).center[None])[0], rtol=1e-5)
  np.testing.assert_allclose(result.eval_returns[:, -1], at(result.final_thetas), rtol=1e-5)
  assert np.isfinite(result.eval_returns).all()


def test_the_learning_curve_keeps_the_centre_of_the_last_generation_started_at_or_before_each_point():
  grid = jnp.array([[-5, 0, 10, 25, 40]])  # -5: before the search began
  kept = jnp.full((1, 5, 1), jnp.nan)
  for steps, mean in ((0, 1.0), (12, 2.0), (24, 3.0), (36, 4.0)):  # generations start at these env steps
    kept = keep_centres(kept, grid, jnp.array([steps]), jnp.array([[mean]]))
  kept = keep_centres(kept, grid, jnp.array([48]), jnp.array([[5.0]]))  # the final centre, past the last point
  np.testing.assert_array_equal(np.asarray(kept)[0, :, 0], [np.nan, 1.0, 1.0, 3.0, 4.0])
  # an RL curve measured after each epoch, read the same way
  np.testing.assert_array_equal(on_grid([[0, 12, 24, 36]], [[1.0, 2.0, 3.0, 4.0]], [-5, 0, 10, 25, 40])[0],
                                [np.nan, 1.0, 1.0, 3.0, 4.0])
  # a method's grid in its own env steps: the run's, less what was charged before it
  run = Run(None, "goal", 100, 2, 0, FRESH, n_evals=4, spent=30, offsets=np.array([0, 10]))
  np.testing.assert_array_equal(run_grid(run), [[-30, -5, 20, 45, 70], [-40, -15, 10, 35, 60]])


def test_latent_search_in_a_toy_linear_space(mountain_car, small_policy):
  space = linear_space(small_policy, 3, seed=5)
  config = PGPEConfig(population=16, episodes=2, std_init=0.5, lr=0.2)
  search = Search(mountain_car, small_policy, space, "speed", config, budget=600_000, generations_per_chunk=10)
  result = search.run(FRESH)
  assert result.final_z.shape == (1, 3)
  np.testing.assert_allclose(result.final_thetas[0], space.decode(jnp.asarray(result.final_z[0])), atol=1e-5)
  # a space of other weights but the same shapes runs the program already compiled
  other = Search(mountain_car, small_policy, linear_space(small_policy, 3, seed=6), "speed", config,
                 budget=600_000, generations_per_chunk=10)
  assert other._chunk_fn is search._chunk_fn
  programs = search._chunk_fn._cache_size()  # the chunk, and the one-generation tail
  other.run(FRESH)
  assert search._chunk_fn._cache_size() == programs <= 2
  assert describe(other)["space"] != describe(search)["space"]  # a checkpoint tells them apart
  start = evaluate(mountain_car, small_policy, space.decode(jnp.zeros(3))[None], FRESH).returns[0, 3]
  assert result.final_returns[0] > start


def pumping_policy(policy) -> np.ndarray:
  """Small mountain_car parameters that push along the velocity (a ~ sign(v)): the car
  pumps energy and reaches the goal, ending its episode after ~100 steps."""
  theta = np.zeros(policy.num_params, np.float32)
  theta[1 * 4 + 0] = 100.0  # hidden unit 0 = tanh(100 v)
  theta[2 * 4 + 4 + 0] = 10.0  # action = tanh(10 h0)
  return theta


def test_env_steps_are_the_steps_run_until_termination(mountain_car, small_policy):
  """Charged steps = what a plain step-by-step loop runs until `done`, candidates only."""
  space = euclidean_space(pumping_policy(small_policy), np.full(small_policy.num_params, 0.3))
  search = Search(mountain_car, small_policy, space, "goal", PGPEConfig(population=4, episodes=2),
                  budget=4 * 2 * 999, generations_per_chunk=1)
  carry = search.init()
  _, ask_keys, episode_keys = generation_keys(jax.random.wrap_key_data(carry["key"]), 2)
  thetas, _ = search_ask(ask_keys[0], jax.tree.map(lambda x: x[0], carry["state"]), space, search.config)
  step = jax.jit(lambda state, theta: mountain_car.step(state, small_policy.apply(theta, state.obs)))
  expected = 0
  for theta in thetas[:-1]:  # the candidates; the centre's steps are not charged
    for key in episode_keys[0]:
      state, length = mountain_car.reset(jax.random.split(key)[0]), 0  # as lsc.rollout resets
      while length < mountain_car.episode_length:
        state = step(state, theta)
        length += 1
        if state.done:
          break
      expected += length
  assert expected < 4 * 2 * 999 // 2  # most episodes ended early: the test is not vacuous
  carry, _ = search.chunk(carry, 1)
  assert int(carry["env_steps"][0]) == expected


def test_no_generation_runs_once_every_budget_is_spent(mountain_car, small_policy):
  # a budget of 5 full generations and 2 seeds, in chunks of 64: the old chunks always ran
  # whole (64 generations for 5), and `generations` counted them all
  config = PGPEConfig(population=8, episodes=1)
  search = Search(mountain_car, small_policy, identity_space(small_policy), "left", config, budget=5 * 8 * 999,
                  seeds=2, generations_per_chunk=64)
  result = search.run(FRESH)
  active = np.isfinite(result.curves["center_return"])
  assert result.generations == active.shape[1] and active.any(axis=0).all()
  assert 5 <= result.generations < 64 and np.all(result.env_steps <= search.budget)
  assert np.all(result.env_steps > search.last_start)  # every seed ran until its budget was spent


def test_killed_search_resumes_with_the_same_result(goal_search, tmp_path):
  uninterrupted = goal_search.run(FRESH)
  path = tmp_path / "state"

  def killed(stage, steps, budget, info):
    assert stage == "search" and budget == goal_search.budget and 0 < steps <= budget
    if info["generation"] >= 12:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    run_search(goal_search, FRESH, checkpoint_path=path, progress_fn=killed)
  assert checkpoint.is_artifact(path)
  resumed = run_search(goal_search, FRESH, checkpoint_path=path)
  np.testing.assert_array_equal(resumed.final_thetas, uninterrupted.final_thetas)
  for name, curve in uninterrupted.curves.items():
    np.testing.assert_array_equal(resumed.curves[name], curve)
  assert resumed.generations == uninterrupted.generations


def test_bad_searches_are_refused(mountain_car, small_policy):
  space = identity_space(small_policy)
  with pytest.raises(ValueError, match="unknown task 'fly'"):
    Search(mountain_car, small_policy, space, "fly", SMALL, budget=10**6)
  with pytest.raises(ValueError, match="less than one generation"):
    Search(mountain_car, small_policy, space, "goal", SMALL, budget=1000)
  wrong_output = make_space(lambda w, z: jnp.zeros(5) + z[0], {}, np.zeros(2), np.ones(2), 5)
  with pytest.raises(ValueError, match="decodes 2 numbers to shape \\(5,\\).*17 parameters"):
    Search(mountain_car, small_policy, wrong_output, "goal", SMALL, budget=10**6)
  with pytest.raises(ValueError, match="scale has shape \\(3,\\), center \\(2,\\)"):
    Search(mountain_car, small_policy, make_space(lambda w, z: z, {}, np.zeros(2), np.ones(3), 17), "goal", SMALL,
           budget=10**6)
  with pytest.raises(ValueError, match="center must be a vector of finite numbers"):
    Search(mountain_car, small_policy, euclidean_space(np.full(17, np.nan)), "goal", SMALL, budget=10**6)
  with pytest.raises(ValueError, match="population must be even"):
    Search(mountain_car, small_policy, space, "goal", PGPEConfig(population=7), budget=10**6)
  # once refused only after the whole budget, when the final centres turned out NaN
  with pytest.raises(ValueError, match="std_init = 1e\\+30 is in units of the search space's spread"):
    Search(mountain_car, small_policy, space, "goal", PGPEConfig(std_init=1e30), budget=10**6)
  # a policy of another env: once compiled for 12 s, then failed inside jit
  hopper_sized = MLPPolicy(obs_size=11, action_size=3, hidden=(4,))
  with pytest.raises(ValueError, match="maps 11 observations to 3 actions, but env 'mountain_car' has 2 .* and 1"):
    Search(mountain_car, hopper_sized, identity_space(hopper_sized), "goal", SMALL, budget=10**6)


def test_a_diverging_search_stops_with_an_error(mountain_car, small_policy, goal_search):
  # a space whose scale overflows float32 once the centre moves: the decoded centre turns
  # inf within a few chunks, and the search stops there (it once ran the whole budget,
  # then refused the final policies), before any checkpoint or result is written
  huge = euclidean_space(np.zeros(small_policy.num_params), 3e38)
  search = Search(mountain_car, small_policy, huge, "goal", SMALL, budget=6_000_000, seeds=2, generations_per_chunk=6)
  assert search._chunk_fn is goal_search._chunk_fn  # no new program
  with pytest.raises(ValueError, match="the search diverged by generation (6|12|18|24): seed\\(s\\) .*lower std_init"):
    search.run(FRESH)  # 187 generations had the search run to its end


def test_decoder_space_scales_by_the_codes_and_starts_at_the_mean_or_a_given_code(mountain_car, small_policy):
  from lsc.autoencoder import Autoencoder
  from lsc.search import decoder_space
  ae = Autoencoder(small_policy, 3, (8,), (8,))
  params = ae.init(jax.random.key(0))
  codes = np.random.default_rng(0).normal([1.0, -2.0, 0.0], [0.5, 2.0, 1.0], (200, 3)).astype(np.float32)
  space = decoder_space(ae, params, codes)
  np.testing.assert_allclose(space.center, codes.mean(axis=0), rtol=1e-5)
  np.testing.assert_allclose(space.scale, codes.std(axis=0), rtol=1e-5)
  started = decoder_space(ae, params, codes, start=codes[7])
  np.testing.assert_array_equal(started.center, codes[7])
  np.testing.assert_allclose(started.scale, space.scale)
  np.testing.assert_allclose(started.decode(jnp.asarray(codes[7])), ae.decode(params, jnp.asarray(codes[7])))


def test_latent_then_param_splits_its_budget_starts_at_the_decoded_result_and_resumes(mountain_car, small_policy,
                                                                                       tmp_path):
  from lsc.keys import PHASE_TWO
  from lsc.search import load_state
  space = linear_space(small_policy, 3, seed=5)
  budget = 200_000
  configs = MethodConfigs({"latent_pgpe": SMALL, "param_pgpe": SMALL, "latent_then_param": SequenceConfig(0.4)})
  run = lambda out, progress_fn=None: run_method(
      "latent_then_param", mountain_car, "goal", out, budget=budget, seeds=2, seed=3, protocol=FRESH,
      policy=small_policy, latent=space, configs=configs, progress_fn=progress_fn)
  whole = run(tmp_path / "whole")
  latent_share, param_share = get_method("latent_then_param").budgets(configs, budget)
  assert (latent_share, param_share) == (80_000, 120_000)
  latent = checkpoint.load_artifact(tmp_path / "whole" / "latent" / "result", kind="search")[0]
  # each phase within its share; the second phase's curve starts where the first ended
  assert np.all(latent["env_steps"] <= latent_share) and np.all(whole.final_env_steps <= budget)
  assert np.all(whole.final_env_steps - latent["env_steps"] <= param_share)
  first = latent["curve_env_steps"].shape[1]
  np.testing.assert_array_equal(whole.env_steps[:, first], latent["env_steps"])
  assert np.all(np.diff(whole.env_steps, axis=1) >= 0) and whole.env_steps.shape[1] > first + 1
  # the parameter phase starts each seed at its decoded latent result g(z*): its
  # checkpoint belongs only to a search started there, whose initial centre is g(z*)
  starts = latent["final_thetas"]
  np.testing.assert_allclose(starts, jax.vmap(space.decode)(jnp.asarray(latent["final_z"])), atol=1e-5)
  # (and seed s's keys come from its own seed, 3 + s, tagged for the second phase)
  keys = jnp.stack([jax.random.fold_in(jax.random.key(3 + s), PHASE_TWO) for s in range(2)])
  grid = eval_grid(budget, 10)[None] - latent["env_steps"][:, None]  # the run's grid, from where it starts
  second = Search(mountain_car, small_policy, identity_space(small_policy), "goal", SMALL, budget=param_share,
                  seeds=2, seed=keys, starts=starts, grid=grid)
  np.testing.assert_allclose(search_center(second.init()["state"], second.space), starts, atol=1e-4)
  load_state(tmp_path / "whole" / "param" / "state", second)  # ArtifactMismatch for any other start or keys
  for other in (dict(seed=keys, starts=starts + 0.01), dict(seed=keys[::-1], starts=starts)):
    with pytest.raises(checkpoint.ArtifactMismatch):
      load_state(tmp_path / "whole" / "param" / "state", Search(
          mountain_car, small_policy, identity_space(small_policy), "goal", SMALL, budget=param_share, seeds=2,
          **other))
  # both phases are checked before either runs
  with pytest.raises(ValueError, match="param_pgpe phase .* less than one generation"):
    run_method("latent_then_param", mountain_car, "goal", tmp_path / "refused", budget=budget, seeds=2,
               policy=small_policy, latent=space,
               configs=configs.replace("param_pgpe", population=64))  # 120,000 env steps < 64 x 2 x 999
  assert not (tmp_path / "refused").exists()

  def killed(stage, done, total, info):
    if stage == "search (param_pgpe)":
      raise KeyboardInterrupt  # after the parameter phase's first checkpoint

  with pytest.raises(KeyboardInterrupt):
    run(tmp_path / "killed", killed)
  resumed = run(tmp_path / "killed")
  for field in ("env_steps", "returns", "final_returns", "final_env_steps", "eval_returns"):
    np.testing.assert_array_equal(getattr(resumed, field), getattr(whole, field))
  # one learning curve on the run's grid: each point from the phase that held the solution
  # then, the first point the latent start, the last the final parameters
  np.testing.assert_array_equal(whole.eval_steps, eval_grid(budget, 10))
  at = lambda thetas: evaluate(mountain_car, small_policy, thetas, CURVE_EVAL).returns[:, 0]
  np.testing.assert_allclose(whole.eval_returns[:, 0], at(space.decode(space.center)[None])[0], rtol=1e-5)
  np.testing.assert_allclose(whole.eval_returns[:, -1], at(whole.final_thetas), rtol=1e-5)
  assert np.isfinite(whole.eval_returns).all()
  assert load_outcome(tmp_path / "killed").method == "latent_then_param"


# --- other strategies, the shared fitness and method settings -------------------------
TINY = 3 * 4 * 999  # env steps per seed: three generations of 4 candidates x 1 full-length episode


@contextlib.contextmanager
def registered(method):
  """`method` in the registry (`lsc.methods.register`) for the block's duration only."""
  register(method)
  try:
    yield method
  finally:
    METHODS.pop(method.name)


def assert_searched(outcome, directory, env, policy, task: str, *, seeds: int, dim: int, config, algorithm: str):
  """What every search method's run of `seeds` seeds in a `dim`-D space must give: curves
  (S, G) from 0 env steps, final solutions z (S, dim) and theta (S, P) whose returns on
  fresh keys are the outcome's, each seed within its budget TINY and short of it by less
  than one generation, and the strategy and its settings recorded in the result."""
  assert outcome.env_steps.shape == outcome.returns.shape and outcome.env_steps.shape[0] == seeds
  assert np.all(outcome.env_steps[:, 0] == 0) and np.isfinite(outcome.returns[:, 0]).all()
  assert outcome.final_z.shape == (seeds, dim) and outcome.final_thetas.shape == (seeds, policy.num_params)
  assert outcome.final_returns.shape == (seeds,) and np.isfinite(outcome.final_returns).all()
  np.testing.assert_array_equal(outcome.eval_steps, eval_grid(TINY, 10))
  assert outcome.eval_returns.shape == (seeds, 11) and np.isfinite(outcome.eval_returns).all()
  task_returns = evaluate(env, policy, outcome.final_thetas, FRESH).returns[:, task_index(env.name, task)]
  np.testing.assert_allclose(outcome.final_returns, task_returns, rtol=1e-5)
  per_generation = config.population * config.episodes * env.episode_length
  assert np.all(outcome.final_env_steps <= TINY) and np.all(outcome.final_env_steps > TINY - per_generation)
  record = checkpoint.read_record(directory / "result")
  assert record["config"]["method"] == outcome.method and record["identity"]["strategy"] == algorithm
  assert record["identity"]["settings"] == to_dict(config)
  assert load_outcome(directory).method == outcome.method


def test_a_strategy_defined_here_runs_through_run_method(mountain_car, small_policy, tmp_path):
  @dataclasses.dataclass(frozen=True)
  class XNESConfig(StrategyConfig):
    """xNES (Glasmachers et al., 2010) as evosax has it: std_init is all it takes."""
    algorithm: ClassVar[str] = "xNES"

  config = XNESConfig(population=4, episodes=1, std_init=0.5)
  space = linear_space(small_policy, 2)
  with registered(SearchMethod("latent_xnes_test", "latent", XNESConfig(), "xNES in a latent space")):
    outcome = run_method("latent_xnes_test", mountain_car, "speed", tmp_path, budget=TINY, seeds=2, protocol=FRESH,
                         policy=small_policy, latent=space, configs={"latent_xnes_test": config})
  assert "latent_xnes_test" not in METHODS
  assert_searched(outcome, tmp_path, mountain_car, small_policy, "speed", seeds=2, dim=2, config=config,
                  algorithm="xNES")
  np.testing.assert_allclose(outcome.final_thetas, jax.vmap(space.decode)(jnp.asarray(outcome.final_z)), atol=1e-5)
  # each seed moved from the space's centre (0), and not along the other's path
  assert np.all(np.linalg.norm(outcome.final_z, axis=1) > 1e-3)
  assert not np.allclose(outcome.final_z[0], outcome.final_z[1])


def test_cma_step_size_stays_in_its_bounds_on_a_plateau_where_unbounded_it_collapses_to_nan():
  """On a plateau (pure noise, as a saturated decoder far from its data gives), the
  CMA step size random-walks: from a far centre it underflows to 0 and the next
  generation divides 0 by 0 (Reacher's CMA-ES did, in the race).  The bounds keep it finite."""
  space = euclidean_space(jnp.zeros(4))
  plateau = lambda thetas, key: jax.random.normal(key, thetas.shape[:1])

  @functools.partial(jax.jit, static_argnums=0)
  def stds(config, start):
    def generation(state, key):
      state, _ = search_step(key, state, space, config, plateau)
      return state, state.std.max()
    return jax.lax.scan(generation, search_init(jax.random.key(0), space, config, start=start),
                        jax.random.split(jax.random.key(1), 600))[1]

  far = jnp.full(4, 3e4)
  bounded = SepCMAESConfig(population=16, episodes=1, std_init=1e-3)
  assert (bounded.std_min, bounded.std_max) == (1e-6, 1e3)
  std = np.asarray(stds(bounded, far))
  assert np.isfinite(std).all() and std.min() >= 1e-6 and std.max() <= 1e3
  assert not np.isfinite(np.asarray(stds(dataclasses.replace(bounded, std_min=None, std_max=None), far))).all()
  # CMA-ES started at the cap: the walk goes past it unless capped
  cma = CMAESConfig(population=16, episodes=1, std_init=1e3)
  assert np.asarray(stds(cma, jnp.zeros(4))).max() <= 1e3
  assert np.asarray(stds(dataclasses.replace(cma, std_max=None), jnp.zeros(4))).max() > 1e3
  # unset, the bounds stay out of a strategy's identity: PGPE's is what it was before them
  assert to_dict(PGPEConfig()) == {"population": 64, "episodes": 3, "std_init": 0.5, "center": "mean", "lr": 0.1,
                                   "optimizer": "adam", "std_lr": 0.1, "std_max_change": 0.2}
  for bad in ({"std_min": 0.0}, {"std_min": 2.0}, {"std_max": 1.0}, {"std_max": float("nan")}):
    with pytest.raises(ValueError, match="std_m"):
      dataclasses.replace(cma, std_init=1.5, **bad).check()


def test_cmaes_searches_both_spaces_and_refuses_one_past_its_max_dim(mountain_car, small_policy, tmp_path):
  config = CMAESConfig(population=4, episodes=1, std_init=0.5)
  configs = MethodConfigs({"latent_cmaes": config, "param_cmaes": config})
  space = linear_space(small_policy, 2)
  for name, dim in (("latent_cmaes", space.dim), ("param_cmaes", small_policy.num_params)):
    outcome = run_method(name, mountain_car, "speed", tmp_path / name, budget=TINY, seeds=2, protocol=FRESH,
                         policy=small_policy, latent=space, configs=configs)
    assert_searched(outcome, tmp_path / name, mountain_car, small_policy, "speed", seeds=2, dim=dim, config=config,
                    algorithm="CMA_ES")
  np.testing.assert_array_equal(outcome.final_thetas, outcome.final_z)  # the parameter space: theta = z
  # a full covariance past max_dim is refused, naming the diagonal strategies
  with pytest.raises(ValueError, match="at most 4,096 dims, but the parameter space has 121,801; use a diagonal "
                                       "strategy \\(Sep-CMA-ES, SNES, PGPE\\)"):
    CMAESConfig().check_dim(121_801, "parameter")
  SepCMAESConfig().check_dim(121_801, "parameter")
  large = make_policy(mountain_car, "large")
  assert large.num_params == 121_801
  with pytest.raises(ValueError, match="the parameter space has 121,801"):  # before any work
    run_method("param_cmaes", mountain_car, "speed", tmp_path / "large", budget=10**6, policy=large)
  assert not (tmp_path / "large").exists()


def test_make_fitness_scores_as_the_evaluation_protocol(mountain_car, small_policy):
  # 2 candidates x FRESH's 5 episodes: the program the searches' final evaluations ran
  thetas = jax.vmap(lambda i: small_policy.init(member_key(9, i)))(jnp.arange(2, dtype=jnp.uint32))
  fitness = make_fitness(mountain_car, small_policy, 2, FRESH.episodes)
  expected = evaluate(mountain_car, small_policy, thetas, FRESH)
  scores = fitness(thetas, FRESH.reset_keys(2))  # (C, E) keys
  assert scores.returns.shape == (2, len(task_names("mountain_car"))) and scores.env_steps.shape == (2,)
  np.testing.assert_array_equal(scores.returns, expected.returns)
  np.testing.assert_array_equal(scores.env_steps, expected.lengths.sum(axis=1))
  assert not np.allclose(scores.returns[0], scores.returns[1])  # two policies: the test is not vacuous
  shared = fitness(thetas, FRESH.episode_keys())  # one (E,) row for every candidate
  np.testing.assert_array_equal(shared.returns, scores.returns)
  np.testing.assert_array_equal(shared.env_steps, scores.env_steps)
  jitted = jax.jit(fitness)(thetas, FRESH.episode_keys())  # inside a program of one's own
  np.testing.assert_allclose(jitted.returns, scores.returns, rtol=1e-5)
  np.testing.assert_array_equal(jitted.env_steps, scores.env_steps)


def test_method_settings_by_name_and_a_sequence_refused_before_any_work(mountain_car, small_policy, tmp_path):
  with pytest.raises(ValueError, match="methods: unknown method 'latent_pgpo'; valid methods: ") as refused:
    MethodConfigs.from_plain({"latent_pgpo": {"lr": 0.2}})
  assert str(refused.value).split("valid methods: ")[1].split(", ") == list(METHODS)
  with pytest.raises(ValueError, match="methods.latent_pgpe: unknown key\\(s\\) learning_rate; valid keys: "
                                       "population, episodes, std_init, center, std_min, std_max, lr, optimizer"):
    MethodConfigs.from_plain({"latent_pgpe": {"learning_rate": 0.2}})
  with pytest.raises(ValueError, match="latent_pgpe takes a PGPEConfig, got a CMAESConfig"):
    MethodConfigs({"latent_pgpe": CMAESConfig()})
  configs = MethodConfigs.from_plain({"latent_pgpe": {"lr": 0.2}, "latent_then_param": {"fraction": 0.4}})
  assert configs["latent_pgpe"] == dataclasses.replace(get_method("latent_pgpe").config, lr=0.2)
  assert configs["latent_then_param"] == SequenceConfig(0.4)
  assert configs["param_pgpe"] is get_method("param_pgpe").config  # the registry's default for the rest
  assert set(configs) == set(METHODS) and configs.to_plain()["latent_pgpe"]["lr"] == 0.2
  # immutable values: equal (and equally hashed) when every method's settings are
  again = MethodConfigs.from_plain(configs.to_plain())
  assert again == configs and hash(again) == hash(configs) and len({again, configs}) == 1
  assert MethodConfigs() == MethodConfigs({"param_pgpe": get_method("param_pgpe").config}) != configs
  replaced = configs.replace("param_pgpe", population=8)
  assert replaced["param_pgpe"].population == 8 and replaced["latent_pgpe"].lr == 0.2
  assert configs["param_pgpe"].population == get_method("param_pgpe").config.population != 8
  assert replaced != configs
  # a second phase that cannot start where the first ended: refused by check, and by
  # run_method before it writes anything
  with registered(Sequence("latent_then_td3_test", ("latent_pgpe", "td3"))) as sequence:
    with pytest.raises(ValueError, match=r"latent_then_td3_test: td3 cannot start from another method's "
                                         r"policy \(search methods"):
      sequence.check(MethodConfigs(), 10**6, mountain_car.episode_length)
    with pytest.raises(ValueError, match="td3 cannot start from another method's policy"):
      run_method("latent_then_td3_test", mountain_car, "goal", tmp_path / "refused", budget=10**6,
                 policy=small_policy, latent=linear_space(small_policy, 2))
  assert not (tmp_path / "refused").exists() and "latent_then_td3_test" not in METHODS


def test_control_subspaces_pass_through_the_start_with_the_datasets_spread():
  rng = np.random.default_rng(0)
  thetas = rng.normal(size=(400, 12)) * np.linspace(0.1, 3.0, 12)  # the spread grows along the coordinates
  origin = rng.normal(size=12).astype(np.float32)
  pca = principal_subspace(thetas, origin, 3)
  rand = random_subspace(thetas, origin, 3, jax.random.key(0))
  for space in (pca, rand):
    np.testing.assert_allclose(space.decode(jnp.zeros(3)), origin, atol=1e-5)  # the search starts at the start
    basis = np.asarray(space.weights["basis"], np.float64)
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-5)  # orthonormal directions
    np.testing.assert_allclose(space.scale, (thetas @ basis).std(axis=0), rtol=1e-4)  # the data's spread along each
  # the principal directions are the three widest coordinates, widest first; a random one is narrower
  np.testing.assert_allclose(np.abs(np.asarray(pca.weights["basis"])).argmax(axis=0), [11, 10, 9])
  assert pca.scale[0] > rand.scale.max()
  with pytest.raises(ValueError, match="needs 1 <= dim"):
    principal_subspace(thetas, origin, 13)

