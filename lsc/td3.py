"""TD3 (Fujimoto et al. 2018) and DDPG, in the shape of Brax's SAC and built from Brax's
parts: its training wrappers, `acting.actor_step`, `UniformSamplingQueue` replay buffer,
network factories (`make_policy_network`, `make_q_network`) and running observation
statistics, with the `train(environment, num_timesteps, ..., progress_fn)` convention.
Brax 0.14 has neither algorithm.

TD3: a deterministic policy a = tanh(mu(s)), twin critics, targets from the smaller
target critic at a target action smoothed by clipped Gaussian noise, the actor and
both target networks updated every `policy_delay` critic steps.  DDPG here is the
TD3 paper's "our DDPG": one critic, no target smoothing, every step an actor update
(`n_critics=1, policy_delay=1, policy_noise=0`), the same optimiser and sizes.

Step accounting is SAC's: `num_envs` parallel envs, one env step each per actor step,
then `grad_updates_per_step` gradient steps; the first `min_replay_size` env steps
(rounded up to whole actor steps) take uniform random actions to fill the buffer.
Training runs on one device (the envs are vmapped); each epoch is one jit-compiled
`lax.scan` over its actor steps.  A run can resume at an epoch boundary from the carry
`checkpoint_fn` was handed there.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from brax import envs
from brax.training import acting, replay_buffers, types
from brax.training import networks as brax_networks
from brax.training.acme import running_statistics, specs


class Networks(NamedTuple):
  policy: brax_networks.FeedForwardNetwork  # obs -> pre-tanh action (A,)
  q: brax_networks.FeedForwardNetwork  # (obs, action) -> (n_critics,)


def make_networks(obs_size: int, action_size: int, preprocess_observations_fn=types.identity_observation_preprocessor,
                  hidden_layer_sizes=(256, 256), n_critics: int = 2) -> Networks:
  """Brax's policy MLP (output A, tanh applied by `make_inference_fn`) and Q network."""
  policy = brax_networks.make_policy_network(action_size, obs_size, preprocess_observations_fn,
                                             hidden_layer_sizes=hidden_layer_sizes)
  q = brax_networks.make_q_network(obs_size, action_size, preprocess_observations_fn,
                                   hidden_layer_sizes=hidden_layer_sizes, n_critics=n_critics)
  return Networks(policy, q)


def make_inference_fn(networks: Networks, exploration_noise: float = 0.1):
  """Brax's `make_policy(params, deterministic=False)`; params = (normalizer, policy).
  Deterministic: tanh(mu(s)); otherwise Gaussian noise of std `exploration_noise`
  added and the action clipped to [-1, 1]."""
  def make_policy(params, deterministic: bool = False):
    normalizer, policy_params = params

    def policy(obs, key):
      action = jnp.tanh(networks.policy.apply(normalizer, policy_params, obs))
      if not deterministic:
        action = jnp.clip(action + exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)
      return action, {}
    return policy
  return make_policy


class TrainingState(NamedTuple):
  """Everything an epoch changes except the envs and the buffer (a pytree)."""
  policy_params: Any
  target_policy_params: Any
  policy_opt_state: Any
  q_params: Any
  target_q_params: Any
  q_opt_state: Any
  normalizer_params: Any
  gradient_steps: jax.Array  # () int32
  env_steps: jax.Array  # () int32


def _losses(networks: Networks, discounting: float, reward_scaling: float, policy_noise: float, noise_clip: float):
  def critic_loss(q_params, ts: TrainingState, t: types.Transition, key):
    next_action = jnp.tanh(networks.policy.apply(ts.normalizer_params, ts.target_policy_params, t.next_observation))
    if policy_noise > 0:  # target policy smoothing
      noise = jnp.clip(policy_noise * jax.random.normal(key, next_action.shape), -noise_clip, noise_clip)
      next_action = jnp.clip(next_action + noise, -1.0, 1.0)
    next_q = networks.q.apply(ts.normalizer_params, ts.target_q_params, t.next_observation, next_action).min(-1)
    target = jax.lax.stop_gradient(t.reward * reward_scaling + t.discount * discounting * next_q)
    error = networks.q.apply(ts.normalizer_params, q_params, t.observation, t.action) - target[:, None]
    error *= (1 - t.extras["state_extras"]["truncation"])[:, None]  # a time-limit cut is not a terminal state
    return 0.5 * jnp.mean(jnp.square(error))

  def actor_loss(policy_params, ts: TrainingState, q_params, t: types.Transition):
    action = jnp.tanh(networks.policy.apply(ts.normalizer_params, policy_params, t.observation))
    return -jnp.mean(networks.q.apply(ts.normalizer_params, q_params, t.observation, action)[:, 0])

  return critic_loss, actor_loss


def train(environment, num_timesteps: int, episode_length: int, *, num_envs: int = 16, batch_size: int = 256,
          grad_updates_per_step: int = 1, learning_rate: float = 3e-4, discounting: float = 0.99,
          tau: float = 0.005, reward_scaling: float = 1.0, min_replay_size: int = 1024,
          max_replay_size: int | None = None, exploration_noise: float = 0.1, policy_noise: float = 0.2,
          noise_clip: float = 0.5, policy_delay: int = 2, n_critics: int = 2, hidden_layer_sizes=(256, 256),
          normalize_observations: bool = True, seed: int = 0, num_evals: int = 10,
          policy_params_fn: Callable | None = None, progress_fn: Callable | None = None,
          checkpoint_fn: Callable | None = None, resume=None,
          policy_network: brax_networks.FeedForwardNetwork | None = None, prefill: str = "uniform",
          actor_warmup: int = 0):
  """Trains TD3 (defaults) or DDPG (`n_critics=1, policy_delay=1, policy_noise=0`) on
  `environment` for at most `num_timesteps` env steps: the prefill, then `num_evals`
  epochs of equal whole actor steps.  Before any env step `policy_params_fn(0,
  make_policy, params)` (not on a resume); after epoch e (1-based) with `step` env steps
  taken, `policy_params_fn(step, make_policy, params)`, `progress_fn(step, metrics)`
  and then `checkpoint_fn(e, carry)` are called (carry: a pytree of arrays);
  `resume=(e, jax.tree.leaves(carry))` continues after epoch e exactly as the
  uninterrupted run would.  `policy_network` replaces Brax's policy MLP as the actor
  (`init(key) -> params`, `apply(normalizer, params, obs) -> pre-tanh action (A,)`: e.g.
  an lsc policy over its flat parameters, started where another method ended); every
  other draw of the run is unchanged.  `prefill` "actor" fills the buffer with the
  starting actor's noisy actions instead of uniform random ones, and for `actor_warmup`
  env steps after the prefill only the critics (and their targets) learn, so a chosen
  start is not moved by an untrained critic.  Returns (make_policy, params, metrics),
  params = (normalizer, policy)."""
  obs_size, action_size = environment.observation_size, environment.action_size
  prefill_steps = -(-min_replay_size // num_envs)
  actor_from = prefill_steps * num_envs + actor_warmup  # env steps before the actor's first update
  if prefill not in ("uniform", "actor"):
    raise ValueError(f"prefill must be 'uniform' or 'actor', got {prefill!r}")
  uniform_prefill = prefill == "uniform"  # (the name `prefill` is the compiled prefill below)
  steps_per_epoch = (num_timesteps // num_envs - prefill_steps) // num_evals
  if steps_per_epoch < 1:
    raise ValueError(f"num_timesteps {num_timesteps} leaves no actor step per epoch after the prefill")
  env = envs.training.wrap(environment, episode_length=episode_length)
  normalize = running_statistics.normalize if normalize_observations else types.identity_observation_preprocessor
  networks = make_networks(obs_size, action_size, normalize, hidden_layer_sizes, n_critics)
  if policy_network is not None:
    networks = networks._replace(policy=policy_network)
  make_policy = make_inference_fn(networks, exploration_noise)
  policy_opt, q_opt = optax.adam(learning_rate), optax.adam(learning_rate)
  critic_loss, actor_loss = _losses(networks, discounting, reward_scaling, policy_noise, noise_clip)
  dummy = types.Transition(observation=jnp.zeros(obs_size), action=jnp.zeros(action_size), reward=0.0,
                           discount=0.0, next_observation=jnp.zeros(obs_size),
                           extras={"state_extras": {"truncation": 0.0}, "policy_extras": {}})
  buffer = replay_buffers.UniformSamplingQueue(max_replay_size or num_timesteps, dummy,
                                               sample_batch_size=batch_size * grad_updates_per_step)

  def polyak(target, online):
    return jax.tree.map(lambda t, o: (1 - tau) * t + tau * o, target, online)

  def sgd_step(carry, t):
    ts, key = carry
    key, noise_key = jax.random.split(key)
    q_loss, q_grads = jax.value_and_grad(critic_loss)(ts.q_params, ts, t, noise_key)
    updates, q_opt_state = q_opt.update(q_grads, ts.q_opt_state, ts.q_params)
    q_params = optax.apply_updates(ts.q_params, updates)
    p_loss, p_grads = jax.value_and_grad(actor_loss)(ts.policy_params, ts, q_params, t)
    updates, p_opt_state = policy_opt.update(p_grads, ts.policy_opt_state, ts.policy_params)
    policy_params = optax.apply_updates(ts.policy_params, updates)
    delayed = ts.gradient_steps % policy_delay == 0  # the actor and the targets move together
    # ... once the critics have warmed up (without a warm-up: the plain TD3 program, unchanged)
    acts = delayed if actor_warmup == 0 else delayed & (ts.env_steps >= actor_from)
    pick = lambda when, new, old: jax.tree.map(lambda n, o: jnp.where(when, n, o), new, old)
    ts = ts._replace(q_params=q_params, q_opt_state=q_opt_state,
                     policy_params=pick(acts, policy_params, ts.policy_params),
                     policy_opt_state=pick(acts, p_opt_state, ts.policy_opt_state),
                     target_q_params=pick(delayed, polyak(ts.target_q_params, q_params), ts.target_q_params),
                     target_policy_params=pick(acts, polyak(ts.target_policy_params, policy_params),
                                               ts.target_policy_params),
                     gradient_steps=ts.gradient_steps + 1)
    return (ts, key), {"critic_loss": q_loss, "actor_loss": p_loss}

  def collect(ts, env_state, buffer_state, key, random: bool):
    if random:
      policy = lambda obs, k: (jax.random.uniform(k, (num_envs, action_size), minval=-1.0, maxval=1.0), {})
    else:
      policy = make_policy((ts.normalizer_params, ts.policy_params))
    env_state, t = acting.actor_step(env, env_state, policy, key, extra_fields=("truncation",))
    normalizer = running_statistics.update(ts.normalizer_params, t.observation) if normalize_observations \
        else ts.normalizer_params
    ts = ts._replace(normalizer_params=normalizer, env_steps=ts.env_steps + num_envs)
    return ts, env_state, buffer.insert(buffer_state, t)

  def training_step(carry, _):
    ts, env_state, buffer_state, key = carry
    key, act_key, sgd_key = jax.random.split(key, 3)
    ts, env_state, buffer_state = collect(ts, env_state, buffer_state, act_key, random=False)
    buffer_state, batch = buffer.sample(buffer_state)
    batch = jax.tree.map(lambda x: x.reshape((grad_updates_per_step, batch_size) + x.shape[1:]), batch)
    (ts, _), metrics = jax.lax.scan(sgd_step, (ts, sgd_key), batch)
    return (ts, env_state, buffer_state, key), metrics

  @jax.jit
  def epoch(carry):
    carry, metrics = jax.lax.scan(training_step, carry, None, length=steps_per_epoch)
    return carry, jax.tree.map(jnp.mean, metrics)

  @jax.jit
  def prefill(carry):
    def step(carry, _):
      ts, env_state, buffer_state, key = carry
      key, act_key = jax.random.split(key)
      ts, env_state, buffer_state = collect(ts, env_state, buffer_state, act_key, random=uniform_prefill)
      return (ts, env_state, buffer_state, key), None
    return jax.lax.scan(step, carry, None, length=prefill_steps)[0]

  def init():
    key = jax.random.PRNGKey(seed)
    key, policy_key, q_key, env_key, buffer_key = jax.random.split(key, 5)
    policy_params, q_params = networks.policy.init(policy_key), networks.q.init(q_key)
    normalizer = running_statistics.init_state(specs.Array((obs_size,), jnp.dtype("float32")))
    ts = TrainingState(policy_params, policy_params, policy_opt.init(policy_params), q_params, q_params,
                       q_opt.init(q_params), normalizer, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    return ts, env.reset(jax.random.split(env_key, num_envs)), buffer.init(buffer_key), key

  if resume is None:
    first, carry = 0, init()
    if policy_params_fn is not None:  # the policy before any env step
      policy_params_fn(0, make_policy, (carry[0].normalizer_params, carry[0].policy_params))
    carry = prefill(carry)
  else:  # (epoch, the carry's leaves as checkpoint_fn saw them)
    first, leaves = resume
    carry = jax.tree.unflatten(jax.tree.structure(jax.eval_shape(init)), [jnp.asarray(x) for x in leaves])
  metrics = {}
  for e in range(first + 1, num_evals + 1):
    carry, metrics = epoch(carry)
    ts = carry[0]
    step = int(ts.env_steps)
    params = (ts.normalizer_params, ts.policy_params)
    if policy_params_fn is not None:
      policy_params_fn(step, make_policy, params)
    if progress_fn is not None:
      progress_fn(step, {k: float(v) for k, v in metrics.items()})
    if checkpoint_fn is not None:  # last, so what the callbacks recorded is part of the checkpoint
      checkpoint_fn(e, carry)
  ts = carry[0]
  return make_policy, (ts.normalizer_params, ts.policy_params), metrics

