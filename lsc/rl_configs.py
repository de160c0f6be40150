"""The deep-RL baselines' settings as data: `PPOConfig`, `SACConfig`, `TD3Config`,
`DDPGConfig` (one per method, `CONFIGS`), and the checks that need no training code
(`resolve_config`, `min_budget`, `check_budget`, `devices_for`, `check_devices`).  Kept
apart from `lsc.baselines` so validating a run imports neither Brax nor MuJoCo;
`lsc.baselines` re-exports them."""

import dataclasses

import jax

from lsc.rollout import mjx_on_cpu


def _check_positive(config, names: tuple[str, ...]) -> None:
  for name in names:
    value = getattr(config, name)
    if value is not None and not value > 0:
      raise ValueError(f"{type(config).__name__}.{name} must be > 0, got {value}")


def _check_non_negative(config, names: tuple[str, ...]) -> None:
  for name in names:
    if not getattr(config, name) >= 0:  # NaN fails too
      raise ValueError(f"{type(config).__name__}.{name} must be >= 0, got {getattr(config, name)}")


def _check_replay(config) -> None:
  """The replay settings of an off-policy config (SAC, TD3, DDPG)."""
  _check_non_negative(config, ("min_replay_size",))
  if config.max_replay_size is not None and config.max_replay_size < config.num_envs:
    raise ValueError(f"{type(config).__name__}.max_replay_size = {config.max_replay_size} cannot hold one "
                     f"actor step of num_envs = {config.num_envs} transitions")


def _prefill_steps(config) -> int:
  """min_replay_size rounded up to whole actor steps of num_envs env steps."""
  return -(-config.min_replay_size // config.num_envs) * config.num_envs


def _check_hidden(config, names: tuple[str, ...]) -> None:
  for name in names:
    sizes = tuple(int(h) for h in getattr(config, name))
    if not sizes or any(h < 1 for h in sizes):
      raise ValueError(f"{type(config).__name__}.{name} must be a non-empty tuple of sizes >= 1, "
                       f"got {getattr(config, name)}")
    object.__setattr__(config, name, sizes)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
  """Brax PPO hyperparameters (argument of `brax.training.agents.ppo.train.train` in
  brackets).  Small defaults for CPU-sized runs; Brax's published MuJoCo settings use
  thousands of envs.  One training iteration takes `batch_size * num_minibatches *
  unroll_length` env steps (2,560 here); `batch_size * num_minibatches` must be a
  multiple of `num_envs` (Brax's requirement)."""
  num_envs: int = 32                    # [num_envs] parallel training envs
  unroll_length: int = 10               # [unroll_length] steps per env per rollout
  batch_size: int = 32                  # [batch_size] sequences per minibatch
  num_minibatches: int = 8              # [num_minibatches] SGD steps per pass
  num_updates_per_batch: int = 4        # [num_updates_per_batch] passes over each batch
  learning_rate: float = 3e-4           # [learning_rate] Adam
  entropy_cost: float = 1e-2            # [entropy_cost]
  discounting: float = 0.97             # [discounting]
  gae_lambda: float = 0.95              # [gae_lambda]
  clipping_epsilon: float = 0.3         # [clipping_epsilon]
  reward_scaling: float = 1.0           # [reward_scaling]
  max_grad_norm: float | None = None    # [max_grad_norm] None: no clipping
  normalize_observations: bool = True   # [normalize_observations] running mean/std
  policy_hidden: tuple[int, ...] = (32, 32)  # [network_factory: policy_hidden_layer_sizes]
  value_hidden: tuple[int, ...] = (64, 64)   # [network_factory: value_hidden_layer_sizes]
  max_devices: int | None = None        # [max_devices_per_host] None: see module docstring

  def __post_init__(self):
    _check_positive(self, ("num_envs", "unroll_length", "batch_size", "num_minibatches",
                           "num_updates_per_batch", "learning_rate", "discounting",
                           "reward_scaling", "max_grad_norm", "max_devices"))
    _check_hidden(self, ("policy_hidden", "value_hidden"))
    if (self.batch_size * self.num_minibatches) % self.num_envs:
      raise ValueError(f"PPOConfig: batch_size * num_minibatches = "
                       f"{self.batch_size * self.num_minibatches} must be a multiple of "
                       f"num_envs = {self.num_envs}")

  @property
  def steps_per_iteration(self) -> int:
    """Env steps of one training iteration (one rollout batch, then its SGD passes)."""
    return self.batch_size * self.num_minibatches * self.unroll_length


@dataclasses.dataclass(frozen=True)
class SACConfig:
  """Brax SAC hyperparameters (argument of `brax.training.agents.sac.train.train` in
  brackets).  Small defaults for CPU-sized runs.  One actor step takes `num_envs` env
  steps and is followed by `grad_updates_per_step` gradient steps on `batch_size`
  transitions; the first `min_replay_size` env steps only fill the replay buffer."""
  num_envs: int = 16                    # [num_envs] parallel training envs
  batch_size: int = 128                 # [batch_size] transitions per gradient step
  grad_updates_per_step: int = 1        # [grad_updates_per_step] per actor step
  learning_rate: float = 3e-4           # [learning_rate] Adam, policy and Q
  discounting: float = 0.99             # [discounting]
  tau: float = 0.005                    # [tau] target network averaging
  reward_scaling: float = 1.0           # [reward_scaling]
  min_replay_size: int = 1024           # [min_replay_size] prefill before learning
  max_replay_size: int | None = None    # [max_replay_size] None: the whole budget
  normalize_observations: bool = True   # [normalize_observations] running mean/std
  hidden: tuple[int, ...] = (64, 64)    # [network_factory: hidden_layer_sizes] policy and Q
  max_devices: int | None = None        # [max_devices_per_host] None: see module docstring
  # with an lsc policy as actor (lsc.off_policy's SAC, on one device): env steps after the
  # prefill for which only the critics learn (omit_default: Brax SAC's keys unchanged)
  actor_warmup: int = dataclasses.field(default=0, metadata={"omit_default": True})

  def __post_init__(self):
    _check_positive(self, ("num_envs", "batch_size", "grad_updates_per_step", "learning_rate",
                           "discounting", "tau", "reward_scaling", "max_replay_size",
                           "max_devices"))
    _check_non_negative(self, ("actor_warmup",))
    _check_replay(self)
    _check_hidden(self, ("hidden",))

  @property
  def prefill_steps(self) -> int:
    """Env steps Brax spends filling the replay buffer: min_replay_size rounded up to
    whole actor steps."""
    return _prefill_steps(self)


@dataclasses.dataclass(frozen=True)
class TD3Config:
  """TD3 hyperparameters (argument of `lsc.off_policy.train` in brackets).  The published
  defaults (Fujimoto et al. 2018, Table 3 and their reference code): actor and critic
  lr 3e-4, batch 256, tau 0.005, discount 0.99, policy noise 0.2, noise clip 0.5,
  policy delay 2, exploration noise 0.1, networks [256, 256], 25k random start steps,
  one gradient step per env step.  The CPU-sized defaults here keep every constant of
  the algorithm (lr, tau, discount, the noises, the delay) and shrink what costs wall
  time, as the PPO and SAC defaults do: 8 parallel envs with 4 gradient steps per actor
  step (one per 2 env steps), batch 128, [64, 64] networks, 1,024 random prefill steps."""
  num_envs: int = 8                     # [num_envs]
  batch_size: int = 128                 # [batch_size]
  grad_updates_per_step: int = 4        # [grad_updates_per_step] per actor step
  learning_rate: float = 3e-4           # [learning_rate] Adam, actor and critic
  discounting: float = 0.99             # [discounting]
  tau: float = 0.005                    # [tau] target averaging
  reward_scaling: float = 1.0           # [reward_scaling]
  min_replay_size: int = 1024           # [min_replay_size] uniform random actions first
  max_replay_size: int | None = None    # [max_replay_size] None: the whole budget
  exploration_noise: float = 0.1        # [exploration_noise] Gaussian std on actions in [-1, 1]
  policy_noise: float = 0.2             # [policy_noise] target smoothing std (0: none)
  noise_clip: float = 0.5               # [noise_clip]
  policy_delay: int = 2                 # [policy_delay] critic steps per actor step
  n_critics: int = 2                    # [n_critics] the target is the smallest
  normalize_observations: bool = True   # [normalize_observations]
  hidden: tuple[int, ...] = (64, 64)    # [hidden_layer_sizes] actor and critics
  # for an actor that starts from a chosen policy (lsc.baselines.PolicyActor): what fills the
  # replay buffer first ("uniform" random actions; "actor": the starting actor with
  # exploration noise) and for how many env steps after that only the critics learn
  # (omit_default: at their defaults, plain TD3's program, so they stay out of the stage
  # keys and checkpoint identities written before they existed)
  prefill: str = dataclasses.field(default="uniform", metadata={"omit_default": True})  # [prefill] or "actor"
  actor_warmup: int = dataclasses.field(default=0, metadata={"omit_default": True})  # [actor_warmup] env steps
  # a latent actor's state-conditioned head (`lsc.baselines.PolicyActor.head`): its hidden
  # layer sizes, () for none, the code then the same in every state (omit_default, as above)
  latent_head: tuple[int, ...] = dataclasses.field(default=(), metadata={"omit_default": True})

  def __post_init__(self):
    _check_positive(self, ("num_envs", "batch_size", "grad_updates_per_step", "learning_rate", "discounting",
                           "tau", "reward_scaling", "max_replay_size", "policy_delay", "n_critics"))
    _check_non_negative(self, ("exploration_noise", "policy_noise", "noise_clip", "actor_warmup"))
    if self.prefill not in ("uniform", "actor"):
      raise ValueError(f"{type(self).__name__}.prefill must be 'uniform' or 'actor', got {self.prefill!r}")
    head = tuple(int(h) for h in self.latent_head)
    if any(h < 1 for h in head):
      raise ValueError(f"{type(self).__name__}.latent_head must be () (no head) or hidden sizes >= 1, "
                       f"got {self.latent_head}")
    object.__setattr__(self, "latent_head", head)
    _check_replay(self)
    _check_hidden(self, ("hidden",))

  @property
  def prefill_steps(self) -> int:
    """Env steps of random actions before learning: min_replay_size in whole actor steps."""
    return _prefill_steps(self)


@dataclasses.dataclass(frozen=True)
class DDPGConfig(TD3Config):
  """DDPG (Lillicrap et al. 2016) as the TD3 paper's "our DDPG" baseline: TD3 with one
  critic, no target smoothing and an actor update every step; everything else as
  TD3Config."""
  policy_noise: float = 0.0
  policy_delay: int = 1
  n_critics: int = 1


CONFIGS = {"ppo": PPOConfig, "sac": SACConfig, "td3": TD3Config, "ddpg": DDPGConfig}
RESUMABLE = ("td3", "ddpg")  # checkpointed every epoch (lsc.off_policy); Brax's PPO and SAC cannot resume
ACTOR_AGENTS = ("td3", "ddpg", "sac")  # take an lsc policy as actor (lsc.off_policy: then SAC resumes too)


def resumable(method: str, actor: bool = False) -> bool:
  """Whether `method` trains in `lsc.off_policy` (so checkpoints every epoch and
  resumes): TD3 and DDPG always, SAC with an lsc policy as its actor."""
  return method in RESUMABLE or (actor and method in ACTOR_AGENTS)


def check_method(method: str) -> str:
  """Returns `method` if it is a known baseline, else raises ValueError listing them."""
  if method not in CONFIGS:
    raise ValueError(f"unknown baseline method {method!r}; valid methods: {', '.join(CONFIGS)}")
  return method


def resolve_config(method: str, config: PPOConfig | SACConfig | None = None) -> PPOConfig | SACConfig:
  """`config`, or the default config of `method` ('ppo' | 'sac') if None; ValueError for
  an unknown method or a config of the other method."""
  config = CONFIGS[check_method(method)]() if config is None else config
  if type(config) is not CONFIGS[method]:
    raise ValueError(f"method {method!r} needs a {CONFIGS[method].__name__}, "
                     f"got {type(config).__name__}")
  return config


def min_budget(method: str, config: PPOConfig | SACConfig | None = None, n_evals: int = 10) -> int:
  """The smallest budget (env steps) that gives each of the n_evals evaluation
  intervals at least one training iteration (PPO) or actor step (SAC, TD3, DDPG) with
  the replay prefill inside the first interval (`lsc.baselines.brax_timesteps`)."""
  config = resolve_config(method, config)
  if method == "ppo":
    return n_evals * config.steps_per_iteration
  return n_evals * (config.prefill_steps + config.num_envs)


def devices_for(config, backend: str, actor: bool = False) -> int:
  """Local devices Brax pmaps `config`'s training over on physics `backend`: every local
  device (one for MJX on a CPU, as lsc's rollouts), at most `config.max_devices`; TD3
  and DDPG, and SAC with an lsc policy as `actor` (`lsc.off_policy`), train on one."""
  if isinstance(config, TD3Config) or actor:
    return 1
  n = 1 if mjx_on_cpu(backend) else jax.local_device_count()
  return n if config.max_devices is None else min(n, config.max_devices)


def check_devices(config, backend: str, actor: bool = False) -> int:
  """ValueError unless the sizes Brax splits over devices divide among the devices
  training on `backend` uses (`devices_for`); returns their number."""
  n_devices = devices_for(config, backend, actor)
  for name in ("num_envs", "batch_size"):
    if getattr(config, name) % n_devices:
      raise ValueError(f"{type(config).__name__}.{name} = {getattr(config, name)} must be divisible "
                       f"by the {n_devices} devices Brax trains on (or set max_devices)")
  return n_devices


def check_budget(method: str, budget: int, config=None, n_evals: int = 10) -> None:
  """ValueError unless `budget` env steps give each of the n_evals evaluation intervals
  a training iteration (PPO) or actor step (SAC, TD3, DDPG) after any prefill."""
  config = resolve_config(method, config)
  needed = min_budget(method, config, n_evals)
  if budget < needed:
    unit = (f"{config.steps_per_iteration} env steps per training iteration" if method == "ppo"
            else f"{config.prefill_steps} prefill steps + {config.num_envs} env steps per actor step, "
                 "in every interval")
    raise ValueError(f"budget {budget} is too small for {method} with n_evals={n_evals}: "
                     f"needs at least {needed} ({unit}, at least one per evaluation interval)")
