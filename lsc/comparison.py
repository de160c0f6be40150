"""The fair race: methods compared by the env steps they need to reach a threshold fixed
before their runs, every env step they depend on charged, with statistics through
rliable (stratified bootstrap over seeds).

A `Table` of `Entry`s (one per env, task and method label) is read from finished
pipeline runs (`Table.from_runs`); thresholds come from a committed file
(`read_thresholds`, written once by `freeze_thresholds`), never from the methods of a
run.  Nothing here compiles a JAX program.  The rules (`RULES`, written beside every
table):
"""

import dataclasses
import json
import math
import pathlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from lsc.methods import get_method, names
from lsc.tasks import task_names

ACCOUNTINGS = ("none", "shared", "full")  # of the dataset's collection: see RULES["charges"]
FRACTIONS = (0.6, 0.7, 0.8, 0.9, 1.0)  # threshold sensitivity: fractions of (high - low) above low
TAUS = np.linspace(0.0, 1.2, 61)  # performance profiles: normalised-score thresholds
FINE_TUNING_ENVS = ("mountain_car", "reacher")  # the paper's 8 fine-tuning tasks; every other env: locomotion
REFERENCE = "latent_pgpe"  # probability of improvement: of this label over every other
SEED = 0  # numpy's global seed before every bootstrap: outputs reproducible bit for bit
# by latent_start: reward-free (no task reward before the run), reward-chosen (the dataset's
# task returns, i.e. its whole kept evaluation, read), candidates-chosen (task reward read on
# its candidates' episodes only, which its curves already charge: CANDIDATES_RULE)
STARTS = {"mean": "reward-free", "best": "reward-chosen", "best_decoded": "reward-chosen",
          "spread": "candidates-chosen", "spread_descriptors": "candidates-chosen"}
# equal in all runs of one env: the runs, their evaluation, and the dataset and autoencoder
# behind the charges and the starts (and the package versions that made them)
SHARED_SETTINGS = ("budget", "seeds", "seed", "grid", "curve_eval", "eval", "collect", "train", "versions")

RULES = {
    "thresholds": "fixed before the runs in a committed file (its own rule is quoted with it), never taken "
                  "from the methods of a run; a return R scores (R - low) / (high - low) (normalised), so the "
                  "threshold low + fraction (high - low) sits at the same score on every task.",
    "steps": "per seed, the env steps of the first point of the method's evaluation curve (one grid of env "
             "steps per env, step 0 included; the curve protocol's fixed episodes) whose return is at or above "
             "the threshold (a point before the method had a solution counts as below), plus the method's "
             "charge under the accounting; never (infinitely late) if no point reaches it.",
    "charges": "the dataset costs probe + kept env steps (probe rollouts; kept: evaluating every dataset policy, "
               "which yields the states the autoencoder trains on and every dataset policy's return on every "
               "task), and the autoencoder's training its own episodes, ae (the rollout state source's decoded "
               "policies; 0 for the others); random members evaluated only for comparison, and the recovery "
               "report, are never charged.  A method that reads "
               "the dataset (the latent methods and their controls, which start from the latent start) pays, "
               "by accounting: none 0; shared (probe + kept + ae) / n_tasks, the env's tasks sharing one dataset "
               "(rounded up); full probe + kept + ae.  A reward-chosen start (latent_start best or best_decoded: "
               "the dataset policy with the best collected return on the task, read from every dataset policy's "
               "task returns, i.e. the whole kept evaluation) also pays kept in full under every accounting: "
               "none kept; shared (probe + ae) / n_tasks + kept; full probe + kept + ae.  best_decoded's candidate "
               "episodes are inside its curves and final env steps already.  A reward-free start (mean: label "
               "suffix @mean) pays only the accounting's share.  Methods that read no dataset (param_pgpe, the "
               "RL baselines) pay 0 and are reward-free.",
    "first": "the method with the lowest median over all its seeds of steps to threshold, a seed that never "
             "reaches counting as infinitely late (so the median is never unless more than half of the seeds "
             "reach: with an even seed count the median is the mean of the middle two); ties broken by the "
             "larger fraction of seeds reaching, then the higher mean normalised final score; methods still "
             "equal are all named; no method is first where every median is never.",
    "statistics": f"95 % intervals: rliable's stratified bootstrap over seeds (percentile method, numpy seed {SEED}, "
                  "reps resamples); an interval bound of a median that is interpolated towards a never seed reads "
                  "never.  Across tasks, per group (fine-tuning: mountain_car and reacher; locomotion: the "
                  "others), normalised final scores as a runs x tasks matrix, so only the methods present on "
                  "every task of the group with one seed count (the others are named as left out).",
}
# RULES["charges"] goes on with this in a table that holds a candidates-chosen start
CANDIDATES_RULE = ("A candidates-chosen start (latent_start spread or spread_descriptors: label suffix @spread or "
                   "@spread_descriptors) pays only the accounting's share, as a reward-free one: its candidates are "
                   "picked with no reward (spread over the latent space or over the dataset's descriptors), and "
                   "the only task reward it reads, their episodes, is inside its curves and final env steps "
                   "already, as best_decoded's.")
__doc__ += "".join(f"\n{name}: {text}\n" for name, text in RULES.items()) + f"\n{CANDIDATES_RULE}\n"  # docs and tables


def rules(starts) -> dict:
  """RULES as a table whose entries have `starts` (Entry.start values) applies them."""
  if "candidates-chosen" not in set(starts):
    return dict(RULES)
  return {**RULES, "charges": f"{RULES['charges']}  {CANDIDATES_RULE}"}


def reads_dataset(method: str) -> bool:
  """Whether registered `method` depends on the dataset (the autoencoder's space or start)."""
  return get_method(method).reads == "autoencoder"


def label_of(method: str, latent_start: str) -> str:
  """A method's label in the table: its name, and when it reads the dataset and its run's
  latent start is not reward-chosen (the race's own), `@` and that start (`@mean`, `@spread`, ...)."""
  if not reads_dataset(method) or STARTS.get(latent_start) == "reward-chosen":
    return method
  return f"{method}@{latent_start}"


def charges_of(method: str, latent_start: str, by_stage: Mapping[str, int], n_tasks: int) -> tuple[str, dict]:
  """(start, {accounting: env steps charged}) of `method` in a run whose latent searches
  start at `latent_start`, whose dataset cost `by_stage` ({"probe", "kept", ...} env
  steps, and "autoencoder": its training's episodes, 0 if absent) and whose env has
  `n_tasks` tasks (RULES["charges"])."""
  if latent_start not in STARTS:
    raise ValueError(f"unknown latent_start {latent_start!r}; valid: {', '.join(STARTS)}")
  if not reads_dataset(method):
    return "reward-free", dict.fromkeys(ACCOUNTINGS, 0)
  if "probe" not in by_stage or "kept" not in by_stage:
    raise ValueError(f"{method} reads the dataset but the run has no dataset_env_steps_by_stage "
                     f"with probe and kept: its collection cannot be charged")
  probe, kept, ae = int(by_stage["probe"]), int(by_stage["kept"]), int(by_stage.get("autoencoder", 0))
  share = lambda steps: -(-steps // n_tasks)  # rounded up
  if STARTS[latent_start] != "reward-chosen":  # reward-free, candidates-chosen
    return STARTS[latent_start], {"none": 0, "shared": share(probe + kept + ae), "full": probe + kept + ae}
  return "reward-chosen", {"none": kept, "shared": share(probe + ae) + kept, "full": probe + kept + ae}


@dataclasses.dataclass(frozen=True, eq=False)
class Entry:
  """One method's seeds on one task of one env, as its pipeline run left them."""
  env: str
  task: str
  method: str  # registered name
  label: str  # `label_of(method, latent_start)`
  eval_steps: np.ndarray  # (P,) int64: the env's grid of env steps, 0 included
  eval_returns: np.ndarray  # (S, P) float64: returns on the curve protocol's episodes; NaN: no solution yet
  final_returns: np.ndarray  # (S,) float64: on fresh final-evaluation keys
  start: str  # "reward-free" | "reward-chosen" | "candidates-chosen" (STARTS)
  charges: Mapping[str, int]  # accounting -> env steps added to the method's own
  source: str  # the run it was read from


def _same_result(a: Entry, b: Entry) -> bool:
  """Whether two entries hold the same seeds' results bit for bit (curves, grid and finals)."""
  return all(np.array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), equal_nan=True)
             for f in ("eval_steps", "eval_returns", "final_returns"))


def load_run(run) -> dict:
  """The results of pipeline run `run` (its directory, holding results.json, or the file)."""
  path = pathlib.Path(run)
  path = path if path.suffix == ".json" and not path.is_dir() else path / "results.json"
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist (run the pipeline first)")
  return json.loads(path.read_text())


TRAINING_CURVE = ("env_steps", "returns")  # a curve's per-generation (per-epoch) training points


def race_record(run: dict) -> dict:
  """Pipeline results `run` less what no race reads (each curve's training points, often
  most of the file): everything `Table.from_results` checks and reads, so that a run's
  record can be committed and a race built later from records of runs done apart (on
  other machines, in other sessions)."""
  curves = {task: {method: {k: v for k, v in o.items() if k not in TRAINING_CURVE} for method, o in per.items()}
            for task, per in run["curves"].items()}
  return {**run, "curves": curves}


def dataset_clash(a: dict, b: dict) -> str | None:
  """Where two runs of one env hold different datasets or autoencoders: the first task both
  list whose best dataset row (index, collected return) differs, else the first whose trained
  autoencoder's recovery differs (an equal dataset can train another autoencoder on another
  machine), as text; None if neither does."""
  best_a, best_b = a.get("dataset_best") or {}, b.get("dataset_best") or {}
  for task in best_a.keys() & best_b.keys():
    rows = [(r.get("index"), r.get("collected")) for r in (best_a[task], best_b[task])]
    if rows[0] != rows[1]:
      return f"{task}: best row {rows[0][0]} collected {rows[0][1]!r} vs {rows[1][0]} collected {rows[1][1]!r}"
  rec_a, rec_b = (((r.get("recovery") or {}).get("trained") or {}) for r in (a, b))
  for task in rec_a.keys() & rec_b.keys():
    pair = [rec[task].get("recovery") for rec in (rec_a, rec_b)]
    if pair[0] != pair[1]:
      return f"{task}: autoencoder recovery {pair[0]!r} vs {pair[1]!r}"
  return None


def settings_of(run: dict, source: str) -> dict:
  """The settings every run of one env must share (SHARED_SETTINGS); ValueError where
  the run's methods or tasks are not on one grid."""
  config = run["config"]
  grids = {tuple(o["eval_steps"]) for per_method in run["curves"].values() for o in per_method.values()}
  if len(grids) != 1:
    raise ValueError(f"{source}: expected one eval_steps grid for every task and method, found {len(grids)}")
  search = config["search"]
  return {"budget": search["budget"], "seeds": search["seeds"], "seed": search["seed"], "grid": grids.pop(),
          "curve_eval": config.get("curve_eval"), "eval": config.get("eval"), "collect": config.get("collect"),
          "train": config.get("train"), "versions": run.get("versions")}


def autoencoder_env_steps(run: dict, source: str) -> int:
  """The env steps run's autoencoder training spent; a run from before they were recorded
  spent none unless its autoencoder trained on rollouts (ValueError: not chargeable)."""
  if "autoencoder_env_steps" in run:
    return int(run["autoencoder_env_steps"])
  if (run["config"].get("train") or {}).get("states") == "rollout":
    raise ValueError(f"{source}: its autoencoder trained on rollouts, whose env steps the run does not record "
                     f"(made before they were): rerun it so that they can be charged")
  return 0


def entries_of(run: dict, source: str) -> list[Entry]:
  """Every (task, method) curve of pipeline results `run` (read from `source`) as an Entry."""
  env, search = run["config"]["collect"]["env"]["name"], run["config"]["search"]
  start = search.get("latent_start", "mean")
  by_stage = {**(run.get("dataset_env_steps_by_stage") or {}), "autoencoder": autoencoder_env_steps(run, source)}
  n_tasks = len(task_names(env))
  out = []
  for task, per_method in run["curves"].items():
    for method, o in per_method.items():
      kind, charges = charges_of(method, start, by_stage, n_tasks)
      entry = Entry(env, task, method, label_of(method, start), np.asarray(o["eval_steps"], np.int64),
                    np.asarray(o["eval_returns"], np.float64), np.asarray(o["final_returns"], np.float64),
                    kind, charges, source)
      shape = (search["seeds"], len(entry.eval_steps))
      if entry.eval_returns.shape != shape or entry.final_returns.shape != shape[:1]:
        raise ValueError(f"{source}: {method} on {task} has eval_returns {entry.eval_returns.shape} and "
                         f"final_returns {entry.final_returns.shape}; expected {shape} and {shape[:1]}")
      out.append(entry)
  return out


def _brief(value, other=None) -> str:
  """A setting for an error message: a grid by its length and last point, a section by
  the entries that differ from `other`'s."""
  if isinstance(value, dict) and isinstance(other, dict):
    return "{" + ", ".join(f"{k}: {value.get(k)!r}" for k in sorted({*value, *other}, key=str)
                           if value.get(k) != other.get(k)) + "}"
  return f"{len(value)} points to {value[-1]}" if isinstance(value, tuple) and len(value) > 6 else repr(value)


@dataclasses.dataclass(frozen=True)
class Table:
  """Every Entry of a race, by (env, task, label), in the order of the runs; `starts`:
  per (env, task) the return of the best dataset policy by its collected return (the
  reward-chosen start, no search) on the final evaluation keys, where a run records it."""
  entries: Mapping[tuple[str, str, str], Entry]
  starts: Mapping[tuple[str, str], float] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_runs(cls, runs: Sequence) -> "Table":
    """The table of pipeline runs (directories or results.json paths); see from_results."""
    return cls.from_results([(str(run), load_run(run)) for run in runs])

  @classmethod
  def from_results(cls, named: Sequence[tuple[str, dict]]) -> "Table":
    """The table of (source, results) pairs, runs split by method merged.  ValueError where
    two runs of one env differ in a SHARED_SETTINGS field, in their dataset (its best
    row on a task both list) or in their autoencoder (its recovery), or hold one label on one task
    with other results (an identical recompute, e.g. a method rerun beside others in
    another run, is one entry: the first run's)."""
    first, entries, starts = {}, {}, {}
    for source, run in named:
      settings, env = settings_of(run, source), run["config"]["collect"]["env"]["name"]
      base_source, base, base_run = first.setdefault(env, (source, settings, run))
      for field in SHARED_SETTINGS:
        if settings[field] != base[field]:
          raise ValueError(f"{source} and {base_source} differ in {field} ({_brief(settings[field], base[field])} "
                           f"vs {_brief(base[field], settings[field])}): the runs of one env race on equal terms")
      clash = dataset_clash(run, base_run)
      if clash:
        here, there = run.get("device"), base_run.get("device")
        where = f"made on {here} and {there}" if here != there else "floating point differs between machines"
        raise ValueError(f"{source} and {base_source} hold different datasets or autoencoders with the same settings "
                         f"({clash}): {where}; race runs made on one machine")
      for task, best in (run.get("dataset_best") or {}).items():
        if best.get("return") is not None:
          starts.setdefault((env, task), float(best["return"]))
      for entry in entries_of(run, source):
        key = (entry.env, entry.task, entry.label)
        if key in entries:
          if _same_result(entry, entries[key]):
            continue
          raise ValueError(f"{entry.label} on {entry.env}/{entry.task} appears in {source} and "
                           f"{entries[key].source} with other results: give each once")
        entries[key] = entry
    return cls(entries, starts)

  def tasks(self) -> list[tuple[str, str]]:
    """The (env, task) pairs, in the order of the runs."""
    return list(dict.fromkeys((env, task) for env, task, _ in self.entries))

  def on(self, env: str, task: str) -> dict[str, Entry]:
    """{label: Entry} of one task."""
    return {label: e for (v, t, label), e in self.entries.items() if (v, t) == (env, task)}

  def labels(self) -> list[str]:
    """Every label: the dataset's readers first, then in the registry's order, other starts' (@mean, @spread) after."""
    order, methods = names(), {e.label: e.method for e in self.entries.values()}
    return sorted(methods, key=lambda label: (not reads_dataset(methods[label]), order.index(methods[label])
                                              if methods[label] in order else len(order), label))


def freeze_thresholds(old: dict, source: str, fraction: float = 0.9) -> dict:
  """The thresholds file's content from an earlier table `old` (experiments.sample_efficiency's
  JSON: rows with env, task, threshold and methods[m]["final_mean"]): per task, low and high
  the lowest and highest mean final return over its methods, threshold = low + fraction
  (high - low); ValueError where that is not the table's own threshold (to 1e-9)."""
  tasks, methods = {}, set()
  for row in old["rows"]:
    finals = [float(m["final_mean"]) for m in row["methods"].values()]
    low, high = min(finals), max(finals)
    level = low + fraction * (high - low)
    if abs(level - row["threshold"]) > 1e-9:
      raise ValueError(f"{row['env']}/{row['task']}: low + {fraction} (high - low) = {level!r}, but the table's "
                       f"threshold is {row['threshold']!r}")
    tasks[f"{row['env']}/{row['task']}"] = {"low": low, "high": high, "fraction": fraction, "threshold": level}
    methods |= set(row["methods"])
  rule = (f"Per task, low and high are the lowest and highest mean final return (fresh evaluation keys) of the "
          f"{len(methods)} methods ({', '.join(sorted(methods))}) of an earlier committed table, fixed before "
          f"the race's runs; threshold = low + {fraction} (high - low); normalised score (R - low) / (high - low).")
  return {"rule": rule, "source": source, "tasks": tasks}


def read_thresholds(path) -> dict:
  """A thresholds file's content (see freeze_thresholds)."""
  return json.loads(pathlib.Path(path).read_text())


def threshold_of(thresholds: dict, env: str, task: str) -> tuple[float, float, float]:
  """(low, high, fraction) of a task; ValueError if the file has none."""
  try:
    t = thresholds["tasks"][f"{env}/{task}"]
  except KeyError:
    raise ValueError(f"no frozen threshold for {env}/{task}; the file has {', '.join(thresholds['tasks'])}") from None
  return float(t["low"]), float(t["high"]), float(t["fraction"])


def normalise(returns: np.ndarray, low: float, high: float) -> np.ndarray:
  """Normalised scores (R - low) / (high - low) of returns (any shape)."""
  return (np.asarray(returns, np.float64) - low) / (high - low)


def steps_to_threshold(eval_steps: np.ndarray, eval_returns: np.ndarray, level: float) -> np.ndarray:
  """(S,) float64: per seed, eval_steps (P,) of the first of eval_returns (S, P) at or
  above `level`; inf where none is (NaN, no solution yet, is below any level)."""
  hit = eval_returns >= level  # NaN compares False
  return np.where(hit.any(axis=1), eval_steps[np.argmax(hit, axis=1)].astype(np.float64), np.inf)


def rank_key(steps: np.ndarray, scores: np.ndarray) -> tuple[float, float, float]:
  """RULES["first"] as a key, lowest first: (median of steps (S,), minus the fraction of
  seeds reaching, minus the mean normalised final score of scores (S,))."""
  return float(np.median(steps)), -float(np.mean(np.isfinite(steps))), -float(np.mean(scores))


def first(steps: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray]) -> list[str]:
  """The labels first under RULES["first"] (several: a tie; none: every median never)."""
  keys = {label: rank_key(steps[label], scores[label]) for label in steps}
  best = min(keys.values(), default=(math.inf,))
  return [label for label, key in keys.items() if key == best] if math.isfinite(best[0]) else []


def race_task(entries: Mapping[str, Entry], low: float, high: float, fraction: float) -> dict:
  """One task's race at threshold low + fraction (high - low): level, per label its own
  steps (S,), steps per accounting (own + charge), normalised final scores (S,), and the
  first labels per accounting."""
  level = low + fraction * (high - low)
  own = {label: steps_to_threshold(e.eval_steps, e.eval_returns, level) for label, e in entries.items()}
  scores = {label: normalise(e.final_returns, low, high) for label, e in entries.items()}
  steps = {a: {label: own[label] + e.charges[a] for label, e in entries.items()} for a in ACCOUNTINGS}
  return {"level": level, "own": own, "steps": steps, "scores": scores,
          "first": {a: first(steps[a], scores) for a in ACCOUNTINGS}}


def _bootstrap(scores: np.ndarray, func: Callable, reps: int, seed: int = SEED):
  """rliable's point estimate and 95 % interval (2, ...) of func(scores), scores a
  (runs, tasks) array or a list of them, resampled `reps` times from `seed`."""
  # rliable: the optional `analysis` extra, and a heavy import (arch, pandas, statsmodels)
  from rliable import library as rly
  np.random.seed(seed)  # rliable draws its resamples from numpy's global generator
  point, interval = rly.get_interval_estimates({"x": scores}, func, reps=reps)
  return point["x"], interval["x"]


def median_ci(steps: np.ndarray, reps: int, seed: int = SEED) -> tuple[float, float]:
  """95 % interval (low, high) of the median of steps (S,) (inf: never reached)."""
  finite = steps[np.isfinite(steps)]
  if not finite.size:
    return math.inf, math.inf
  cap = float(finite.max())  # a finite median of any resample is at most this
  # a finite stand-in for never: numpy's percentiles cannot interpolate between infinities
  stand_in = np.where(np.isfinite(steps), steps, 2 * cap + 1)
  _, interval = _bootstrap(stand_in[:, None], lambda x: np.array([np.median(x)]), reps, seed)
  return tuple(math.inf if b > cap else float(b) for b in np.ravel(interval))


def iqm_ci(values: np.ndarray, reps: int, seed: int = SEED) -> tuple[float, float, float]:
  """(IQM, low, high) of values (S,), the interval 95 % (one task's seeds)."""
  from rliable import metrics  # as in _bootstrap
  point, interval = _bootstrap(np.asarray(values, np.float64)[:, None], metrics.aggregate_iqm, reps, seed)
  return float(point), *map(float, np.ravel(interval))


def curve_iqm(eval_returns: np.ndarray, reps: int, seed: int = SEED) -> np.ndarray:
  """(3, P): the IQM over seeds of eval_returns (S, P) at each grid point, and its 95 %
  interval's low and high; NaN where a seed has no solution yet."""
  from scipy import stats
  out = np.full((3, eval_returns.shape[1]), np.nan)
  columns = np.isfinite(eval_returns).all(axis=0)
  if columns.any():
    point, interval = _bootstrap(eval_returns[:, columns], lambda x: stats.trim_mean(x, 0.25, axis=0), reps, seed)
    out[0, columns], out[1:, columns] = point, interval
  return out


def group_of(env: str) -> str:
  """The group of `env`: fine-tuning (FINE_TUNING_ENVS) or locomotion."""
  return "fine-tuning" if env in FINE_TUNING_ENVS else "locomotion"


def group_scores(table: Table, thresholds: dict, group: str) -> tuple[list, dict, dict]:
  """(tasks, {label: normalised final scores (S, T)}, {label: why left out}) of the T
  tasks of `group`: only labels present on every one of them with one seed count."""
  tasks = [(env, task) for env, task in table.tasks() if group_of(env) == group]
  scores, left_out = {}, {}
  for label in table.labels():
    per = [table.entries.get((env, task, label)) for env, task in tasks]
    missing = [f"{env}/{task}" for (env, task), e in zip(tasks, per) if e is None]
    seeds = sorted({len(e.final_returns) for e in per if e is not None})
    if len(missing) == len(tasks):
      continue
    if missing or len(seeds) > 1:
      left_out[label] = f"absent on {', '.join(missing)}" if missing else f"seed counts differ ({seeds})"
      continue
    scores[label] = np.stack([normalise(e.final_returns, *threshold_of(thresholds, e.env, e.task)[:2])
                              for e in per], axis=1)
  return tasks, scores, left_out


def aggregates(scores: Mapping[str, np.ndarray], reps: int, seed: int = SEED, reference: str = REFERENCE) -> dict:
  """Per label of scores {label: (S, T)}: IQM and mean [point, low, high], the performance
  profile at TAUS (fraction of runs scoring above tau) with its interval (3, len(TAUS));
  and P(reference > label) [point, low, high] for every other label (empty without the
  reference)."""
  from rliable import library as rly, metrics  # as in _bootstrap
  summary = lambda point, interval: [float(point), *map(float, np.ravel(interval))]
  out = {"iqm": {}, "mean": {}, "profile": {}, "improvement": {}}
  for label, x in scores.items():
    out["iqm"][label] = summary(*_bootstrap(x, metrics.aggregate_iqm, reps, seed))
    out["mean"][label] = summary(*_bootstrap(x, metrics.aggregate_mean, reps, seed))
    np.random.seed(seed)  # as in _bootstrap
    point, interval = rly.create_performance_profile({label: x}, TAUS, reps=reps)
    out["profile"][label] = np.concatenate([point[label][None], interval[label]]).tolist()
    if reference in scores and label != reference:
      out["improvement"][label] = summary(*_bootstrap([scores[reference], x], metrics.probability_of_improvement,
                                                      reps, seed))
  return out


def sensitivity(table: Table, thresholds: dict, fractions: Sequence[float] = FRACTIONS) -> dict:
  """{fraction: {label: tasks it is first on}} for every label that reads the dataset,
  under RULES["first"] with no collection charged (ties count for each tied label)."""
  latent = [label for label in table.labels() if any(e.label == label and reads_dataset(e.method)
                                                     for e in table.entries.values())]
  counts = {f: dict.fromkeys(latent, 0) for f in fractions}
  for env, task in table.tasks():
    low, high, _ = threshold_of(thresholds, env, task)
    for f in fractions:
      for label in race_task(table.on(env, task), low, high, f)["first"]["none"]:
        if label in counts[f]:
          counts[f][label] += 1
  return counts
