"""Fault injection for the reliability tests: named points where a run can be killed.

`point(name, where)` does nothing unless the environment variable LSC_KILL_AT equals
`name` or `name:where` (e.g. `stage_result:autoencoder`, one pipeline stage), in which
case the process kills itself with SIGKILL there, exactly as a power cut or
an out-of-memory kill would.  The points sit between the writes whose order matters
(an artifact staged but not yet in place, a stage's result written but not yet marked
complete), so tests can stop a subprocess at each of them deterministically.
"""

import os
import signal

POINTS = ("artifact_staged", "artifact_retired", "stage_result", "stage_retired")


def point(name: str, where: str = "") -> None:
  """Kills this process with SIGKILL if LSC_KILL_AT is `name` or `name:where`."""
  if os.environ.get("LSC_KILL_AT") in (name, f"{name}:{where}"):
    os.kill(os.getpid(), signal.SIGKILL)
