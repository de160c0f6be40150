"""The race's symmetric tuning (experiments/RACE.md): every method gets the same budget
per env, chosen by the same rule.

  python -m experiments.race_tune mountain_car [--methods ppo,sac] [--start mean] [--out runs/race-tune-mountain_car]
      [--from runs/race-mountain_car]

For each method of the race (`experiments.presets.RACE_METHODS`; or any registered
method named in --methods, e.g. the other strategies or the RL agents from the
behaviour space), a sweep (`experiments.sweep`) of 3 cells of its one most important
setting around the race preset's value, on 2 selection seeds over all the env's race
tasks:
  - a search (PGPE or OpenAI-ES in the latent or parameter space; the start control):
    its centre's step size `lr`, at 1/3, 1 and 3 times the preset's;
  - a strategy without a centre's step size (CMA-ES, Sep-CMA-ES, SNES): its initial
    search std `std_init` (CMA-ES's sigma), at 1/3, 1 and 3 times the preset's;
  - a subspace control (random or principal directions): its initial search std
    `std_init`, at 1/3, 1 and 3 times the preset's, because its spread along each
    direction is the data's and means another step than the latent space's whose
    setting it borrows (on isotropic data the principal directions' measured spread is
    about 4 times the random ones');
  - an RL agent (its actor the lsc policy or a latent code, too): Adam's
    `learning_rate`, at 1/3, 1 and 3 times the preset's;
  - a sequence (whose phases keep their own methods' settings): its first phase's
    share `fraction`, 0.25, 0.5 and 0.75.
With `--start mean` the searches are tuned for the reward-free start, the mean code
(`search.latent_start=mean`; issue 36, item 5): there the initial spread matters most
(a search from the mean must first reach the codes of good policies), so every search
sweeps its `std_init` at 1/3, 1 and 3 times the preset's; sequences their share.  Those
sweeps are tagged `race_mean` and the `race_mean` preset reads them.
The learning rate is the one setting every method has and the one RL tuning studies
rank first; for the subspace controls the scale is the least known.  The winner is the sweep's: the lowest mean rank over the tasks of the mean
final return on selection evaluation keys.  Each sweep writes
experiments/results/sweep_<env>_<method>_race.{md,json}; the race preset reads the
winners from there (`experiments.presets.race`).  The dataset and autoencoder are
reward-free and shared by every cell: the first sweep's first cell computes them, or
they are copied from --from RUN (a run of the same preset's data settings, e.g. the
race's reported run; two tunings on two cores then compute them once).
Resumable: a finished cell is reused.
"""

import argparse
import os
import subprocess
import sys

from experiments import sweep
from experiments.presets import RACE, RACE_METHODS, UNTUNED_CPU
from lsc.methods import METHODS, RLMethod, Sequence, get_method

SEEDS = 2  # selection seeds per cell
FACTORS = (1 / 3, 1.0, 3.0)  # of the preset's step size
FRACTIONS = (0.25, 0.5, 0.75)  # latent-then-parameter's latent share
TAGS = {"best": "race", "mean": "race_mean"}  # the sweeps' tag, and the preset they run on, per start
SUBSPACES = ("random_subspace", "principal_subspace")  # the controls whose std_init is tuned


def starts_latent(method: str, start: str) -> bool:
  """Whether `method` is tuned for latent start `start`: every method for the race's
  (best); for the mean code only those that read the autoencoder (start there)."""
  return start == "best" or get_method(method).reads == "autoencoder"


def cells(env: str, method: str, start: str = "best") -> tuple[str, list[float]]:
  """(the setting's key, its 3 values) of `method`'s sweep on `env` for the latent
  start `start` ("best" | "mean"), around the value of env's race preset before tuning
  (its cpu preset's before any race winner: `UNTUNED_CPU`)."""
  kind = get_method(method)
  if isinstance(kind, Sequence):
    return f"methods.{method}.fraction", list(FRACTIONS)
  config = UNTUNED_CPU[env]().methods[method]
  field = ("learning_rate" if isinstance(kind, RLMethod) else
           "std_init" if start == "mean" or kind.space in SUBSPACES or not hasattr(config, "lr") else "lr")
  value = getattr(config, field)
  return f"methods.{method}.{field}", [float(f"{value * f:.3g}") for f in FACTORS]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m experiments.race_tune", description=__doc__.split("\n")[0])
  p.add_argument("env", choices=sorted(RACE))
  p.add_argument("--methods", default=None,
                 help="comma-separated registered methods (default: every race method; with --start mean, "
                      "those of them that read the latent start)")
  p.add_argument("--start", choices=sorted(TAGS), default="best",
                 help="the latent start tuned for: best (the race's, reward-chosen) or mean (reward-free)")
  p.add_argument("--out", default=None, help="default runs/race-tune-<env> (-mean for --start mean)")
  p.add_argument("--from", dest="source", default=None,
                 help="a pipeline run directory whose dataset and autoencoder the first cell starts from")
  args = p.parse_args(argv)
  out = args.out or f"runs/race-tune-{args.env}" + ("-mean" if args.start == "mean" else "")
  tag = TAGS[args.start]
  methods = args.methods.split(",") if args.methods else [m for m in RACE_METHODS if starts_latent(m, args.start)]
  unknown = [m for m in methods if m not in METHODS]
  if unknown:
    p.error(f"unknown methods: {', '.join(unknown)}; valid: {', '.join(METHODS)}")
  if args.source and not os.path.isdir(args.source):
    p.error(f"--from: {args.source} is not a run directory")
  blind = [m for m in methods if not starts_latent(m, args.start)]
  if blind:
    p.error(f"{', '.join(blind)} do not start from the latent start: tune them with --start best")
  first = args.source  # the shared stages: from --from, else the first cell of the first method swept
  for method in methods:
    key, values = cells(args.env, method, args.start)
    command = [args.env, "--method", method, "--preset", tag, "--set", f"search.seeds={SEEDS}",
               "--grid", f"{key}={','.join(map(str, values))}", "--tag", tag, "--out", out]
    if first is not None:
      command += ["--from", first]
    print(f"race_tune: {method}: {key} in {values}", flush=True)
    # a process per sweep: what one sweep compiles is freed before the next
    code = subprocess.run([sys.executable, "-m", "experiments.sweep", *command]).returncode
    if code:
      return code
    first = first or f"{out}/{method}/{sweep.cell_name({key: values[0]})}"
  return 0


if __name__ == "__main__":
  sys.exit(main())
