"""Baselines: Brax's PPO and SAC, and TD3 and DDPG (`lsc.off_policy`, built from Brax's parts),
trained on an lsc env and task, with a learning curve measured under lsc's shared
evaluation protocol.

`train_baseline(env, task, method, budget, seed, protocol)` trains
`brax.training.agents.{ppo,sac}.train.train` on `TaskReward(env, task)` for `budget`
env steps in `n_evals` epochs and, before training and after every epoch, evaluates the
current *deterministic* policy (the mode of Brax's tanh-normal policy: tanh of its mean)
exactly as every other method's learning curve is evaluated: the curve protocol's E
episodes (`lsc.evaluation.CURVE_EVAL`), episode e of every policy started from
`curve.episode_keys()[e]`, the task's return summed until termination or
`env.episode_length` and averaged over the E episodes; the final policy again on the
final `protocol`'s episodes.  SAC reports no parameters before training: lsc draws the
ones it starts from as Brax does (`_sac_start`).  The episode function is
`lsc.rollout.make_episode_fn` itself (through `_BraxPolicy`), so baselines, the
searches and the recovery metrics share start states, done-masking and return
accounting by construction.  Evaluation episodes are a measurement: they are not
charged to the method.

Env steps are counted as Brax counts them: every step any of the agent's `num_envs`
training envs takes, across all devices, including SAC's replay prefill and the steps
of episodes cut by the time limit (Brax's `EpisodeWrapper` truncates at
`env.episode_length` and `AutoResetWrapper` restarts).  Brax runs whole training
iterations (PPO: `batch_size * num_minibatches * unroll_length` env steps; SAC:
`num_envs` env steps per actor step), the same number in each of the n_evals epochs,
and rounds that number up.  `brax_timesteps` asks for the most that keeps epoch k
ending at or before point k of the learning curve's grid, floor(k budget / n_evals), for
every k: so a grid point reads the policy of the epoch that just ended there, never the
one before.  PPO then falls short of the budget by less than n_evals iterations; SAC,
TD3 and DDPG, whose first epoch also holds the prefill, by up to (n_evals - 1) prefills
more (2-4 % of the race's budgets).  The curve records the steps actually taken.

Actor from the behaviour space: TD3, DDPG and SAC can train an lsc policy as their actor
(`PolicyActor`: the dataset's architecture over its flat parameters, from its random
init or from a start another method ended at, e.g. a latent search's decoded result);
the critics stay Brax's.  SAC then trains in `lsc.off_policy` (Brax's SAC takes no
other actor): the same losses, order and prefill as Brax's, on one device, the actor's
scale state-independent.

TD3 and DDPG (and SAC with an lsc actor) count env steps as SAC does (prefill included)
and train on one device; they write their whole state (networks, optimisers, replay
buffer, envs, key) after every epoch when given a `checkpoint_path`, and a rerun resumes
from it to the result of an uninterrupted run.  PPO and Brax's SAC cannot resume (Brax's
train() has no way in).

How the parameters reach the evaluation: PPO hands them to its `policy_params_fn`
callback after every training epoch.  SAC (brax 0.14.2) has no such callback; its only
per-epoch hook that sees parameters is its checkpoint writer, so SAC writes a
checkpoint per epoch to a temporary directory and its `progress_fn` reads it back.
Brax's own evaluators (`num_eval_envs` episodes of the env under its own keys) are
not the protocol; they run on a stub env (`_NullEnv`) so they cost neither a compile
of the real env nor simulation time.

Devices: Brax `pmap`s training over local devices (`max_devices_per_host`).  By default
it uses the devices `lsc.rollout.default_mesh(env)` would (all of them, one for MJX on
CPU, where sharding MJX crashes XLA); `num_envs` and `batch_size` must then be
divisible by the device count, which is checked before anything compiles.

Compilation: Brax compiles its training epoch inside `train()`, so its compile time is
part of `timings['train_s']`.  On jax 0.11.2 Brax's pmapped epoch is compiled twice, on
its first and second call (seen on 1 and 2 CPU devices; the two programs are identical,
JAX's in-memory cache just misses), so enable JAX's persistent compilation cache
(`lsc.enable_compilation_cache()`, on in every lsc entry point): the second compile is
then a cache hit.  The evaluator is compiled once per run, on the first evaluation.
"""

import dataclasses
import functools
import hashlib
import os
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State, Wrapper
from brax.training import networks as brax_networks
from brax.training.acme import running_statistics, specs
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as ppo
from brax.training.agents.sac import checkpoint as sac_checkpoint
from brax.training.agents.sac import networks as sac_networks
from brax.training.agents.sac import train as sac

from lsc import checkpoint, off_policy
from lsc.compat import ensure_device_put_replicated
from lsc.config import to_dict
from lsc.envs import env_spec
from lsc.evaluation import CURVE_EVAL, EvalProtocol
from lsc.policy import MLPPolicy
from lsc.methods import check_can_run
from lsc.progress import ProgressFn
from lsc.rl_configs import (ACTOR_AGENTS, RESUMABLE, PPOConfig, SACConfig, TD3Config, check_budget, check_devices,
                            check_method, devices_for, resolve_config, resumable)
from lsc.rollout import make_episode_fn
from lsc.tasks import Transition, check_rewards, get_task, resolve_task, task_fingerprint, task_index

class TaskReward(Wrapper):
  """Makes `task` the env's reward (dynamics and termination unchanged), for Brax agents."""

  def __init__(self, env, task: str):
    super().__init__(env)
    self.task = get_task(env.unwrapped, task)
    check_rewards(env.unwrapped)

  def step(self, state: State, action: jax.Array) -> State:
    next_state = self.env.step(state, action)
    reward = self.task.reward(Transition(state.obs, action, next_state.obs, next_state.metrics,
                                         next_state.done, next_state.reward))
    return next_state.replace(reward=reward)


@dataclasses.dataclass(frozen=True)
class BaselineResult:
  """A baseline run.  env_steps (n_evals + 1,) int64: Brax's env-step count at each
  evaluation, 0 (before training) and after every epoch; returns (n_evals + 1,) float64:
  the task's return of the deterministic policy there, mean over the curve protocol's
  episodes; final_return: the final policy's on the final protocol's episodes.  `params` is Brax's final parameter tree
  ((normalizer, policy, value) for PPO, (normalizer, policy) for SAC; see
  `make_inference`) with NumPy leaves, except the normalizer's sample count, which
  Brax's `UInt64` always holds as two JAX uint32 scalars;
  `timings` in seconds: `train_s` (inside Brax's train(), its compilation included,
  our callbacks excluded), `eval_compile_s`, `eval_s` (evaluations, and for SAC
  reading back its checkpoints), `total_s`."""
  method: str
  task: str
  env_steps: np.ndarray
  returns: np.ndarray
  final_return: float
  params: Any
  timings: dict
  config: PPOConfig | SACConfig


def devices_to_use(env, config: PPOConfig | SACConfig, actor: bool = False) -> int:
  """Local devices Brax will pmap training over on `env` (`lsc.rl_configs.devices_for`;
  one with an lsc policy as `actor`)."""
  return devices_for(config, env.backend, actor)


def _check_run(env, task: str, method: str, budget: int, seed: int, n_evals: int,
               config, checkpoint_path=None, actor: bool = False) -> PPOConfig | SACConfig | TD3Config:
  """Every check that needs no compile, in the order a user would fix them; returns the
  resolved config."""
  check_method(method)
  check_can_run([method], env.backend)
  get_task(env, task)
  config = resolve_config(method, config)
  if n_evals < 1:
    raise ValueError(f"n_evals must be >= 1, got {n_evals}")
  if seed < 0:
    raise ValueError(f"seed must be >= 0, got {seed}")
  check_budget(method, budget, config, n_evals)
  if checkpoint_path is not None and not resumable(method, actor):
    raise ValueError(f"{method} cannot resume (Brax's train() has no way in): checkpoint_path is for "
                     f"{', '.join(RESUMABLE)} (and sac with an lsc actor)")
  if isinstance(config, SACConfig) and config.actor_warmup and not actor:
    raise ValueError(f"SACConfig.actor_warmup = {config.actor_warmup} holds an lsc policy actor; Brax's SAC "
                     "(no actor given) has none to hold")
  check_devices(config, env.backend, actor)
  return config


class _NullEnv(Env):
  """A Brax env with no dynamics (zero observations, zero reward, never done) of a given
  observation and action size.  Brax's built-in evaluators run on it: they are not
  lsc's protocol, and this way they compile and run in no time."""

  def __init__(self, observation_size: int, action_size: int):
    self._sizes = (observation_size, action_size)

  def reset(self, rng: jax.Array) -> State:
    zero = jnp.zeros(())
    return State(pipeline_state=None, obs=jnp.zeros(self._sizes[0]), reward=zero, done=zero)

  def step(self, state: State, action: jax.Array) -> State:
    return state

  @property
  def observation_size(self) -> int:
    return self._sizes[0]

  @property
  def action_size(self) -> int:
    return self._sizes[1]

  @property
  def backend(self) -> str:
    return "null"


@dataclasses.dataclass(frozen=True, eq=False)
class PolicyActor:
  """TD3's, DDPG's or SAC's actor as lsc policy `policy` (the architecture of the
  dataset's policies, so a policy of the behaviour space can be its start).  The action
  is tanh of the policy's output layer (`MLPPolicy.pre_squash`), its own action for
  bounds [-1, 1] (SAC's mode; SAC adds a state-independent scale, `off_policy.with_scale`).

  Without `space` the actor's parameters are the policy's flat θ (P,): from `start`
  (P,) or, without one, from `policy.init` of the run's actor key.  With `space` (an
  `lsc.search.SearchSpace`, e.g. a trained decoder's latent space) they are
  `off_policy.Frozen(u, space)`:
  the space's coordinates u (k,), z = center + scale * u, θ = space.decode(z), and the
  space itself, held fixed; the critic's gradient
  reaches z through the frozen decoder (the chain rule ∇z J = (∂θ/∂z)ᵀ ∇θ J), from
  `start` (k,) a code or, without one, the space's centre.

  With `head` (hidden layer sizes, with `space` only) the code depends on the state: in
  state s the policy is θ(s) = space.decode(center + scale * (u + h(s))), h a tanh MLP
  over the policy's normalised observation with output k, whose output layer starts at
  zero, so the actor starts exactly at the code's policy.  The trained part is then
  (u, h's layers [(kernel, bias), ...]); the decoder still gets no gradient."""
  policy: MLPPolicy
  start: np.ndarray | None = None
  space: Any = None
  head: tuple[int, ...] = ()

  def check(self, env) -> None:
    """ValueError unless the policy fits `env` and has action bounds [-1, 1]."""
    spec, policy = env_spec(env), self.policy
    if (policy.obs_size, policy.action_size) != (spec.observation_size, spec.action_size):
      raise ValueError(f"the actor policy maps {policy.obs_size} -> {policy.action_size}, the env "
                       f"{spec.observation_size} -> {spec.action_size}")
    if (policy.action_low, policy.action_high) != (-1.0, 1.0):
      raise ValueError(f"an actor policy needs action bounds [-1, 1], got [{policy.action_low}, {policy.action_high}]")
    size = policy.num_params if self.space is None else self.space.dim
    if self.start is not None and np.shape(self.start) != (size,):
      raise ValueError(f"the actor's start has shape {np.shape(self.start)}, its parameters ({size},)")
    if self.space is not None:
      self.space.check(policy)
    if self.head and self.space is None:
      raise ValueError(f"a state-conditioned head ({self.head}) moves a latent code: give the actor a space")

  def network(self) -> brax_networks.FeedForwardNetwork:
    """The actor as `lsc.off_policy.train`'s `policy_network` (the normaliser is ignored: the
    policy normalises its observations itself, if at all)."""
    policy, space = self.policy, self.space
    start = None if self.start is None else jnp.asarray(self.start, jnp.float32)
    if space is None:
      init = policy.init if start is None else (lambda key: start)
      return brax_networks.FeedForwardNetwork(init=init,
                                              apply=lambda normalizer, theta, obs: policy.pre_squash(theta, obs))
    u0 = jnp.zeros(space.dim, jnp.float32) if start is None else (start - space.center) / space.scale
    head = self.head
    # the head's forward pass is the policy's own (its observation normalisation, then
    # [(kernel, bias), ...] with tanh between), over the head's layers
    head_net = dataclasses.replace(policy, activation="tanh")

    def init(key):
      return off_policy.Frozen((u0, _head_init(key, policy.obs_size, head, space.dim)) if head else u0, space)

    def apply(normalizer, params, obs):
      # the space travels in the parameters, as arrays the compiled programs take (never
      # constants they close over), frozen (`off_policy.Frozen`): no gradient, no Adam
      # state, no target average
      frozen = jax.tree.map(jax.lax.stop_gradient, params.frozen)

      def pre_squash(u, obs):
        return policy.pre_squash(frozen.decode(frozen.center + frozen.scale * u), obs)
      if not head:
        return pre_squash(params.train, obs)
      u, layers = params.train
      flat = obs.reshape(-1, obs.shape[-1])  # a policy per state: decode each state's code
      codes = u + head_net.pre_squash_layers(layers, flat)
      return jax.vmap(pre_squash)(codes, flat).reshape(*obs.shape[:-1], -1)
    return brax_networks.FeedForwardNetwork(init=init, apply=apply)

  def identity(self) -> dict:
    """What a checkpoint of a run with this actor is only valid for: the policy's
    shape and normalisation (`checkpoint.policy_shape`) and init scheme, the start's
    content hash (None: the policy's init) and the space's fingerprint."""
    start = (None if self.start is None else
             hashlib.sha256(np.asarray(self.start, np.float32).tobytes()).hexdigest()[:20])
    return {**checkpoint.policy_shape(self.policy), "init": self.policy.init_scheme, "start": start,
            **({} if self.space is None else {"space": self.space.fingerprint()}),
            **({"head": list(self.head)} if self.head else {})}


def _head_init(key: jax.Array, obs_size: int, hidden: tuple[int, ...], k: int) -> list:
  """A latent actor's state-conditioned head: [(kernel, bias), ...] of a tanh MLP
  obs_size -> hidden -> k, its hidden layers Flax's default init (LeCun normal kernels,
  zero biases) and its output layer zero (so it starts adding nothing to the code)."""
  sizes, layers = (obs_size, *hidden), []
  for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    key, sub = jax.random.split(key)
    layers.append((jax.nn.initializers.lecun_normal()(sub, (fan_in, fan_out), jnp.float32),
                   jnp.zeros(fan_out, jnp.float32)))
  return layers + [(jnp.zeros((sizes[-1], k), jnp.float32), jnp.zeros(k, jnp.float32))]


def _network_factory(method: str, config: PPOConfig | SACConfig) -> Callable:
  """Brax's network constructor for `method` with the config's layer sizes."""
  if method == "ppo":
    return functools.partial(ppo_networks.make_ppo_networks,
                             policy_hidden_layer_sizes=config.policy_hidden,
                             value_hidden_layer_sizes=config.value_hidden)
  if method == "sac":
    return functools.partial(sac_networks.make_sac_networks, hidden_layer_sizes=config.hidden)

  def td3_networks(observation_size, action_size, preprocess_observations_fn):
    return off_policy.make_networks(observation_size, action_size, preprocess_observations_fn, config.hidden,
                                    config.n_critics)
  return td3_networks


def _networks(method: str, env, config, actor: "PolicyActor | None" = None):
  """`method`'s networks for `env` and `config`, as Brax builds them inside train(); with
  `actor`, `lsc.off_policy`'s networks with its policy as the actor."""
  normalize = running_statistics.normalize if config.normalize_observations else (lambda x, y: x)
  spec = env_spec(env)
  if actor is not None:
    return off_policy.make_networks(spec.observation_size, spec.action_size, normalize, config.hidden,
                                    getattr(config, "n_critics", 2), "sac" if method == "sac" else "td3",
                                    actor.network())
  return _network_factory(check_method(method), config)(
      observation_size=spec.observation_size, action_size=spec.action_size, preprocess_observations_fn=normalize)


def make_inference(method: str, env, config: PPOConfig | SACConfig, actor: PolicyActor | None = None) -> Callable:
  """Brax's `make_policy(params, deterministic=False)` for `method`'s networks as
  `train_baseline` builds them for `env` and `config` (the same call Brax makes inside
  train(); with `actor`, `lsc.off_policy`'s networks with its policy as the actor);
  `make_policy(result.params, deterministic=True)` is the final policy,
  `policy(obs (..., O), key) -> (action (..., A), extras)`."""
  networks = _networks(method, env, config, actor)
  if actor is not None:
    return off_policy.make_inference_fn(networks, getattr(config, "exploration_noise", 0.0))
  if method == "ppo":
    return ppo_networks.make_inference_fn(networks)
  if method == "sac":
    return sac_networks.make_inference_fn(networks)
  return off_policy.make_inference_fn(networks, config.exploration_noise)


@dataclasses.dataclass(frozen=True)
class _BraxPolicy:
  """Brax's deterministic policy behind the part of `lsc.policy.MLPPolicy` that
  `lsc.rollout.make_episode_fn` uses: `obs_size`, `unflatten(params)` (here the
  identity on Brax's parameter tree) and `apply_layers(params, obs (O,)) -> (A,)`."""
  obs_size: int
  make_policy: Callable

  def unflatten(self, params):
    return params

  def apply_layers(self, params, obs: jax.Array) -> jax.Array:
    policy = self.make_policy(params, deterministic=True)
    action, _ = policy(obs, jax.random.PRNGKey(0))  # the mode ignores the sampling key
    return action


def make_evaluator(env, task: str, make_policy: Callable) -> Callable:
  """A jit-compiled `fn(params, keys (E,) typed) -> (returns (E,), lengths (E,) int32)`:
  the task's return and the steps until termination of Brax's deterministic policy
  `make_policy(params, deterministic=True)` in each of the E episodes from `keys`
  (pass `protocol.episode_keys()`).  vmap over episodes of `lsc.rollout.make_episode_fn`
  (a lax.scan over `env.episode_length` steps with a done-mask)."""
  column = task_index(env, task)
  episode = make_episode_fn(env, _BraxPolicy(env_spec(env).observation_size, make_policy), n_samples=0)

  @jax.jit
  def evaluate(params, keys):
    returns, lengths, _, _ = jax.vmap(episode, in_axes=(None, 0))(params, keys)
    return returns[:, column], lengths

  return evaluate


class _Curve:
  """Collects (env steps, protocol return) points from Brax's callbacks; the
  evaluator is compiled on the first point (it needs the parameter tree's shapes)."""

  def __init__(self, env, task: str, protocol: EvalProtocol,
               progress_fn: Callable[[int, float], None] | None):
    self.env, self.task, self.progress_fn = env, task, progress_fn  # (env steps, return)
    self.keys = protocol.episode_keys()
    self.make_policy = None
    self.steps: list[int] = []
    self.returns: list[float] = []
    self.compiled = None
    self.compile_s = 0.0
    self.eval_s = 0.0

  def record(self, step: int, make_policy: Callable, params) -> None:
    """Evaluates `params` after `step` env steps and appends the point."""
    value = self.evaluate(make_policy, params, self.keys)
    self.steps.append(int(step))
    self.returns.append(value)
    if self.progress_fn is not None:
      self.progress_fn(int(step), value)

  def evaluate(self, make_policy: Callable, params, keys) -> float:
    """The mean return of `make_policy(params, deterministic=True)` over the episodes
    from `keys` (E,) (the curve's, or the final protocol's of as many episodes)."""
    start = time.perf_counter()
    if self.compiled is None or len(keys) != len(self.keys):
      evaluator = make_evaluator(self.env, self.task, make_policy)
      compiled = evaluator.lower(params, keys).compile()
      if self.compiled is None:
        self.compiled, self.make_policy = compiled, make_policy
      self.compile_s += time.perf_counter() - start
      start = time.perf_counter()
    else:
      compiled = self.compiled
    returns, _ = compiled(params, keys)
    self.eval_s += time.perf_counter() - start
    return float(np.mean(np.asarray(returns, np.float64)))


def brax_timesteps(method: str, config: PPOConfig | SACConfig, budget: int, n_evals: int) -> int:
  """The `num_timesteps` to pass Brax so that its n_evals epochs of whole iterations
  (rounded up by Brax), after any prefill, end at or before the grid's points: epoch k
  by env step floor(k budget / n_evals).  Requires budget >= `lsc.rl_configs.min_budget`."""
  if method == "ppo":
    unit = config.steps_per_iteration
    return n_evals * (budget // (n_evals * unit)) * unit
  unit = config.num_envs  # the first epoch holds the prefill: every epoch fits an interval less it
  return config.prefill_steps + n_evals * ((budget // n_evals - config.prefill_steps) // unit) * unit


def _train_ppo(env, config: PPOConfig, budget: int, seed: int, n_evals: int, n_devices: int,
               curve: _Curve, **common):
  def policy_params_fn(step, make_policy, params):  # before training (step 0), then after every epoch
    curve.record(step, make_policy, params)

  _, params, _ = ppo.train(
      env, num_timesteps=brax_timesteps("ppo", config, budget, n_evals), max_devices_per_host=n_devices,
      num_envs=config.num_envs,
      unroll_length=config.unroll_length, batch_size=config.batch_size,
      num_minibatches=config.num_minibatches, num_updates_per_batch=config.num_updates_per_batch,
      learning_rate=config.learning_rate, entropy_cost=config.entropy_cost,
      discounting=config.discounting, gae_lambda=config.gae_lambda,
      clipping_epsilon=config.clipping_epsilon, reward_scaling=config.reward_scaling,
      max_grad_norm=config.max_grad_norm, normalize_observations=config.normalize_observations,
      network_factory=_network_factory("ppo", config), seed=seed, num_evals=n_evals + 1,
      run_evals=False,
      policy_params_fn=policy_params_fn, **common)
  return params


def _sac_start(env, config: SACConfig, seed: int) -> Any:
  """The (normalizer, policy) parameters Brax's SAC (0.14.2) starts from with `seed`,
  drawn as its train() draws them (its key, split three times): SAC reports none before
  training, and its restore path fails on the replicated state.  Tested against Brax's
  own draw."""
  rng, _ = jax.random.split(jax.random.PRNGKey(seed))  # train(): the key of its env randomization
  global_key, _ = jax.random.split(rng)
  policy_key, _ = jax.random.split(global_key)  # _init_training_state(): the policy's, then the Q network's
  observation = specs.Array((env_spec(env).observation_size,), jnp.dtype("float32"))
  return running_statistics.init_state(observation), _networks("sac", env, config).policy_network.init(policy_key)


def _train_sac(env, config: SACConfig, budget: int, seed: int, n_evals: int, n_devices: int,
               curve: _Curve, **common):
  make_policy = make_inference("sac", env, config)

  with tempfile.TemporaryDirectory(prefix="lsc-sac-") as directory:
    curve.record(0, make_policy, _sac_start(env, config, seed))

    def progress_fn(step, metrics):
      if step > 0:  # Brax also reports before training, without a checkpoint
        start = time.perf_counter()
        params = tuple(sac_checkpoint.load(os.path.join(directory, f"{step:012d}")))  # a list: as train() returns it
        curve.eval_s += time.perf_counter() - start
        curve.record(step, make_policy, params)

    _, params, _ = sac.train(
        env, num_timesteps=brax_timesteps("sac", config, budget, n_evals), max_devices_per_host=n_devices,
        num_envs=config.num_envs,
        batch_size=config.batch_size, grad_updates_per_step=config.grad_updates_per_step,
        learning_rate=config.learning_rate, discounting=config.discounting, tau=config.tau,
        reward_scaling=config.reward_scaling, min_replay_size=config.min_replay_size,
        max_replay_size=config.max_replay_size,
        normalize_observations=config.normalize_observations,
        network_factory=_network_factory("sac", config), seed=seed, num_evals=n_evals + 1,
        progress_fn=progress_fn,
        checkpoint_logdir=directory, **common)
  return params


KIND_STATE = "td3_state"


def _train_off_policy(env, config: TD3Config | SACConfig, budget: int, seed: int, n_evals: int, curve: "_Curve",
                      method: str, task: str, curve_protocol: EvalProtocol, checkpoint_path=None,
                      overwrite: bool = False, actor: PolicyActor | None = None):
  """TD3 / DDPG (or SAC with an lsc actor) through `lsc.off_policy.train`, checkpointed
  after every epoch at `checkpoint_path`.
  The checkpoint holds the curve measured so far, so the curve's protocol is part of
  its identity: a resume under another protocol is refused, never relabelled."""
  identity = {"method": method, "task": task, "reward": task_fingerprint(env.unwrapped, task),
              "config": to_dict(config), "budget": int(budget),
              "seed": int(seed), "n_evals": int(n_evals), "env": env.name, "backend": env.backend,
              "episode_length": env.episode_length, "curve": dataclasses.asdict(curve_protocol),
              **({} if actor is None else {"actor": actor.identity()})}
  resume = None
  if checkpoint_path is not None:
    checkpoint.check_output_path(checkpoint_path, KIND_STATE)
    if checkpoint.is_artifact(checkpoint_path) and not overwrite:
      arrays, record = checkpoint.resuming(
          lambda path: checkpoint.load_artifact(path, kind=KIND_STATE, expect=identity), checkpoint_path)
      checkpoint.check_versions(record, checkpoint_path)
      carry = arrays["carry"]
      resume = (int(record["config"]["epoch"]), [carry[k] for k in sorted(carry)])
      curve.steps, curve.returns = arrays["curve_steps"].tolist(), arrays["curve_returns"].tolist()

  def save(epoch, carry):
    if checkpoint_path is not None:
      leaves = jax.tree.leaves(carry)
      arrays = {"carry": {f"{i:05d}": np.asarray(x) for i, x in enumerate(leaves)},
                "curve_steps": np.asarray(curve.steps, np.int64), "curve_returns": np.asarray(curve.returns)}
      checkpoint.save_artifact(checkpoint_path, arrays, kind=KIND_STATE, config={"epoch": epoch},
                               identity=identity)

  if method == "sac":  # (its prefill: the actor's own samples, as Brax's SAC, the trainer's default for it)
    only = dict(algorithm="sac")
  else:
    only = dict(exploration_noise=config.exploration_noise, policy_noise=config.policy_noise,
                noise_clip=config.noise_clip, policy_delay=config.policy_delay, n_critics=config.n_critics,
                prefill=config.prefill)
  _, params, _ = off_policy.train(
      env, brax_timesteps(method, config, budget, n_evals), env.episode_length, num_envs=config.num_envs,
      batch_size=config.batch_size, grad_updates_per_step=config.grad_updates_per_step,
      learning_rate=config.learning_rate, discounting=config.discounting, tau=config.tau,
      reward_scaling=config.reward_scaling, min_replay_size=config.min_replay_size,
      max_replay_size=config.max_replay_size, hidden_layer_sizes=config.hidden,
      normalize_observations=config.normalize_observations, seed=seed, num_evals=n_evals,
      policy_params_fn=curve.record, checkpoint_fn=save, resume=resume,
      policy_network=None if actor is None else actor.network(), actor_warmup=config.actor_warmup, **only)
  return params


def check_trained(method: str, seed: int, returns: np.ndarray, params) -> None:
  """Raises ValueError if a baseline's evaluation returns (n,) or its final parameters
  hold NaN or inf: the training diverged, and its curve is no result."""
  leaves = [np.asarray(x) for x in jax.tree.leaves(params)]
  finite = np.isfinite(returns).all() and all(np.isfinite(x).all() for x in leaves if np.issubdtype(x.dtype, np.inexact))
  if not finite:
    raise ValueError(f"{method} diverged on seed {seed}: its evaluation returns or parameters hold NaN or inf; "
                     f"lower its learning_rate or reward_scaling ({type(resolve_config(method)).__name__})")


def train_baseline(env, task: str, method: str, budget: int, seed: int, protocol: EvalProtocol,
                   config: PPOConfig | SACConfig | TD3Config | None = None, n_evals: int = 10,
                   progress_fn: ProgressFn | None = None, checkpoint_path=None,
                   overwrite: bool = False, curve: EvalProtocol = CURVE_EVAL,
                   actor: PolicyActor | None = None) -> BaselineResult:
  """Trains `method` ('ppo' | 'sac' | 'td3' | 'ddpg') on `TaskReward(env, task)` for
  `budget` env steps from `seed` in `n_evals` epochs, evaluating the deterministic policy
  under `curve` before training and after every epoch, and the final one under
  `protocol` (see the module docstring for what is counted and how).

  Returns a BaselineResult: env_steps (n_evals + 1,) int64 increasing from 0, returns
  (n_evals + 1,), the final return, the final parameters as NumPy, timings and the config.  `progress_fn`
  (see `lsc.progress`) gets stage `method`, env steps of the budget and the return
  after each evaluation.  Bad input (unknown method or
  task, a config of the other method, a budget below `lsc.rl_configs.min_budget`, sizes not divisible
  by the device count) raises ValueError before anything is compiled.  TD3 / DDPG
  checkpoint every epoch at `checkpoint_path` and resume from a checkpoint of the same
  run (ArtifactMismatch for another; `overwrite=True` starts afresh).  TD3, DDPG and SAC
  take `actor`, an lsc policy as their actor (`PolicyActor`); SAC then trains in
  `lsc.off_policy` and checkpoints and resumes as TD3 does.
  """
  env, task = resolve_task(env, task)  # any env; a task given as a reward function is scored too
  if actor is not None:
    if method not in ACTOR_AGENTS:
      raise ValueError(f"only {', '.join(ACTOR_AGENTS)} take an lsc policy as their actor, not {method}")
    actor.check(env)
  config = _check_run(env, task, method, budget, seed, n_evals, config, checkpoint_path, actor is not None)
  ensure_device_put_replicated()
  n_devices = devices_to_use(env, config, actor is not None)
  report = None if progress_fn is None else (lambda steps, value: progress_fn(method, steps, budget, {"return": value}))
  points = _Curve(env, task, curve, report)
  spec = env_spec(env)
  common = dict(episode_length=env.episode_length, action_repeat=1,
                eval_env=_NullEnv(spec.observation_size, spec.action_size), num_eval_envs=1)
  start = time.perf_counter()
  if resumable(method, actor is not None):
    params = _train_off_policy(TaskReward(env, task), config, int(budget), int(seed), int(n_evals), points, method,
                               task, curve, checkpoint_path, overwrite, actor)
  else:
    trainer = _train_ppo if method == "ppo" else _train_sac
    params = trainer(TaskReward(env, task), config, int(budget), int(seed), int(n_evals), n_devices,
                     points, **common)
  # the final policy on fresh keys (a resumed run that had nothing left compiles its evaluator here)
  final = points.evaluate(points.make_policy or make_inference(method, env, config, actor), params,
                          protocol.episode_keys())
  total = time.perf_counter() - start
  check_trained(method, seed, np.asarray(points.returns + [final], np.float64), params)
  timings = {"train_s": total - points.compile_s - points.eval_s, "eval_compile_s": points.compile_s,
             "eval_s": points.eval_s, "total_s": total}
  return BaselineResult(method=method, task=task, env_steps=np.asarray(points.steps, np.int64),
                        returns=np.asarray(points.returns, np.float64), final_return=final,
                        params=jax.tree.map(np.asarray, params), timings=timings, config=config)
