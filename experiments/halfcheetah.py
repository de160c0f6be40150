"""`python -m experiments.halfcheetah [--preset smoke|cpu|paper] [overrides]`: the whole method
on halfcheetah (lsc/pipeline.py); presets in experiments/presets.py."""

import sys

from lsc.pipeline import main
from experiments.presets import PRESETS

if __name__ == "__main__":
  sys.exit(main("halfcheetah", PRESETS["halfcheetah"]))
