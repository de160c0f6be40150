"""Baselines: the jax.device_put_replicated shim, Brax PPO and SAC and lsc's TD3 and DDPG
trained on lsc envs and tasks with learning curves under the shared protocol, TD3's
resume, and bad input refused before anything runs.  Tiny configs: a few envs, small
networks, short episodes, two or three evaluations."""

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lsc
from lsc import baselines, checkpoint, compat, off_policy
from lsc.baselines import brax_timesteps, devices_to_use, make_evaluator, make_inference, train_baseline
from lsc.rl_configs import DDPGConfig, PPOConfig, SACConfig, TD3Config, min_budget
from lsc.envs import make_env
from lsc.evaluation import EvalProtocol, evaluate
from lsc.policy import make_policy
from lsc.tasks import task_index

PROTOCOL = EvalProtocol(episodes=2, seed=7)
CURVE = EvalProtocol(episodes=2, seed=8)  # the learning curve's episodes (as many: one compiled evaluator)
TINY = {"ppo": PPOConfig(num_envs=4, unroll_length=5, batch_size=4, num_minibatches=2,
                         num_updates_per_batch=1, policy_hidden=(8,), value_hidden=(8,)),
        "sac": SACConfig(num_envs=4, batch_size=8, min_replay_size=8, hidden=(8,))}
N_EVALS = 2


@pytest.fixture(scope="module")
def short_car():
  return make_env("mountain_car", episode_length=20)


@pytest.fixture(scope="module")
def short_hopper():
  return make_env("hopper", backend="spring", episode_length=20)


# --- the shim ------------------------------------------------------------------------
def test_device_put_replicated_stacks_one_copy_per_device():
  devices = jax.local_devices()
  tree = {"matrix": jnp.arange(6.0).reshape(2, 3), "count": np.int32(3), "scalar": 1.5}
  out = compat.device_put_replicated(tree, devices)
  for name, leaf in tree.items():
    expected = np.stack([np.asarray(leaf)] * len(devices))
    assert out[name].shape == expected.shape and out[name].dtype == jnp.asarray(leaf).dtype
    np.testing.assert_array_equal(np.asarray(out[name]), expected)
    shards = out[name].addressable_shards
    assert [s.device for s in shards] == devices
    assert all(s.data.shape == (1, *np.shape(leaf)) for s in shards)
  # What Brax does with it: pmap over the devices, then read device 0's copy.
  doubled = jax.pmap(lambda t: t["matrix"] * 2)(out)
  np.testing.assert_array_equal(np.asarray(doubled.addressable_shards[0].data.squeeze(0)),
                                2 * np.asarray(tree["matrix"]))


def test_ensure_device_put_replicated_installs_once(monkeypatch):
  monkeypatch.delattr(jax, "device_put_replicated", raising=False)  # as jax 0.11.2 ships
  assert not compat.has_device_put_replicated()
  assert compat.ensure_device_put_replicated() is True
  assert jax.device_put_replicated is compat.device_put_replicated
  assert compat.ensure_device_put_replicated() is False  # second call: no-op
  assert jax.device_put_replicated is compat.device_put_replicated


def test_importing_baselines_does_no_jax_work():
  """JAX's devices can still be configured after the import (lsc.use_cpu_cores)."""
  code = ("import warnings, lsc, lsc.baselines, lsc.compat; warnings.simplefilter('error'); "
          "assert lsc.use_cpu_cores(3) == 3")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)


# --- evaluation under the protocol -------------------------------------------------
def test_evaluator_is_the_protocol_evaluation(short_car):
  """An lsc policy run through the baseline evaluator scores what lsc.evaluation says."""
  policy = make_policy(short_car, "small")
  theta = policy.init(jax.random.key(3))

  def make_brax_style_policy(params, deterministic=False):
    return lambda obs, key: (policy.apply(params, obs), {})

  returns, lengths = make_evaluator(short_car, "speed", make_brax_style_policy)(
      theta, PROTOCOL.episode_keys())
  reference = evaluate(short_car, policy, theta[None], PROTOCOL)
  assert returns.shape == lengths.shape == (PROTOCOL.episodes,)
  np.testing.assert_allclose(np.mean(returns),
                             reference.returns[0, task_index("mountain_car", "speed")], rtol=1e-5)
  np.testing.assert_array_equal(lengths, reference.lengths[0])


@pytest.mark.parametrize("method", ["ppo", "sac"])
def test_brax_epochs_end_at_or_before_their_grid_points(method):
  """Brax's own epoch arithmetic (ceil), applied to what we ask for: epoch k ends by grid
  point k, floor(k budget / 3) (so the learning curve never reads the epoch before), and
  no more than an iteration (and, after a prefill, the prefill) before it."""
  config = TINY[method]
  for budget in range(min_budget(method, config, 3), 400, 7):
    asked = brax_timesteps(method, config, budget, 3)
    if method == "ppo":
      unit, fixed = config.steps_per_iteration, 0
    else:
      unit, fixed = config.num_envs, config.prefill_steps
    per_epoch = -(-(asked - fixed) // (3 * unit))
    ends = [fixed + k * per_epoch * unit for k in (1, 2, 3)]
    for k, end in enumerate(ends, 1):
      assert end <= k * budget // 3 and end > k * budget // 3 - k * (unit + fixed), (budget, ends)


# --- training --------------------------------------------------------------------
def check_curve(result, method, budget, points):
  """Step 0 (the policy before training), then after every epoch; the final return on
  the final protocol's keys, the curve on its own."""
  assert result.env_steps.dtype == np.int64 and result.env_steps.shape == (N_EVALS + 1,)
  assert result.env_steps[0] == 0 and np.all(np.diff(result.env_steps) > 0)
  assert result.env_steps[-1] <= budget
  assert result.returns.shape == (N_EVALS + 1,) and np.all(np.isfinite(result.returns))
  assert points == list(zip(result.env_steps.tolist(), result.returns.tolist()))
  assert result.method == method and result.config is TINY[method]
  assert set(result.timings) == {"train_s", "eval_compile_s", "eval_s", "total_s"}
  assert all(t >= 0 for t in result.timings.values())


@pytest.mark.slow
def test_ppo_on_a_brax_env(short_hopper):
  budget = min_budget("ppo", TINY["ppo"], N_EVALS)
  points = []
  result = train_baseline(short_hopper, "forward", "ppo", budget, seed=0, protocol=PROTOCOL,
                          config=TINY["ppo"], n_evals=N_EVALS, curve=CURVE,
                          progress_fn=lambda stage, steps, total, info: points.append((steps, info["return"])))
  check_curve(result, "ppo", budget, points)
  # Brax's count: batch_size * num_minibatches * unroll_length env steps per iteration.
  np.testing.assert_array_equal(result.env_steps, [0, 40, 80])
  # The hopper earns its alive bonus on every step before it falls.
  assert np.all(result.returns > 0)


@pytest.mark.parametrize("method", ["ppo", "sac"])
def test_final_params_give_the_final_return(short_car, method, monkeypatch):
  """The final return and the curve's last point are the returned parameters' returns on
  the final protocol's and the curve's keys; for SAC this checks the checkpoint round
  trip the curve goes through, for both `make_inference`, and that its step-0 point is
  the policy SAC started from."""
  budget = min_budget(method, TINY[method], N_EVALS)
  points, drawn = [], []
  factory = baselines._network_factory

  def recording(method, config):  # records what the policy network's init draws inside Brax
    made = factory(method, config)

    def make(*args, **kwargs):
      networks = made(*args, **kwargs)
      init = networks.policy_network.init
      return dataclasses.replace(networks, policy_network=dataclasses.replace(
          networks.policy_network, init=lambda key: drawn.append(init(key)) or drawn[-1]))
    return make

  monkeypatch.setattr(baselines, "_network_factory", recording)
  result = train_baseline(short_car, "height", method, budget, seed=1, protocol=PROTOCOL,
                          config=TINY[method], n_evals=N_EVALS, curve=CURVE,
                          progress_fn=lambda stage, steps, total, info: points.append((steps, info["return"])))
  check_curve(result, method, budget, points)
  leaves = jax.tree.leaves(result.params)
  assert sum(isinstance(x, np.ndarray) for x in leaves) >= len(leaves) - 2  # UInt64 count aside
  evaluator = make_evaluator(short_car, "height", make_inference(method, short_car, TINY[method]))
  returns, _ = evaluator(result.params, PROTOCOL.episode_keys())
  np.testing.assert_allclose(np.mean(returns), result.final_return, rtol=1e-5)
  returns, _ = evaluator(result.params, CURVE.episode_keys())
  np.testing.assert_allclose(np.mean(returns), result.returns[-1], rtol=1e-5)
  if method == "sac":  # 8 prefill steps, then one actor step of 4 envs per interval
    np.testing.assert_array_equal(result.env_steps, [0, 12, 16])
    start = baselines._sac_start(short_car, TINY["sac"], 1)
    returns, _ = evaluator(start, CURVE.episode_keys())
    np.testing.assert_allclose(np.mean(returns), result.returns[0], rtol=1e-5)
    # lsc's draw (first) is the very one Brax's SAC initialised (second)
    for a, b in zip(jax.tree.leaves(drawn[0]), jax.tree.leaves(drawn[1]), strict=True):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --- bad input ---------------------------------------------------------------------
def test_bad_input_is_refused_before_brax_runs(short_car, monkeypatch):
  def brax_must_not_run(*args, **kwargs):
    raise AssertionError("Brax's train() ran before the input was checked")

  monkeypatch.setattr(baselines.ppo, "train", brax_must_not_run)
  monkeypatch.setattr(baselines.sac, "train", brax_must_not_run)

  def run(method="ppo", task="height", budget=10_000, **kwargs):
    kwargs.setdefault("config", TINY.get(method))
    return train_baseline(short_car, task, method, budget, seed=0, protocol=PROTOCOL, **kwargs)

  with pytest.raises(ValueError, match="unknown baseline method 'td4'; valid methods: ppo, sac, td3, ddpg"):
    run("td4")
  with pytest.raises(ValueError, match="needs a TD3Config, got DDPGConfig"):
    run("td3", config=DDPGConfig())
  with pytest.raises(ValueError, match="ppo cannot resume .*checkpoint_path is for td3, ddpg"):
    run("ppo", checkpoint_path="never-written")
  with pytest.raises(ValueError, match="unknown task 'fly'.*valid tasks: goal, left, height, speed"):
    run(task="fly")
  with pytest.raises(ValueError, match="needs a SACConfig, got PPOConfig"):
    run("sac", config=TINY["ppo"])
  with pytest.raises(ValueError, match="n_evals must be >= 1"):
    run(n_evals=0)
  for method in ("ppo", "sac", "td3"):
    needed = min_budget(method, TINY.get(method), N_EVALS)
    with pytest.raises(ValueError, match=f"budget {needed - 1} is too small .* at least {needed}"):
      run(method, budget=needed - 1, n_evals=N_EVALS, config=TINY.get(method))
  if jax.local_device_count() > 1:
    odd = PPOConfig(num_envs=3, batch_size=3, num_minibatches=2)
    with pytest.raises(ValueError, match="num_envs = 3 must be divisible by the 2 devices"):
      run(config=odd)
    assert devices_to_use(short_car, PPOConfig(max_devices=1)) == 1


def test_config_errors():
  with pytest.raises(ValueError, match="must be a multiple of num_envs = 8"):
    PPOConfig(num_envs=8, batch_size=3, num_minibatches=2)
  with pytest.raises(ValueError, match="PPOConfig.learning_rate must be > 0"):
    PPOConfig(learning_rate=0.0)
  with pytest.raises(ValueError, match="SACConfig.hidden must be a non-empty tuple"):
    SACConfig(hidden=())
  with pytest.raises(ValueError, match="cannot hold one actor step"):
    SACConfig(num_envs=16, max_replay_size=8)
  assert SACConfig(hidden=[16, 16]).hidden == (16, 16)  # lists (from YAML) become tuples
  with pytest.raises(ValueError, match="TD3Config.max_replay_size = 8 cannot hold one actor step"):
    TD3Config(num_envs=16, max_replay_size=8)
  with pytest.raises(ValueError, match="TD3Config.policy_delay must be > 0"):
    TD3Config(policy_delay=0)
  with pytest.raises(ValueError, match="DDPGConfig.policy_noise must be >= 0"):
    DDPGConfig(policy_noise=-0.1)


# --- TD3 and DDPG ----------------------------------------------------------------------
# mountain_car `left` over 50 steps: pushing left from the start earns ~22, a policy
# near zero action ~2; 6,000 env steps of TD3 / DDPG find it
SMALL_TD3 = {"td3": TD3Config(hidden=(32, 32), min_replay_size=512),
             "ddpg": DDPGConfig(hidden=(32, 32), min_replay_size=512)}
TD3_BUDGET, TD3_EVALS = 6_000, 3


@pytest.fixture(scope="module")
def left_car():
  return make_env("mountain_car", episode_length=50)


@pytest.fixture(scope="module")
def td3_runs(left_car):
  return {m: train_baseline(left_car, "left", m, TD3_BUDGET, 0, PROTOCOL, config=c, n_evals=TD3_EVALS, curve=CURVE)
          for m, c in SMALL_TD3.items()}


@pytest.mark.parametrize("method", ["td3", "ddpg"])
def test_td3_and_ddpg_learn_a_trivial_task_within_the_budget(td3_runs, left_car, method):
  result = td3_runs[method]
  assert result.final_return > 15 and result.final_return > 3 * result.returns[0], result.returns
  assert np.all(np.diff(result.env_steps) > 0) and result.env_steps[-1] <= TD3_BUDGET
  # counted as SAC: the prefill, then whole actor steps of num_envs envs, split into equal epochs
  assert result.env_steps[-1] == brax_timesteps(method, SMALL_TD3[method], TD3_BUDGET, TD3_EVALS)
  evaluator = make_evaluator(left_car, "left", make_inference(method, left_car, SMALL_TD3[method]))
  returns, _ = evaluator(result.params, PROTOCOL.episode_keys())
  np.testing.assert_allclose(np.mean(returns), result.final_return, rtol=1e-5)


def test_a_diverged_baseline_is_refused():
  # a run whose curve or parameters went NaN once exited 0 with null returns
  for returns, params in ((np.array([1.0, np.nan]), {"w": np.ones(2)}), (np.ones(2), {"w": np.array([np.inf, 0.0])})):
    with pytest.raises(ValueError, match="td3 diverged on seed 3: .*lower its learning_rate .*TD3Config"):
      baselines.check_trained("td3", 3, returns, params)
  baselines.check_trained("td3", 3, np.ones(2), {"w": np.ones(2), "count": np.uint32(5)})


def test_td3_killed_between_epochs_resumes_to_the_same_result(td3_runs, left_car, tmp_path):
  reports = []

  def killed_in_epoch_2(stage, done, total, info):
    reports.append(done)
    if len(reports) == 3:  # after epoch 2's evaluation (step 0's came first), before its checkpoint
      raise KeyboardInterrupt

  run = dict(config=SMALL_TD3["td3"], n_evals=TD3_EVALS, checkpoint_path=tmp_path / "state", curve=CURVE)
  with pytest.raises(KeyboardInterrupt):
    train_baseline(left_car, "left", "td3", TD3_BUDGET, 0, PROTOCOL, progress_fn=killed_in_epoch_2, **run)
  resumed = train_baseline(left_car, "left", "td3", TD3_BUDGET, 0, PROTOCOL, **run)  # from epoch 1's checkpoint
  np.testing.assert_array_equal(resumed.env_steps, td3_runs["td3"].env_steps)
  np.testing.assert_array_equal(resumed.returns, td3_runs["td3"].returns)
  for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(td3_runs["td3"].params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(Exception, match="overwrite"):  # another run's checkpoint is refused
    train_baseline(left_car, "left", "td3", TD3_BUDGET, 1, PROTOCOL, **run)
  # the checkpoint holds the curve measured so far: under another curve protocol it is
  # refused (it once resumed, and its old curve's last point was printed as the new protocol's)
  other = dataclasses.replace(CURVE, episodes=CURVE.episodes + 1, seed=CURVE.seed + 1)
  with pytest.raises(checkpoint.ArtifactMismatch, match="curve.episodes.*curve.seed"):
    train_baseline(left_car, "left", "td3", TD3_BUDGET, 0, PROTOCOL, **{**run, "curve": other})


def test_td3_trains_the_lsc_policy_as_its_actor_from_a_given_start(left_car):
  # issue "make the behaviour space pay", item 1: an RL agent whose actor is the dataset's
  # policy architecture, started where a search ended
  from lsc.methods import run_method
  policy = make_policy(left_car, "medium", normalize_obs=True)
  start = np.asarray(policy.init(jax.random.key(3)), np.float32)
  actor = baselines.PolicyActor(policy, start)
  result = train_baseline(left_car, "left", "td3", TD3_BUDGET, 0, PROTOCOL, config=SMALL_TD3["td3"],
                          n_evals=TD3_EVALS, curve=CURVE, actor=actor)
  # step 0 is the start itself, read as lsc reads any policy on the same episodes
  before = evaluate(left_car, policy, start[None], CURVE).returns[0, task_index(left_car, "left")]
  np.testing.assert_allclose(result.returns[0], before, rtol=1e-5)
  assert result.final_return > 15 and result.final_return > before + 5, result.returns  # and TD3 trains it
  theta = np.asarray(result.params[1])
  assert theta.shape == (policy.num_params,)  # the actor's parameters are the policy's flat theta
  final = evaluate(left_car, policy, theta[None], PROTOCOL).returns[0, task_index(left_car, "left")]
  np.testing.assert_allclose(final, result.final_return, rtol=1e-5)
  # with the buffer filled by the start and the actor frozen past the budget, only the
  # critics learn: the actor ends where it started
  frozen = train_baseline(left_car, "left", "td3", TD3_BUDGET, 0, PROTOCOL, n_evals=TD3_EVALS, curve=CURVE, actor=actor,
                          config=dataclasses.replace(SMALL_TD3["td3"], prefill="actor", actor_warmup=TD3_BUDGET))
  np.testing.assert_array_equal(np.asarray(frozen.params[1]), start)
  np.testing.assert_array_equal(frozen.returns, np.full_like(frozen.returns, frozen.returns[0]))
  with pytest.raises(ValueError, match="prefill must be 'uniform' or 'actor'"):
    TD3Config(prefill="expert")
  with pytest.raises(ValueError, match="only td3, ddpg, sac take an lsc policy as their actor"):
    train_baseline(left_car, "left", "ppo", TD3_BUDGET, 0, PROTOCOL, actor=actor)
  with pytest.raises(ValueError, match="action bounds"):
    baselines.PolicyActor(dataclasses.replace(policy, action_low=-2.0)).check(left_car)
  # a latent actor: the actor's parameters are a code's coordinates, trained through the decoder
  space = lsc.linear_space(policy, 2)
  code = np.asarray([0.5, -1.0], np.float32)
  latent = train_baseline(left_car, "left", "td3", TD3_BUDGET, 0, PROTOCOL, config=SMALL_TD3["td3"],
                          n_evals=TD3_EVALS, curve=CURVE, actor=baselines.PolicyActor(policy, code, space))
  decoded = np.asarray(space.decode(jnp.asarray(code)))[None]
  at_code = evaluate(left_car, policy, decoded, CURVE).returns[0, task_index(left_car, "left")]
  np.testing.assert_allclose(latent.returns[0], at_code, rtol=1e-5)
  # the space rides as the frozen part of the actor's parameters: outside the gradient, Adam and the target average
  assert isinstance(latent.params[1], off_policy.Frozen)
  u = np.asarray(latent.params[1].train)  # the code's coordinates; .frozen: the space
  np.testing.assert_array_equal(np.asarray(latent.params[1].frozen.weights["basis"]), np.asarray(space.weights["basis"]))
  assert u.shape == (2,) and not np.allclose(u, np.asarray(code)), u  # the code moved (u: its coordinates)
  # ... and with latent_td3's guards, the buffer filled by the decoded start and the code held
  # past the budget: it ends where it started
  guarded = train_baseline(left_car, "left", "td3", TD3_BUDGET, 0, PROTOCOL, n_evals=TD3_EVALS, curve=CURVE,
                           config=dataclasses.replace(SMALL_TD3["td3"], prefill="actor", actor_warmup=TD3_BUDGET),
                           actor=baselines.PolicyActor(policy, code, space))
  np.testing.assert_array_equal(np.asarray(guarded.params[1].train), (code - np.asarray(space.center)) / np.asarray(space.scale))
  np.testing.assert_allclose(guarded.returns, np.full_like(guarded.returns, at_code), rtol=1e-5)
  # with a state-conditioned head on the code (latent_head_td3): it starts exactly at the
  # code's policy, and TD3 moves the code and the head's output layer off zero
  headed = baselines.PolicyActor(policy, code, space, head=(8,))
  with_head = train_baseline(left_car, "left", "td3", TD3_BUDGET, 0, PROTOCOL, config=SMALL_TD3["td3"],
                             n_evals=TD3_EVALS, curve=CURVE, actor=headed)
  np.testing.assert_allclose(with_head.returns[0], at_code, rtol=1e-5)
  u, layers = with_head.params[1].train
  assert not np.allclose(np.asarray(u), code) and np.any(np.asarray(layers[-1][0])), layers[-1]
  np.testing.assert_array_equal(np.asarray(with_head.params[1].frozen.weights["basis"]),
                                np.asarray(space.weights["basis"]))
  # the critic's gradient reaches the code and the head, never the decoder: the actor's
  # output differentiated by all its parameters is zero on the frozen part
  network = headed.network()
  params = network.init(jax.random.key(0))
  grads = jax.grad(lambda p: network.apply(None, p, jnp.ones((3, policy.obs_size))).sum())(params)
  assert not any(np.any(np.asarray(g)) for g in jax.tree.leaves(grads.frozen))
  assert np.any(np.asarray(grads.train[0])) and np.any(np.asarray(grads.train[1][-1][0]))
  with pytest.raises(ValueError, match="latent_head conditions a latent actor's code"):
    lsc.get_method("start_td3").check({"start_td3": TD3Config(latent_head=(8,))}, TD3_BUDGET, 200)
  with pytest.raises(ValueError, match=r"latent_head must be \(\) \(no head\) or hidden sizes >= 1"):
    TD3Config(latent_head=(0,))
  # as a sequence's second phase (td3_from_start, its actor frozen here by a warm-up past the
  # budget): TD3 starts exactly at each seed's decoded latent result
  budget = 8_000
  configs = {"latent_pgpe": lsc.PGPEConfig(population=4, episodes=1), "latent_then_td3": lsc.SequenceConfig(fraction=0.25),
             "td3_from_start": dataclasses.replace(SMALL_TD3["td3"], prefill="actor", actor_warmup=budget)}
  outcome = run_method("latent_then_td3", left_car, "left", budget=budget, seeds=2, protocol=PROTOCOL, curve=CURVE,
                       configs=configs, policy=policy, latent=space, n_evals=TD3_EVALS)
  assert outcome.final_returns.shape == (2,) and np.all(outcome.final_env_steps <= budget)
  assert np.isfinite(outcome.eval_returns).all() and np.all(np.diff(outcome.env_steps, axis=1) > 0)
  # the TD3 phase's curve continues on the run's grid after the latent phase: step 0 is still
  # the latent search's start (the space's centre), not TD3's first policy
  centre = np.asarray(space.decode(space.center))[None]
  at_centre = evaluate(left_car, policy, centre, CURVE).returns[0, task_index(left_car, "left")]
  np.testing.assert_allclose(outcome.eval_returns[:, 0], at_centre, rtol=1e-5)
  # the budget split: the latent phase's share (the same seeds' latent PGPE alone on it ends
  # at the policy TD3 then holds, on the same final keys), the rest TD3's, both charged
  share = budget // 4
  alone = run_method("latent_pgpe", left_car, "left", budget=share, seeds=2, protocol=PROTOCOL, curve=CURVE,
                     configs=configs, policy=policy, latent=space, n_evals=TD3_EVALS)
  assert np.all(alone.final_env_steps <= share)
  np.testing.assert_allclose(outcome.final_returns, alone.final_returns, rtol=1e-5)
  after = outcome.eval_steps >= share
  held = outcome.eval_returns[:, after]
  np.testing.assert_array_equal(held, np.broadcast_to(held[:, :1], held.shape))
  assert np.all(outcome.final_env_steps > budget // 2)
  # the start control of both (start_td3): TD3 from the policy the latent search starts at,
  # the run's "start" space's centre, every seed, with no search before it
  from lsc.search import euclidean_space
  configs["start_td3"] = configs["td3_from_start"]
  spaces = {"start": euclidean_space(start, policy.init_std(), "parameter")}
  control = run_method("start_td3", left_car, "left", budget=budget, seeds=2, protocol=PROTOCOL, curve=CURVE,
                       configs=configs, policy=policy, latent=space, n_evals=TD3_EVALS, spaces=spaces)
  np.testing.assert_allclose(control.eval_returns[:, 0], before, rtol=1e-5)
  at_start = evaluate(left_car, policy, start[None], PROTOCOL).returns[0, task_index(left_car, "left")]
  np.testing.assert_allclose(control.final_returns, at_start, rtol=1e-5)  # frozen: it ends where it started
  # a start chosen by episodes before the run (search.latent_start spread or best_decoded): they are
  # charged, so the agent trains on what they leave and its curve begins after them
  spent = 2_000
  later = run_method("start_td3", left_car, "left", budget=budget, seeds=2, protocol=PROTOCOL, curve=CURVE,
                     configs=configs, policy=policy, latent=space, n_evals=TD3_EVALS, spaces=spaces, spent=spent)
  assert np.all(later.env_steps[:, 0] == spent) and np.all(later.final_env_steps <= budget)
  assert np.isnan(later.eval_returns[:, later.eval_steps < spent]).all()
  assert np.isfinite(later.eval_returns[:, later.eval_steps >= spent]).all()
  np.testing.assert_allclose(later.final_returns, at_start, rtol=1e-5)
  with pytest.raises(ValueError, match="start_td3 starts its actor at the latent search's start"):
    run_method("start_td3", left_car, "left", budget=budget, seeds=2, protocol=PROTOCOL, curve=CURVE,
               configs=configs, policy=policy, latent=space, n_evals=TD3_EVALS)


def test_sac_trains_the_lsc_policy_as_its_actor_and_resumes(left_car, tmp_path):
  # SAC from the behaviour space: lsc.off_policy's SAC (Brax's losses and order; Brax's
  # SAC takes no other actor) with the lsc policy's output as its mean; 20,000 env steps
  # find `left` (Brax's own SAC, same settings: 16.7-17.1 on seeds 0-1)
  policy = make_policy(left_car, "medium", normalize_obs=True)
  start = np.asarray(policy.init(jax.random.key(3)), np.float32)
  actor = baselines.PolicyActor(policy, start)
  config = SACConfig(hidden=(32, 32), min_replay_size=512, num_envs=8, grad_updates_per_step=4)
  reports = []

  def killed_in_epoch_2(stage, done, total, info):
    reports.append(done)
    if len(reports) == 3:  # after epoch 2's evaluation, before its checkpoint
      raise KeyboardInterrupt

  run = dict(config=config, n_evals=TD3_EVALS, curve=CURVE, actor=actor, checkpoint_path=tmp_path / "state")
  with pytest.raises(KeyboardInterrupt):
    train_baseline(left_car, "left", "sac", 20_000, 0, PROTOCOL, progress_fn=killed_in_epoch_2, **run)
  resumed = train_baseline(left_car, "left", "sac", 20_000, 0, PROTOCOL, **run)
  whole = train_baseline(left_car, "left", "sac", 20_000, 0, PROTOCOL, **{**run, "checkpoint_path": None})
  np.testing.assert_array_equal(resumed.returns, whole.returns)
  for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  before = evaluate(left_car, policy, start[None], CURVE).returns[0, task_index(left_car, "left")]
  np.testing.assert_allclose(whole.returns[0], before, rtol=1e-5)  # step 0: the start, its mode the policy's
  assert whole.final_return > 12 and whole.final_return > before + 5, whole.returns
  theta, scale = (np.asarray(x) for x in whole.params[1])  # (the policy's flat theta, its raw scale (A,))
  assert theta.shape == (policy.num_params,) and scale.shape == (policy.action_size,)
  final = evaluate(left_car, policy, theta[None], PROTOCOL).returns[0, task_index(left_car, "left")]
  np.testing.assert_allclose(final, whole.final_return, rtol=1e-5)
  # the warm-up holds the actor and its scale while the critics learn
  frozen = train_baseline(left_car, "left", "sac", TD3_BUDGET, 0, PROTOCOL, n_evals=TD3_EVALS, curve=CURVE, actor=actor,
                          config=dataclasses.replace(config, actor_warmup=TD3_BUDGET))
  np.testing.assert_array_equal(np.asarray(frozen.params[1][0]), start)
  np.testing.assert_array_equal(np.asarray(frozen.params[1][1]), np.zeros(policy.action_size))
  with pytest.raises(ValueError, match="actor_warmup = 10 holds an lsc policy actor"):  # Brax's SAC has none
    train_baseline(left_car, "left", "sac", TD3_BUDGET, 0, PROTOCOL, config=dataclasses.replace(config, actor_warmup=10))
