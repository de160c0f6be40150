"""Deep-RL baselines' wall time per 10^6 env steps (PPO, SAC, TD3, DDPG) on lsc envs.

  python -m benchmarks.baselines                                   # CPU-sized defaults
  python -m benchmarks.baselines --envs halfcheetah --budget 200000 --methods td3

Each method trains once for `--budget` env steps (seed 0, the method's CPU default
config, `n_evals` curve evaluations under the shared protocol).  Reported: the run's
wall time (compiles and evaluations included), the part JAX spent tracing and
compiling (its monitoring events, `lsc.jax_setup.compile_seconds`; a persistent-cache
hit costs little), and seconds per 10^6 env steps with and without it.  Writes
benchmarks/results/baselines_<platform>.{json,md}.
"""

import argparse
import sys

from benchmarks.common import machine, markdown_table, write

BUDGETS = {"mountain_car": 200_000, "reacher": 100_000, "hopper": 100_000, "halfcheetah": 100_000}


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--envs", default="mountain_car,halfcheetah")
  p.add_argument("--methods", default="ppo,sac,td3,ddpg")
  p.add_argument("--budget", type=int, default=0, help=f"env steps of the short run (0: per env, {BUDGETS})")
  p.add_argument("--n-evals", type=int, default=2)
  p.add_argument("--tag", default="", help="suffix of the results files")
  return p.parse_args(argv)


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

  train_baseline = import_quietly("lsc.baselines").train_baseline  # without MJX's import-time prints
  rows, table = [], []
  for env_name in args.envs.split(","):
    env = make_env(env_name, backend=default_backend_for(args.methods.split(","), env_name))  # not mjx_warp
    task = task_names(env_name)[0]
    budget = args.budget or BUDGETS[env_name]
    for method in args.methods.split(","):
      compiled = compile_seconds()
      run = train_baseline(env, task, method, budget, 0, EvalProtocol(1), n_evals=args.n_evals)
      compile_s = compile_seconds() - compiled
      jax.clear_caches()
      total, steps = run.timings["total_s"], int(run.env_steps[-1])
      per, steady = 1e6 * total / steps, 1e6 * (total - compile_s) / steps
      rows.append({"env": env_name, "backend": env.backend, "task": task, "method": method, "env_steps": steps,
                   "total_s": total, "compile_s": compile_s, "s_per_1e6": per, "s_per_1e6_without_compile": steady})
      table.append([env_name, method, f"{steps:,}", f"{total:.1f}", f"{compile_s:.1f}", f"{per:,.0f}",
                    f"{steady:,.0f}"])
      print(f"{env_name} {method}: {total:.1f} s for {steps:,} env steps ({compile_s:.1f} s compiling)", flush=True)
  info = machine()
  name = f"baselines_{info['jax_platform']}" + (f"_{args.tag}" if args.tag else "")
  command = "python -m benchmarks.baselines " + " ".join(argv if argv is not None else sys.argv[1:])
  text = markdown_table(f"Deep-RL baselines, wall time per 10⁶ env steps on {info['cpu']} ({info['cores']} cores, "
                        f"{', '.join(sorted(set(info['devices'])))}), `{command}`",
                        ["env", "method", "env steps", "wall s", "compile s", "s / 10⁶ env steps",
                         "s / 10⁶ env steps without compiling"], table)
  write(name, {"command": command, "machine": info, "rows": rows}, text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
