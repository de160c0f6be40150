"""`python -m experiments.walker2d [--preset smoke|cpu|paper] [overrides]`: the whole method
on walker2d (lsc/pipeline.py); presets in experiments/presets.py."""

import sys

from lsc.pipeline import main
from experiments.presets import PRESETS

if __name__ == "__main__":
  sys.exit(main("walker2d", PRESETS["walker2d"]))
