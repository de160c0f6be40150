"""A Brax env's smoke pipeline end to end (its own file: the suite's biggest compile,
scheduled apart from the Mountain Car pipelines of test_experiments.py)."""

import json

from experiments.presets import PRESETS
from lsc import pipeline
from lsc.config import override


def test_a_brax_env_smoke_runs_end_to_end(tmp_path):
  # searches only: PPO on a Brax env is test_baselines' (and Brax's train() compiles anew per call)
  config = override(PRESETS["hopper"]["smoke"](), ["search.methods=[latent_pgpe,param_pgpe]"])
  results = pipeline.run(config, tmp_path, log=lambda *a: None)
  assert results["backend"] == "spring"
  curves = results["curves"]["forward"]
  assert set(curves) == {"latent_pgpe", "param_pgpe"}
  assert json.loads((tmp_path / "results.json").read_text())["config"]["collect"]["env"]["name"] == "hopper"
  # locomotion: final PGPE policies and the best dataset policy report how far they moved
  assert len(curves["latent_pgpe"]["final_distance"]) == 2
  best = results["dataset_best"]["forward"]
  assert set(best) == {"index", "collected", "return", "distance"} and results["dataset_env_steps"] > 0
  assert results["autoencoder_env_steps"] == 0  # trained on its own states: no episodes of its own
  assert "Torso displacement" in (tmp_path / "summary.md").read_text()
