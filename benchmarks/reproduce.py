"""Does this machine compute an env's committed race record bit for bit, and which XLA CPU
flags change what it computes?

  python -m benchmarks.reproduce                               # Mountain Car, every flag set
  python -m benchmarks.reproduce --env reacher --flags default

For each flag set (FLAG_SETS, by name) a fresh process runs the env's race preset with
those XLA_FLAGS into --out/<env>-<name>/<a digest of the whole XLA_FLAGS>: its dataset, its autoencoder and one seed of
parameter PGPE on the first task (a pipeline runs at least one search; it reads neither).
Read back: the dataset's best row on that task (index and collected return) and the
trained autoencoder's recovery on every task, compared bit for bit with a committed record of a
run of the same preset (--record; default experiments/results/race_runs/race-<env>.json),
made on the machine it names.  A machine
whose `default` row equals the record can add records to that env's race; `experiments.race`
refuses the others.  The other flag sets show what moves the numbers on this machine (a
machine whose capped row equals another machine's default row shares its arithmetic under
that cap).  Writes benchmarks/results/reproduce_<env>_<cpu>.{json,md}.
"""

import argparse
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys

from benchmarks.common import machine, markdown_table, write

ROOT = pathlib.Path(__file__).parent.parent
RECORDS = ROOT / "experiments" / "results" / "race_runs"
FLAG_SETS = {  # name -> XLA_FLAGS added to the environment's own
    "default": "",
    "avx2": "--xla_cpu_max_isa=AVX2",
    "avx": "--xla_cpu_max_isa=AVX",
    "vector128": "--xla_cpu_prefer_vector_width=128",
    "no_platform_math": "--xla_cpu_enable_platform_dependent_math=false",
    "avx_no_platform_math": "--xla_cpu_max_isa=AVX --xla_cpu_enable_platform_dependent_math=false",
}


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--env", default="mountain_car")
  p.add_argument("--flags", default=",".join(FLAG_SETS), help="comma-separated names from FLAG_SETS")
  p.add_argument("--budget", type=int, default=200_000, help="env steps of the one parameter PGPE seed")
  p.add_argument("--record", help="the committed record to compare with (default: race_runs/race-<env>.json)")
  p.add_argument("--out", default="runs/reproduce", help="pipeline runs (their stages reused)")
  args = p.parse_args(argv)
  args.record = pathlib.Path(args.record or RECORDS / f"race-{args.env}.json")
  args.flags = args.flags.split(",")
  unknown = [f for f in args.flags if f not in FLAG_SETS]
  if unknown:
    p.error(f"--flags: unknown {', '.join(unknown)}; choose from {', '.join(FLAG_SETS)}")
  if not args.record.exists():
    p.error(f"--record: {args.record} does not exist")
  return args


def run_preset(env: str, task: str, flags: str, budget: int, out: pathlib.Path) -> dict:
  """The results of the env's race preset run in a fresh process with XLA_FLAGS += flags,
  into `out`/<a digest of flags> (no stage key holds XLA flags, so each set gets its own
  run; within it the pipeline's stage keys decide what is reused)."""
  environ = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()}
  out = out / hashlib.sha256(environ["XLA_FLAGS"].encode()).hexdigest()[:12]
  cmd = [sys.executable, "-m", f"experiments.{env}", "--preset", "race", "--methods", "param_pgpe",
         "--tasks", task, "--seeds", "1", "--budget", str(budget), "--out", str(out)]
  subprocess.run(cmd, env=environ, check=True, cwd=ROOT)
  return json.loads((out / "results.json").read_text())


def compare(run: dict, record: dict) -> dict:
  """Per task: the best dataset row and the autoencoder's recovery, and whether each equals
  the record's bit for bit; `settings`: whether the run's collection and training
  settings are the record's (if not, the comparison means nothing)."""
  same_settings = all(run["config"][k] == record["config"][k] for k in ("collect", "train"))
  tasks = {}
  for task in [t for t in record["recovery"]["trained"] if t in run["recovery"]["trained"] and t != "mean"]:
    ours, theirs = run["recovery"]["trained"][task]["recovery"], record["recovery"]["trained"][task]["recovery"]
    tasks[task] = {"recovery": ours, "recovery_equal": ours == theirs}
    if task in run["dataset_best"]:  # the tasks the run searched
      mine, best = run["dataset_best"][task], record["dataset_best"][task]
      tasks[task].update(best_row=[mine["index"], mine["collected"]],
                         dataset_equal=(mine["index"], mine["collected"]) == (best["index"], best["collected"]))
  return {"settings_equal": same_settings, "tasks": tasks}


def cpu_slug(cpu: str) -> str:
  """A file-name part for a CPU description: 'AMD EPYC (family 25 model 1)' -> 'amd_epyc_f25m1'."""
  ids = re.search(r"\(family (\d+) model (\d+)\)\s*$", cpu)
  name = cpu[:ids.start()] if ids else cpu
  words = [w for w in re.sub(r"\(.*?\)", "", name).lower().split() if w.isalnum()][:2]
  return "_".join(words) + (f"_f{ids[1]}m{ids[2]}" if ids else "")


def main(argv=None) -> None:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  record_path = args.record.resolve()
  record = json.loads(record_path.read_text())
  task = next(iter(record["dataset_best"]))
  shown = record_path.relative_to(ROOT) if record_path.is_relative_to(ROOT) else record_path
  rows, payload = [], {"machine": machine(), "env": args.env, "record": str(shown),
                       "record_device": record.get("device"), "flag_sets": {}}
  for name in args.flags:
    run = run_preset(args.env, task, FLAG_SETS[name], args.budget, pathlib.Path(args.out) / f"{args.env}-{name}")
    result = {"xla_flags": FLAG_SETS[name], **compare(run, record)}
    payload["flag_sets"][name] = result
    per_task = result["tasks"].values()
    rows.append([name, f"`{FLAG_SETS[name]}`" if FLAG_SETS[name] else "(none)",
                 "yes" if result["settings_equal"] else "**no: not comparable**",
                 " ".join("yes" if t["dataset_equal"] else "**no**" for t in per_task if "dataset_equal" in t),
                 f"{sum(t['recovery_equal'] for t in per_task)} of {len(per_task)}",
                 repr(result["tasks"][task]["recovery"])])
    print(f"{name}: dataset equal {rows[-1][3]}, autoencoder equal on {rows[-1][4]} tasks", flush=True)
  m = payload["machine"]
  title = (f"Does {m['cpu']} ({m['cores']} cores, JAX {m['jax']}, {m['date']}) compute `{payload['record']}` "
           f"(made on {record.get('device')}) bit for bit? `python -m benchmarks.reproduce --env {args.env} "
           f"--record {payload['record']} --flags {','.join(args.flags)}`: per XLA flag set, whether the best "
           f"dataset row on `{task}` equals the record's, and on how many tasks the autoencoder's recovery does "
           f"(the record's on `{task}`: {record['recovery']['trained'][task]['recovery']!r}).")
  table = markdown_table(title, ["flag set", "XLA_FLAGS", "settings = record's", f"dataset = record's (`{task}`)",
                                 "autoencoder = record's", f"recovery on `{task}`"], rows)
  print(write(f"reproduce_{args.env}_{cpu_slug(m['cpu'])}", payload, table))


if __name__ == "__main__":
  main()
