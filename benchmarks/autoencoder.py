"""Behaviour-autoencoder training steps/s: lsc's jitted step beside the same model,
batch, optimiser and float32 written in PyTorch eager.

  python -m benchmarks.autoencoder                      # large mountain_car and halfcheetah, medium halfcheetah
  python -m benchmarks.autoencoder --cases halfcheetah:large --steps 20 --repeats 5

lsc's side is `lsc.training.train_step` (behaviour loss, Adam at lr) jit-compiled
with TrainConfig's defaults (latent 2, widths 128, ELU, 64 policies x 256 states per
step, lr 1e-3); compile time is measured apart with `lower().compile()` (low where
JAX's persistent cache already held the program).  PyTorch's side
(`benchmarks/autoencoder_torch.py`) is nn.Linear + ELU layers with the same init-scale
multiply, the policy run from the same flat parameter layout, torch.optim.Adam and
torch.set_num_threads(cpu count).  Both start from the same weights (Flax's
initialisation copied into torch) and cycle through the same K batches of random pool
policies (`pool_thetas`) and standard-normal states, which stay in memory: the host
gathering of a real run is not timed.  The losses of the first steps are compared as
a check that both compute the same thing (step 1: the forward pass; later steps: the
gradients and Adam too).  Each framework runs `--repeats` timed loops of `--steps`
steps after `--warmup` steps; the table gives the best loop, the JSON every loop.

PyTorch runs in a subprocess of its own Python (`--torch-python`, default
.venv-torch/bin/python), because lsc's Python 3.12 would pull a multi-GB CUDA build of
torch; set it up with

  python3.11 -m venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0 numpy

Without it the lsc numbers are still reported, with the reason torch is missing.
Writes benchmarks/results/autoencoder_<platform>.{json,md}.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKER = pathlib.Path(__file__).resolve().parent / "autoencoder_torch.py"
DEFAULT_CASES = "mountain_car:large,halfcheetah:large,halfcheetah:medium"


def parse_args(argv):
  from lsc.training import TrainConfig
  defaults = TrainConfig()
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated env:policy-preset pairs")
  p.add_argument("--latent-dim", type=int, default=defaults.latent_dim)
  p.add_argument("--width", type=int, default=defaults.encoder_widths[0], help="hidden width of encoder and decoder")
  p.add_argument("--batch-policies", type=int, default=defaults.batch_policies)
  p.add_argument("--batch-states", type=int, default=defaults.batch_states)
  p.add_argument("--lr", type=float, default=defaults.lr)
  p.add_argument("--batches", type=int, default=4, help="distinct (policies, states) batches cycled through")
  p.add_argument("--check-steps", type=int, default=5, help="first steps whose losses are compared")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps after the check steps")
  p.add_argument("--steps", type=int, default=10, help="steps per timed loop")
  p.add_argument("--repeats", type=int, default=3, help="timed loops")
  p.add_argument("--torch-python", default=str(ROOT / ".venv-torch" / "bin" / "python"),
                 help="Python with torch for the PyTorch side")
  p.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: cpu count)")
  p.add_argument("--torch-adam", default="default", choices=("default", "foreach", "fused"),
                 help="torch.optim.Adam implementation")
  p.add_argument("--no-torch", action="store_true", help="lsc only")
  p.add_argument("--host-devices", type=int, default=0, help="JAX CPU devices (default: one per core, as `lsc`)")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  for name in ("latent_dim", "width", "batch_policies", "batch_states", "batches", "steps", "repeats"):
    if getattr(args, name) < 1:
      p.error(f"--{name.replace('_', '-')} must be >= 1")
  if args.check_steps < 1 or args.warmup < 0:
    p.error("need --check-steps >= 1 and --warmup >= 0")
  return args


def parse_cases(text: str) -> list[tuple[str, str]]:
  from lsc.envs import env_names
  from lsc.policy import PRESETS
  cases = []
  for item in text.split(","):
    env_name, _, preset = item.strip().partition(":")
    if env_name not in env_names() or preset not in PRESETS:
      raise SystemExit(f"bad case {item!r}: want env:preset with env in {', '.join(env_names())} "
                       f"and preset in {', '.join(PRESETS)}")
    cases.append((env_name, preset))
  return cases


def make_data(policy, args, key_seed: int):
  """K batches of pool policies (K, B, P) and of standard-normal states (K, M, O)."""
  import jax
  import jax.numpy as jnp
  from lsc.policy import pool_thetas
  n = args.batches * args.batch_policies
  thetas = np.asarray(pool_thetas(policy, key_seed, jnp.arange(n)), np.float32)
  states = np.asarray(jax.random.normal(jax.random.key(key_seed + 1),
                                        (args.batches, args.batch_states, policy.obs_size)), np.float32)
  return thetas.reshape(args.batches, args.batch_policies, -1), states


def run_lsc(ae, thetas: np.ndarray, states: np.ndarray, args) -> dict:
  """Compile time, first-step losses and timed loops of lsc's jitted step."""
  import jax
  from lsc.training import TrainConfig, compiled_train_step, train_init
  config = TrainConfig(loss="behaviour", lr=args.lr)
  carry = [train_init(jax.random.key(args.seed), ae, config)]
  init_params = jax.tree.map(np.asarray, carry[0].params)
  thetas_dev = [jax.device_put(t) for t in thetas]
  states_dev = [jax.device_put(s) for s in states]
  start = time.perf_counter()
  compiled = compiled_train_step(ae, config).lower(carry[0], thetas_dev[0], states_dev[0]).compile()
  compile_s = time.perf_counter() - start
  try:
    flops = float(compiled.cost_analysis()["flops"])
  except Exception:  # cost analysis is best-effort and backend dependent
    flops = None
  done = 0

  def run(n: int):
    nonlocal done
    losses = []
    for _ in range(n):
      i = done % len(thetas_dev)
      carry[0], loss = compiled(carry[0], thetas_dev[i], states_dev[i])
      losses.append(loss)
      done += 1
    jax.block_until_ready((carry, losses))
    return losses

  check = [float(v) for v in run(args.check_steps)]
  run(args.warmup)
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    losses = run(args.steps)
    times.append(time.perf_counter() - start)
  rates = [args.steps / t for t in times]
  return {"compile_s": compile_s, "losses": check, "loop_s": times, "steps_per_s_best": max(rates),
          "steps_per_s_median": statistics.median(rates), "final_loss": float(losses[-1]),
          "xla_flops_per_step": flops, "init_params": init_params}


def run_torch(ae, init_params, thetas: np.ndarray, states: np.ndarray, args) -> dict:
  """The PyTorch side in a subprocess; {"error": why} if it cannot run."""
  python = pathlib.Path(args.torch_python)
  if args.no_torch:
    return {"error": "skipped (--no-torch)"}
  if not python.exists():
    return {"error": f"no torch Python at {python} (python3.11 -m venv .venv-torch && "
                     f".venv-torch/bin/pip install torch==2.13.0 numpy)"}
  policy = ae.policy
  meta = {"layer_sizes": list(policy.layer_sizes), "policy_activation": policy.activation,
          "action_low": policy.action_low, "action_high": policy.action_high, "latent_dim": ae.latent_dim,
          "encoder_widths": list(ae.encoder_widths), "decoder_widths": list(ae.decoder_widths),
          "activation": ae.activation, "lr": args.lr, "adam": args.torch_adam, "threads": args.torch_threads,
          "check_steps": args.check_steps, "warmup": args.warmup, "steps": args.steps, "repeats": args.repeats}
  arrays = {"meta": np.array(json.dumps(meta)), "thetas": thetas, "states": states,
            "scale": np.asarray(policy.init_std(), np.float32)}
  for name in ("encoder", "decoder"):
    layers = init_params["params"][name]
    for i in range(len(layers)):
      arrays[f"{name}_kernel_{i}"] = np.asarray(layers[f"Dense_{i}"]["kernel"], np.float32)
      arrays[f"{name}_bias_{i}"] = np.asarray(layers[f"Dense_{i}"]["bias"], np.float32)
  with tempfile.TemporaryDirectory(prefix="lsc_ae_bench_") as tmp:
    path = pathlib.Path(tmp) / "data.npz"
    np.savez(path, **arrays)
    try:
      done = subprocess.run([str(python), str(WORKER), str(path)], capture_output=True, text=True)
    except OSError as error:
      return {"error": f"could not start {python}: {error}"}
  if done.returncode != 0:
    tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    return {"error": f"torch worker failed: {tail[0]}"}
  try:
    return json.loads(done.stdout.strip().splitlines()[-1])
  except (IndexError, json.JSONDecodeError):
    return {"error": f"torch worker printed no result: {done.stdout[-200:]!r}"}


def rel_diff(a: float, b: float) -> float:
  return abs(a - b) / max(abs(a), abs(b), 1e-30)


def main(argv=None) -> int:
  args = parse_args(argv)
  cases = parse_cases(args.cases)
  from lsc import enable_compilation_cache, use_cpu_cores
  use_cpu_cores(args.host_devices or None)
  enable_compilation_cache()
  import jax
  from benchmarks.common import machine, write
  from lsc.autoencoder import Autoencoder
  from lsc.envs import get_env_spec
  from lsc.policy import MLPPolicy, preset_hidden

  rows = []
  torch_info = None
  for env_name, preset in cases:
    spec = get_env_spec(env_name)
    obs_size, action_size = spec.observation_size, spec.action_size
    policy = MLPPolicy(obs_size, action_size, preset_hidden(env_name, preset))
    ae = Autoencoder(policy, args.latent_dim, (args.width,), (args.width,))
    thetas, states = make_data(policy, args, args.seed)
    ours = run_lsc(ae, thetas, states, args)
    theirs = run_torch(ae, ours.pop("init_params"), thetas, states, args)
    row = {"env": env_name, "policy": preset, "num_params": policy.num_params, "obs_size": obs_size,
           "action_size": action_size, "latent_dim": args.latent_dim, "width": args.width,
           "batch_policies": args.batch_policies, "batch_states": args.batch_states,
           "lsc": ours, "torch": theirs}
    if "error" not in theirs:
      torch_info = {k: theirs[k] for k in ("torch", "threads", "adam")}
      row["ratio"] = ours["steps_per_s_best"] / theirs["steps_per_s_best"]
      row["loss_rel_diff"] = [rel_diff(a, b) for a, b in zip(ours["losses"], theirs["losses"])]
      versus = (f"torch {theirs['steps_per_s_best']:7.2f} steps/s | x{row['ratio']:.2f} | first loss "
                f"{ours['losses'][0]:.6g} vs {theirs['losses'][0]:.6g} (rel {row['loss_rel_diff'][0]:.1e}, "
                f"max over {args.check_steps} steps {max(row['loss_rel_diff']):.1e})")
    else:
      versus = f"torch: {theirs['error']}"
    rows.append(row)
    print(f"{env_name:<12} {preset:<6} P={policy.num_params:>7,}: lsc {ours['steps_per_s_best']:7.2f} steps/s "
          f"(compile {ours['compile_s']:.1f} s) | {versus}", flush=True)

  info = machine()
  torch_text = (f"PyTorch {torch_info['torch']} eager, {torch_info['threads']} threads, Adam {torch_info['adam']}"
                if torch_info else "PyTorch not run")
  table = [f"Behaviour-loss training step (latent {args.latent_dim}, widths {args.width}, ELU, "
           f"{args.batch_policies} policies x {args.batch_states} states, Adam lr {args.lr:g}, float32), "
           f"best of {args.repeats} loops of {args.steps} steps; {info['cpu']}, {info['cores']} cores, JAX "
           f"{info['jax']} on {info['jax_platform']} ({len(jax.devices())} device(s)); {torch_text}; "
           f"{info['date']}.", "",
           "| case | P | batch | lsc steps/s | compile s | torch steps/s | lsc / torch | first-step loss lsc vs torch |",
           "|---|---:|---|---:|---:|---:|---:|---|"]
  for r in rows:
    ours, theirs = r["lsc"], r["torch"]
    if "error" in theirs:
      torch_cols = f"– | – | {theirs['error']}"
    else:
      torch_cols = (f"{theirs['steps_per_s_best']:.2f} | {r['ratio']:.2f}x | {ours['losses'][0]:.6g} vs "
                    f"{theirs['losses'][0]:.6g} (rel {r['loss_rel_diff'][0]:.1e}; max over "
                    f"{len(r['loss_rel_diff'])} steps {max(r['loss_rel_diff']):.1e})")
    table.append(f"| {r['env']} {r['policy']} | {r['num_params']:,} | {r['batch_policies']}x{r['batch_states']} | "
                 f"{ours['steps_per_s_best']:.2f} | {ours['compile_s']:.1f} | {torch_cols} |")
  path = write(f"autoencoder_{info['jax_platform']}", {"machine": info, "torch": torch_info, "args": vars(args),
                                                        "rows": rows}, "\n".join(table))
  print("\n".join(table))
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
