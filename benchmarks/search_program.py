"""The compiled search chunk with a large decoder: its HLO size, lowering and compile
time, and whether a second decoder of the same shapes reuses the compiled program.

  python -m benchmarks.search_program        # Mountain Car large policy, paper decoder

The decoder is the Mountain Car `paper` preset's (latent 1, one 256-unit layer) for the
`large` policy, freshly initialised (a trained one has the same shapes); the search is
that preset's (population 64, 3 episodes, 10 seeds).  The persistent compilation cache
is off, so compile times are cold.  Writes benchmarks/results/search_program_<platform>.{json,md}.
"""

import sys
import time

import numpy as np


def main(argv=None) -> int:
  import jax
  jax.config.update("jax_enable_compilation_cache", False)
  from lsc import quiet_dependencies, use_cpu_cores
  use_cpu_cores()
  quiet_dependencies()
  from benchmarks.common import machine, markdown_table, write
  from lsc.envs import make_env
  from lsc.policy import make_policy
  from lsc.search import Search, decoder_space
  from lsc.strategies import PGPEConfig
  from lsc.training import TrainConfig

  env = make_env("mountain_car")
  policy = make_policy(env, "large")
  ae = TrainConfig(latent_dim=1, encoder_widths=(256,), decoder_widths=(256,),
                   encoder_input="parameters").autoencoder(policy, None)
  rows = []
  for i in range(2):
    params = ae.init(jax.random.key(i))
    codes = np.random.default_rng(i).normal(size=(100, 1)).astype(np.float32)
    space = decoder_space(ae, params, codes)
    search = Search(env, policy, space, "goal", PGPEConfig(population=64, episodes=3), budget=5_000_000, seeds=10)
    carry = search.init()
    start = time.perf_counter()
    lowered = search._chunk_fn.lower(carry, space, np.int32(search.last_start), search.generations_per_chunk)
    lower_s = time.perf_counter() - start
    hlo = len(lowered.as_text())
    start = time.perf_counter()
    lowered.compile()
    compile_s = time.perf_counter() - start
    before = search._chunk_fn._cache_size()
    search.chunk(carry)  # through jit's dispatch: compiles on the first decoder only
    rows.append({"decoder": i, "space_bytes": int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(space))),
                 "hlo_bytes": hlo, "lower_s": lower_s, "compile_s": compile_s,
                 "new_programs": search._chunk_fn._cache_size() - before})
    print(rows[-1], flush=True)
  info = machine()
  table = markdown_table(
      f"Search chunk with the Mountain Car large-policy paper decoder, {info['cpu']} "
      f"({info['jax_platform']}, {len(jax.devices())} device(s)), cold compile",
      ["decoder", "space arrays (MB)", "HLO text (MB)", "lower s", "compile s", "new programs on a run"],
      [[str(r["decoder"]), f"{r['space_bytes'] / 1e6:.1f}", f"{r['hlo_bytes'] / 1e6:.2f}", f"{r['lower_s']:.2f}",
        f"{r['compile_s']:.2f}", str(r["new_programs"])] for r in rows])
  path = write(f"search_program_{info['jax_platform']}", {"machine": info, "rows": rows}, table)
  print(table)
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
