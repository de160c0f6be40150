"""`python -m experiments.mountain_car [--preset smoke|cpu|paper] [overrides]`: the whole method
on mountain_car (lsc/pipeline.py); presets in experiments/presets.py."""

import sys

from lsc.pipeline import main
from experiments.presets import PRESETS

if __name__ == "__main__":
  sys.exit(main("mountain_car", PRESETS["mountain_car"]))
