"""`python -m experiments.mountain_car [--preset smoke|cpu|paper] [overrides]`: the whole method
on mountain_car (experiments/pipeline.py); presets in experiments/presets.py."""

import sys

from experiments.pipeline import main
from experiments.presets import PRESETS

if __name__ == "__main__":
  sys.exit(main("mountain_car", PRESETS["mountain_car"]))
