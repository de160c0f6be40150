"""The `lsc` command line.  Each subcommand is a thin layer over a library function.

  lsc envs                      environments, backends, tasks and policy presets
  lsc rollout --env E ...       evaluate a random pool on every task of E
  lsc collect --env E ...       novelty-filtered dataset of policies (stages 1-2)
  lsc train --dataset D ...     behaviour autoencoder + recovery with controls (stage 3)
  lsc search --env E --task T   a method of lsc.methods: an evolution strategy in a latent or the
                                parameter space, a sequence of them, or a deep-RL baseline
  lsc atlas AE --out atlas.png  a picture of the behaviours an autoencoder's latent space decodes to
"""

import argparse
import contextlib
import dataclasses
import pathlib
import sys
import time

import numpy as np

from lsc import checkpoint, compression, dataset, distributed, jsonfile, rundir, store
from lsc.compression import recovery_table
from lsc.config import EnvConfig, PolicyConfig, from_dict, override, section_settings
from lsc.dataset import KIND, CollectConfig, save_dataset, training_inputs
from lsc.distributed import on_main
from lsc.envs import default_backend, env_names, get_env_spec
from lsc.evaluation import EvalProtocol, evaluate_pool
from lsc.jax_setup import setup_command_line
from lsc.keys import FINAL_EVAL_SEED, POOL_EVAL_SEED
from lsc.methods import (MethodConfigs, Sequence, check_outputs, default_backend_for, get_method, names as method_names,
                         run_method)
from lsc.plots import plot_curves
from lsc.policy import PRESETS, MLPPolicy, preset_hidden
from lsc.progress import METRICS, Bars, MetricsLog, tee
from lsc.search import decoder_space, identity_space, linear_space
from lsc.tasks import get_task, task_names
from lsc.training import TrainConfig, load_autoencoder
from lsc.validate import check_memory, check_seed, debug_wanted, error_line, integer, user_errors


def _add_env_policy_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--env", required=True, help="mountain_car | reacher | hopper | halfcheetah")
  parser.add_argument("--backend", default=None,
                      help="physics backend (default: mjx_warp on an NVIDIA GPU with warp-lang installed, "
                           "except for the RL baselines, mjx on other GPUs, spring on CPU)")
  parser.add_argument("--episode-length", type=integer, default=None, help="truncation horizon (default: the env's)")
  parser.add_argument("--policy", default=None, help="policy preset: small | medium | large (default: medium; "
                      "search with --decoder AE: the autoencoder's)")
  parser.add_argument("--hidden", type=lambda s: tuple(int(h) for h in s.split(",") if h), default=None,
                      help="hidden sizes, e.g. 64,64 (overrides --policy; '' = linear)")
  parser.add_argument("--normalize-obs", action="store_true", default=None,
                      help="scale observations to [-1, 1] by the env's bounds (mountain_car only)")


def _policy_config(args):
  """The PolicyConfig of the --policy, --hidden and --normalize-obs flags, the
  dataclass's defaults where they are not given."""
  default = PolicyConfig()
  return PolicyConfig(args.policy or default.preset, args.hidden,
                      normalize_obs=default.normalize_obs if args.normalize_obs is None else args.normalize_obs)


def _claim_out(args, kind: str) -> pathlib.Path:
  """Claims --out as a run directory of `kind` (refusing a foreign one, see lsc.rundir)
  and holds its lock until the command returns."""
  out = rundir.claim(args.out, kind)
  args.exit_stack.enter_context(rundir.lock(out))
  return out


def _progress(args, out: pathlib.Path | None):
  """(bars, progress_fn): tqdm bars, and with an --out run directory every report also
  in its metrics.jsonl (and TensorBoard event files in out/tensorboard with --tensorboard)."""
  bars = args.exit_stack.enter_context(Bars())
  if out is None:
    if args.tensorboard:
      raise ValueError("--tensorboard needs --out (the event files go to OUT/tensorboard)")
    return bars, bars
  log = args.exit_stack.enter_context(MetricsLog(out / METRICS, out / "tensorboard" if args.tensorboard else None))
  return bars, tee(bars, log)


def cmd_envs(args) -> int:
  for name in env_names():
    spec = get_env_spec(name)
    obs, act = spec.observation_size, spec.action_size
    print(f"{name}: obs {obs}, action {act}, episode_length {spec.episode_length}, "
          f"backends {'/'.join(spec.backends)} (default here: {default_backend(name)})")
    for preset in PRESETS:
      hidden = preset_hidden(name, preset)
      print(f"  policy {preset:<6} hidden {list(hidden)!s:<11} "
            f"{MLPPolicy(obs, act, hidden).num_params:>7} params")
    for task in spec.tasks:
      print(f"  task {task.name:<9} {' '.join(task.doc.split())}")
  return 0


def _plot_returns(returns: np.ndarray, names, path: pathlib.Path, title: str) -> None:
  # matplotlib: loaded only when a plot is drawn (slow to import)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # after choosing the Agg backend
  fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
  for ax, name, column in zip(axes[0], names, returns.T):
    ax.hist(column, bins=40, color="tab:blue")
    ax.set_title(name)
    ax.set_xlabel("return")
  axes[0][0].set_ylabel("policies")
  fig.suptitle(title)
  fig.tight_layout()
  on_main(fig.savefig, path, dpi=110)
  plt.close(fig)


def cmd_rollout(args) -> int:
  if args.pool < 1:
    raise ValueError(f"--pool must be >= 1, got {args.pool}")
  if args.block_size < 1:
    raise ValueError(f"--block-size must be >= 1, got {args.block_size}")
  check_seed("--seed", args.seed)
  env_cfg = EnvConfig(args.env, args.backend, args.episode_length).resolved()
  policy_cfg = _policy_config(args).resolved(args.env)
  protocol = EvalProtocol(episodes=args.episodes, seed=args.eval_seed)
  per_policy = 4 * (len(task_names(args.env)) + 2 * args.episodes)  # returns, lengths, displacements
  check_memory("rollout", 2 * args.pool * per_policy,  # the blocks' results, then their concatenation
               f"{args.pool:,} policies x {per_policy} bytes of results, twice")
  out = _claim_out(args, "rollout") if args.out else None
  bars, report = _progress(args, out)  # refuses --tensorboard without --out before any work
  env, names = env_cfg.build(), task_names(args.env)
  policy = policy_cfg.build(env)
  print(f"{args.env} on {env.backend}, {policy.num_params} params/policy, pool {args.pool} "
        f"(seed {args.seed}), {protocol.episodes} episode(s) of {env.episode_length} steps")

  marks = []

  def progress(done, total):
    marks.append((time.perf_counter(), done))
    report("rollout", done, total, {})

  start = time.perf_counter()
  result = evaluate_pool(env, policy, args.seed, args.pool, protocol, block_size=args.block_size,
                         progress_fn=progress)
  bars.close()
  total = time.perf_counter() - start
  first_block = marks[0][0] - start
  steady = (marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]) if len(marks) > 1 else None

  print(f"\n{'task':<10} {'min':>10} {'median':>10} {'mean':>10} {'max':>10}")
  for name, column in zip(names, result.returns.T):
    print(f"{name:<10} {column.min():>10.2f} {np.median(column):>10.2f} {column.mean():>10.2f} {column.max():>10.2f}")
  lengths = result.lengths.mean(axis=1)
  print(f"episode length: mean {lengths.mean():.1f}, min {lengths.min():.0f}, max {lengths.max():.0f}")
  print(f"env steps until termination: {result.env_steps:,}; "
        f"steps computed: {result.steps_computed(env.episode_length):,}")
  print(f"time {total:.1f} s (first block, incl. compile: {first_block:.1f} s)" +
        (f"; steady {steady[1] * protocol.episodes * env.episode_length / steady[0]:,.0f} "
         f"env-steps/s computed" if steady else ""))

  if out is not None:
    config = {"env": vars(env_cfg), "policy": {**vars(policy_cfg), "hidden": list(policy.hidden)},
              "pool": args.pool, "seed": args.seed, "eval": vars(protocol)}
    checkpoint.save_artifact(out / "pool_returns", {"returns": result.returns, "lengths": result.lengths},
                             kind="pool_returns", config=config,
                             identity=checkpoint.policy_identity(env, policy))
    summary = {"config": config, "tasks": list(names), "env_steps": result.env_steps,
               "time_s": total, "first_block_s": first_block,
               "returns": {n: {"min": float(c.min()), "median": float(np.median(c)), "max": float(c.max())}
                           for n, c in zip(names, result.returns.T)}}
    on_main((out / "summary.json").write_text, jsonfile.dumps(summary, indent=2))
    _plot_returns(result.returns, names, out / "returns.png",
                  f"{args.env} ({env.backend}): returns of {args.pool} random {policy_cfg.preset} policies")
    print(f"wrote {out}/summary.json, returns.png and the pool_returns artifact")
  return 0


def cmd_collect(args) -> int:
  flags = {"env.name": args.env, "env.backend": args.backend, "env.episode_length": args.episode_length,
           "policy.preset": args.policy, "policy.hidden": args.hidden, "policy.normalize_obs": args.normalize_obs,
           "pool": args.pool, "keep": args.keep, "n_neighbors": args.n_neighbors, "probe": args.probe,
           "n_probe": args.n_probe, "seed": args.seed, "eval_episodes": args.episodes,
           "generations": args.generations, "offspring": args.offspring, "mutation_std": args.mutation_std,
           "union": args.union, "store": args.store}
  config = _configured(CollectConfig(), "collect", args, flags).resolved()
  checkpoint.check_output_path(args.out, "dataset")  # never after the work: a foreign --out is refused now
  if checkpoint.is_artifact(args.out) and not args.overwrite:
    differ = _settings_differ(args.out, config)
    if not differ:  # the same settings and package versions: the same dataset, bit for bit
      print(f"{args.out} already holds this dataset (digest {checkpoint.digest(args.out)}); reusing it "
            "(--overwrite recomputes it)")
      return 0
    raise ValueError(f"--out {args.out} already holds a dataset made with other {differ}; "
                     "--overwrite replaces it, or choose another --out")
  args.exit_stack.enter_context(rundir.artifact_lock(args.out))
  bars = args.exit_stack.enter_context(Bars())

  print(f"collect: {config.env.name} on {config.env.backend}, {config.policy.preset} policy "
        f"{list(config.policy.hidden)}, pool {config.pool}, keep {config.keep}, "
        f"k = {config.n_neighbors}, {config.n_probe} {config.probe} probe states"
        + (f", then {config.generations} generations of novelty search" if config.generations else "")
        + (", the filter's members kept beside them" if config.union else ""))
  start = time.perf_counter()
  collected = dataset.collect(config, bars)  # via the module, so that a test's stand-in runs
  bars.close()
  save_dataset(args.out, collected)
  total = time.perf_counter() - start

  pool_nov, kept_nov = collected.pool_novelty, collected.novelty
  origin = {"filter": f"of {config.pool} members", "novelty_search": f"by the novelty search from pool {config.pool}",
            "union": f"from pool {config.pool} and the novelty search from it"}[config.source]
  print(f"\nkept {len(collected.indices)} policies {origin} "
        f"({collected.thetas.shape[1]} params each; descriptors of {collected.descriptors.shape[1]} numbers)")
  q = lambda x: " ".join(f"{v:.3g}" for v in np.quantile(x, [0, 0.5, 0.9, 1]))
  print(f"novelty quantiles (min, median, 90%, max): pool {q(pool_nov)} | kept {q(kept_nov)}"
        + (" (each among those it was kept from)" if config.source != "filter" else ""))
  print(f"{'task':<10} {'kept min':>10} {'kept max':>10} {'random min':>11} {'random max':>11}")
  for name, kept, rand in zip(task_names(config.env.name), collected.returns.T, collected.random_returns.T):
    print(f"{name:<10} {kept.min():>10.2f} {kept.max():>10.2f} {rand.min():>11.2f} {rand.max():>11.2f}")
  timing = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in collected.timings.items())
  print(f"env steps: {collected.env_steps:,}; time {total:.1f} s ({timing}); wrote {args.out}")
  return 0


def _configured(config, section: str, args, flags: dict):
  """`config` (a `section` dataclass: "collect", "train") with, in turn, the `section.*`
  settings of --config's file, --set's `section.KEY=VALUE` items and the flags given
  (`flags`: {dotted key: value, None when not given}), through `lsc.config.override`:
  the pipelines' keys and order."""
  config = override(config, section_settings(section, args.config, args.set), section)
  return override(config, {k: v for k, v in flags.items() if v is not None}, section)


def _settings_differ(path, config) -> str:
  """How the dataset artifact at `path` differs from what `config` would collect now
  (`lsc.store.dataset_key`: settings, task formulas, novelty kernel): "settings (...)"
  naming up to three fields, "package versions (...)", or "" if in neither (the same
  dataset, bit for bit)."""
  try:
    record = checkpoint.read_record(path)
  except (ValueError, KeyError):
    return "settings (its record is unreadable)"
  changed = store.differences(store.recorded_dataset_key(record), store.dataset_key(config))
  if changed:
    return f"settings ({store.describe(changed)})"
  try:
    checkpoint.check_versions(record, path)
  except checkpoint.ArtifactMismatch as error:
    return f"package versions ({str(error).split(': ', 1)[-1]})"
  return ""


def cmd_train(args) -> int:
  flags = {"latent_dim": args.latent_dim, "loss": args.loss, "states": args.states,
           "encoder_input": args.encoder_input, "steps": args.steps, "batch_policies": args.batch_policies,
           "batch_states": args.batch_states, "lr": args.lr, "encoder_widths": args.widths,
           "decoder_widths": None if args.widths is None else tuple(reversed(args.widths)), "seed": args.seed}
  config = _configured(TrainConfig(), "train", args, flags)
  config.check()  # the flags first, then against the dataset (its record alone): sizes, held-out policies, memory
  config.check(**_dataset_inputs(args.dataset))
  out = _claim_out(args, "train")
  bars, progress = _progress(args, out)
  summary = compression.compress(args.dataset, config, out, progress_fn=progress,
                                 overwrite=args.overwrite).summary  # via the module, as dataset.collect
  bars.close()
  print(f"\n{summary['env']} {summary['policy']} policy ({summary['num_params']:,} params), dataset "
        f"{summary['dataset_size']}, latent {config.latent_dim}, {config.loss} loss on {config.states} states: "
        f"{summary['steps_run']} steps in {summary['timings']['train_s']:.1f} s")
  print(f"recovery on {summary['held_out']} held-out policies:")
  print(recovery_table(summary["recovery"], task_names(summary["env"])))
  print(f"wrote {args.out}/model, recovery.json, training.png" + (", landscape.png" if config.latent_dim <= 2 else ""))
  return 0


def _dataset_inputs(path) -> dict:
  """What `TrainConfig.check` checks against the dataset artifact at --dataset `path`
  (`lsc.dataset.training_inputs`; its record alone is read); ValueError naming the path
  if it is missing, a file or holds no dataset."""
  path = pathlib.Path(path)
  if not path.exists():
    raise ValueError(f"--dataset {path}: no such directory (a dataset from `lsc collect`)")
  if not path.is_dir():
    raise ValueError(f"--dataset {path} is a file, not a dataset directory (from `lsc collect`)")
  if not checkpoint.is_artifact(path):
    what = "an empty directory" if not any(path.iterdir()) else "a directory that holds no lsc artifact"
    raise ValueError(f"--dataset {path} is {what}, not a dataset (from `lsc collect`)")
  record = checkpoint.read_record(path)
  checkpoint.check_record(record, path, kind=KIND)
  return training_inputs(record)


def _decoder(args, method, num_params: int):
  """What --decoder names for `method`: ("identity", None) for one that searches the
  policy's parameters or trains on the env alone, ("linear", K) or ("autoencoder", its
  model's path) for one that reads an autoencoder; ValueError for anything else."""
  decoder = args.decoder
  if method.reads != "autoencoder":
    if decoder != "identity":
      what = "searches the policy's parameters" if method.reads == "policy" else "trains on the env alone"
      raise ValueError(f"{method.name} {what}: use --decoder identity (the default), got {decoder!r}")
    return "identity", None
  if decoder.startswith("linear:"):
    return "linear", _linear_dim(decoder, num_params)
  if decoder == "identity":
    raise ValueError(f"{method.name} needs a decoder: an autoencoder directory (from `lsc train`) or linear:K")
  path = pathlib.Path(decoder)
  path = path / "model" if (path / "model").is_dir() else path
  if not checkpoint.is_artifact(path):
    raise ValueError(f"decoder {decoder!r} is neither identity, linear:K nor an autoencoder directory")
  return "autoencoder", path


def _search_policy_config(args, method):
  """The policy `method` runs: with --decoder naming an autoencoder (a method reading
  one), the one it was trained on, read from its record (ValueError if --policy,
  --hidden or --normalize-obs say otherwise); else the flags' (`_policy_config`)."""
  if method.reads != "autoencoder" or args.decoder == "identity" or args.decoder.startswith("linear:"):
    return _policy_config(args)
  kind, path = _decoder(args, method, 0)
  stored = from_dict(PolicyConfig, checkpoint.read_record(path)["config"]["policy"])
  given = {"--policy": (args.policy, stored.preset), "--hidden": (args.hidden, stored.hidden),
           "--normalize-obs": (args.normalize_obs, stored.normalize_obs)}
  for flag, (value, theirs) in given.items():
    if value is not None and (tuple(value) if flag == "--hidden" else value) != (
        tuple(theirs) if flag == "--hidden" and theirs is not None else theirs):
      raise ValueError(f"{flag} {value!r}, but the autoencoder {path} was trained on policy {theirs!r}: leave "
                       f"{flag} out (the autoencoder's policy is used)")
  return stored


def _latent_space(args, method, env, policy):
  """The latent space --decoder names for `method` (one reading an autoencoder): a toy
  linear one (linear:K) or a trained autoencoder's, checked against the env and policy."""
  kind, value = _decoder(args, method, policy.num_params)
  if kind == "linear":
    return linear_space(policy, value, args.seed)
  trained = load_autoencoder(value)
  checkpoint.check_record(trained.record, value, expect=checkpoint.policy_identity(env, policy))
  return decoder_space(trained.ae, trained.params, trained.codes)


def _linear_dim(decoder: str, num_params: int) -> int:
  """K of --decoder linear:K, an integer in [1, the policy's parameters]."""
  text = decoder.split(":", 1)[1]
  try:
    dim = int(text)
  except ValueError:
    raise ValueError(f"--decoder {decoder!r}: K of linear:K must be an integer, got {text!r}") from None
  if not 1 <= dim <= num_params:
    raise ValueError(f"--decoder {decoder!r}: K must be in [1, the policy's {num_params} parameters], got {dim}")
  return dim


# lsc search's shorthand flags: (the config field each sets, its option strings, which
# configs of a sequence it sets: "phases" every phase's that has the field, "first" the
# first phase's, "own" the sequence's own; its type; what it sets).  A method that is no
# sequence: its config.  Each defaults to the method's own.
SEARCH_SET_EXAMPLE = "latent_pgpe.std_init=0.3"  # a methods.* setting, in lsc search's help and errors
_EVERY, _FIRST = "(default: the method's; a sequence: every phase's)", "(default: the method's; a sequence: its first phase's)"
SEARCH_FLAGS = (
    ("population", ("--population",), "phases", integer, f"candidates per generation {_EVERY}"),
    ("episodes", ("--episodes",), "phases", integer, f"episodes per candidate per generation {_EVERY}"),
    ("optimizer", ("--optimizer",), "phases", str, f"the centre's optimizer of PGPE, OpenAI-ES: adam | sgd | clipup {_EVERY}"),
    ("std_init", ("--std-init",), "first", float, f"initial search std, in units of the space's spread {_FIRST}"),
    ("lr", ("--lr",), "first", float, f"the centre's step size of PGPE, OpenAI-ES, in units of the spread {_FIRST}"),
    ("center", ("--center",), "first", str, f"where a search starts: mean (the space's centre) | zero {_FIRST}"),
    ("fraction", ("--latent-fraction", "--fraction"), "own", float,
     "a sequence (latent_then_param): its first phase's share of the budget (default: the method's)"))


def _method_configs(args, method):
  """The methods' settings of a search (a `MethodConfigs`): the `methods.<name>.<field>`
  settings of --config's file and of --set, then the flags given (SEARCH_FLAGS) on
  `method`'s config, or its phases'; ValueError naming an unknown method or field, a
  bad value, or a flag for a setting its target lacks."""
  plain = {}
  for key, value in section_settings("methods", args.config, args.set, SEARCH_SET_EXAMPLE).items():
    name, dot, field = key.partition(".")
    if dot:
      plain.setdefault(name, {})[field] = value
    elif isinstance(value, dict):  # --set 'methods.td3={batch_size: 64}'
      plain.setdefault(name, {}).update(value)
    else:
      raise ValueError(f"methods.{key}: set a method's fields, e.g. methods.{key}.<field>=VALUE")
  configs = MethodConfigs.from_plain(plain, "methods")
  for field, options, scope, _, _ in SEARCH_FLAGS:
    value = getattr(args, field)
    if value is None:
      continue
    flag = "/".join(options)
    phases = method.methods if isinstance(method, Sequence) and scope != "own" else ()
    if not phases:
      targets = [method]
    elif scope == "first":
      targets = [phases[0]]
    else:
      targets = [m for m in phases if _has_field(configs[m.name], field)]
    if not targets:
      raise ValueError(f"{flag} for {method.name}: none of its phases ({', '.join(m.name for m in phases)}) has a "
                       f"{field} setting")
    for target in targets:
      config = configs[target.name]
      if not _has_field(config, field):
        where = method.name if target is method else f"{method.name}'s first phase {target.name}"
        raise ValueError(f"{flag} for {where}: {type(config).__name__} has no {field} setting (its settings, "
                         f"for --set methods.{target.name}.<field>: {', '.join(_field_names(config))})")
      configs = configs.replace(target.name, **{field: value})
  return configs


def _field_names(config) -> list[str]:
  """The fields of dataclass `config`, in order."""
  return [f.name for f in dataclasses.fields(config)]


def _has_field(config, field: str) -> bool:
  """Whether dataclass `config` has a field `field`."""
  return field in _field_names(config)


def _check_search(args, method, configs, env_cfg) -> None:
  """Every search setting that needs no env: refused before one is built."""
  check_seed("--seed", args.seed, count=args.seeds)
  dims = None
  if method.reads == "env":
    _decoder(args, method, 0)
  else:
    num_params = _search_policy_config(args, method).num_params(args.env)
    kind, value = _decoder(args, method, num_params)
    dims = {"parameter": num_params}
    if kind == "linear":
      dims["latent"] = value
    elif kind == "autoencoder":  # its record names its code's size (one of an older lsc may not)
      latent = checkpoint.read_record(value).get("identity", {}).get("latent_dim")
      if latent is not None:
        dims["latent"] = int(latent)
  method.check(configs, args.budget, env_cfg.episode_length, dims=dims, backend=env_cfg.backend)


def cmd_search(args) -> int:
  method = get_method(args.method)
  configs = _method_configs(args, method)
  env_cfg = EnvConfig(args.env, args.backend or default_backend_for([args.method], args.env),
                      args.episode_length).resolved()
  get_task(args.env, args.task)
  if args.seeds < 1 or args.budget < 1:
    raise ValueError(f"--seeds and --budget must be >= 1, got {args.seeds}, {args.budget}")
  protocol = EvalProtocol(args.eval_episodes, args.eval_seed)
  _check_search(args, method, configs, env_cfg)
  out = _claim_out(args, "search")
  check_outputs(args.method, out, task=args.task, budget=args.budget, seeds=args.seeds, seed=args.seed,
                overwrite=args.overwrite)  # before the env is built: run_method checks again
  env = env_cfg.build()
  start = time.perf_counter()
  spaces = {}
  if method.reads != "env":
    policy = _search_policy_config(args, method).resolved(args.env).build(env)
    spaces = {"policy": policy, "parameter": identity_space(policy, args.seed)}
    if method.reads == "autoencoder":
      spaces["latent"] = _latent_space(args, method, env, policy)
  bars, progress = _progress(args, out)
  outcome = run_method(args.method, env, args.task, out, budget=args.budget, seeds=args.seeds, seed=args.seed,
                       protocol=protocol, configs=configs, progress_fn=progress, overwrite=args.overwrite,
                       log=print, record={"decoder": args.decoder}, **spaces)
  bars.close()
  # the learning curve: the solution held at each grid point, on the curve's fixed episodes
  curves = (np.broadcast_to(outcome.eval_steps, outcome.eval_returns.shape), outcome.eval_returns)
  finals, timings, env_steps = outcome.final_returns, outcome.timings, outcome.final_env_steps
  total = time.perf_counter() - start
  title = f"{args.env} {args.task}: {args.method}"
  plot_curves({args.method: curves}, out / "curves.png", title)
  summary = {"env": env.name, "backend": env.backend, "task": args.task, "method": args.method,
             "decoder": args.decoder, "budget": args.budget, "seeds": args.seeds,
             "settings": method.identity(configs),
             "env_steps": [int(s) for s in env_steps], "final_returns": [float(f) for f in finals],
             "eval": vars(protocol), "timings": {**timings, "total_s": total}}
  on_main((out / "summary.json").write_text, jsonfile.dumps(summary, indent=2))
  print(f"\nfinal return on fresh evaluation keys ({protocol.episodes} episodes, seed {protocol.seed}): "
        f"mean {np.mean(finals):.2f}, per seed {' '.join(f'{f:.2f}' for f in finals)}")
  print(f"time {total:.1f} s; wrote {out}/summary.json, curves.png and the result artifact")
  return 0


ATLAS_FORMATS = (".png", ".pdf", ".svg")


def cmd_atlas(args) -> int:
  from lsc.atlas import draw_atlas  # matplotlib and MuJoCo's kinematics: loaded only for this command
  path = pathlib.Path(args.autoencoder)
  path = path / "model" if (path / "model").is_dir() else path  # `lsc train --out` or its model
  if not path.is_dir() or not checkpoint.is_artifact(path):
    raise ValueError(f"{args.autoencoder} is no autoencoder: give the --out directory of `lsc train` (or its model)")
  if pathlib.Path(args.out).suffix.lower() not in ATLAS_FORMATS:
    raise ValueError(f"--out {args.out}: the picture's name must end in {', '.join(ATLAS_FORMATS)}")
  for flag, value, low in (("--grid", args.grid, 1), ("--frames", args.frames, 1), ("--episodes", args.episodes, 1),
                           ("--dpi", args.dpi, 10)):
    if value < low:
      raise ValueError(f"{flag} must be >= {low}, got {value}")
  check_seed("--seed", args.seed)
  if args.episode_length is not None and args.episode_length < 1:
    raise ValueError(f"--episode-length must be >= 1, got {args.episode_length}")
  record = checkpoint.read_record(path)
  checkpoint.check_record(record, path, kind="autoencoder")
  env_name = record.get("config", {}).get("env", {}).get("name")
  if args.backend is not None and env_name is not None:  # refused before the autoencoder is loaded
    if args.backend not in get_env_spec(env_name).backends:
      raise ValueError(f"unknown backend {args.backend!r} for env {env_name!r}; valid backends: "
                       f"{', '.join(get_env_spec(env_name).backends)}")
  start = time.perf_counter()
  trained = load_autoencoder(path)
  draw_atlas(trained, args.out, grid=args.grid, frames=args.frames, episodes=args.episodes, seed=args.seed,
             episode_length=args.episode_length, backend=args.backend, dpi=args.dpi, log=print)
  print(f"time {time.perf_counter() - start:.1f} s")
  return 0


def _add_settings_args(parser: argparse.ArgumentParser, section: str, example: str = "seed=1") -> None:
  """--config and --set over the `section` settings, with the pipelines' keys (`example`:
  one such setting, without the section's prefix)."""
  parser.add_argument("--config", default=None, help=f"YAML/JSON file of settings; its {section}.* keys apply (a "
                      "pipeline's file serves)")
  parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                      help=f"dotted overrides, e.g. {section}.{example} (after --config, before the flags)")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(allow_abbrev=False, prog="lsc", description=__doc__.split("\n")[0])
  debug = dict(action="store_true", help="show the traceback of an error (or set LSC_DEBUG=1)")
  parser.add_argument("--debug", **debug)
  sub = parser.add_subparsers(dest="command", required=True)
  sub.add_parser("envs", allow_abbrev=False, help="list environments, backends, tasks and policy presets").set_defaults(fn=cmd_envs)
  p = sub.add_parser("rollout", allow_abbrev=False, help="evaluate a random pool of policies on every task of an env")
  _add_env_policy_args(p)
  p.add_argument("--pool", type=integer, default=256, help="number of random policies")
  p.add_argument("--seed", type=integer, default=0, help="pool seed: member i is drawn from (seed, i)")
  p.add_argument("--episodes", type=integer, default=1, help="evaluation episodes per policy")
  p.add_argument("--eval-seed", type=integer, default=POOL_EVAL_SEED, help="seed of the evaluation keys")
  p.add_argument("--block-size", type=integer, default=1024, help="policies per device call")
  p.add_argument("--out", default=None, help="directory for summary.json, returns.png and the artifact")
  p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files to OUT/tensorboard "
                 "(needs the tensorboard extra)")
  p.set_defaults(fn=cmd_rollout)

  p = sub.add_parser("collect", allow_abbrev=False, help="build a novelty-filtered dataset of policies")
  _add_env_policy_args(p)
  c = CollectConfig()
  p.add_argument("--pool", type=integer, help=f"random candidates N (default {c.pool:,})")
  p.add_argument("--keep", type=float, help=f"fraction of the pool kept, in (0, 1] (default {c.keep})")
  p.add_argument("--n-neighbors", type=integer, help=f"k of the kNN novelty (default {c.n_neighbors})")
  p.add_argument("--probe", help="probe states: uniform | rollout (default per env)")
  p.add_argument("--n-probe", type=integer, help=f"number of probe states M (default {c.n_probe})")
  p.add_argument("--episodes", type=integer, help=f"evaluation episodes per kept member (default {c.eval_episodes})")
  p.add_argument("--generations", type=integer, help="iterated novelty search after the filter (reward-free, no env "
                 f"steps); 0: the one-shot filter (default {c.generations})")
  p.add_argument("--offspring", type=integer, help="novelty search: children per generation (default: as many as kept)")
  p.add_argument("--mutation-std", type=float,
                 help=f"novelty search: mutation noise in units of the policy's init std (default {c.mutation_std})")
  p.add_argument("--union", action="store_true", default=None,
                 help="novelty search: keep the filter's members as well as the search's policies (up to 2x kept)")
  p.add_argument("--store", help="what the artifact keeps of the kept members: parameters | indices (their pool "
                 f"indices; the parameters are regenerated where read) (default {c.store})")
  p.add_argument("--seed", type=integer, help=f"pool seed (default {c.seed})")
  _add_settings_args(p, "collect")
  p.add_argument("--out", required=True, help="artifact directory")
  p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out (one of the same "
                 "settings and package versions is reused without it)")
  p.set_defaults(fn=cmd_collect)

  p = sub.add_parser("train", allow_abbrev=False, help="train a behaviour autoencoder on a dataset and measure its recovery")
  p.add_argument("--dataset", required=True, help="dataset artifact directory (from `lsc collect`)")
  t = TrainConfig()
  p.add_argument("--latent-dim", type=integer, help=f"(default {t.latent_dim})")
  p.add_argument("--loss", help=f"behaviour | parameter (default {t.loss})")
  p.add_argument("--states", help=f"state source of the behaviour loss: own | dataset | rollout (default {t.states})")
  p.add_argument("--encoder-input", help="what the encoder reads: parameters (theta) | actions (theta's actions on the "
                 f"probe states) (default {t.encoder_input})")
  p.add_argument("--steps", type=integer, help=f"(default {t.steps:,})")
  p.add_argument("--batch-policies", type=integer, help=f"(default {t.batch_policies})")
  p.add_argument("--batch-states", type=integer, help=f"(default {t.batch_states})")
  p.add_argument("--lr", type=float, help=f"(default {t.lr:g})")
  p.add_argument("--widths", type=lambda s: tuple(int(h) for h in s.split(",") if h),
                 help="encoder hidden widths, e.g. 256,64 (the decoder mirrors them; default "
                 f"{','.join(map(str, t.encoder_widths))})")
  p.add_argument("--seed", type=integer, help=f"(default {t.seed})")
  _add_settings_args(p, "train")
  p.add_argument("--out", required=True, help="output directory (resumes a run of the same settings and dataset found there)")
  p.add_argument("--overwrite", action="store_true", help="start afresh, replacing a run of other settings in --out")
  p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files to OUT/tensorboard "
                 "(needs the tensorboard extra)")
  p.set_defaults(fn=cmd_train)

  p = sub.add_parser("search", allow_abbrev=False, help="an evolution strategy in a latent or the parameter space, "
                     "a sequence of them, or a deep-RL baseline")
  _add_env_policy_args(p)
  p.add_argument("--task", required=True, help="task of the env (see `lsc envs`)")
  p.add_argument("--method", default="latent_pgpe", help=f"{' | '.join(method_names())} (default: latent_pgpe)")
  p.add_argument("--decoder", default="identity",
                 help="identity (methods searching the parameters; the RL baselines) | linear:K (a toy latent "
                 "space) | autoencoder artifact directory (methods searching a latent space)")
  p.add_argument("--budget", type=integer, required=True, help="env steps per seed")
  p.add_argument("--seeds", type=integer, default=1, help="independent runs (searches: all at once)")
  p.add_argument("--seed", type=integer, default=0, help="first seed")
  _add_settings_args(p, "methods", SEARCH_SET_EXAMPLE)
  # shorthands for settings of the method's config (SEARCH_FLAGS), applied after --config and --set
  for field, options, _, kind, text in SEARCH_FLAGS:
    p.add_argument(*options, dest=field, type=kind, help=text)
  p.add_argument("--eval-episodes", type=integer, default=5, help="episodes of the final evaluation")
  p.add_argument("--eval-seed", type=integer, default=FINAL_EVAL_SEED, help="seed of the final evaluation keys")
  p.add_argument("--out", required=True, help="directory for the result artifact, curves.png and summary.json "
                 "(resumes a search of the same settings found there)")
  p.add_argument("--overwrite", action="store_true", help="start afresh, replacing a search of other settings in --out")
  p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files to OUT/tensorboard "
                 "(needs the tensorboard extra)")
  p.set_defaults(fn=cmd_search)

  p = sub.add_parser("atlas", allow_abbrev=False, help="draw what the policies across an autoencoder's latent space "
                     "do, labelled with their returns on every task")
  p.add_argument("autoencoder", metavar="AE", help="autoencoder directory (the --out of `lsc train`, or its model)")
  p.add_argument("--out", required=True, help="the picture: a .png (or .pdf, .svg) file")
  p.add_argument("--grid", type=integer, default=5, help="codes per side: a row of N for a 1-D latent space, else "
                 "N x N (for more than 2 dimensions, the dataset codes nearest an N x N lattice on the plane of "
                 "their 2 principal components) (default 5)")
  p.add_argument("--frames", type=integer, default=4, help="frames of each episode drawn on a MuJoCo env (default 4)")
  p.add_argument("--episode-length", type=integer, default=None,
                 help="steps per episode (default: the autoencoder's env's)")
  p.add_argument("--backend", default=None, help="physics backend (default: the autoencoder's env's)")
  p.add_argument("--episodes", type=integer, default=3, help="evaluation episodes behind each label's mean returns "
                 "(the first is the one drawn) (default 3)")
  p.add_argument("--seed", type=integer, default=0, help="seed of the evaluation keys (default 0)")
  p.add_argument("--dpi", type=integer, default=90, help="resolution of a .png (default 90)")
  p.set_defaults(fn=cmd_atlas)
  for name, p in sub.choices.items():  # `lsc --debug train ...` and `lsc train ... --debug` alike
    p.add_argument("--debug", **debug, default=argparse.SUPPRESS)
    if name != "envs":
      distributed.add_arguments(p)
  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if hasattr(args, "process_id"):
    distributed.setup_command_line(parser, args)
  else:  # `lsc envs`
    setup_command_line()
  try:
    with contextlib.ExitStack() as args.exit_stack:  # output locks, held until the command returns
      return args.fn(args)
  except user_errors() as error:  # bad input: one line, no traceback (--debug / LSC_DEBUG=1: the traceback)
    if debug_wanted(args.debug):
      raise
    print(f"lsc {args.command}: error: {error_line(error)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
