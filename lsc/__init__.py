"""lsc: compress the parameter space of policies into a behaviour space, then search it.

Stages (see DESIGN.md): random pool -> novelty-filtered dataset -> behaviour
autoencoder -> latent search.  Modules: environments and tasks (`lsc.envs`,
`lsc.tasks`), flat-vector MLP policies (`lsc.policy`), population rollouts
(`lsc.rollout`), the evaluation protocol (`lsc.evaluation`), kNN novelty and the
dataset stage (`lsc.novelty`, `lsc.dataset`), PGPE search (`lsc.search`), the PPO /
SAC baselines (`lsc.baselines`, with `lsc.compat` for Brax on this JAX), plots
(`lsc.plots`), configs (`lsc.config`) and artifacts (`lsc.checkpoint`).
"""

from lsc.jax_setup import enable_compilation_cache, use_cpu_cores

__version__ = "0.1.0"
__all__ = ["enable_compilation_cache", "use_cpu_cores", "__version__"]
