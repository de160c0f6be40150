"""Checks shared by every entry point, run before any env is built or anything compiled,
and the one-line message of an error a user can cause.

Each check raises ValueError naming the value and what is allowed.  Nothing here imports
JAX: the checks cost nothing and run first.
"""

import argparse
import decimal
import json
import math
import numbers
import os
import pathlib
import re

import yaml

SEED_MAX = 2**32 - 1  # JAX keys take 32-bit seeds: larger ones wrap (2**32 is seed 0) or overflow


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
  """`value` if it is an int (not a bool) in [low, high]."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{name} must be an integer, got {value!r}")
  if (low is not None and value < low) or (high is not None and value > high):
    allowed = (f"in [{low}, {high}]" if low is not None and high is not None
               else f">= {low}" if low is not None else f"<= {high}")
    raise ValueError(f"{name} must be {allowed}, got {value}")
  return value


_NUMBER = re.compile(r"[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][-+]?\d+)?")


NUMBER_EXPONENT_MAX = 300  # float64 ends near 1e308; no setting of lsc is larger


def parse_number(text: str, kind: type = float):
  """`text` read as a number of `kind` (float or int), scientific notation included
  ("1e-3", "3E+5", "1_000"), where YAML 1.1 and int() would not: an int must be
  whole ("1e6" is 1000000, "1.5e0" is refused).  NaN and infinities are no numbers
  here; ValueError names the text."""
  text = text.strip()
  if not _NUMBER.fullmatch(text):
    raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
  value = decimal.Decimal(text.replace("_", ""))
  if value and abs(value.adjusted()) > NUMBER_EXPONENT_MAX:  # 1e10000000 as an int: minutes of arithmetic
    raise ValueError(f"expected {'an integer' if kind is int else 'a number'} within 1e±{NUMBER_EXPONENT_MAX}, "
                     f"got {text!r}")
  if kind is float:
    return float(value)
  if value != value.to_integral_value():
    raise ValueError(f"expected an integer, got {text!r}")
  return int(value)


def integer(text: str) -> int:
  """An argparse `type` for integers that also reads scientific notation (--budget 1e6)."""
  try:
    return parse_number(text, int)
  except ValueError as error:
    raise argparse.ArgumentTypeError(str(error)) from None


def check_seed(name: str, value, count: int = 1) -> int:
  """`value` if it and the `count - 1` seeds after it are seeds JAX keys accept."""
  check_int(name, value)
  if not 0 <= value <= SEED_MAX - (count - 1):
    extra = f" (it and the {count - 1} seed(s) after it)" if count > 1 else ""
    raise ValueError(f"{name} must be an integer in [0, {SEED_MAX - (count - 1)}]{extra}, got {value}")
  return value


def check_finite(name: str, value) -> float:
  """`value` if it is a finite real number (not NaN, not +-inf, not a bool)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f"{name} must be a finite number, got {value!r}")
  if not math.isfinite(value):
    raise ValueError(f"{name} must be a finite number, got {value}")
  return float(value)


def _cgroup_limit() -> int | None:
  for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    try:
      text = pathlib.Path(path).read_text().strip()
    except OSError:
      continue
    if text.isdigit():
      return int(text)
  return None


def memory_limit() -> int | None:
  """Bytes of memory this machine (or its cgroup) can hold; None if unknown."""
  try:
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    total = None
  limit = _cgroup_limit()
  if limit is not None and (total is None or limit < total):
    total = limit
  return total


def _size(nbytes: float) -> str:
  for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
    if nbytes >= scale:
      return f"{nbytes / scale:,.1f} {unit}"
  return f"{nbytes:,.0f} bytes"


def check_memory(what: str, nbytes: int, parts: str = "") -> None:
  """Refuses a run whose arrays (an estimate of `nbytes`) exceed the machine's memory."""
  limit = memory_limit()
  if limit is not None and nbytes > limit:
    raise ValueError(f"{what} needs about {_size(nbytes)} of memory{f' ({parts})' if parts else ''}, "
                     f"more than this machine's {_size(limit)}; make it smaller")


def error_line(error: BaseException) -> str:
  """The one-line message of an error a user caused: names the file or value."""
  if isinstance(error, OSError) and error.filename is not None:
    text = f"{error.strerror or type(error).__name__}: {error.filename}"
  elif isinstance(error, KeyError):
    text = f"unknown key {error.args[0]!r}" if error.args else "unknown key"
  elif isinstance(error, MemoryError):
    text = f"out of memory: {error}" if str(error) else "out of memory"
  elif isinstance(error, json.JSONDecodeError):
    text = f"malformed JSON: {error}"
  else:
    text = str(error) or type(error).__name__
    if type(error).__module__.startswith("yaml"):
      text = f"malformed YAML: {text}"
  return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def user_errors() -> tuple[type[BaseException], ...]:
  """The exception classes a user's input can cause: one line each, exit code 2."""
  return (ValueError, OSError, yaml.YAMLError, OverflowError, MemoryError, KeyError)


def debug_wanted(flag: bool = False) -> bool:
  """Show tracebacks: `--debug` or LSC_DEBUG set (to anything but '', '0')."""
  return flag or os.environ.get("LSC_DEBUG", "") not in ("", "0")
