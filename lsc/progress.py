"""One progress convention for every long stage, and the bars that draw it.

A stage-level function (`collect`, `train`, `compress`, `run_search`, `train_baseline`)
takes `progress_fn(stage, done, total, info)`: `stage` names the piece of work
("descriptors", "train", "recovery", "search", ...), `done` of `total` units of it are
finished, and `info` is a dict of numbers worth showing (a loss, a return); a new
`stage` name means the previous one is over.  `Bars` draws these as tqdm bars, the
same in the CLI and the pipelines.
"""

from typing import Callable

ProgressFn = Callable[[str, int, int, dict], None]


def for_stage(progress_fn: ProgressFn | None, stage: str) -> Callable[[int, int], None] | None:
  """The (done, total) callback of a low-level loop (a block of rollouts, kNN groups)
  reporting as `stage` to `progress_fn`; None when there is nothing to report to."""
  if progress_fn is None:
    return None
  return lambda done, total: progress_fn(stage, done, total, {})


# what a stage counts (anything else counts policies); env steps are shown as 1.2M
UNITS = {"train": "step", "search": "env step", "ppo": "env step", "sac": "env step"}


def _short(value) -> str:
  return f"{value:.3g}" if isinstance(value, float) else str(value)


class Bars:
  """A ProgressFn drawing one tqdm bar per stage.  A bar opens at its stage's first
  report (so an error raised before any work prints on a line of its own) and the
  previous stage's bar closes then; `close()` ends the last one.  `prefix` is put
  before every stage name (e.g. a pipeline stage's).  A stage's unit is looked up in
  UNITS by its first word."""

  def __init__(self, prefix: str = "", **tqdm_kwargs):
    self.prefix, self.kwargs = prefix, {"dynamic_ncols": True, **tqdm_kwargs}
    self.stage, self.bar = None, None

  def __call__(self, stage: str, done: int, total: int, info: dict | None = None) -> None:
    from tqdm import tqdm
    if stage != self.stage:
      self.close()
      self.stage = stage
      unit = UNITS.get(stage.split()[0], "policy")
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
