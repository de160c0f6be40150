"""Deep-RL baselines' wall time per 10^6 env steps (PPO, SAC, TD3, DDPG) on lsc envs.

  python -m benchmarks.baselines                                   # CPU-sized defaults
  python -m benchmarks.baselines --envs halfcheetah --budget 200000 --methods td3
  python -m benchmarks.baselines --envs mountain_car --methods td3 --actors agent,policy,latent,latent_head

Each method trains `--repeats` times (default once; the runs of all methods
interleaved, so that a slow spell of the machine does not land on one method; the
table shows each column's smallest) for `--budget` env steps (seed 0, the method's CPU default
config, `n_evals` curve evaluations under the shared protocol) with each actor of
`--actors` it takes: `agent`, the agent's own actor network; `policy`, the env's `cpu`
preset policy over its parameters θ (`lsc.baselines.PolicyActor`, TD3 / DDPG / SAC);
`latent`, that policy decoded from a latent code through a decoder of the preset's
autoencoder settings, frozen (as `latent_td3`; freshly initialised, not trained: a
trained decoder has the same shapes and cost); `latent_head`, the same with
`latent_head_td3`'s state-conditioned head (64 units), which decodes a policy per
state.  Reported: the run's
wall time (compiles and evaluations included), the part JAX spent tracing and
compiling (its monitoring events, `lsc.jax_setup.compile_seconds`; a persistent-cache
hit costs little), and seconds per 10^6 env steps with and without it.  Writes
benchmarks/results/baselines_<platform>.{json,md}.
"""

import argparse
import sys

from benchmarks.common import machine, markdown_table, write
from lsc.rl_configs import ACTOR_AGENTS, CONFIGS

BUDGETS = {"mountain_car": 200_000, "reacher": 100_000, "hopper": 100_000, "halfcheetah": 100_000}


ACTORS = ("agent", "policy", "latent", "latent_head")


def make_actor(kind: str, env, env_name: str):
  """The actor of kind `kind` (see the module docstring) for `env_name`'s `cpu` preset:
  None for the agent's own network, else an `lsc.baselines.PolicyActor`."""
  if kind == "agent":
    return None
  import jax
  import numpy as np

  from experiments.presets import PRESETS
  from lsc.baselines import PolicyActor
  from lsc.methods import get_method
  from lsc.search import decoder_space

  config = PRESETS[env_name]["cpu"]()
  policy = config.collect.policy.build(env)
  if kind == "policy":
    return PolicyActor(policy)
  ae = config.train.autoencoder(policy, np.zeros((1, policy.obs_size)))  # a probe for the encoder, unused
  codes = np.asarray(jax.random.normal(jax.random.key(0), (64, ae.latent_dim)))  # centre ~0, scale ~1
  head = get_method("latent_head_td3").config.latent_head if kind == "latent_head" else ()
  return PolicyActor(policy, space=decoder_space(ae, ae.init(jax.random.key(1)), codes), head=head)


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--envs", default="mountain_car,halfcheetah")
  p.add_argument("--methods", default="ppo,sac,td3,ddpg")
  p.add_argument("--actors", default="agent", help="agent, policy, latent, latent_head (comma-separated; see above)")
  p.add_argument("--budget", type=int, default=0, help=f"env steps of the short run (0: per env, {BUDGETS})")
  p.add_argument("--n-evals", type=int, default=2)
  p.add_argument("--repeats", type=int, default=1, help="runs of each method and actor, interleaved; "
                 "the table shows each column's smallest (the JSON every run)")
  p.add_argument("--tag", default="", help="suffix of the results files")
  args = p.parse_args(argv)
  for option, valid in (("methods", CONFIGS), ("actors", ACTORS)):
    if unknown := sorted(set(getattr(args, option).split(",")) - set(valid)):
      p.error(f"unknown {option} {', '.join(unknown)}; valid: {', '.join(valid)}")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  from lsc import setup_command_line
  setup_command_line()
  import jax

  from lsc.envs import import_quietly, make_env
  from lsc.evaluation import EvalProtocol
  from lsc.jax_setup import compile_seconds
  from lsc.methods import default_backend_for
  from lsc.tasks import task_names

  actors = args.actors.split(",")

  train_baseline = import_quietly("lsc.baselines").train_baseline  # without MJX's import-time prints
  rows, table = [], []
  for env_name in args.envs.split(","):
    env = make_env(env_name, backend=default_backend_for(args.methods.split(","), env_name))  # not mjx_warp
    task = task_names(env_name)[0]
    budget = args.budget or BUDGETS[env_name]
    runs = [(m, a) for m in args.methods.split(",") for a in actors if a == "agent" or m in ACTOR_AGENTS]
    timed = {run: [] for run in runs}  # PPO trains its own network only
    # built once per env, before the clocks (train_baseline's wall time starts inside it)
    built = {kind: make_actor(kind, env, env_name) for kind in {kind for _, kind in runs}}
    for repeat, (method, kind) in [(r, run) for r in range(args.repeats) for run in runs]:  # repeats interleaved
      compiled = compile_seconds()
      run = train_baseline(env, task, method, budget, 0, EvalProtocol(1), n_evals=args.n_evals, actor=built[kind])
      compile_s = compile_seconds() - compiled
      jax.clear_caches()
      total, steps = run.timings["total_s"], int(run.env_steps[-1])
      per, steady = 1e6 * total / steps, 1e6 * (total - compile_s) / steps
      row = {"env": env_name, "backend": env.backend, "task": task, "method": method, "actor": kind, "repeat": repeat,
             "env_steps": steps, "total_s": total, "compile_s": compile_s, "s_per_1e6": per,
             "s_per_1e6_without_compile": steady}
      rows.append(row)
      timed[method, kind].append(row)
      print(f"{env_name} {method} ({kind} actor, run {repeat + 1} of {args.repeats}): {total:.1f} s for {steps:,} "
            f"env steps ({compile_s:.1f} s compiling)", flush=True)
    for (method, kind), done in timed.items():  # each column's smallest over the repeats
      best = {k: min(r[k] for r in done) for k in ("total_s", "compile_s", "s_per_1e6", "s_per_1e6_without_compile")}
      table.append([env_name, method, kind, f"{done[0]['env_steps']:,}", f"{best['total_s']:.1f}",
                    f"{best['compile_s']:.1f}", f"{best['s_per_1e6']:,.0f}",
                    f"{best['s_per_1e6_without_compile']:,.0f}"])
  info = machine()
  name = f"baselines_{info['jax_platform']}" + (f"_{args.tag}" if args.tag else "")
  command = "python -m benchmarks.baselines " + " ".join(argv if argv is not None else sys.argv[1:])
  smallest = f", each column the smallest of {args.repeats} runs" if args.repeats > 1 else ""
  text = markdown_table(f"Deep-RL baselines, wall time per 10⁶ env steps on {info['cpu']} ({info['cores']} cores, "
                        f"{', '.join(sorted(set(info['devices'])))}{smallest}), `{command}`",
                        ["env", "method", "actor", "env steps", "wall s", "compile s", "s / 10⁶ env steps",
                         "s / 10⁶ env steps without compiling"], table)
  write(name, {"command": command, "machine": info, "rows": rows}, text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
