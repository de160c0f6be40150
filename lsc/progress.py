"""One progress convention for every long stage, and the bars that draw it.

A stage-level function (`collect`, `train`, `compress`, `run_search`, `train_baseline`)
takes `progress_fn(stage, done, total, info)`: `stage` names the piece of work
("descriptors", "train", "recovery", "search", ...), `done` of `total` units of it are
finished, and `info` is a dict of numbers worth showing (a loss, a return); a new
`stage` name means the previous one is over.  `Bars` draws these as tqdm bars, the
same in the CLI and the pipelines; `MetricsLog` appends them to a JSONL file (and
TensorBoard event files) in the run's directory; `tee` sends them to both.
"""

import json
import pathlib
import time
from typing import Callable

from tqdm import tqdm

from lsc import jsonfile
from lsc.distributed import is_main

ProgressFn = Callable[[str, int, int, dict], None]
METRICS = "metrics.jsonl"  # a run directory's MetricsLog


def for_stage(progress_fn: ProgressFn | None, stage: str) -> Callable[[int, int], None] | None:
  """The (done, total) callback of a low-level loop (a block of rollouts, kNN groups)
  reporting as `stage` to `progress_fn`; None when there is nothing to report to."""
  if progress_fn is None:
    return None
  return lambda done, total: progress_fn(stage, done, total, {})


# what a stage counts, by its whole name or else its first word (a search method's stages count
# env steps, each method registering its name: `register_unit`; anything else policies); env steps
# show as 1.2M
UNITS = {"train": "step", "search": "env step", "novelty search": "generation"}


def register_unit(unit: str, *stages: str) -> None:
  """Makes `unit_of` answer `unit` for stages whose first word is one of `stages`."""
  UNITS.update(dict.fromkeys(stages, unit))


def unit_of(stage: str) -> str:
  """The unit a stage counts, looked up by its whole name, then by its first word."""
  return UNITS.get(stage, UNITS.get(stage.split()[0], "policy"))


def _short(value) -> str:
  return f"{value:.3g}" if isinstance(value, float) else str(value)


class Bars:
  """A ProgressFn drawing one tqdm bar per stage.  A bar opens at its stage's first
  report (so an error raised before any work prints on a line of its own) and the
  previous stage's bar closes then; `close()` ends the last one.  Only process 0 of a
  multi-process run draws them.  `prefix` is put
  before every stage name (e.g. a pipeline stage's).  A stage's unit is `unit_of(stage)`."""

  def __init__(self, prefix: str = "", **tqdm_kwargs):
    self.prefix, self.kwargs = prefix, {"dynamic_ncols": True, **tqdm_kwargs}
    self.stage, self.bar = None, None

  def __call__(self, stage: str, done: int, total: int, info: dict | None = None) -> None:
    if not is_main():  # process 0 of a multi-process run draws the bars
      return
    if stage != self.stage:
      self.close()
      self.stage = stage
      unit = unit_of(stage)
      self.bar = tqdm(total=total, desc=f"{self.prefix}{stage}",
                      **{"unit": unit, "unit_scale": unit == "env step", **self.kwargs})
    if done < self.bar.n:  # the stage started over
      self.bar.reset(total)
    self.bar.total = total
    self.bar.update(min(done, total) - self.bar.n)
    if info:
      self.bar.set_postfix({k: _short(v) for k, v in info.items()}, refresh=False)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
    self.stage, self.bar = None, None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def tee(*fns: ProgressFn | None) -> ProgressFn:
  """A ProgressFn that calls each of `fns` (None entries are skipped)."""
  live = [f for f in fns if f is not None]

  def report(stage: str, done: int, total: int, info: dict | None = None) -> None:
    for f in live:
      f(stage, done, total, info or {})
  return report


class MetricsLog:
  """A ProgressFn writing every report as one JSON line of `path` (appended, so a
  resumed run continues its log): {"time": unix seconds, "scope", "stage", "done",
  "total", "per_s": units of the stage per second since its first report, **info}.
  `scope` (set by the caller, e.g. the pipeline's stage name) tells apart stages of the
  same name.  With `tensorboard` (a directory; needs the `tensorboard` extra,
  tensorboardX) every number is also a scalar `scope/stage/key` at step `done`."""

  def __init__(self, path, tensorboard=None, scope: str = ""):
    self.path, self.scope = pathlib.Path(path), scope
    self.started: dict[tuple[str, str], tuple[float, int]] = {}
    self.file = self.writer = None
    if not is_main():  # process 0 of a multi-process run writes the metrics
      return
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self.file = self.path.open("a")
    if tensorboard is not None:
      try:
        from tensorboardX import SummaryWriter  # the optional `tensorboard` extra, for --tensorboard only
      except ImportError:
        raise ValueError("--tensorboard needs tensorboardX: pip install 'lsc[tensorboard]'") from None
      self.writer = SummaryWriter(str(tensorboard))

  def __call__(self, stage: str, done: int, total: int, info: dict | None = None) -> None:
    if self.file is None:
      return
    now = time.time()
    start_time, start_done = self.started.setdefault((self.scope, stage), (now, done))
    per_s = (done - start_done) / (now - start_time) if now > start_time else None
    numbers = {k: v for k, v in (info or {}).items() if isinstance(v, (int, float))}
    record = {"time": now, "scope": self.scope, "stage": stage, "done": int(done), "total": int(total),
              "per_s": per_s, **numbers}
    self.file.write(jsonfile.dumps(record) + "\n")
    self.file.flush()
    if self.writer is not None:
      tag = "/".join(p for p in (self.scope, stage) if p).replace(" ", "_")
      for key, value in {**numbers, **({"per_s": per_s} if per_s is not None else {})}.items():
        self.writer.add_scalar(f"{tag}/{key}", value, int(done))

  def close(self) -> None:
    if self.file is not None:
      self.file.close()
    if self.writer is not None:
      self.writer.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def read_metrics(path) -> list[dict]:
  """The records of a MetricsLog's JSONL file, in order."""
  return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
