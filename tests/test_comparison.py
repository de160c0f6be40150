"""The fair race (lsc.comparison, experiments.race) on synthetic pipeline results: no JAX
program is compiled."""

import json
import math
import pathlib

import numpy as np
import pytest

from lsc import comparison as cmp

GRID = [0, 10_000, 100_000, 500_000, 1_000_000]
THRESHOLDS = {"rule": "synthetic", "source": "tests", "tasks": {
    "mountain_car/goal": {"low": 0.0, "high": 100.0, "fraction": 0.9, "threshold": 90.0}}}
BY_STAGE = {"probe": 1_000, "kept": 40_000, "random": 5_000}  # mountain_car: 4 tasks


def curve(hit_at: list[int | None]) -> list[list[float | None]]:
  """Per seed: null at step 0 (no solution yet), 50 until the grid index in `hit_at`
  (None: never), 95 from there on."""
  return [[None] + [95.0 if h is not None and i >= h else 50.0 for i in range(1, len(GRID))] for h in hit_at]


def run(methods: dict, latent_start: str = "best", budget: int = 1_000_000, task: str = "goal") -> dict:
  """A pipeline results.json of mountain_car: methods {name: (hit_at per seed, final return)}."""
  seeds = len(next(iter(methods.values()))[0])
  outcome = lambda hits, final: {"eval_steps": GRID, "eval_returns": curve(hits), "final_returns": [final] * seeds,
                                 "final_env_steps": [budget] * seeds, "env_steps": [], "returns": [], "timings": {}}
  return {"config": {"collect": {"env": {"name": "mountain_car"}},
                     "search": {"budget": budget, "seeds": seeds, "seed": 0, "latent_start": latent_start,
                                "n_evals": 10, "methods": list(methods)},
                     "curve_eval": {"episodes": 5, "seed": 7}, "eval": {"episodes": 5, "seed": 9}},
          "curves": {task: {m: outcome(*v) for m, v in methods.items()}},
          "dataset_env_steps_by_stage": BY_STAGE}


def race(*runs) -> dict:
  return cmp.race_task(cmp.Table.from_results([(f"run{i}", r) for i, r in enumerate(runs)]).on("mountain_car", "goal"),
                       *cmp.threshold_of(THRESHOLDS, "mountain_car", "goal"))


def test_adding_or_removing_a_method_changes_no_other_number():
  base = {"latent_pgpe": ([1, 2, None], 92.0), "param_pgpe": ([3, 3, 4], 91.0)}
  small, large = race(run(base)), race(run({**base, "ppo": ([1, 1, 1], 1000.0)}))  # ppo: far above every return
  alone = race(run({"param_pgpe": base["param_pgpe"]}))
  assert small["level"] == large["level"] == alone["level"] == 90.0  # the file's, not the methods'
  for label in base:
    for other in (large, alone) if label == "param_pgpe" else (large,):
      np.testing.assert_array_equal(small["own"][label], other["own"][label])
      for a in cmp.ACCOUNTINGS:
        np.testing.assert_array_equal(small["steps"][a][label], other["steps"][a][label])
        assert cmp.rank_key(small["steps"][a][label], small["scores"][label]) == \
            cmp.rank_key(other["steps"][a][label], other["scores"][label])
  np.testing.assert_array_equal(small["own"]["latent_pgpe"], [10_000, 100_000, math.inf])


def test_seeds_that_never_reach_count_against_the_rank():
  hits = {"param_pgpe": ([1] * 4 + [None] * 6, 95.0), "ppo": ([3] * 10, 95.0)}  # A: 4/10 at 10k; B: 10/10 at 500k
  result = race(run(hits))
  assert result["first"] == {a: ["ppo"] for a in cmp.ACCOUNTINGS}
  a, b = result["steps"]["none"]["param_pgpe"], result["steps"]["none"]["ppo"]
  assert np.median(a) == math.inf and np.median(b) == 500_000
  assert cmp.median_ci(b, reps=200) == (500_000, 500_000)
  low, high = cmp.median_ci(a, reps=200)
  assert low == 10_000 and high == math.inf
  tied = race(run({"param_pgpe": ([3] * 10, 99.0), "ppo": ([3] * 10, 99.0)}))
  assert tied["first"]["none"] == ["param_pgpe", "ppo"]


def test_charges_follow_the_start():
  best = run({"latent_pgpe": ([1, 1], 95.0), "param_pgpe": ([1, 1], 95.0)}, latent_start="best")
  mean = run({"latent_pgpe": ([1, 1], 95.0), "random_subspace_pgpe": ([2, 2], 95.0)}, latent_start="mean")
  decoded = run({"latent_then_param": ([2, 2], 95.0)}, latent_start="best_decoded", task="left")
  table = cmp.Table.from_results([("best", best), ("mean", mean), ("decoded", decoded)])
  probe, kept, share = BY_STAGE["probe"], BY_STAGE["kept"], lambda steps: -(-steps // 4)
  expected = {
      "latent_pgpe": ("reward-chosen", {"none": kept, "shared": share(probe) + kept, "full": probe + kept}),
      "param_pgpe": ("reward-free", {"none": 0, "shared": 0, "full": 0}),
      "latent_pgpe@mean": ("reward-free", {"none": 0, "shared": share(probe + kept), "full": probe + kept}),
      "random_subspace_pgpe@mean": ("reward-free", {"none": 0, "shared": share(probe + kept), "full": probe + kept})}
  entries = table.on("mountain_car", "goal")
  assert {label: (e.start, dict(e.charges)) for label, e in entries.items()} == expected
  decoded_entry = table.entries["mountain_car", "left", "latent_then_param"]
  assert (decoded_entry.start, decoded_entry.charges["none"]) == ("reward-chosen", kept)
  steps = cmp.race_task(entries, 0.0, 100.0, 0.9)["steps"]
  np.testing.assert_array_equal(steps["none"]["latent_pgpe"], [10_000 + kept] * 2)
  np.testing.assert_array_equal(steps["shared"]["latent_pgpe"], [10_000 + share(probe) + kept] * 2)
  np.testing.assert_array_equal(steps["none"]["latent_pgpe@mean"], [10_000] * 2)
  # an autoencoder trained on its decoded policies' rollouts: their env steps join the collection's
  rolled = run({"latent_pgpe": ([1, 1], 95.0)}, latent_start="mean")
  rolled["config"]["train"] = {"states": "rollout"}
  with pytest.raises(ValueError, match="trained on rollouts, whose env steps the run does not record"):
    cmp.Table.from_results([("rolled", rolled)])
  rolled["autoencoder_env_steps"] = ae = 3_000
  entry = cmp.Table.from_results([("rolled", rolled)]).on("mountain_car", "goal")["latent_pgpe@mean"]
  assert dict(entry.charges) == {"none": 0, "shared": share(probe + kept + ae), "full": probe + kept + ae}
  _, chosen = cmp.charges_of("latent_pgpe", "best", {**BY_STAGE, "autoencoder": ae}, 4)
  assert chosen == {"none": kept, "shared": share(probe + ae) + kept, "full": probe + kept + ae}
  # a start chosen among reward-free candidates reads no dataset return: the accounting's share only,
  # its candidates' episodes being inside its curve; its label says which start, and its table's rules say why
  assert cmp.charges_of("latent_pgpe", "spread", {**BY_STAGE, "autoencoder": ae}, 4) == (
      "candidates-chosen", {"none": 0, "shared": share(probe + kept + ae), "full": probe + kept + ae})
  assert cmp.label_of("latent_pgpe", "spread") == "latent_pgpe@spread" and cmp.label_of("ppo", "spread") == "ppo"
  assert cmp.rules(["reward-free", "reward-chosen"]) == cmp.RULES
  assert cmp.rules(["candidates-chosen"])["charges"].endswith(cmp.CANDIDATES_RULE)


def test_runs_of_one_env_must_race_on_equal_terms():
  with pytest.raises(ValueError, match=r"run1 and run0 differ in budget \(2000000 vs 1000000\)"):
    race(run({"ppo": ([1], 95.0)}), run({"sac": ([1], 95.0)}, budget=2_000_000))
  with pytest.raises(ValueError, match="ppo on mountain_car/goal appears in run1 and run0 with other results"):
    race(run({"ppo": ([1], 95.0)}), run({"ppo": ([1], 96.0)}))
  # an identical recompute (a method rerun beside others in another run) is one entry
  table = cmp.Table.from_results([("run0", run({"ppo": ([1], 95.0)})), ("run1", run({"ppo": ([1], 95.0), "sac": ([1], 9.0)}))])
  assert sorted(table.on("mountain_car", "goal")) == ["ppo", "sac"]
  assert table.on("mountain_car", "goal")["ppo"].source == "run0"
  other = run({"sac": ([1], 95.0)})  # a run on another dataset: its starts and charges are another's
  other["config"]["collect"]["pool"] = 2
  with pytest.raises(ValueError, match=r"run1 and run0 differ in collect \(\{pool: 2\} vs \{pool: None\}\)"):
    race(run({"ppo": ([1], 95.0)}), other)
  # the same settings on another machine: floating point gave another dataset
  here, there = run({"ppo": ([1], 95.0)}), run({"sac": ([1], 95.0)})
  here["dataset_best"] = {"goal": {"index": 7, "collected": 99.4}, "left": {"index": 0, "collected": 293.8}}
  there["dataset_best"] = {"goal": {"index": 7, "collected": 99.4}}
  race(here, there)  # the tasks both list agree
  there["dataset_best"]["goal"]["collected"] = 99.5
  with pytest.raises(ValueError, match=r"different datasets or autoencoders with the same settings \(goal: best row 7"):
    race(here, there)
  # an equal dataset can train another autoencoder on another machine
  there["dataset_best"]["goal"]["collected"] = 99.4
  here["recovery"] = {"trained": {"goal": {"recovery": 1.19}, "left": {"recovery": 0.9}}}
  there["recovery"] = {"trained": {"goal": {"recovery": 1.19}}}
  race(here, there)
  there["recovery"]["trained"]["goal"]["recovery"] = 1.09
  with pytest.raises(ValueError, match=r"\(goal: autoencoder recovery 1.09 vs 1.19\): floating point differs"):
    race(here, there)
  here["device"], there["device"] = "cpu: cpu x2 (Intel)", "cpu: cpu x2 (AMD)"  # each run names its machine
  with pytest.raises(ValueError, match=r"1.19\): made on cpu: cpu x2 \(AMD\) and cpu: cpu x2 \(Intel\); race runs"):
    race(here, there)


def test_frozen_thresholds_are_the_old_tables():
  root = pathlib.Path(__file__).parent.parent
  old = json.loads((root / "experiments/results/sample_efficiency_all.json").read_text())
  frozen = json.loads((root / "experiments/thresholds.json").read_text())
  assert len(frozen["tasks"]) == len(old["rows"]) == 15
  for row in old["rows"]:
    low, high, fraction = cmp.threshold_of(frozen, row["env"], row["task"])
    finals = [m["final_mean"] for m in row["methods"].values()]
    assert (low, high, fraction) == (min(finals), max(finals), 0.9)
    assert abs(low + fraction * (high - low) - row["threshold"]) <= 1e-9
  assert cmp.freeze_thresholds(old, frozen["source"]) == frozen
  old["rows"][0]["threshold"] += 1e-6
  with pytest.raises(ValueError, match="mountain_car/goal"):
    cmp.freeze_thresholds(old, "tampered")


def test_race_writes_reproducible_tables(tmp_path):
  from experiments import race as study
  paths = []
  for name, r in (("best", run({"latent_pgpe": ([1, 2, None, 1], 95.0), "param_pgpe": ([3, 3, 3, 4], 91.0)})),
                  ("mean", run({"latent_pgpe": ([1, 1, 1, None], 93.0)}, latent_start="mean"))):
    r["dataset_best"] = {"goal": {"index": 3, "collected": 81.0, "return": 79.5}}
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps(r))
    paths.append(str(tmp_path / name))
  (tmp_path / "thresholds.json").write_text(json.dumps(THRESHOLDS))
  args = [*paths, "--thresholds", str(tmp_path / "thresholds.json"), "--reps", "20", "--results", str(tmp_path)]
  assert study.main([*args, "--tag", "a"]) == 0 and study.main([*args, "--tag", "b"]) == 0
  a, b = (json.loads((tmp_path / f"race_{tag}.json").read_text()) for tag in "ab")
  assert a.pop("command") != b.pop("command") and a == b  # bit for bit, but for the tag
  task = a["tasks"][0]
  assert task["methods"]["latent_pgpe"]["steps"]["none"] == [10_000 + 40_000, 100_000 + 40_000, None, 50_000]
  assert task["first"]["none"] == ["latent_pgpe@mean"]
  assert (tmp_path / "race_a_profile.png").exists() and (tmp_path / "race_a/curves_mountain_car_goal.png").exists()
  assert "never" in (tmp_path / "race_a.md").read_text()
  assert task["start_return"] == 79.5  # the reward-chosen start, no search: the best dataset policy's return
  assert "| mountain_car | goal | 79.50 |" in (tmp_path / "race_a.md").read_text()
  # a run's committed record (its results less the training curves) races as the run does
  assert study.main([*paths, "--keep", "--results", str(tmp_path)]) == 0
  kept = json.loads((tmp_path / "race_runs/best.json").read_text())
  assert "env_steps" not in kept["curves"]["goal"]["param_pgpe"] and "final_env_steps" in kept["curves"]["goal"]["param_pgpe"]
  records = [str(tmp_path / "race_runs" / f"{name}.json") for name in ("best", "mean")]
  assert study.main([*records, *args[len(paths):], "--tag", "c"]) == 0
  c = json.loads((tmp_path / "race_c.json").read_text())
  for table in (b, c):  # each entry names where it was read
    for m in table["tasks"][0]["methods"].values():
      assert m.pop("source").endswith(("best", "mean", "best.json", "mean.json"))
  assert c.pop("command") and c == b
