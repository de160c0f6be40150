"""End-to-end pipelines: the smoke presets run, write results.json, and resume."""

import json

import pytest

from experiments import pipeline
from experiments.presets import PRESETS


@pytest.fixture(scope="module")
def mc_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("mc")
  pipeline.run(PRESETS["mountain_car"]["smoke"](), out, log=lambda *a: None)
  return out


def test_mountain_car_smoke_writes_valid_results(mc_run):
  results = json.loads((mc_run / "results.json").read_text())
  assert results["config"]["tasks"] == ["speed"] and results["backend"] == "jax"
  assert set(results["recovery"]) == {"trained", "untrained", "random"}
  curves = results["curves"]["speed"]
  assert set(curves) == {"latent_pgpe", "param_pgpe", "ppo", "sac"}
  for method, outcome in curves.items():
    assert len(outcome["final_returns"]) == 2, method
    steps = outcome["env_steps"][0]
    assert steps == sorted(steps) and steps[-1] <= 12_000, method
  assert (mc_run / "curves_speed.png").stat().st_size > 10_000
  assert "| speed |" in (mc_run / "summary.md").read_text()


def test_rerun_reuses_every_stage_and_a_search_change_recomputes_only_searches(mc_run):
  before = json.loads((mc_run / "results.json").read_text())
  again = pipeline.run(PRESETS["mountain_car"]["smoke"](), mc_run, log=lambda *a: None)
  assert again["timings"]["stages_s"] == {}
  assert sorted(again["timings"]["reused"]) == sorted(["dataset", "autoencoder"] + [
      f"search/speed_{m}" for m in pipeline.METHODS])
  assert again["curves"] == before["curves"]
  changed = pipeline._override(PRESETS["mountain_car"]["smoke"](), ["search.population=6"])
  third = pipeline.run(changed, mc_run, log=lambda *a: None)
  assert sorted(third["timings"]["reused"]) == ["autoencoder", "dataset"]
  assert set(third["timings"]["stages_s"]) == {f"search/speed_{m}" for m in pipeline.METHODS}


def test_a_brax_env_smoke_runs_end_to_end(tmp_path):
  results = pipeline.run(PRESETS["hopper"]["smoke"](), tmp_path, log=lambda *a: None)
  assert results["backend"] == "spring"
  curves = results["curves"]["forward"]
  assert set(curves) == {"latent_pgpe", "param_pgpe", "ppo"}
  assert json.loads((tmp_path / "results.json").read_text())["config"]["collect"]["env"]["name"] == "hopper"
  # locomotion: final PGPE policies and the best dataset policy report how far they moved
  assert len(curves["latent_pgpe"]["final_distance"]) == 2 and "final_distance" not in curves["ppo"]
  best = results["dataset_best"]["forward"]
  assert set(best) == {"index", "collected", "return", "distance"} and results["dataset_env_steps"] > 0
  assert "Torso displacement" in (tmp_path / "summary.md").read_text()


def test_bad_settings_are_refused(tmp_path):
  with pytest.raises(ValueError, match="unknown setting 'serch.budget'"):
    pipeline._override(PRESETS["mountain_car"]["smoke"](), ["serch.budget=5"])
  with pytest.raises(ValueError, match="valid tasks"):
    bad = pipeline._override(PRESETS["mountain_car"]["smoke"](), ["tasks=[fly]"])
    pipeline.run(bad, tmp_path / "out", log=print)
  assert not (tmp_path / "out").exists()
