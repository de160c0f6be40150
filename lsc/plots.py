"""Plots shared by the command line and the experiments (PNG, matplotlib's Agg backend)."""

import pathlib
import warnings

import numpy as np

from lsc.distributed import on_main
from lsc.evaluation import on_grid


def pyplot():
  # matplotlib: loaded only when a plot is drawn (slow to import)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # after choosing the Agg backend
  return plt


def _write(fig, path) -> pathlib.Path:
  """Writes `fig` to `path` (process 0 of a multi-process run) and closes it."""
  path = pathlib.Path(path)
  on_main(fig.savefig, path, dpi=110)
  pyplot().close(fig)
  return path


def _save_lines(fig, ax, xlabel: str, ylabel: str, title: str, path) -> pathlib.Path:
  """Labels, grid and legend of a one-axes line plot, written to `path`."""
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  return _write(fig, path)


def plot_curves(curves: dict, path, title: str, n_points: int = 200, references: dict | None = None) -> pathlib.Path:
  """Return vs env steps, one line per method: the mean over seeds with a band from the
  worst to the best seed.  curves: {method: (env_steps (S, G), returns (S, G))};
  references: {label: return} drawn as dashed horizontal lines (e.g. the policy a
  search starts from, with no search)."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  for name, (steps, returns) in curves.items():
    steps, returns = np.atleast_2d(steps), np.atleast_2d(returns)
    grid = np.linspace(0, np.nanmax(steps), n_points)
    values = on_grid(steps, returns, grid)
    with warnings.catch_warnings():  # all-NaN columns (before any seed's first point)
      warnings.simplefilter("ignore", RuntimeWarning)
      mean, low, high = (f(values, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
    line, = ax.plot(grid, mean, label=f"{name} ({len(steps)} seed{'s' if len(steps) > 1 else ''})")
    if len(steps) > 1:
      ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
  for label, value in (references or {}).items():
    ax.axhline(value, color="0.4", linestyle="--", linewidth=1, label=label)
  return _save_lines(fig, ax, "env steps", "return", title, path)


def plot_finals(finals: dict, path, title: str) -> pathlib.Path:
  """Final returns side by side, one panel per task: for each method, one marker per
  variant at the mean over seeds with a bar from the worst to the best seed, and the
  seeds as dots.  finals: {task: {method: {variant: returns (S,)}}}, a variant absent
  where it did not run the method."""
  plt = pyplot()
  tasks = list(finals)
  variants = list(dict.fromkeys(v for per_task in finals.values() for row in per_task.values() for v in row))
  colors = {v: f"C{i % 10}" for i, v in enumerate(variants)}
  width = 0.8 / max(len(variants), 1)
  fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks) + 1.5, 3.8), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    methods = list(finals[task])
    for i, method in enumerate(methods):
      for j, variant in enumerate(variants):
        values = finals[task][method].get(variant)
        if values is None:
          continue
        values = np.asarray(values, np.float64)
        x = i - 0.4 + width * (j + 0.5)
        ax.plot([x, x], [values.min(), values.max()], color=colors[variant], linewidth=1.5)
        ax.plot([x] * len(values), values, ".", color=colors[variant], alpha=0.35, markersize=4)
        ax.plot(x, values.mean(), "o", color=colors[variant], markersize=5,
                label=variant if (i, task) == (0, tasks[0]) else None)
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    ax.set_title(task)
    ax.grid(alpha=0.3, axis="y")
  axes[0][0].set_ylabel("final return")
  fig.legend(loc="center right", fontsize=8)
  fig.suptitle(title)
  fig.tight_layout(rect=(0, 0, 1 - 1.2 / (3.2 * len(tasks) + 1.5), 1))
  return _write(fig, path)


def plot_training(history: dict, path, title: str) -> pathlib.Path:
  """Training curves of the autoencoder: the training loss and both validation losses
  against the step, log scale.  history: lists under step, train, val_behaviour,
  val_parameter."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  for name, style in (("train", "-"), ("val_behaviour", "--"), ("val_parameter", ":")):
    ax.plot(history["step"], history[name], style, label=name)
  ax.set_yscale("log")
  return _save_lines(fig, ax, "step", "loss", title, path)


def plot_landscape(z: np.ndarray, returns: np.ndarray, names, path, title: str) -> pathlib.Path | None:
  """The latent return landscape, one panel per task: a line over z for latent_dim 1,
  a heat map over the grid for latent_dim 2.  z (n, k), returns (n, n_tasks).  Returns
  None (no plot) for latent_dim > 2."""
  k = z.shape[1]
  if k > 2:
    return None
  plt = pyplot()
  fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.0), squeeze=False)
  for ax, name, column in zip(axes[0], names, np.asarray(returns).T):
    if k == 1:
      ax.plot(z[:, 0], column)
      ax.set_xlabel("z")
      ax.set_ylabel("return")
    else:
      side = int(round(np.sqrt(len(z))))
      image = ax.imshow(column.reshape(side, side).T, origin="lower", aspect="auto", cmap="viridis",
                        extent=(z[:, 0].min(), z[:, 0].max(), z[:, 1].min(), z[:, 1].max()))
      fig.colorbar(image, ax=ax)
      ax.set_xlabel("z1")
      ax.set_ylabel("z2")
    ax.set_title(name)
  fig.suptitle(title)
  fig.tight_layout()
  return _write(fig, path)
