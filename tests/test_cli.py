"""The `lsc` command line: listing, a small rollout, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lsc import checkpoint, cli


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "lsc.cli", *args], capture_output=True, text=True,
                        timeout=600)


def test_envs_lists_tasks_and_presets():
  done = run_cli("envs")
  assert done.returncode == 0
  assert "121801 params" in done.stdout and "frontflip" in done.stdout and "reach_sw" in done.stdout


def test_bad_input_gives_one_line_errors():
  from lsc.methods import names
  for args, fragment in [(("rollout", "--env", "cartpole"), "valid envs: mountain_car"),
                         (("rollout", "--env", "hopper", "--policy", "huge"), "valid presets"),
                         (("rollout", "--env", "hopper", "--backend", "x"), "valid backends"),
                         (("rollout", "--env", "hopper", "--pool", "0"), "--pool must be >= 1"),
                         (("rollout", "--env", "hopper", "--normalize-obs"), "needs known observation bounds"),
                         (("search", "--env", "mountain_car", "--task", "fly", "--budget", "9", "--out", "x"),
                          "valid tasks: goal, left"),
                         (("search", "--env", "mountain_car", "--task", "goal", "--method", "cma", "--budget", "9",
                           "--out", "x"), f"valid methods: {', '.join(names())}"),
                         (("search", "--env", "mountain_car", "--task", "goal", "--method", "latent_then_param",
                           "--decoder", "linear:2", "--latent-fraction", "1.5", "--budget", "9000000", "--out", "x"),
                          "fraction must be in (0, 1), got 1.5"),
                         (("search", "--env", "mountain_car", "--task", "goal", "--method", "latent_then_param",
                           "--decoder", "linear:2", "--budget", "200000", "--fraction", "0.1", "--out", "x"),
                          "latent_then_param's latent_pgpe phase (20,000 env steps of 200,000)"),
                         (("search", "--env", "mountain_car", "--task", "goal", "--method", "param_pgpe",
                           "--latent-fraction", "0.5", "--budget", "9000000", "--out", "x"),
                          "--latent-fraction/--fraction for param_pgpe: PGPEConfig has no fraction setting"),
                         (("search", "--env", "mountain_car", "--task", "goal", "--method", "param_pgpe",
                           "--budget", "9", "--out", "x"), "less than one generation")]:
    done = run_cli(*args)
    assert done.returncode == 2
    assert fragment in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_rollout_writes_summary_plot_and_artifact(tmp_path, capsys):
  out = tmp_path / "run"
  assert cli.main(["rollout", "--env", "mountain_car", "--policy", "small", "--pool", "40",
                   "--block-size", "16", "--episodes", "2", "--normalize-obs", "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "goal" in printed and "env steps until termination" in printed
  summary = json.loads((out / "summary.json").read_text())
  assert summary["tasks"] == ["goal", "left", "height", "speed"]
  assert (out / "returns.png").stat().st_size > 10_000
  arrays, record = checkpoint.load_artifact(out / "pool_returns", kind="pool_returns")
  assert arrays["returns"].shape == (40, 4) and arrays["lengths"].shape == (40, 2)
  assert summary["env_steps"] == int(np.asarray(arrays["lengths"]).sum())
  assert record["identity"]["policy"]["num_params"] == 17
  np.testing.assert_allclose(record["identity"]["policy"]["obs_normalization"], [[-0.3, 0.0], [0.9, 0.07]])


def test_search_writes_curves_summary_and_result(tmp_path, capsys):
  out = tmp_path / "search"
  args = ["search", "--env", "mountain_car", "--task", "speed", "--method", "latent_pgpe", "--decoder", "linear:2",
          "--policy", "small", "--population", "8", "--episodes", "1", "--budget", "40000", "--seeds", "2",
          "--out", str(out)]
  assert cli.main(args) == 0
  assert "final return on fresh evaluation keys" in capsys.readouterr().out
  summary = json.loads((out / "summary.json").read_text())
  assert summary["method"] == "latent_pgpe" and len(summary["final_returns"]) == 2
  assert all(40_000 - 8 * 999 < steps <= 40_000 for steps in summary["env_steps"])
  assert (out / "curves.png").stat().st_size > 10_000
  arrays, record = checkpoint.load_artifact(out / "result", kind="search")
  assert summary["env_steps"] == arrays["env_steps"].tolist()  # the steps charged, the last generation's too
  assert arrays["final_z"].shape == (2, 2) and arrays["final_thetas"].shape == (2, 17)
  assert record["identity"]["task"] == "speed" and record["identity"]["space"]["name"] == "linear"
  metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
  assert metrics and {m["stage"] for m in metrics} == {"search"} and metrics[-1]["done"] == min(summary["env_steps"])
  # the same command again resumes from the finished checkpoint: same result, no new generations
  assert cli.main(args) == 0
  again, _ = checkpoint.load_artifact(out / "result", kind="search")
  np.testing.assert_array_equal(again["final_thetas"], arrays["final_thetas"])


def test_search_runs_any_registered_method_with_its_settings(tmp_path):
  # `lsc search` ran PGPE and the RL baselines only, with PGPE's flags
  out = tmp_path / "cmaes"
  assert cli.main(["search", "--env", "mountain_car", "--task", "speed", "--method", "latent_cmaes", "--decoder",
                   "linear:2", "--policy", "small", "--population", "8", "--episodes", "1", "--budget", "16000",
                   "--seeds", "2", "--set", "methods.latent_cmaes.std_init=0.3", "--out", str(out)]) == 0
  summary = json.loads((out / "summary.json").read_text())
  assert summary["method"] == "latent_cmaes" and len(summary["final_returns"]) == 2
  assert summary["settings"]["config"] == {"population": 8, "episodes": 1, "std_init": 0.3, "center": "mean",
                                          "std_min": 1e-6, "std_max": 1e3}
  assert all(16_000 - 8 * 999 < steps <= 16_000 for steps in summary["env_steps"])
  arrays, record = checkpoint.load_artifact(out / "result", kind="search")
  assert arrays["final_z"].shape == (2, 2) and record["config"]["method"] == "latent_cmaes"


def test_abbreviated_flags_are_refused(capsys):
  # `--k 10` once set keep = 10 (an abbreviation of --keep); an in-range value went unnoticed
  with pytest.raises(SystemExit) as exit:
    cli.main(["collect", "--env", "mountain_car", "--k", "10", "--out", "x"])
  assert exit.value.code == 2 and "unrecognized arguments: --k 10" in capsys.readouterr().err
  from lsc import pipeline
  from experiments.presets import PRESETS
  with pytest.raises(SystemExit) as exit:
    pipeline.main("mountain_car", PRESETS["mountain_car"], ["--preset", "smoke", "--lat", "3"])
  assert exit.value.code == 2 and "unrecognized arguments: --lat 3" in capsys.readouterr().err


def test_multi_process_settings_are_checked_and_rows_split_in_whole_blocks(monkeypatch):
  """An incomplete multi-process setting fails before JAX starts, naming what is
  missing; the processes' row shares tile the rows in whole blocks (the same device
  calls one process makes)."""
  from lsc import distributed
  done = run_cli("rollout", "--env", "mountain_car", "--coordinator", "127.0.0.1:1234")
  assert done.returncode == 2 and "needs --num-processes, --process-id" in done.stderr
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "2")
  with pytest.raises(ValueError, match="0 <= process_id < num_processes"):
    distributed.DistributedSettings.from_env(coordinator="h:1").check()
  assert not distributed.DistributedSettings().wanted and distributed.row_range(10, 4) == range(10)
  from lsc.methods import check_can_run
  check_can_run(["ppo"], "mjx")  # one process: every method
  check_can_run(["latent_pgpe"], "mjx_warp")
  with pytest.raises(ValueError, match="sac cannot train on backend mjx_warp"):
    check_can_run(["latent_pgpe", "sac"], "mjx_warp")
  monkeypatch.setattr(distributed, "is_multi", lambda: True)
  check_can_run(["latent_pgpe", "param_pgpe"])
  with pytest.raises(ValueError, match="ppo, sac run in one process"):
    check_can_run(["latent_pgpe", "ppo", "sac"])
  for n, block, count in [(10, 4, 2), (200, 200, 2), (8193, 8192, 3), (7, 1, 4)]:
    shares = [distributed._rows(n, block, p, count) for p in range(count)]
    assert [i for share in shares for i in share] == list(range(n))
    assert all(share.start % block == 0 for share in shares if len(share))
    assert max(map(len, shares)) - min(map(len, shares)) <= block


def test_novelty_benchmark_refuses_bad_blocks_and_reports_a_crash_as_its_error(monkeypatch, tmp_path, capsys):
  from benchmarks import common, novelty
  with pytest.raises(SystemExit) as exit:
    novelty.main(["--blocks", "512:0"])
  assert exit.value.code == 2 and "'512:0' is not ROW_BLOCK:COL_BLOCK" in capsys.readouterr().err
  # a run that dies (here: out of memory) must read as its exit status and last line, not "timeout"
  crashed = subprocess.CompletedProcess([], 137, stdout="", stderr="compiling\nRESOURCE_EXHAUSTED: out of memory\n")
  monkeypatch.setattr(novelty.subprocess, "run", lambda *a, **k: crashed)
  monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
  novelty.main(["--sizes", "1000", "--dims", "8", "--methods", "lsc", "--blocks", "64:256"])
  [row] = json.loads((tmp_path / "novelty_cpu.json").read_text())["rows"]
  assert row["method"] == "lsc[64:256]" and row["failed"] == "exit 137: RESOURCE_EXHAUSTED: out of memory"


def test_pipeline_benchmark_flags_a_row_timed_under_another_preset():
  from benchmarks import pipeline
  m = {"cpu": "x", "cores": 2, "jax": "0", "jax_platform": "cpu", "date": "d"}
  now = {"train.latent_dim": 4, "search.seeds": 3, "search.budget": 10, "collect.pool": 5, "collect.keep": 0.1}
  runs = {"same": {"machine": m, "settings": dict(now), "stages_s": {"dataset": 1.0}, "compile_s": {}},
          "old": {"machine": m, "settings": {**now, "train.latent_dim": 8}, "stages_s": {"dataset": 2.0},
                  "compile_s": {}},
          "unknown": {"machine": m, "stages_s": {"dataset": 3.0}, "compile_s": {}},
          "many": {"machine": m, "settings": {"train.latent_dim": 8, "search.seeds": 1, "search.budget": 1,
                                              "collect.pool": 1}, "stages_s": {"dataset": 4.0}, "compile_s": {}},
          "gone": {"machine": m, "settings": dict(now), "stages_s": {"dataset": 5.0}, "compile_s": {}}}
  current = {env: now for env in runs if env != "gone"}
  totals = [line for line in pipeline.table(runs, "cpu", current).splitlines() if "total" in line]
  assert "changed" not in totals[0] and "not recorded" not in totals[0]
  assert "preset changed since: train.latent_dim)" in totals[1]
  assert "settings not recorded" in totals[2]
  # a setting only today's preset has counts too (collect.keep)
  assert "preset changed since: collect.keep, collect.pool, search.budget and 2 more)" in totals[3]
  assert "no longer exists" in totals[4]


def test_reproduce_benchmark_compares_bit_for_bit_and_only_the_tasks_a_run_searched():
  from benchmarks import reproduce
  record = {"config": {"collect": {"pool": 5}, "train": {"steps": 3}},
            "dataset_best": {"goal": {"index": 7, "collected": 99.41}, "left": {"index": 0, "collected": 293.8}},
            "recovery": {"trained": {"goal": {"recovery": 1.06}, "left": {"recovery": 1.43}, "mean": {"recovery": 1.2}}}}
  run = json.loads(json.dumps(record))
  del run["dataset_best"]["left"]  # the run searched `goal` only
  run["recovery"]["trained"]["left"]["recovery"] = 1.43 + 1e-15  # another machine's last bit
  out = reproduce.compare(run, record)
  assert out["settings_equal"] and list(out["tasks"]) == ["goal", "left"]
  assert out["tasks"]["goal"] == {"recovery": 1.06, "recovery_equal": True, "best_row": [7, 99.41], "dataset_equal": True}
  assert out["tasks"]["left"] == {"recovery": 1.43 + 1e-15, "recovery_equal": False}
  run["config"]["train"]["steps"] = 4
  assert not reproduce.compare(run, record)["settings_equal"]
  assert reproduce.cpu_slug("AMD EPYC (family 25 model 1)") == "amd_epyc_f25m1"
  assert reproduce.cpu_slug("Intel(R) Xeon(R) Processor (family 6 model 207)") == "intel_xeon_f6m207"
