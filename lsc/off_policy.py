"""Off-policy actor-critic training on one device: TD3 (Fujimoto et al. 2018), DDPG and
SAC, in the shape of Brax's SAC and built from Brax's parts: its training wrappers,
`acting.actor_step`, `UniformSamplingQueue` replay buffer, network factories
(`make_policy_network`, `make_q_network`, `make_sac_networks`), SAC losses and running
observation statistics, with the `train(environment, num_timesteps, ..., progress_fn)`
convention.  Brax 0.14 has neither TD3 nor DDPG; its SAC cannot resume or take another
actor, so lsc's baselines run SAC here when its actor is an lsc policy.

TD3: a deterministic policy a = tanh(mu(s)), twin critics, targets from the smaller
target critic at a target action smoothed by clipped Gaussian noise, the actor and
both target networks updated every `policy_delay` critic steps.  DDPG here is the
TD3 paper's "our DDPG": one critic, no target smoothing, every step an actor update
(`n_critics=1, policy_delay=1, policy_noise=0`), the same optimiser and sizes.

SAC (`algorithm="sac"`; Haarnoja et al. 2018, as Brax 0.14.2's `agents.sac`): a tanh-
normal policy, twin critics, a learned temperature (log alpha from 0, Adam 3e-4, target
entropy -A/2), Brax's three losses in its order per gradient step (temperature, critics,
then the actor against the critics before this step's update), the target critics
averaged every step, exploration and prefill by sampling the policy.  An actor network
of pre-tanh actions (A,) (`policy_network`, e.g. an lsc policy) gets a state-independent
scale: its parameters become (the network's, raw scale (A,) from 0: std
softplus(0) + 0.001 = 0.694, Brax's MLP's at its init), and its mode is tanh of the
network's output, so the deterministic policy is the network's own.

Step accounting is SAC's: `num_envs` parallel envs, one env step each per actor step,
then `grad_updates_per_step` gradient steps; the first `min_replay_size` env steps
(rounded up to whole actor steps) fill the buffer (TD3: uniform random actions; SAC:
its actor's samples).
Training runs on one device (the envs are vmapped); each epoch is one jit-compiled
`lax.scan` over its actor steps.  A run can resume at an epoch boundary from the carry
`checkpoint_fn` was handed there.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from brax import envs
from brax.training import acting, distribution, replay_buffers, types
from brax.training import networks as brax_networks
from brax.training.acme import running_statistics, specs
from brax.training.agents.sac import losses as sac_losses
from brax.training.agents.sac import networks as sac_networks

ALGORITHMS = ("td3", "sac")  # DDPG is TD3's settings


class Networks(NamedTuple):
  policy: brax_networks.FeedForwardNetwork  # TD3: obs -> pre-tanh action (A,); SAC: -> (loc, raw scale) (2A,)
  q: brax_networks.FeedForwardNetwork  # (obs, action) -> (n_critics,)
  distribution: Any = None  # SAC's tanh-normal (Brax's `NormalTanhDistribution`); None for TD3


def with_scale(network: brax_networks.FeedForwardNetwork, action_size: int) -> brax_networks.FeedForwardNetwork:
  """A network of pre-tanh actions (A,) as SAC's policy network: parameters (the
  network's, raw scale (A,) from 0), output (..., 2A) = its actions, then the raw scale
  (state-independent) broadcast over the batch."""
  def apply(normalizer, params, obs):
    loc = network.apply(normalizer, params[0], obs)
    return jnp.concatenate([loc, jnp.broadcast_to(params[1], loc.shape)], axis=-1)
  return brax_networks.FeedForwardNetwork(init=lambda key: (network.init(key), jnp.zeros(action_size, jnp.float32)),
                                          apply=apply)


def make_networks(obs_size: int, action_size: int, preprocess_observations_fn=types.identity_observation_preprocessor,
                  hidden_layer_sizes=(256, 256), n_critics: int = 2, algorithm: str = "td3",
                  policy_network: brax_networks.FeedForwardNetwork | None = None) -> Networks:
  """`algorithm`'s networks: Brax's Q network and policy MLP (TD3: output A, tanh
  applied by `make_inference_fn`; SAC: Brax's SAC policy, output 2A), or
  `policy_network` (pre-tanh actions (A,); for SAC given a scale by `with_scale`)."""
  if algorithm not in ALGORITHMS:
    raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
  q = brax_networks.make_q_network(obs_size, action_size, preprocess_observations_fn,
                                   hidden_layer_sizes=hidden_layer_sizes, n_critics=n_critics)
  if algorithm == "sac":
    if policy_network is not None:
      return Networks(with_scale(policy_network, action_size), q, distribution.NormalTanhDistribution(action_size))
    sac = sac_networks.make_sac_networks(obs_size, action_size, preprocess_observations_fn,
                                         hidden_layer_sizes=hidden_layer_sizes)
    return Networks(sac.policy_network, q, sac.parametric_action_distribution)
  policy = policy_network or brax_networks.make_policy_network(action_size, obs_size, preprocess_observations_fn,
                                                               hidden_layer_sizes=hidden_layer_sizes)
  return Networks(policy, q)


def make_inference_fn(networks: Networks, exploration_noise: float = 0.1):
  """Brax's `make_policy(params, deterministic=False)`; params = (normalizer, policy).
  TD3: deterministic tanh(mu(s)); otherwise Gaussian noise of std `exploration_noise`
  added and the action clipped to [-1, 1].  SAC: the tanh-normal's mode, or a sample."""
  if networks.distribution is not None:
    return sac_networks.make_inference_fn(sac_networks.SACNetworks(networks.policy, networks.q, networks.distribution))

  def make_policy(params, deterministic: bool = False):
    normalizer, policy_params = params

    def policy(obs, key):
      action = jnp.tanh(networks.policy.apply(normalizer, policy_params, obs))
      if not deterministic:
        action = jnp.clip(action + exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)
      return action, {}
    return policy
  return make_policy


class Frozen(NamedTuple):
  """An actor's parameters with a part no update touches, e.g. a latent actor's code u
  (`train`) and the decoder it is read through (`frozen`): only `train` gets gradients,
  Adam's state and the target's averaging; `frozen` is carried as it is, in the target
  too (a frozen decoder of 10^5 weights would otherwise cost each gradient step an Adam
  update and an average over all of them)."""
  train: Any
  frozen: Any


def trained(params):
  """The part of actor parameters `params` that updates move: all of them unless `Frozen`."""
  return params.train if isinstance(params, Frozen) else params


def with_trained(params, train):
  """`params` with its trained part replaced by `train`."""
  return params._replace(train=train) if isinstance(params, Frozen) else train


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
  log_alpha: Any = ()  # SAC's temperature, log alpha (); TD3: none (no leaves: its checkpoints unchanged)
  alpha_opt_state: Any = ()


def _td3_losses(networks: Networks, discounting: float, reward_scaling: float, policy_noise: float, noise_clip: float):
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
          policy_network: brax_networks.FeedForwardNetwork | None = None, prefill: str | None = None,
          actor_warmup: int = 0, algorithm: str = "td3"):
  """Trains TD3 (defaults), DDPG (`n_critics=1, policy_delay=1, policy_noise=0`) or SAC
  (`algorithm="sac"`; the TD3-only settings `exploration_noise`, `policy_noise`,
  `noise_clip` and `policy_delay` are ignored) on `environment` for at most
  `num_timesteps` env steps: the prefill, then `num_evals` epochs of equal whole actor
  steps.  Before any env step `policy_params_fn(0,
  make_policy, params)` (not on a resume); after epoch e (1-based) with `step` env steps
  taken, `policy_params_fn(step, make_policy, params)`, `progress_fn(step, metrics)`
  and then `checkpoint_fn(e, carry)` are called (carry: a pytree of arrays);
  `resume=(e, jax.tree.leaves(carry))` continues after epoch e exactly as the
  uninterrupted run would.  `policy_network` replaces Brax's policy MLP as the actor
  (`init(key) -> params`, `apply(normalizer, params, obs) -> pre-tanh action (A,)`: e.g.
  an lsc policy over its flat parameters, started where another method ended); every
  other draw of the run is unchanged.  `prefill` "actor" fills the buffer with the
  starting actor's exploring actions (TD3: noisy; SAC: sampled) instead of "uniform"
  random ones (None: TD3's "uniform", SAC's "actor", as each algorithm's reference does), and for `actor_warmup` env steps after the prefill
  only the critics (and their targets) learn (SAC: and not its temperature), so a
  chosen start is not moved by an untrained critic.  Returns (make_policy, params, metrics),
  params = (normalizer, policy)."""
  obs_size, action_size = environment.observation_size, environment.action_size
  prefill_steps = -(-min_replay_size // num_envs)
  actor_from = prefill_steps * num_envs + actor_warmup  # env steps before the actor's first update
  prefill = prefill or ("actor" if algorithm == "sac" else "uniform")
  if prefill not in ("uniform", "actor"):
    raise ValueError(f"prefill must be 'uniform' or 'actor', got {prefill!r}")
  uniform_prefill = prefill == "uniform"  # (the name `prefill` is the compiled prefill below)
  steps_per_epoch = (num_timesteps // num_envs - prefill_steps) // num_evals
  if steps_per_epoch < 1:
    raise ValueError(f"num_timesteps {num_timesteps} leaves no actor step per epoch after the prefill")
  env = envs.training.wrap(environment, episode_length=episode_length)
  normalize = running_statistics.normalize if normalize_observations else types.identity_observation_preprocessor
  networks = make_networks(obs_size, action_size, normalize, hidden_layer_sizes, n_critics, algorithm,
                           policy_network)
  make_policy = make_inference_fn(networks, exploration_noise)
  policy_opt, q_opt = optax.adam(learning_rate), optax.adam(learning_rate)
  alpha_opt = optax.adam(3e-4)  # Brax's SAC: the temperature's own fixed step size
  dummy = types.Transition(observation=jnp.zeros(obs_size), action=jnp.zeros(action_size), reward=0.0,
                           discount=0.0, next_observation=jnp.zeros(obs_size),
                           extras={"state_extras": {"truncation": 0.0}, "policy_extras": {}})
  buffer = replay_buffers.UniformSamplingQueue(max_replay_size or num_timesteps, dummy,
                                               sample_batch_size=batch_size * grad_updates_per_step)

  def polyak(target, online):
    return jax.tree.map(lambda t, o: (1 - tau) * t + tau * o, target, online)

  pick = lambda when, new, old: jax.tree.map(lambda n, o: jnp.where(when, n, o), new, old)

  def td3_step(carry, t):
    ts, key = carry
    key, noise_key = jax.random.split(key)
    q_loss, q_grads = jax.value_and_grad(critic_loss)(ts.q_params, ts, t, noise_key)
    updates, q_opt_state = q_opt.update(q_grads, ts.q_opt_state, ts.q_params)
    q_params = optax.apply_updates(ts.q_params, updates)
    moved = trained(ts.policy_params)
    p_loss, p_grads = jax.value_and_grad(lambda p: actor_loss(with_trained(ts.policy_params, p), ts, q_params, t))(moved)
    updates, p_opt_state = policy_opt.update(p_grads, ts.policy_opt_state, moved)
    policy_params = optax.apply_updates(moved, updates)
    target = trained(ts.target_policy_params)
    delayed = ts.gradient_steps % policy_delay == 0  # the actor and the targets move together
    # ... once the critics have warmed up (without a warm-up: the plain TD3 program, unchanged)
    acts = delayed if actor_warmup == 0 else delayed & (ts.env_steps >= actor_from)
    ts = ts._replace(q_params=q_params, q_opt_state=q_opt_state,
                     policy_params=with_trained(ts.policy_params, pick(acts, policy_params, moved)),
                     policy_opt_state=pick(acts, p_opt_state, ts.policy_opt_state),
                     target_q_params=pick(delayed, polyak(ts.target_q_params, q_params), ts.target_q_params),
                     target_policy_params=with_trained(ts.target_policy_params,
                                                       pick(acts, polyak(target, policy_params), target)),
                     gradient_steps=ts.gradient_steps + 1)
    return (ts, key), {"critic_loss": q_loss, "actor_loss": p_loss}

  def sac_step(carry, t):  # Brax's sgd_step: each loss at the state before this step's updates
    ts, key = carry
    key, alpha_key, critic_key, actor_key = jax.random.split(key, 4)
    a_loss, a_grads = jax.value_and_grad(alpha_loss)(ts.log_alpha, ts.policy_params, ts.normalizer_params, t,
                                                     alpha_key)
    updates, alpha_opt_state = alpha_opt.update(a_grads, ts.alpha_opt_state, ts.log_alpha)
    log_alpha = optax.apply_updates(ts.log_alpha, updates)
    alpha = jnp.exp(ts.log_alpha)
    q_loss, q_grads = jax.value_and_grad(sac_critic_loss)(ts.q_params, ts.policy_params, ts.normalizer_params,
                                                          ts.target_q_params, alpha, t, critic_key)
    updates, q_opt_state = q_opt.update(q_grads, ts.q_opt_state, ts.q_params)
    q_params = optax.apply_updates(ts.q_params, updates)
    moved = trained(ts.policy_params)
    p_loss, p_grads = jax.value_and_grad(
        lambda p: sac_actor_loss(with_trained(ts.policy_params, p), ts.normalizer_params, ts.q_params, alpha, t,
                                 actor_key))(moved)
    updates, p_opt_state = policy_opt.update(p_grads, ts.policy_opt_state, moved)
    policy_params = optax.apply_updates(moved, updates)
    acts = True if actor_warmup == 0 else ts.env_steps >= actor_from
    ts = ts._replace(q_params=q_params, q_opt_state=q_opt_state, target_q_params=polyak(ts.target_q_params, q_params),
                     policy_params=with_trained(ts.policy_params, pick(acts, policy_params, moved)),
                     policy_opt_state=pick(acts, p_opt_state, ts.policy_opt_state),
                     log_alpha=pick(acts, log_alpha, ts.log_alpha),
                     alpha_opt_state=pick(acts, alpha_opt_state, ts.alpha_opt_state),
                     gradient_steps=ts.gradient_steps + 1)
    return (ts, key), {"critic_loss": q_loss, "actor_loss": p_loss, "alpha_loss": a_loss, "alpha": jnp.exp(ts.log_alpha)}

  if algorithm == "sac":
    alpha_loss, sac_critic_loss, sac_actor_loss = sac_losses.make_losses(
        sac_networks.SACNetworks(networks.policy, networks.q, networks.distribution), reward_scaling, discounting,
        action_size)
    sgd_step = sac_step
  else:
    critic_loss, actor_loss = _td3_losses(networks, discounting, reward_scaling, policy_noise, noise_clip)
    sgd_step = td3_step

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
    zero = jnp.zeros((), jnp.int32)
    if algorithm == "sac":  # no target actor; the temperature from alpha = 1
      log_alpha = jnp.zeros((), jnp.float32)
      ts = TrainingState(policy_params, (), policy_opt.init(trained(policy_params)), q_params, q_params, q_opt.init(q_params),
                         normalizer, zero, zero, log_alpha, alpha_opt.init(log_alpha))
    else:
      ts = TrainingState(policy_params, policy_params, policy_opt.init(trained(policy_params)), q_params, q_params,
                         q_opt.init(q_params), normalizer, zero, zero)
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

