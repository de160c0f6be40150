"""Latent PGPE throughput: the fully compiled search (lax.scan over generations, one
device call per chunk) against the same search written as a Python loop that calls
jitted functions once per generation (keys, `search_ask`, fitness, `search_tell`) and logs the
mean fitness (a host sync), as research code often does.

  python -m benchmarks.search                           # CPU-sized defaults
  python -m benchmarks.search --pops 64,256,1024 --envs mountain_car,halfcheetah  # GPU

Both versions use the same space, config, keys, rollout program and generation count.
The latent space is `linear_space` (theta = theta_0 + A z, k = 8): a stand-in for a
trained decoder whose cost it does not include.  Compile time is measured apart.
Writes benchmarks/results/search_<platform>.{json,md}.
"""

import argparse
import sys
import time

import numpy as np


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--envs", default="mountain_car,halfcheetah")
  p.add_argument("--pops", default="64,256", help="population sizes")
  p.add_argument("--policy", default="medium", help="policy preset")
  p.add_argument("--latent-dim", type=int, default=8)
  p.add_argument("--episodes", type=int, default=1, help="episodes per candidate")
  p.add_argument("--episode-length", type=int, default=0, help="0: 200 on the Brax envs, 999 on mountain_car")
  p.add_argument("--generations", type=int, default=20)
  p.add_argument("--host-devices", type=int, default=0, help="CPU devices (default: one per core)")
  return p.parse_args(argv)


def python_loop(search, generations: int):
  """The search as a Python loop; returns (compile s, run s, final centres (S, k))."""
  import jax
  import jax.numpy as jnp

  from lsc.search import generation_keys, make_fitness, search_ask, search_center, search_tell

  config, space, seeds = search.config, search.space, search.seeds
  c = config.population + 1
  keys = jax.jit(lambda key: generation_keys(key, config.episodes))
  ask = jax.jit(jax.vmap(search_ask, in_axes=(0, 0, None, None)), static_argnums=3)
  tell = jax.jit(jax.vmap(search_tell, in_axes=(0, 0, 0, None, None)), static_argnums=4)
  scores = make_fitness(search.env, search.policy, seeds * c, config.episodes)  # the compiled search's own

  @jax.jit
  def fitness(thetas, episode_keys):  # every seed's candidates and centre, on that seed's keys
    reset_keys = jnp.broadcast_to(episode_keys[:, None], (seeds, c, config.episodes)).reshape(seeds * c, -1)
    returns = scores(thetas.reshape(seeds * c, -1), reset_keys).returns[:, search.task]
    return returns.reshape(seeds, c)[:, :-1]

  def generation(carry):
    key, ask_keys, episode_keys = keys(jax.random.wrap_key_data(carry["key"]))
    thetas, asked = ask(ask_keys, carry["state"], space, config)
    returns = fitness(thetas, episode_keys)
    state = tell(ask_keys, asked, returns, space, config)
    print(f"\r  python loop: mean fitness {float(returns.mean()):10.2f}", end="", file=sys.stderr)
    return {**carry, "state": state, "key": jax.random.key_data(key)}

  carry = search.init()
  start = time.perf_counter()
  for _ in range(2):  # compiles ask, fitness and tell; the second call retraces (weak types settle)
    carry = generation(carry)
  jax.block_until_ready(carry)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(generations):
    carry = generation(carry)
  jax.block_until_ready(carry)
  print(file=sys.stderr)
  centres = jax.vmap(search_center, in_axes=(0, None))(carry["state"], space)
  return compile_s, time.perf_counter() - start, np.asarray(centres)


def compiled_scan(search, generations: int):
  """The search as lsc runs it: one compiled chunk of `generations`."""
  import jax
  def timed():
    carry = jax.block_until_ready(search.init())
    start = time.perf_counter()
    carry, _ = search.chunk(carry, generations)
    jax.block_until_ready(carry)
    return time.perf_counter() - start, carry

  first_s, _ = timed()  # compiles, then runs
  run_s, carry = timed()
  compile_s = first_s - run_s
  steps = int(np.asarray(carry["env_steps"]).sum())
  return compile_s, run_s, steps


def main(argv=None) -> int:
  args = parse_args(argv)
  from lsc import enable_compilation_cache, use_cpu_cores
  use_cpu_cores(args.host_devices or None)
  enable_compilation_cache()
  from benchmarks.common import machine, markdown_table, write
  from lsc.envs import BRAX_BACKENDS, get_env_spec, make_env
  from lsc.policy import make_policy
  from lsc.search import Search, linear_space
  from lsc.strategies import PGPEConfig
  from lsc.tasks import task_names
  import jax

  rows = []
  for env_name in args.envs.split(","):
    spec = get_env_spec(env_name)
    length = args.episode_length or (200 if spec.backends == BRAX_BACKENDS else spec.episode_length)
    env = make_env(env_name, episode_length=length)
    policy = make_policy(env, args.policy)
    space = linear_space(policy, args.latent_dim)
    for pop in (int(p) for p in args.pops.split(",")):
      config = PGPEConfig(population=pop, episodes=args.episodes)
      budget = pop * args.episodes * length * (args.generations + 1)
      search = Search(env, policy, space, task_names(env_name)[0], config,  # goal, forward
                      budget=budget, generations_per_chunk=args.generations)
      c_compile, c_run, steps = compiled_scan(search, args.generations)
      l_compile, l_run, _ = python_loop(search, args.generations)
      row = {"env": env_name, "backend": env.backend, "population": pop, "generations": args.generations,
             "episode_length": length, "num_params": policy.num_params, "latent_dim": args.latent_dim,
             "compiled_compile_s": c_compile, "compiled_gen_per_s": args.generations / c_run,
             "compiled_env_steps_per_s": steps / c_run, "loop_compile_s": l_compile,
             "loop_gen_per_s": args.generations / l_run}
      row["speedup"] = row["compiled_gen_per_s"] / row["loop_gen_per_s"]
      rows.append(row)
      print(f"{env_name:<12} pop {pop:>5}: compiled {row['compiled_gen_per_s']:8.2f} gen/s "
            f"({row['compiled_env_steps_per_s']:,.0f} env-steps/s, compile {c_compile:.1f} s) | "
            f"python loop {row['loop_gen_per_s']:8.2f} gen/s | x{row['speedup']:.2f}", flush=True)

  info = machine()
  table = markdown_table(
      f"Latent PGPE (linear space, k = {args.latent_dim}, {args.policy} policy, {args.episodes} "
      f"episode(s)/candidate), {info['cpu']} ({info['jax_platform']}, {len(jax.devices())} device(s))",
      ["env", "backend", "pop", "gen/s compiled", "env-steps/s compiled", "compile s", "gen/s Python loop", "ratio"],
      [[r["env"], r["backend"], str(r["population"]), f"{r['compiled_gen_per_s']:.2f}",
        f"{r['compiled_env_steps_per_s']:,.0f}", f"{r['compiled_compile_s']:.1f}", f"{r['loop_gen_per_s']:.2f}",
        f"{r['speedup']:.2f}x"] for r in rows])
  path = write(f"search_{info['jax_platform']}", {"machine": info, "args": vars(args), "rows": rows}, table)
  print(table)
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
