"""Evolution strategies as settings: one frozen dataclass per strategy, each building its
`evosax.algorithms` strategy over R^dim.

Every strategy runs in the normalised coordinates u of a search space (`lsc.search`:
z = center + scale * u), so `std_init` (and `lr`, where a strategy has one) is in units
of the space's spread and means the same in a 3-D latent space and in a 10^4-D parameter
space.  `population` candidates are scored per generation, each on `episodes` episodes.

A new strategy is a subclass: name its evosax class in `algorithm` (any distribution-based
one: it keeps a `mean` and a `std`); override `strategy_kwargs` for the class's keyword
arguments and `params` for its hyper-parameters when `std_init` is not all it takes:

    @dataclasses.dataclass(frozen=True)
    class XNESConfig(StrategyConfig):
      algorithm: ClassVar[str] = "xNES"

It then runs in any space through `lsc.methods.SearchMethod`, compiled like the others.
"""

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import optax
from evosax.core.optimizer import clipup

from lsc.validate import check_finite, check_int

OPTIMIZERS = ("adam", "sgd", "clipup")
CENTERS = ("mean", "zero")
# std_init and lr are in units of the space's spread (the dataset's or the init
# distribution's); a thousand spreads is far past any policy a space describes (the
# sweeps use at most 1), and at 1e30 the candidates' activations overflow float32
SPREAD_MAX = 1e3
# the bounds CMA-ES and Sep-CMA-ES keep their step size in (in spreads): evosax lets CMA-ES's
# grow to 1e8 and shrink to 0, and on a plateau (a decoder saturated far from its data) the
# step-size adaptation walks there: the centre drifts to where float32 cannot tell the
# candidates apart, the std underflows to 0 and (candidate - centre) / std is 0 / 0
STD_BOUNDS = (1e-6, SPREAD_MAX)


def _slim_metrics(key, population, fitness, state, params) -> dict:
  return {}  # evosax's default copies the best solution and mean every generation


@dataclasses.dataclass(frozen=True)
class StrategyConfig:
  """What every strategy takes.  Subclasses set `algorithm` (the evosax class name),
  `antithetic` (the population comes in mirrored pairs: it must be even) and `max_dim`
  (the largest space it can search, None: any)."""
  population: int = 64  # candidates per generation
  episodes: int = 3  # episodes per candidate per generation
  std_init: float = 0.5  # the initial search std, in units of the space's spread
  center: str = "mean"  # mean: start at the space's centre; zero: at z = 0
  # the step size is clipped to [std_min, std_max] (spreads) after every generation; None:
  # unbounded (recorded only when set: the keys of runs from before the bounds still match)
  std_min: float | None = dataclasses.field(default=None, metadata={"omit_default": True})
  std_max: float | None = dataclasses.field(default=None, metadata={"omit_default": True})

  algorithm: ClassVar[str] = ""
  antithetic: ClassVar[bool] = False
  max_dim: ClassVar[int | None] = None

  def check(self) -> None:
    """Raises ValueError naming any bad field."""
    check_int("population", self.population)
    check_int("episodes", self.episodes)
    for name in self.step_sizes():
      check_finite(name, getattr(self, name))
    if self.population < 2 or (self.antithetic and self.population % 2):
      rule = "even and >= 2 (antithetic pairs)" if self.antithetic else ">= 2"
      raise ValueError(f"population must be {rule}, got {self.population}")
    if self.episodes < 1:
      raise ValueError(f"episodes must be >= 1, got {self.episodes}")
    for name, value in self.step_sizes().items():
      if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
      if value > SPREAD_MAX:
        raise ValueError(f"{name} = {value:g} is in units of the search space's spread: above "
                         f"{SPREAD_MAX:g} the candidates leave every policy the space was built from; make it smaller")
    if self.center not in CENTERS:
      raise ValueError(f"unknown center {self.center!r}; valid: {', '.join(CENTERS)}")
    for name in ("std_min", "std_max"):
      if getattr(self, name) is not None:
        check_finite(name, getattr(self, name))
    if self.std_min is not None and not self.std_min > 0:  # a floor of 0 lets the std underflow to 0
      raise ValueError(f"std_min must be > 0 (or null: unbounded), got {self.std_min}")
    low = 0.0 if self.std_min is None else self.std_min
    high = SPREAD_MAX if self.std_max is None else self.std_max
    if not low < self.std_init <= high <= SPREAD_MAX:
      raise ValueError(f"need 0 < std_min < std_init <= std_max <= {SPREAD_MAX:g} (spreads); got std_min "
                       f"{self.std_min}, std_init {self.std_init:g}, std_max {self.std_max}")

  def check_dim(self, dim: int, space: str = "search") -> None:
    """Raises ValueError if the strategy cannot search a `dim`-dimensional space."""
    if self.max_dim is not None and dim > self.max_dim:
      raise ValueError(f"{type(self).__name__} keeps state quadratic in the dimension: at most {self.max_dim:,} "
                       f"dims, but the {space} space has {dim:,}; use a diagonal strategy (Sep-CMA-ES, SNES, "
                       "PGPE) there")

  def step_sizes(self) -> dict[str, float]:
    """{name: value} of the settings in units of the space's spread (checked > 0 and
    at most SPREAD_MAX; named when a search diverges)."""
    return {"std_init": self.std_init}

  def strategy_kwargs(self) -> dict:
    """Keyword arguments of the evosax class besides the population and solution."""
    return {}

  def bound(self, state):
    """The evosax `state` with its std clipped to [std_min, std_max] (the unset bound open)."""
    if self.std_min is None and self.std_max is None:
      return state
    return state.replace(std=jnp.clip(state.std, self.std_min, self.std_max))

  def params(self, params):
    """The evosax strategy's hyper-parameters `params` with these settings in place."""
    return params.replace(std_init=self.std_init)

  def build(self, dim: int):
    """(the evosax strategy over R^dim, its params)."""
    import evosax.algorithms  # here, not at the top: importing it starts JAX, which a command sets up first
    if not self.algorithm:
      raise TypeError(f"{type(self).__name__} names no evosax algorithm")
    cls = getattr(evosax.algorithms, self.algorithm)
    strategy = cls(self.population, jnp.zeros(dim), metrics_fn=_slim_metrics, **self.strategy_kwargs())
    return strategy, self.params(strategy.default_params)


def make_optimizer(name: str, lr: float) -> optax.GradientTransformation:
  """The centre's optimizer `name` (OPTIMIZERS) with step size `lr`."""
  if name == "adam":
    return optax.adam(lr)
  if name == "sgd":
    return optax.sgd(lr, momentum=0.9)
  return clipup(learning_rate=lr / 2, max_velocity=lr)


@dataclasses.dataclass(frozen=True)
class PGPEConfig(StrategyConfig):
  """PGPE (Sehnke et al., 2010): a diagonal Gaussian whose centre follows an optimizer
  and whose std its own gradient."""
  lr: float = 0.1  # step size of the centre's optimizer
  optimizer: str = "adam"  # adam | sgd | clipup (evosax's default; lr then caps the speed)
  std_lr: float = 0.1
  std_max_change: float = 0.2  # per generation, relative

  algorithm: ClassVar[str] = "PGPE"
  antithetic: ClassVar[bool] = True

  def check(self) -> None:
    super().check()
    check_finite("std_lr", self.std_lr)
    check_finite("std_max_change", self.std_max_change)
    if self.std_lr < 0 or not 0 <= self.std_max_change < 1:
      raise ValueError(f"need std_lr >= 0 and 0 <= std_max_change < 1; got {self.std_lr}, {self.std_max_change}")
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")

  def step_sizes(self) -> dict[str, float]:
    return {"std_init": self.std_init, "lr": self.lr}

  def strategy_kwargs(self) -> dict:
    return {"optimizer": make_optimizer(self.optimizer, self.lr)}

  def params(self, params):
    return params.replace(std_init=self.std_init, std_lr=self.std_lr, std_max_change=self.std_max_change)


@dataclasses.dataclass(frozen=True)
class OpenESConfig(StrategyConfig):
  """OpenAI-ES (Salimans et al., 2017): an isotropic Gaussian of fixed std `std_init`
  whose centre follows an optimizer."""
  lr: float = 0.1  # step size of the centre's optimizer
  optimizer: str = "adam"  # adam | sgd | clipup

  algorithm: ClassVar[str] = "Open_ES"
  antithetic: ClassVar[bool] = True

  def check(self) -> None:
    super().check()
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")

  def step_sizes(self) -> dict[str, float]:
    return {"std_init": self.std_init, "lr": self.lr}

  def strategy_kwargs(self) -> dict:
    return {"optimizer": make_optimizer(self.optimizer, self.lr),
            "std_schedule": optax.constant_schedule(self.std_init)}

  def params(self, params):
    return params  # the std is the schedule's


@dataclasses.dataclass(frozen=True)
class CMAESConfig(StrategyConfig):
  """CMA-ES (Hansen, 2016): a full covariance, adapted from the ranked population; its
  step size by cumulative path length, kept in STD_BOUNDS.  evosax's defaults for every
  rate."""
  std_min: float | None = STD_BOUNDS[0]
  std_max: float | None = STD_BOUNDS[1]

  algorithm: ClassVar[str] = "CMA_ES"
  max_dim: ClassVar[int | None] = 4096  # a dim x dim covariance and its eigendecomposition every generation


@dataclasses.dataclass(frozen=True)
class SepCMAESConfig(StrategyConfig):
  """Sep-CMA-ES (Ros and Hansen, 2008): CMA-ES with a diagonal covariance, linear in
  the dimension; its step size kept in STD_BOUNDS."""
  std_min: float | None = STD_BOUNDS[0]
  std_max: float | None = STD_BOUNDS[1]

  algorithm: ClassVar[str] = "Sep_CMA_ES"


@dataclasses.dataclass(frozen=True)
class SNESConfig(StrategyConfig):
  """Separable natural evolution strategy (Schaul et al., 2011): a diagonal Gaussian
  following the natural gradient, with evosax's default rates."""
  algorithm: ClassVar[str] = "SNES"
