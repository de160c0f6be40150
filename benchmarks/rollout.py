"""Population-rollout throughput (env-steps/s) per env, backend and population size,
beside the loop a user would otherwise write: Gymnasium stepping one env at a time
with a NumPy MLP of the same shape.

  python -m benchmarks.rollout                      # CPU-sized defaults, one device per core
  python -m benchmarks.rollout --host-devices 1     # a plain single-device vmap
  python -m benchmarks.rollout --sizes 1,1024,8192  # e.g. on a GPU

Compile time is measured apart (`lower().compile()`); run time is the best of
--repeats calls.  Throughput counts steps computed (N x episode length); hopper also
reports steps until termination, what a simulator without a done-mask must run.
Writes benchmarks/results/rollout_<platform>[_<k>dev].{json,md}.
"""

import argparse
import sys
import time

import numpy as np


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--envs", default="mountain_car,reacher,hopper,halfcheetah")
  p.add_argument("--sizes", default="1,64,256,1024", help="population sizes N")
  p.add_argument("--backends", default=None, help="Brax backends (default: this machine's default; "
                 "add mjx on CPU to measure it at small N)")
  p.add_argument("--mjx-max-n", type=int, default=64, help="largest N for mjx and mjx_warp on CPU (they are slow there)")
  p.add_argument("--brax-steps", type=int, default=200, help="episode length for the Brax envs")
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--gym-steps", type=int, default=5000, help="steps of each Gymnasium loop (0: skip it)")
  p.add_argument("--host-devices", type=int, default=0, help="CPU devices (default: one per core)")
  p.add_argument("--tag", default="", help="suffix of the results' file name (default: none)")
  return p.parse_args(argv)


def numpy_mlp(sizes, rng):
  """A NumPy MLP with the same layer sizes and squashing as lsc's policy."""
  layers = [(rng.uniform(-1, 1, (i, o)) / i**0.5, rng.uniform(-1, 1, o) / i**0.5)
            for i, o in zip(sizes[:-1], sizes[1:])]

  def act(obs):
    x = obs
    for kernel, bias in layers[:-1]:
      x = np.tanh(x @ kernel + bias)
    return np.tanh(x @ layers[-1][0] + layers[-1][1])
  return act


GYM_IDS = {"mountain_car": "MountainCarContinuous-v0", "reacher": "Reacher-v5",
           "hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5"}


def gym_loop(env_name, hidden, steps):
  """Env-steps/s of a Gymnasium env stepped one at a time by a NumPy MLP (float64)."""
  import gymnasium as gym
  env = gym.make(GYM_IDS[env_name])
  obs, _ = env.reset(seed=0)
  policy = numpy_mlp((obs.shape[0], *hidden, env.action_space.shape[0]), np.random.default_rng(0))
  for _ in range(steps // 10):  # warm-up
    obs, *_ = env.step(policy(obs).astype(np.float32))
  obs, _ = env.reset(seed=1)
  start = time.perf_counter()
  for _ in range(steps):
    obs, _, terminated, truncated, _ = env.step(policy(obs).astype(np.float32))
    if terminated or truncated:
      obs, _ = env.reset()
  rate = steps / (time.perf_counter() - start)
  env.close()
  return rate


def main(argv=None):
  args = parse_args(argv)
  from lsc import enable_compilation_cache, use_cpu_cores
  use_cpu_cores(args.host_devices or None)  # before anything starts JAX
  import jax
  import jax.numpy as jnp

  from benchmarks.common import best_time, machine, write
  from lsc.envs import BRAX_BACKENDS, default_backend, get_env_spec, make_env
  from lsc.policy import make_policy, pool_thetas
  from lsc.rollout import rollout_fn

  enable_compilation_cache()
  info = machine()
  print(f"# {info['cpu']} ({info['cores']} cores), JAX {info['jax']} on {info['jax_platform']} "
        f"x{len(info['devices'])} ({info['devices'][0]})", flush=True)
  sizes = [int(s) for s in args.sizes.split(",")]
  rows = []

  def measure(env, preset, n):
    policy = make_policy(env, preset)
    thetas = pool_thetas(policy, 0, jnp.arange(n))
    keys = jax.random.split(jax.random.key(0), n).reshape(n, 1)
    fn = rollout_fn(env, policy, n, episodes=1, n_samples=16)
    start = time.perf_counter()
    compiled = fn.lower(thetas, keys).compile()
    compile_s = time.perf_counter() - start
    result = compiled(thetas, keys)
    jax.block_until_ready(result)
    run_s = best_time(lambda: jax.block_until_ready(compiled(thetas, keys)), args.repeats)
    computed = n * env.episode_length
    row = {"env": env.name, "backend": env.backend, "policy": preset, "params": policy.num_params,
           "n": n, "episode_length": env.episode_length, "compile_s": round(compile_s, 2),
           "run_s": round(run_s, 4), "steps_per_s": computed / run_s,
           "steps_until_termination_per_s": result.env_steps / run_s}
    rows.append(row)
    print(f"{env.name:<12} {env.backend:<8} {preset:<6} N={n:<6} compile {compile_s:6.1f} s  "
          f"run {run_s:7.3f} s  {row['steps_per_s']:>12,.0f} steps/s", flush=True)
    return row

  gym_rates = {}
  for name in args.envs.split(","):
    brax = get_env_spec(name).backends == BRAX_BACKENDS  # --backends, --brax-steps: theirs; every preset otherwise
    presets = ("medium",) if brax else ("small", "medium", "large")
    backends = args.backends.split(",") if (args.backends and brax) else [default_backend(name)]
    for backend in backends:
      env = make_env(name, backend=backend, episode_length=args.brax_steps if brax else None)
      for n in sizes:
        if backend.startswith("mjx") and info["jax_platform"] == "cpu" and n > args.mjx_max_n:
          continue
        for preset in presets if n == max(sizes) else ("medium",):
          measure(env, preset, n)
    for preset in presets if args.gym_steps else ():  # --gym-steps 0: no Gymnasium (e.g. not installed)
      hidden = make_policy(make_env(name), preset).hidden
      gym_rates[(name, preset)] = gym_loop(name, hidden, args.gym_steps)
      print(f"{name:<12} gymnasium {preset:<6} one env      {gym_rates[(name, preset)]:>12,.0f} steps/s",
            flush=True)

  for row in rows:
    row["gym_steps_per_s"] = gym_rates.get((row["env"], row["policy"]), float("nan"))
    row["speedup_vs_gym"] = row["steps_per_s"] / row["gym_steps_per_s"]

  header = (f"Machine: {info['cpu']}, {info['cores']} cores; JAX {info['jax']} on "
            f"{info['jax_platform']}, {len(info['devices'])} device(s) ({info['devices'][0]}); {info['date']}.\n\n"
            "| env | backend | policy (params) | N | steps/episode | compile s | run s | env-steps/s | "
            "Gymnasium loop steps/s | ratio |\n|---|---|---|---|---|---|---|---|---|---|")
  lines = [f"| {r['env']} | {r['backend']} | {r['policy']} ({r['params']:,}) | {r['n']} | "
           f"{r['episode_length']} | {r['compile_s']:.1f} | {r['run_s']:.3f} | {r['steps_per_s']:,.0f} | "
           f"{r['gym_steps_per_s']:,.0f} | {r['speedup_vs_gym']:.1f}x |" for r in rows]
  table = "\n".join([header, *lines])
  suffix = f"_{len(info['devices'])}dev" if len(info["devices"]) > 1 else ""
  path = write(f"rollout_{info['jax_platform']}{suffix}{'_' + args.tag if args.tag else ''}", {"machine": info, "args": vars(args), "rows": rows}, table)
  print("\n" + table + f"\n\nwrote {path}")


if __name__ == "__main__":
  sys.exit(main())
