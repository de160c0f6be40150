"""lsc: compress the parameter space of policies into a behaviour space, then search it.

Stages (README.md, docs/): random pool -> novelty-filtered dataset -> behaviour
autoencoder -> latent search.  The public API is importable from `lsc` itself (loaded on
first use, so `import lsc` is quick); the modules behind it: environments, their
registry (`lsc.envs`, `lsc.envs.registry`: `register_env(EnvSpec(...))` adds one;
`as_env(obj)` adopts any Brax-protocol env object) and tasks (`lsc.tasks`: reward
functions of a `Transition`; `with_tasks` adds your own), flat-vector MLP policies (`lsc.policy`), population rollouts
(`lsc.rollout`), the evaluation protocol (`lsc.evaluation`), kNN novelty and the dataset
stage (`lsc.novelty`, `lsc.dataset`), the behaviour autoencoder and its training
(`lsc.autoencoder`, `lsc.occupancy`, `lsc.training`, `lsc.compression`, `lsc.metrics`), evolution
strategies (`lsc.strategies`) and the compiled search (`lsc.search`), the RL baselines
(`lsc.baselines`), the methods' registry and runner (`lsc.methods`), progress
(`lsc.progress`), configs (`lsc.config`), artifacts and run directories
(`lsc.checkpoint`, `lsc.rundir`).
"""

import importlib

from lsc.jax_setup import enable_compilation_cache, quiet_dependencies, setup_command_line, use_cpu_cores

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "lsc.envs": ("make_env", "register_env", "EnvSpec", "get_env_spec", "env_names", "env_spec", "as_env", "State"),
    "lsc.tasks": ("task_names", "Task", "Transition", "with_tasks"),
    "lsc.policy": ("make_policy", "MLPPolicy"),
    "lsc.config": ("EnvConfig", "PolicyConfig"),
    "lsc.evaluation": ("EvalProtocol", "evaluate", "evaluate_pool", "evaluate_members"),
    "lsc.novelty": ("knn",),  # `lsc.rollout.rollout`, `lsc.novelty.novelty`: their modules' names
    "lsc.dataset": ("CollectConfig", "Dataset", "collect", "save_dataset", "load_dataset"),
    "lsc.autoencoder": ("Autoencoder", "Decoder"),
    "lsc.occupancy": ("OccupancyBatch",),
    "lsc.training": ("TrainConfig", "TrainState", "train_init", "train_step", "Trainer", "train", "load_autoencoder",
                     "TrainedAutoencoder"),
    "lsc.compression": ("compress", "Compressed", "RECOVERY_PROTOCOL"),
    "lsc.metrics": ("recovery_report",),
    "lsc.strategies": ("StrategyConfig", "PGPEConfig", "CMAESConfig", "SepCMAESConfig", "OpenESConfig",
                       "SNESConfig"),
    "lsc.search": ("SearchSpace", "make_space", "euclidean_space", "identity_space", "linear_space",
                   "decoder_space", "search_init", "search_ask", "search_tell", "search_step", "search_center",
                   "make_fitness", "Scores", "Search", "SearchResult", "run_search", "SEARCH_EVAL"),
    "lsc.baselines": ("train_baseline", "TaskReward", "PolicyActor"),
    "lsc.methods": ("METHODS", "register", "get_method", "SearchMethod", "Sequence", "SequenceConfig", "RLMethod",
                    "MethodConfigs", "run_method", "Outcome"),
    "lsc.pipeline": ("ExperimentConfig", "SearchSettings"),  # lsc.pipeline.run(config, out): the whole method
    "lsc.progress": ("Bars",),
    "lsc.atlas": ("draw_atlas",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["enable_compilation_cache", "quiet_dependencies", "setup_command_line", "use_cpu_cores", "__version__", *_WHERE]


def __getattr__(name: str):
  if name not in _WHERE:
    raise AttributeError(f"module 'lsc' has no attribute {name!r}")
  value = getattr(importlib.import_module(_WHERE[name]), name)
  globals()[name] = value
  return value


def __dir__():
  return sorted(__all__)
