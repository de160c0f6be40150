"""Results files as strict JSON (RFC 8259): what Python's `json` writes for a NaN or an
infinity (bare `NaN`, `Infinity`) is no JSON, and strict readers (jq, JavaScript,
most other languages) refuse the whole file.  Here they become `null`, which
`Outcome.from_json`, NumPy (`np.asarray(x, float)`) and `number` read back as NaN."""

import json
import math

import numpy as np


def plain(value):
  """`value` as JSON-ready data: NumPy scalars and arrays as Python numbers and lists,
  tuples as lists, non-finite floats as None."""
  if isinstance(value, dict):
    return {str(k): plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [plain(v) for v in value]
  if isinstance(value, np.ndarray):
    return plain(value.tolist())
  if isinstance(value, np.generic):
    return plain(value.item())
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def number(value) -> float:
  """A number read back from a results file: null (an undefined metric) as NaN, which
  formats as `nan` where None would raise."""
  return math.nan if value is None else float(value)


def dumps(value, **kwargs) -> str:
  """`json.dumps` of `plain(value)`, refusing anything that is still not strict JSON."""
  return json.dumps(plain(value), allow_nan=False, **kwargs)
