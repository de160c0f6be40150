"""The tuning sweep behind parameter-space PGPE's defaults: std_init x lr per env.

Parameter-space PGPE is the paper's ablation; a fair comparison tunes it.  evosax's
default optimizer (ClipUp, each step's norm capped at 0.02) all but freezes a
10^5-dimensional search, so lsc uses Adam with std_init and lr in units of the init
distribution's standard deviation per parameter (`lsc.search.identity_space`), and
this sweep picks them.  Each cell is the mean final return (fresh evaluation keys)
over `--seeds` seeds run at once.

  python -m experiments.param_pgpe_sweep --env mountain_car --task speed --policy large
  python -m experiments.param_pgpe_sweep --env hopper --task forward --budget 2000000

Writes experiments/results/param_pgpe_sweep_<env>_<policy>[_<tag>].{json,md}.
"""

import argparse
import itertools
import json
import pathlib
import sys
import time

import numpy as np

RESULTS = pathlib.Path(__file__).parent / "results"


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--env", default="mountain_car")
  p.add_argument("--task", default="speed")
  p.add_argument("--policy", default="large")
  p.add_argument("--episode-length", type=int, default=None)
  p.add_argument("--budget", type=int, default=3_000_000, help="env steps per seed")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--population", type=int, default=64)
  p.add_argument("--episodes", type=int, default=2)
  p.add_argument("--std-inits", default="0.03,0.1,0.3,1.0")
  p.add_argument("--lrs", default="0.01,0.03,0.1")
  p.add_argument("--tag", default="", help="suffix of the results files (e.g. an extension of a grid)")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  from lsc import setup_command_line
  setup_command_line()
  from lsc.envs import make_env
  from lsc.evaluation import EvalProtocol
  from lsc.policy import make_policy
  from lsc.search import PGPEConfig, Search, identity_space

  env = make_env(args.env, episode_length=args.episode_length)
  policy = make_policy(env, args.policy)
  space = identity_space(policy)
  protocol = EvalProtocol(5, 2_000_003)
  stds, lrs = [float(x) for x in args.std_inits.split(",")], [float(x) for x in args.lrs.split(",")]
  rows = []
  for std, lr in itertools.product(stds, lrs):
    config = PGPEConfig(population=args.population, episodes=args.episodes, std_init=std, lr=lr)
    start = time.perf_counter()
    result = Search(env, policy, space, args.task, config, budget=args.budget, seeds=args.seeds).run(protocol)
    rows.append({"std_init": std, "lr": lr, "final_returns": result.final_returns.tolist(),
                 "mean": float(result.final_returns.mean()), "seconds": time.perf_counter() - start})
    print(f"std_init {std:<5} lr {lr:<5} final return {rows[-1]['mean']:10.2f} "
          f"(seeds {' '.join(f'{r:.1f}' for r in result.final_returns)}) {rows[-1]['seconds']:.0f} s", flush=True)

  best = max(rows, key=lambda r: r["mean"])
  table = [f"Parameter-space PGPE sweep: {args.env} ({env.backend}) `{args.task}`, {args.policy} policy "
           f"({policy.num_params:,} params), population {args.population} x {args.episodes} episodes, "
           f"{args.budget:,} env steps per seed, mean final return over {args.seeds} seeds (fresh keys).", "",
           "| std_init \\ lr | " + " | ".join(str(lr) for lr in lrs) + " |",
           "|---|" + "---:|" * len(lrs)]
  for std in stds:
    cells = [next(r for r in rows if r["std_init"] == std and r["lr"] == lr)["mean"] for lr in lrs]
    table.append(f"| {std} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
  table += ["", f"Best: std_init {best['std_init']}, lr {best['lr']} ({best['mean']:.2f})."]
  RESULTS.mkdir(exist_ok=True)
  stem = RESULTS / f"param_pgpe_sweep_{args.env}_{args.policy}{'_' + args.tag if args.tag else ''}"
  stem.with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows, "best": best}, indent=2))
  stem.with_suffix(".md").write_text("\n".join(table) + "\n")
  print("\n".join(table))
  return 0


if __name__ == "__main__":
  sys.exit(main())
