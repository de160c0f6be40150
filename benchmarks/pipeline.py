"""Wall time per stage of the experiment pipelines (`python -m experiments.<env>`).

  python -m benchmarks.pipeline                                  # every env, `cpu` preset
  python -m benchmarks.pipeline --envs halfcheetah --preset paper --out runs/bench   # GPU

Runs each env's preset into `--out/<env>-<preset>` with the pipeline's own stage reuse:
a stage already finished there with the same config is not rerun, and its time is the
one recorded when it was computed (each stage directory keeps it in time.json), so an
interrupted benchmark resumes.  Per stage: wall time, and for the PGPE searches the
compile time apart (PPO / SAC compile inside Brax's training loop and cannot be split).
Writes benchmarks/results/pipeline_<preset>_<platform>.{json,md}; an env not in --envs
keeps the entry that file already holds, with the machine and date it was measured on
and the preset's settings then: a row whose preset has changed since says which
settings differ (or that they were not recorded).
"""

import argparse
import json
import pathlib
import sys


def parse_args(argv):
  p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
  p.add_argument("--envs", default="mountain_car,reacher,hopper,halfcheetah")
  p.add_argument("--preset", default="cpu")
  p.add_argument("--out", default="runs/bench-pipeline", help="pipeline runs (reused and resumed)")
  from lsc import distributed
  distributed.add_arguments(p)
  args = p.parse_args(argv)
  distributed.setup_command_line(p, args)
  return args


def compile_seconds(run_dir: pathlib.Path, stage: str) -> float | None:
  """The compile time a search stage recorded in its outcome.json, if any."""
  path = run_dir / stage / "outcome.json"
  if not path.exists():
    return None
  return json.loads(path.read_text()).get("timings", {}).get("compile_s")


def settings(config) -> dict:
  """What a preset's stages compute with, {dotted name: value} as JSON reads it back: its
  settings with the defaults that depend on the env filled in (`pipeline.validate`), and
  of the registered methods only those it runs, each as its identity (its settings and a
  sequence's phases')."""
  import dataclasses

  from lsc import jsonfile
  from lsc.config import flatten, to_dict
  from lsc.methods import get_method
  from lsc.pipeline import validate
  plain = to_dict(dataclasses.replace(config, collect=validate(config)))
  plain["methods"] = {name: get_method(name).identity(config.methods) for name in config.search.methods}
  return json.loads(jsonfile.dumps(flatten(plain)))


def changed(then: dict | None, now: dict) -> str:
  """Words for a total row: how a preset's settings `now` (None: the preset is gone)
  differ from those a timing was measured with (`then`; None: not recorded); "" if the same."""
  if now is None:
    return "; this preset no longer exists"
  if then is None:
    return "; preset settings not recorded: it may have changed since"
  keys = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
  if not keys:
    return ""
  more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
  return f"; preset changed since: {', '.join(keys[:3])}{more}"


def table(runs: dict, preset: str, current: dict) -> str:
  """Markdown: each env's stages' wall and compile seconds, under the machine it ran on,
  with how `current` ({env: settings}, today's preset) differs from the run's settings."""
  lines = [f"Pipeline stage wall times, preset `{preset}`.",
           "", "| env | stage | wall (s) | of which compile (s) |", "|---|---|---:|---:|"]
  for env, run in runs.items():
    m = run["machine"]
    for stage, seconds in run["stages_s"].items():
      compiled = run["compile_s"].get(stage)
      lines.append(f"| {env} | {stage} | {seconds:.0f} | {'' if compiled is None else f'{compiled:.0f}'} |")
    note = changed(run.get("settings"), current.get(env))
    lines.append(f"| {env} | **total** ({m['cpu']}, {m['cores']} cores, JAX {m['jax']} on {m['jax_platform']}, "
                 f"{m['date']}{note}) | **{sum(run['stages_s'].values()):.0f}** | |")
  return "\n".join(lines)


def earlier_runs(path: pathlib.Path) -> dict:
  """{env: run} of an earlier benchmark file, each run with the machine it was measured on."""
  if not path.is_file():
    return {}
  earlier = json.loads(path.read_text())
  unknown = {"cpu": "unknown machine", "cores": "?", "jax": "?", "jax_platform": "?", "date": "undated"}
  return {env: {"machine": earlier.get("machine", unknown), **run} for env, run in earlier["runs"].items()}


def main(argv=None) -> int:
  args = parse_args(argv)
  from benchmarks.common import RESULTS_DIR, machine, write
  from lsc import pipeline
  from experiments.presets import PRESETS

  info = machine()
  name = f"pipeline_{args.preset}_{info['jax_platform']}"
  runs = earlier_runs(RESULTS_DIR / f"{name}.json")
  envs = args.envs.split(",")
  for env in envs:  # every name checked before anything runs
    if env not in PRESETS or args.preset not in PRESETS[env]:
      print(f"benchmarks.pipeline: error: no preset {args.preset!r} for env {env!r}", file=sys.stderr)
      return 2
  for env in envs:
    run_dir = pathlib.Path(args.out) / f"{env}-{args.preset}"
    print(f"== {env} ({args.preset}) -> {run_dir}", flush=True)
    config = PRESETS[env][args.preset]()
    results = pipeline.run(config, run_dir)
    stages = results["timings"]["recorded_s"]
    runs[env] = {"machine": info, "settings": settings(config), "stages_s": stages,
                 "compile_s": {s: c for s in stages if (c := compile_seconds(run_dir, s))},
                 "reused": results["timings"]["reused"], "device": results["device"]}
  text = table(runs, args.preset, {env: settings(PRESETS[env][args.preset]()) for env in runs
                                   if args.preset in PRESETS.get(env, {})})
  write(name, {"preset": args.preset, "runs": runs}, text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
