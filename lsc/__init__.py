"""lsc: compress the parameter space of policies into a behaviour space, then search it.

Stages (see DESIGN.md): random pool -> novelty-filtered dataset -> behaviour
autoencoder -> latent search.  This package holds the shared engine: environments
and tasks (`lsc.envs`, `lsc.tasks`), flat-vector MLP policies (`lsc.policy`),
population rollouts (`lsc.rollout`), the evaluation protocol (`lsc.evaluation`),
configs (`lsc.config`) and artifacts (`lsc.checkpoint`).
"""

from lsc.jax_setup import enable_compilation_cache, use_cpu_cores

__version__ = "0.1.0"
__all__ = ["enable_compilation_cache", "use_cpu_cores", "__version__"]
