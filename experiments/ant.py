"""`python -m experiments.ant [--preset smoke|cpu|paper] [overrides]`: the whole method
on ant (lsc/pipeline.py); presets in experiments/presets.py."""

import sys

from lsc.pipeline import main
from experiments.presets import PRESETS

if __name__ == "__main__":
  sys.exit(main("ant", PRESETS["ant"]))
