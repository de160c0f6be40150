"""Peak memory and step time of autoencoder training from a dataset that stores its
policies' parameters (memory-mapped when large) and from one that stores only their
pool indices (`CollectConfig.store = "indices"`: each batch regenerated on device from
(seed, index)), at several dataset sizes.

  python -m benchmarks.dataset_memory                          # large Mountain Car policies, K = 2,000 and 8,000
  python -m benchmarks.dataset_memory --sizes 1000,4000 --steps 20

For each size K one dataset is collected into --out (pool 2K, keep 0.5, one evaluation
episode, parameters stored) and its index-only twin is written beside it (the same
members, the same arrays but the parameters).  Each (size, store) then trains in a
fresh process for --steps steps after one compile step; that process reports its peak
resident memory (VmHWM: it counts the pages of a memory-mapped file that it read)
before and after training, the mean step time and the losses, which must be equal
between the two stores.  Writes benchmarks/results/dataset_memory_<platform>.{json,md}.
"""

import argparse
import dataclasses
import json
import pathlib
import resource
import subprocess
import sys
import time


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--env", default="mountain_car")
  p.add_argument("--policy", default="large")
  p.add_argument("--sizes", default="2000,8000", help="dataset sizes K")
  p.add_argument("--steps", type=int, default=20, help="timed training steps")
  p.add_argument("--out", default="runs/bench-dataset-memory", help="datasets (reused when present)")
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  return p.parse_args(argv)


def _peak_mb() -> float:
  """This process's peak resident memory so far (MB): VmHWM, which, unlike ru_maxrss,
  does not start at the parent's when a process is spawned."""
  for line in pathlib.Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
      return int(line.split()[1]) / 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(path: str, steps: int) -> dict:
  """Trains on the dataset at `path` for 1 + steps steps: peak memory and step time."""
  from lsc import setup_command_line
  setup_command_line()
  from lsc.dataset import load_dataset
  from lsc.training import TrainConfig, Trainer
  import jax
  jax.numpy.zeros(1).block_until_ready()  # JAX started: the baseline
  before = _peak_mb()
  dataset, _ = load_dataset(path)
  env = dataset.config.env.build()
  policy = dataset.config.policy.build(env)
  trainer = Trainer(env, policy, dataset, TrainConfig(latent_dim=2, steps=steps + 1, eval_every=steps + 1, patience=0))
  state = trainer.step_range(trainer.init(), 1)  # compiles
  start = time.perf_counter()
  state = trainer.step_range(state, steps + 1)
  jax.block_until_ready(state["params"])
  return {"peak_before_mb": before, "peak_mb": _peak_mb(), "step_s": (time.perf_counter() - start) / steps,
          "train_loss": state["history"]["train"], "val_behaviour": state["history"]["val_behaviour"],
          "num_params": policy.num_params, "size": len(dataset.thetas)}


def datasets(args, size: int) -> dict:
  """{store: artifact path} of the size-`size` dataset and its index-only twin."""
  from lsc import checkpoint
  from lsc.config import EnvConfig, PolicyConfig
  from lsc.dataset import CollectConfig, collect, load_dataset, save_dataset
  from lsc.envs import get_env_spec
  from lsc.evaluation import PoolMembers
  root = pathlib.Path(args.out) / f"{args.env}-{args.policy}-{size}"
  paths = {"parameters": root / "parameters", "indices": root / "indices"}
  if not checkpoint.is_artifact(paths["parameters"]):
    bounded = get_env_spec(args.env).obs_bounds is not None
    config = CollectConfig(EnvConfig(args.env), PolicyConfig(args.policy, normalize_obs=bounded),
                           pool=2 * size, keep=0.5, eval_episodes=1, n_random=1)
    start = time.perf_counter()
    save_dataset(paths["parameters"], collect(config))
    print(f"collected {size:,} policies in {time.perf_counter() - start:.0f} s", flush=True)
  if not checkpoint.is_artifact(paths["indices"]):
    stored, _ = load_dataset(paths["parameters"])
    policy = stored.config.policy.build(stored.config.env.build())
    twin = dataclasses.replace(stored, thetas=PoolMembers(policy, stored.config.seed, stored.indices),
                               config=dataclasses.replace(stored.config, store="indices"))
    save_dataset(paths["indices"], twin)
  return paths


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.worker:
    print(json.dumps(worker(args.worker, args.steps)))
    return 0
  from lsc import setup_command_line
  setup_command_line()
  from benchmarks.common import machine, markdown_table, write
  rows = []
  for size in (int(s) for s in args.sizes.split(",")):
    for store, path in datasets(args, size).items():
      done = subprocess.run([sys.executable, "-m", "benchmarks.dataset_memory", "--worker", str(path),
                             "--steps", str(args.steps)], capture_output=True, text=True, check=True)
      result = json.loads(done.stdout.strip().splitlines()[-1])
      rows.append({"store": store, **result})
      print(f"K={size:,} {store}: peak {result['peak_mb']:,.0f} MB (JAX started: {result['peak_before_mb']:,.0f}), "
            f"{result['step_s'] * 1e3:.0f} ms/step", flush=True)
  for size in {r["size"] for r in rows}:
    pair = [r for r in rows if r["size"] == size]
    assert pair[0]["train_loss"] == pair[1]["train_loss"], f"K={size}: the two stores trained differently"
  info = machine()
  table = markdown_table(
      f"Autoencoder training on {args.env} {args.policy} policies ({rows[0]['num_params']:,} parameters) from stored "
      f"parameters vs pool indices; peak resident memory of the training process, {args.steps} steps "
      f"(`python -m benchmarks.dataset_memory {' '.join(argv if argv is not None else sys.argv[1:])}`; "
      f"{info['cpu']}, {info['cores']} cores, {info['jax_platform']}). Losses identical between the stores.",
      ["K", "store", "parameters on disk (GB)", "peak memory (GB)", "of which after JAX started (GB)", "ms / step"],
      [[f"{r['size']:,}", r["store"], f"{4 * r['size'] * r['num_params'] / 1e9:.2f}" if r["store"] == "parameters" else "0",
        f"{r['peak_mb'] / 1024:.2f}", f"{(r['peak_mb'] - r['peak_before_mb']) / 1024:.2f}", f"{r['step_s'] * 1e3:.0f}"]
       for r in rows])
  write(f"dataset_memory_{info['jax_platform']}", {"machine": info, "args": vars(args), "rows": rows}, table)
  print(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
