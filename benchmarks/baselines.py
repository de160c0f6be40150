"""Deep-RL baselines' wall time per 10^6 env steps (PPO, SAC, TD3, DDPG) on lsc envs.

  python -m benchmarks.baselines                                   # CPU-sized defaults
  python -m benchmarks.baselines --envs halfcheetah --budget 200000 --methods td3

Each method trains once with `--budget` env steps and once with twice that (seed 0, the
method's CPU default config, `n_evals` curve evaluations): the first run's total is
what a short run costs (compiles included); the difference of the two, per env step,
is the steady-state cost with compilation and fixed overheads removed.  The protocol's
evaluations run in both, so they cancel in the difference except for their share of
steps.  Writes benchmarks/results/baselines_<platform>.{json,md}.
"""

import argparse
import sys

from benchmarks.common import machine, markdown_table, write

BUDGETS = {"mountain_car": 100_000, "reacher": 50_000, "hopper": 50_000, "halfcheetah": 50_000}


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

  from lsc.baselines import train_baseline
  from lsc.envs import make_env
  from lsc.evaluation import EvalProtocol
  from lsc.tasks import task_names

  rows, table = [], []
  for env_name in args.envs.split(","):
    env = make_env(env_name)
    task = task_names(env_name)[0]
    budget = args.budget or BUDGETS[env_name]
    for method in args.methods.split(","):
      runs = [train_baseline(env, task, method, b, 0, EvalProtocol(1), n_evals=args.n_evals)
              for b in (budget, 2 * budget)]
      jax.clear_caches()
      (short, long), (steps_short, steps_long) = ([r.timings["total_s"] for r in runs],
                                                  [int(r.env_steps[-1]) for r in runs])
      steady = 1e6 * (long - short) / (steps_long - steps_short)
      rows.append({"env": env_name, "backend": env.backend, "task": task, "method": method,
                   "env_steps": [steps_short, steps_long], "total_s": [short, long],
                   "s_per_1e6_first_run": 1e6 * short / steps_short, "s_per_1e6_steady": steady})
      table.append([env_name, method, f"{steps_short:,}", f"{short:.1f}", f"{1e6 * short / steps_short:,.0f}",
                    f"{steady:,.0f}"])
      print(f"{env_name} {method}: {short:.1f} s for {steps_short:,} steps, {long:.1f} s for {steps_long:,}; "
            f"steady {steady:,.0f} s per 10^6 env steps", flush=True)
  info = machine()
  name = f"baselines_{info['jax_platform']}" + (f"_{args.tag}" if args.tag else "")
  command = "python -m benchmarks.baselines " + " ".join(argv if argv is not None else sys.argv[1:])
  text = markdown_table(f"Deep-RL baselines, wall time per 10⁶ env steps on {info['cpu']} ({info['cores']} cores, "
                        f"{', '.join(sorted(set(info['devices'])))}), `{command}`",
                        ["env", "method", "short run: env steps", "seconds", "s / 10⁶ steps (short run)",
                         "s / 10⁶ steps (steady state)"], table)
  write(name, {"command": command, "machine": info, "rows": rows}, text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
