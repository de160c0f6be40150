"""End-to-end pipelines: the smoke presets run, write results.json, and resume."""

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from lsc import pipeline
from experiments.presets import PRESETS, SMOKE_METHODS
from lsc.config import override


@pytest.fixture(scope="module")
def mc_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("mc")
  pipeline.run(PRESETS["mountain_car"]["smoke"](), out, log=lambda *a: None, tensorboard=True)
  return out


def strict_json(text: str):
  """`text` parsed as RFC 8259 JSON: no bare NaN or Infinity."""
  def refuse(token):
    raise AssertionError(f"{token} is not JSON")
  return json.loads(text, parse_constant=refuse)


def test_compute_reads_every_search_time_and_marks_a_resumed_one(mc_run, tmp_path, monkeypatch):
  from experiments import compute
  results = json.loads((mc_run / "results.json").read_text())
  results["timings"]["resumed"] = ["search/speed_ppo"]  # as a run that resumed PPO's stage after a kill
  (tmp_path / "results.json").write_text(json.dumps(results))
  assert compute.main([str(tmp_path), "--results", str(tmp_path), "--tag", "t"]) == 0
  run, = json.loads((tmp_path / "compute_t.json").read_text())["runs"]
  recorded = results["timings"]["recorded_s"]
  from lsc.comparison import label_of
  start = results["config"]["search"]["latent_start"]
  assert run["searches"] == {label_of(m, start): {"speed": {"seconds": recorded[f"search/speed_{m}"],
                                                            "resumed": m == "ppo"}} for m in results["curves"]["speed"]}
  assert set(run["shared"]) == {"dataset", "autoencoder"}
  row = next(line for line in (tmp_path / "compute_t.md").read_text().splitlines() if line.startswith("| ppo |"))
  assert row.count(">= ") == 3  # the task's cell, the sum and the time per seed and task
  # a sweep's cells record their searches' times, which compute reads; one without them is refused
  from experiments import sweep
  monkeypatch.setattr(sweep, "RESULTS", tmp_path)
  assert sweep.main(["mountain_car", "--method", "latent_pgpe", "--preset", "smoke", "--grid",
                     "methods.latent_pgpe.lr=0.1", "--from", str(mc_run), "--out", str(tmp_path / "s")]) == 0
  swept = tmp_path / "sweep_mountain_car_latent_pgpe.json"
  row, = json.loads(swept.read_text())["rows"]
  cell = json.loads((tmp_path / "s" / "latent_pgpe" / row["cell"] / "results.json").read_text())["timings"]
  assert row["search_s"] == {"speed": cell["recorded_s"]["search/speed_latent_pgpe"]} and row["resumed"] == []
  assert "dataset" in cell["reused"]  # from --from
  assert compute.main([str(tmp_path), "--sweeps", str(swept), "--results", str(tmp_path), "--tag", "t"]) == 0
  assert json.loads((tmp_path / "compute_t.json").read_text())["sweeps"][0]["cells"] == {
      row["cell"]: {"speed": {"seconds": row["search_s"]["speed"], "resumed": False}}}
  (tmp_path / "old.json").write_text(json.dumps({"command": "c", "rows": [{"cell": "x", "seeds": 2, "seconds": 1.0}]}))
  assert compute.main([str(tmp_path), "--sweeps", str(tmp_path / "old.json"), "--results", str(tmp_path)]) == 2
  # a run given twice is counted once
  assert compute.main([str(tmp_path), str(tmp_path), "--results", str(tmp_path), "--tag", "t"]) == 0
  ppo = next(r for r in json.loads((tmp_path / "compute_t.json").read_text())["totals"] if r["label"] == "ppo")
  assert ppo == {"env": "mountain_car", "label": "ppo", "seconds": recorded["search/speed_ppo"],
                 "seed_tasks": results["config"]["search"]["seeds"], "resumed": True}


def test_mountain_car_smoke_writes_valid_results(mc_run, env_registry):
  results = strict_json((mc_run / "results.json").read_text())
  for name in ("autoencoder/recovery.json", "search/speed_latent_pgpe/outcome.json"):
    strict_json((mc_run / name).read_text())
  assert results["config"]["tasks"] == ["speed"] and results["backend"] == "jax"
  assert set(results["recovery"]) == {"trained", "untrained", "random"}
  curves = results["curves"]["speed"]
  assert set(curves) == {"latent_pgpe", "latent_then_param", "param_pgpe", "ppo", "td3"}
  for method, outcome in curves.items():
    assert len(outcome["final_returns"]) == 2, method
    steps = outcome["env_steps"][0]
    assert steps == sorted(steps) and steps[-1] <= 12_000, method
  assert (mc_run / "curves_speed.png").stat().st_size > 10_000
  assert "| speed |" in (mc_run / "summary.md").read_text()
  # every stage's key holds the task formulas: a stage computed under other rewards is recomputed
  from lsc import tasks
  for stage in ("dataset", "autoencoder", "search/speed_latent_pgpe", "search/speed_ppo"):
    assert json.loads((mc_run / stage / "stage.json").read_text())["key"]["rewards"] == tasks.fingerprint("mountain_car")
  # and every setting a search reads, defaults included: a stage once kept its result when
  # PGPE's std_lr or any RL hyper-parameter changed (they were not in its key)
  from lsc.rl_configs import CONFIGS
  key = lambda method: json.loads((mc_run / "search" / f"speed_{method}" / "stage.json").read_text())["key"]
  assert key("latent_then_param")["settings"]["phases"]["param_pgpe"]["config"]["std_lr"] == 0.1
  # (fields marked omit_default, added later with their default the earlier behaviour, only once set)
  later = {"prefill", "actor_warmup", "latent_head"}
  assert key("td3")["settings"]["config"] == json.loads(json.dumps(
      {k: v for k, v in dataclasses.asdict(CONFIGS["td3"]()).items() if k not in later}))
  assert key("ppo")["settings"]["devices"] == 2 and key("td3")["settings"]["devices"] == 1  # Brax's pmap: other numbers
  from lsc.novelty import KERNEL_VERSION  # and the kNN kernel's version: a dataset it would now build otherwise too
  assert json.loads((mc_run / "dataset" / "stage.json").read_text())["key"]["novelty_kernel"] == KERNEL_VERSION
  before = tasks.fingerprint("mountain_car")
  other = lambda t: t.obs[0]
  other.__doc__ = "r = x (another formula)"
  spec = env_registry.get_env_spec("mountain_car")
  env_registry.register_env(dataclasses.replace(spec, tasks=(dataclasses.replace(spec.tasks[0], reward=other),
                                                             *spec.tasks[1:])), replace=True)
  assert tasks.fingerprint("mountain_car") != before


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def _arrays(path) -> list:
  from lsc import checkpoint
  arrays, _ = checkpoint.load_artifact(path)
  return jax.tree_util.tree_flatten_with_path(arrays)[0]


def test_two_processes_make_the_artifacts_one_process_makes(mc_run, tmp_path):
  """The smoke pipeline (collect, train, latent PGPE) as two processes of one CPU device
  each (jax.distributed on localhost) writes bit-identical artifacts to mc_run's (one
  process, two devices), and only process 0 prints.  Runs before the tests that rerun
  mc_run with other settings."""
  out, port = tmp_path / "two", _free_port()
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  argv = [sys.executable, "-m", "experiments.mountain_car", "--preset", "smoke", "--methods", "latent_pgpe",
          "--out", str(out), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
  runs = [subprocess.Popen([*argv, "--process-id", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True) for i in range(2)]
  try:
    outputs = [run.communicate(timeout=420) for run in runs]
  finally:
    for run in runs:
      run.kill()
  assert [run.returncode for run in runs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
  assert "final return" in outputs[0][0]
  assert [line for line in outputs[1][0].splitlines() if not line.startswith("[Gloo]")] == []  # gloo's own lines
  for stage, entries in (("dataset", ["artifact"]), ("autoencoder", ["model"]),
                         ("search/speed_latent_pgpe", ["result", "state"])):
    keys = [json.loads((d / stage / "stage.json").read_text())["key"] for d in (out, mc_run)]
    assert [{k: v for k, v in key.items() if k != "inputs"} for key in keys] == [  # inputs: digests (with dates)
        {k: v for k, v in keys[1].items() if k != "inputs"}] * 2, stage
    for entry in entries:
      two, one = _arrays(out / stage / entry), _arrays(mc_run / stage / entry)
      assert [k for k, _ in two] == [k for k, _ in one]
      for (name, a), (_, b) in zip(two, one):
        a, b = np.asarray(a), np.asarray(b)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (stage, entry, jax.tree_util.keystr(name))
  finals = [json.loads((d / "results.json").read_text())["curves"]["speed"]["latent_pgpe"]["final_returns"]
            for d in (out, mc_run)]
  assert finals[0] == finals[1]


def test_a_pipeline_logs_its_metrics_as_jsonl_and_tensorboard_events(mc_run):
  from lsc.progress import read_metrics
  records = read_metrics(mc_run / "metrics.jsonl")
  by_scope = {}
  for r in records:
    by_scope.setdefault(r["scope"], set()).add(r["stage"])
  assert {"descriptors", "novelty"} <= by_scope["dataset"] and "train" in by_scope["autoencoder"]
  assert by_scope["search/speed_latent_pgpe"] == {"search"} and by_scope["search/speed_ppo"] == {"ppo seed 0", "ppo seed 1"}
  assert by_scope["search/speed_td3"] == {"td3 seed 0", "td3 seed 1"}
  train = [r for r in records if r["stage"] == "train"]
  assert all(r["loss"] > 0 and r["total"] == 20 for r in train) and train[-1]["done"] == 20
  search = [r for r in records if r["scope"] == "search/speed_param_pgpe"]
  assert search[-1]["done"] <= 12_000 and all("return" in r and "generation" in r for r in search)
  events = list((mc_run / "tensorboard").glob("events.out.tfevents.*"))
  assert events and events[0].stat().st_size > 100


def test_rerun_reuses_every_stage_and_a_changed_setting_recomputes_exactly_the_stages_reading_it(mc_run):
  before = json.loads((mc_run / "results.json").read_text())
  again = pipeline.run(PRESETS["mountain_car"]["smoke"](), mc_run, log=lambda *a: None)
  assert again["timings"]["stages_s"] == {}
  assert sorted(again["timings"]["reused"]) == sorted(["dataset", "autoencoder"] + [
      f"search/speed_{m}" for m in SMOKE_METHODS])
  assert again["curves"] == before["curves"]
  changed = PRESETS["mountain_car"]["smoke"]()
  stages = lambda *methods: {f"search/speed_{m}" for m in methods}
  # one at a time, through --set's path (`override`): each recomputes exactly the stages reading it
  for setting, recomputed in (("methods.param_pgpe.std_lr=0.2", stages("param_pgpe", "latent_then_param")),
                              ("methods.ppo.learning_rate=1e-4", stages("ppo")),
                              ("methods.latent_then_param.fraction=0.6", stages("latent_then_param")),
                              ("train.lr=3e-3", {"autoencoder"} | stages("latent_pgpe", "latent_then_param"))):
    changed = override(changed, [setting])
    run = pipeline.run(changed, mc_run, log=lambda *a: None)
    assert set(run["timings"]["stages_s"]) == recomputed, setting
    assert set(run["timings"]["reused"]) == {"dataset", "autoencoder", *stages(*SMOKE_METHODS)} - recomputed


def test_latent_cmaes_and_a_strategy_registered_here_run_in_a_pipeline(mc_run, tmp_path, capsys):
  """`python -m experiments.mountain_car --methods ...` runs CMA-ES and an evosax
  strategy registered by one call, reusing mc_run's dataset and autoencoder."""
  import shutil
  from typing import ClassVar

  from lsc.pipeline import main as pipeline_main

  def main(argv):
    return pipeline_main("mountain_car", PRESETS["mountain_car"], argv)
  from lsc import methods
  from lsc.strategies import StrategyConfig

  @dataclasses.dataclass(frozen=True)
  class SimpleESConfig(StrategyConfig):
    algorithm: ClassVar[str] = "SimpleES"

  out = tmp_path / "run"
  shutil.copytree(mc_run, out)
  methods.register(methods.SearchMethod("latent_simple_es", "latent", SimpleESConfig(population=4, episodes=1)))
  try:
    assert main(["--preset", "smoke", "--methods", "latent_cmaes,latent_simple_es", "--out", str(out),
                 "--set", "methods.latent_simple_es.std_init=0.3"]) == 0, capsys.readouterr().err
  finally:
    del methods.METHODS["latent_simple_es"]
  results = json.loads((out / "results.json").read_text())
  assert "dataset" in results["timings"]["reused"]  # (and the autoencoder, unless a test above retrained it)
  assert set(results["timings"]["stages_s"]) >= {"search/speed_latent_cmaes", "search/speed_latent_simple_es"}
  assert results["config"]["settings"]["latent_simple_es"]["config"]["std_init"] == 0.3
  for method in ("latent_cmaes", "latent_simple_es"):
    outcome = results["curves"]["speed"][method]
    assert all(0 < steps <= 12_000 for steps in outcome["final_env_steps"]) and len(outcome["final_returns"]) == 2
    assert np.isfinite(outcome["final_returns"]).all()
  from lsc import checkpoint
  record = checkpoint.read_record(out / "search" / "speed_latent_simple_es" / "result")
  assert record["identity"]["strategy"] == "SimpleES" and record["identity"]["settings"]["std_init"] == 0.3


def test_the_controls_search_from_the_latent_searchs_start(mc_run, tmp_path):
  """The start, dimension and linear-compression controls, added to a run, reuse its
  dataset and autoencoder and search spaces through the very policy latent PGPE starts
  from (here the decoded mean code): the parameter space centred there, a random and the
  principal subspace of the latent size through it."""
  import shutil

  from lsc import checkpoint
  from lsc.dataset import load_dataset
  from lsc.keys import SUBSPACE_SEED
  from lsc.search import decoder_space, euclidean_space, principal_subspace, random_subspace
  from lsc.training import load_autoencoder
  controls = ("start_param_pgpe", "random_subspace_pgpe", "pca_subspace_pgpe")
  out = tmp_path / "run"
  shutil.copytree(mc_run, out)
  config = override(PRESETS["mountain_car"]["smoke"](), [f"search.methods=[latent_pgpe,{','.join(controls)}]"])
  results = pipeline.run(config, out, log=lambda *a: None)
  assert "dataset" in results["timings"]["reused"]  # (and the autoencoder, unless a test above retrained it)
  assert set(results["timings"]["stages_s"]) >= {f"search/speed_{m}" for m in controls}
  for method in controls:
    outcome = results["curves"]["speed"][method]
    assert all(0 < steps <= 12_000 for steps in outcome["final_env_steps"]) and np.isfinite(outcome["final_returns"]).all()
  trained = load_autoencoder(out / "autoencoder" / "model")
  latent = decoder_space(trained.ae, trained.params, trained.codes)
  origin = np.asarray(latent.decode(latent.center), np.float32)
  thetas = load_dataset(out / "dataset" / "artifact")[0].thetas
  k = config.train.latent_dim
  expected = {"start_param_pgpe": euclidean_space(origin, trained.ae.policy.init_std(), "parameter"),
              "random_subspace_pgpe": random_subspace(thetas, origin, k, jax.random.key(SUBSPACE_SEED)),
              "pca_subspace_pgpe": principal_subspace(thetas, origin, k)}
  for method, space in expected.items():
    record = checkpoint.read_record(out / "search" / f"speed_{method}" / "result")
    assert record["identity"]["space"] == {"name": space.name, "dim": space.dim, "arrays": space.fingerprint()}, method


def test_bad_settings_are_refused(tmp_path):
  with pytest.raises(ValueError, match="unknown setting 'serch.budget'"):
    override(PRESETS["mountain_car"]["smoke"](), ["serch.budget=5"])
  with pytest.raises(ValueError, match="valid tasks"):
    bad = override(PRESETS["mountain_car"]["smoke"](), ["tasks=[fly]"])
    pipeline.run(bad, tmp_path / "out", log=print)
  with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 1.0"):
    pipeline.validate(override(PRESETS["mountain_car"]["smoke"](), ["methods.latent_then_param.fraction=1.0"]))
  with pytest.raises(ValueError, match="latent_then_param's latent_pgpe phase .* less than one generation"):
    pipeline.validate(override(PRESETS["mountain_car"]["smoke"](), ["methods.latent_then_param.fraction=0.05"]))
  with pytest.raises(ValueError, match="'methods.nosuch' is not a config section; valid keys of methods: latent_pgpe"):
    override(PRESETS["mountain_car"]["smoke"](), ["methods.nosuch.lr=1"])
  with pytest.raises(ValueError, match="CMAESConfig keeps state quadratic .* 129,306"):
    pipeline.validate(override(PRESETS["halfcheetah"]["paper"](), ["search.methods=[param_cmaes]"]))
  with pytest.raises(ValueError, match="unknown search.latent_start 'worst'"):
    pipeline.run(override(PRESETS["mountain_car"]["smoke"](), ["search.latent_start=worst"]),
                 tmp_path / "out", log=print)
  assert not (tmp_path / "out").exists()


def test_sample_efficiency_on_hand_made_curves(tmp_path):
  from experiments.sample_efficiency import plot, steps_to_threshold, summarise, threshold, wall_table
  # finals: latent -10 (best), ppo -30 (worst): threshold = -30 + 0.9 * 20 = -12
  assert threshold({"a": [-10.0, -10.0], "b": [-30.0]}) == pytest.approx(-12.0)
  assert steps_to_threshold([[10, 20, 30], [10, 20, None]], [[-20, -11, -9], [-50, -40, None]], -12) == [20.0, None]
  results = {"config": {"collect": {"env": {"name": "mountain_car"}}, "search": {"budget": 600}},
             "dataset_env_steps": 1000,
             "curves": {"t": {"latent_pgpe": {"env_steps": [[100, 200], [100, 200]], "returns": [[-20, -10], [-11, -10]],
                                              "final_returns": [-10, -10], "final_env_steps": [300, 300],
                                              "timings": {"compile_s": 1.0, "search_s": 2.0, "final_eval_s": 9.0}},
                              "ppo": {"env_steps": [[50, 500], [50, 500]], "returns": [[-40, -30], [-35, -30]],
                                      "final_returns": [-30, -30], "final_env_steps": [500, 500],
                                      "timings": {"train_s": 1.0, "total_s": 4.0}}}}}
  (row,) = summarise(results)
  latent, ppo = row["methods"]["latent_pgpe"], row["methods"]["ppo"]
  assert latent["steps"] == [200.0, 100.0] and latent["none"]["mean"] == 150.0 and latent["reached"] == 2
  # mountain_car defines 4 tasks: the shared accounting charges a quarter of the collection
  assert latent["full"]["mean"] == 1150.0 and latent["shared"]["mean"] == 400.0
  assert ppo["reached"] == 0 and ppo["none"]["mean"] is None
  assert row["fastest"] == {"none": "latent_pgpe", "shared": "latent_pgpe", "full": "latent_pgpe"}
  # wall time per 10^6 env steps: compile + search (final evaluation excluded), and RL's total
  assert wall_table([row]) == {"mountain_car": {"latent_pgpe": pytest.approx(5e3), "ppo": pytest.approx(4e3)}}
  # the random members the collect stage evaluated only for comparison are not charged
  results["dataset_env_steps_by_stage"] = {"probe": 10, "kept": 100, "random": 5000}
  (row,) = summarise(results)
  assert row["collection_steps"] == {"none": 0, "shared": 28, "full": 110}
  assert row["methods"]["latent_pgpe"]["full"]["mean"] == 260.0
  # equal steps: a tie names both; the one who pays for collection loses once charged
  results["curves"]["t"]["ppo"] = {**results["curves"]["t"]["latent_pgpe"]}
  assert summarise(results)[0]["fastest"] == {"none": "latent_pgpe = ppo", "shared": "ppo", "full": "ppo"}
  # the bars' 95 % intervals stay inside [0, budget] (wide intervals from two far-apart seeds)
  import matplotlib.axes
  bars = []
  original = matplotlib.axes.Axes.bar
  def spy(self, x, height, *args, yerr=None, **kwargs):
    bars.append((height, yerr))
    return original(self, x, height, *args, yerr=yerr, **kwargs)
  results["curves"]["t"]["ppo"] = {**results["curves"]["t"]["ppo"], "env_steps": [[20, 590], [20, 590]],
                                   "returns": [[-11, -10], [-20, -10]]}
  matplotlib.axes.Axes.bar = spy
  try:
    plot(summarise(results), tmp_path / "bars.png")
  finally:
    matplotlib.axes.Axes.bar = original
  for height, yerr in bars:
    assert yerr is not None and height - yerr[0][0] >= 0 and height + yerr[1][0] <= 600
  # a bar that only some seeds reached says how many
  results["curves"]["t"]["latent_pgpe"]["returns"] = [[-20, -10], [-20, -20]]
  labels = []
  original_text = matplotlib.axes.Axes.text
  matplotlib.axes.Axes.text = lambda self, x, y, s, *a, **k: labels.append(s) or original_text(self, x, y, s, *a, **k)
  try:
    plot(summarise(results), tmp_path / "bars.png")
  finally:
    matplotlib.axes.Axes.text = original_text
  assert labels == ["1/2"]


def test_sample_efficiency_table_of_a_pipeline_run(mc_run, tmp_path):
  from experiments import sample_efficiency
  # an earlier table of the same tag, from other runs, leaves no copies behind; other files stay
  earlier = tmp_path / "sample_efficiency_smoke"
  earlier.mkdir()
  for name in ("summary_mountain_car_1.md", "reacher_0_curves_reach_ne.png", "results_hopper.json", "notes.txt"):
    (earlier / name).write_text("earlier")
  assert sample_efficiency.main([str(mc_run), "--results", str(tmp_path), "--tag", "smoke"]) == 0
  text = (tmp_path / "sample_efficiency_smoke.md").read_text()
  assert "| mountain_car | speed |" in text and "reaches the threshold first on" in text
  rows = json.loads((tmp_path / "sample_efficiency_smoke.json").read_text())["rows"]
  assert {m for r in rows for a in ("none", "shared", "full") for m in r["fastest"][a].split(" = ")} \
      <= set(SMOKE_METHODS)
  assert (tmp_path / "sample_efficiency_smoke.png").stat().st_size > 5_000
  copied = sorted(p.name for p in (tmp_path / "sample_efficiency_smoke").iterdir())
  assert copied == ["mountain_car_curves_speed.png", "notes.txt", "results_mountain_car.json", "summary_mountain_car.md"]
  assert sample_efficiency.main([str(tmp_path / "missing")]) == 2


def test_reconstruction_by_rank_of_a_pipeline_run(mc_run, tmp_path):
  import types

  import numpy as np

  from experiments import reconstruction
  from lsc.dataset import load_dataset
  from lsc.evaluation import EvalProtocol
  from lsc.metrics import reconstruction_by_rank
  assert reconstruction.main([str(mc_run), "--top", "2", "--sample", "6", "--results", str(tmp_path),
                              "--tag", "smoke", "--variant", "own:states=own,steps=10", "--out",
                              str(tmp_path / "variants")]) == 0
  reports = json.loads((tmp_path / "reconstruction_smoke.json").read_text())["reports"]
  assert reports["own"]["changes"] == ["states=own", "steps=10"] and reports["own"]["steps_run"] == 10
  own_model = json.loads((tmp_path / "variants" / "own" / "recovery.json").read_text())
  assert own_model["train"]["states"] == "own" and own_model["recovery_protocol"]["episodes"] == 3  # as the run's
  report = reports["pipeline"]
  dataset, _ = load_dataset(mc_run / "dataset" / "artifact")
  top = np.unique(np.argsort(-dataset.returns, axis=0)[:2])  # the 2 best of each of the 4 tasks
  best = report["tasks"]["speed"]["best_policy"]
  assert best["row"] == int(np.argmax(dataset.returns[:, 3])) and best["dataset_return"] == dataset.returns.max(0)[3]
  assert set(top) <= set(report["rows"]) and len(report["rows"]) == len(top) + 6
  assert "| pipeline | best |" in (tmp_path / "reconstruction_smoke.md").read_text()
  # a perfect reconstruction has no error anywhere; a wrong one is seen
  env = dataset.config.env.build()
  policy = dataset.config.policy.build(env)
  exact = types.SimpleNamespace(reconstruct=lambda params, thetas: thetas)
  report = reconstruction_by_rank(env, policy, exact, {}, dataset, EvalProtocol(1, 5), top=1, sample=4)
  assert np.all(report["own_error"] == 0) and np.array_equal(report["returns"], report["reconstructed"])
  assert all(m["error_p90"] == 0 for per in report["tasks"].values() for m in per.values() if "n" in m)
  flipped = types.SimpleNamespace(reconstruct=lambda params, thetas: -thetas)
  report = reconstruction_by_rank(env, policy, flipped, {}, dataset, EvalProtocol(1, 5), top=1, sample=4)
  assert np.all(report["own_error"] > 0)
  with pytest.raises(ValueError, match="NAME:KEY=VALUE"):
    reconstruction.parse_variant("own=states")


def test_best_decoded_start_charges_its_episodes_to_the_latent_search(mc_run, tmp_path):
  import shutil
  out = tmp_path / "run"
  shutil.copytree(mc_run, out)
  config = override(PRESETS["mountain_car"]["smoke"](), ["search.methods=[latent_pgpe]", "search.latent_start=best_decoded",
                                                         "search.start_candidates=3", "search.start_episodes=2"])
  results = pipeline.run(config, out, log=lambda *a: None)
  assert "search/speed_latent_pgpe" not in results["timings"]["reused"]  # its start changed
  start = results["latent_starts"]["speed"]
  assert len(start["rows"]) == 3 and start["row"] in start["rows"] and start["return"] == max(start["returns"])
  assert 0 < start["spent"] <= 3 * 2 * config.collect.env.resolved().episode_length
  latent = results["curves"]["speed"]["latent_pgpe"]
  budget = config.search.budget
  for steps, final in zip(latent["env_steps"], latent["final_env_steps"]):
    assert steps[0] == start["spent"] and start["spent"] < final <= budget  # the curve starts after the choice
  with pytest.raises(ValueError, match="after choosing the best_decoded start"):
    pipeline.validate(override(config, ["search.start_candidates=1000"]))
  # spread: the same choice among candidates picked with no reward, spread over the latent space
  from lsc.training import load_autoencoder
  from lsc.dataset import load_dataset
  spread = override(config, ["search.latent_start=spread"])
  results = pipeline.run(spread, out, log=lambda *a: None)
  codes = np.asarray(load_autoencoder(out / "autoencoder" / "model").codes)
  for task, start in results["latent_starts"].items():
    assert start["rows"] == pipeline.spread_rows(codes, 3).tolist() and start["return"] == max(start["returns"])
    assert results["curves"][task]["latent_pgpe"]["env_steps"][0][0] == start["spent"] > 0
  # its control picks the candidates over the dataset's behaviour descriptors instead of the codes
  results = pipeline.run(override(spread, ["search.latent_start=spread_descriptors"]), out, log=lambda *a: None)
  descriptors = load_dataset(out / "dataset" / "artifact")[0].descriptors
  assert results["latent_starts"]["speed"]["rows"] == pipeline.spread_rows(descriptors, 3).tolist()
  # farthest-point sampling: the code nearest the mean, then the farthest from those chosen
  line = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])  # mean 3.2
  assert pipeline.spread_rows(line, 3).tolist() == [3, 4, 0]
  assert pipeline.spread_rows(np.array([[0.0], [0.0], [1.0], [1.0]]), 4).tolist() == [0, 2, 1, 3]  # each row once
  with pytest.raises(ValueError, match="more than the dataset's"):
    pipeline.validate(override(spread, [f"search.start_candidates={len(codes) + 1}", "search.budget=200000"]))


def test_a_confirming_sweep_takes_the_best_cells_of_earlier_sweeps_and_refuses_reported_seeds(tmp_path, monkeypatch,
                                                                                              capsys):
  from experiments import sweep
  monkeypatch.setattr(sweep, "RESULTS", tmp_path)

  def row(std, lr, returns):
    return {"cell": sweep.cell_name({"search.latent_std_init": std, "search.latent_lr": lr}),
            "settings": {"search.latent_std_init": std, "search.latent_lr": lr},
            "tasks": {t: {"mean": r} for t, r in returns.items()}}
  first = [row(0.1, 0.1, {"a": 1.0, "b": 5.0}), row(0.3, 0.1, {"a": 3.0, "b": 4.0}), row(1.0, 1.0, {"a": 2.0, "b": 1.0})]
  edge = [row(1.0, 1.0, {"a": 2.0, "b": 1.0}), row(3.0, 3.0, {"a": 9.0, "b": 9.0})]  # one cell in both files
  (tmp_path / "one.json").write_text(json.dumps({"rows": first}))
  (tmp_path / "edge.json").write_text(json.dumps({"rows": edge}))
  # mean ranks over a, b: (3.0, 3.0) 1, (0.3, 0.1) 2.5, (0.1, 0.1) 3, (1.0, 1.0) 3.5
  assert sweep.top_cells(["one", "edge"], 2) == [{"search.latent_std_init": 3.0, "search.latent_lr": 3.0},
                                                 {"search.latent_std_init": 0.3, "search.latent_lr": 0.1}]
  with pytest.raises(ValueError, match="--top"):
    sweep.top_cells(["one", "edge"], 5)
  tie = [row(0.1, 0.1, {"a": 1.0, "b": 2.0}), row(0.3, 0.1, {"a": 2.0, "b": 1.0})]  # each first on one task
  text = sweep.markdown("mountain_car", "latent_pgpe", ["search.latent_std_init"], [dict(r, seeds=2) for r in tie],
                        sweep.rank_cells(tie), "cmd", 1000)
  assert "No best cell" in text and "Best:" not in text
  assert sweep.best_cells(sweep.rank_cells(tie)) == [r["cell"] for r in tie]
  assert sweep.best_cells(sweep.rank_cells(first)) == [first[1]["cell"]]  # (0.3, 0.1): rank 1 on a, 2 on b
  for argv, message in ((["mountain_car", "--method", "latent_pgpe", "--cells-from", "one", "--seed", "3"], "--seed"),
                        (["mountain_car", "--method", "latent_pgpe", "--cells-from", "one", "--grid", "search.latent_lr=1"],
                         "either"),
                        (["mountain_car", "--method", "latent_pgpe", "--cells-from", "missing"], "no "),
                        (["mountain_car", "--method", "latent_pgpe", "--grid", "search.latent_lr=1", "--top", "2"],
                         "--top is for --cells-from"),
                        (["mountain_car", "--method", "latent_pgpe", "--cells-from", "one", "--from",
                          str(tmp_path / "no_run")], "is not a run directory")):
    assert sweep.main(argv + ["--preset", "smoke"]) == 2
    assert message in capsys.readouterr().err


def test_sample_efficiency_merges_methods_run_apart(mc_run, tmp_path, capsys):
  """Methods of one env run apart (a session each) are tabled as if run together."""
  from experiments import sample_efficiency
  whole = json.loads((mc_run / "results.json").read_text())
  methods = sorted({m for per in whole["curves"].values() for m in per})
  assert len(methods) >= 2
  def part(keep):
    return {**whole, "curves": {t: {m: o for m, o in per.items() if m in keep} for t, per in whole["curves"].items()}}
  for name, keep in [("first", methods[:1]), ("second", methods[1:])]:
    (tmp_path / f"{name}.json").write_text(json.dumps(part(keep)))
  assert sample_efficiency.main([str(mc_run), "--results", str(tmp_path / "whole")]) == 0
  assert sample_efficiency.main([str(tmp_path / "first.json"), str(tmp_path / "second.json"),
                                 "--results", str(tmp_path / "merged")]) == 0
  rows = lambda folder: json.loads((tmp_path / folder / "sample_efficiency.json").read_text())["rows"]
  assert rows("merged") == rows("whole")
  # the merged results are written beside the table, the input of a later merge
  again = tmp_path / "merged" / "sample_efficiency" / "results_mountain_car.json"
  assert sample_efficiency.main([str(again), "--results", str(tmp_path / "again")]) == 0
  assert rows("again") == rows("whole")
  # not one comparison: another budget; or a method given twice
  other = part(methods[1:])
  other["config"] = {**other["config"], "search": {**other["config"]["search"], "budget": 1}}
  (tmp_path / "other.json").write_text(json.dumps(other))
  assert sample_efficiency.main([str(tmp_path / "first.json"), str(tmp_path / "other.json")]) == 2
  assert sample_efficiency.main([str(tmp_path / "first.json"), str(mc_run)]) == 2
  # parts on other backends (RL-only parts default to mjx on a Warp GPU): refused, naming the fix
  other = part(methods[1:])
  collect = other["config"]["collect"]
  other["config"] = {**other["config"], "collect": {**collect, "env": {**collect["env"], "backend": "other"}}}
  (tmp_path / "other.json").write_text(json.dumps(other))
  capsys.readouterr()
  assert sample_efficiency.main([str(tmp_path / "first.json"), str(tmp_path / "other.json")]) == 2
  assert "--set collect.env.backend=" in capsys.readouterr().err


def test_the_race_preset_reads_committed_winners_its_controls_step_as_latent_pgpe_and_its_rl_phases_as_their_agent(tmp_path, monkeypatch):
  from experiments import presets
  monkeypatch.setattr(presets, "RESULTS", tmp_path)
  before = presets.race("mountain_car")
  (tmp_path / "sweep_mountain_car_latent_pgpe_race.json").write_text(json.dumps({"best": {"methods.latent_pgpe.lr": 0.7}}))
  (tmp_path / "sweep_mountain_car_pca_subspace_pgpe_race.json").write_text(
      json.dumps({"best": {"methods.pca_subspace_pgpe.std_init": 0.05}}))
  after = presets.race("mountain_car")
  assert before.methods["latent_pgpe"].lr != 0.7 and after.methods["latent_pgpe"].lr == 0.7
  # the subspace controls differ from latent PGPE in their space (and tuned std_init) only
  assert after.methods["random_subspace_pgpe"].lr == after.methods["pca_subspace_pgpe"].lr == 0.7
  assert after.methods["pca_subspace_pgpe"].std_init == 0.05
  assert after.methods["param_pgpe"] == before.methods["param_pgpe"]
  assert after.search.seeds == 10 and after.search.n_evals == 20 and len(after.tasks) == 4
  # a method outside the race's list, tuned the same way (issue 36: the other strategies),
  # is read too; its sweep's setting is the strategy's step size
  (tmp_path / "sweep_mountain_car_latent_cmaes_race.json").write_text(
      json.dumps({"best": {"methods.latent_cmaes.std_init": 0.167}}))
  assert presets.race("mountain_car").methods["latent_cmaes"].std_init == 0.167
  # the cpu preset searches the latent space with the strategy the race chose there, at its winner
  cpu = presets.PRESETS["mountain_car"]["cpu"]()
  assert cpu.search.methods[0] == "latent_cmaes" and "latent_pgpe" not in cpu.search.methods
  assert cpu.methods["latent_cmaes"].std_init == 0.167
  # a sequence's RL phase learns at its agent's tuned rate, whatever the phase's own default
  (tmp_path / "sweep_mountain_car_td3_race.json").write_text(json.dumps({"best": {"methods.td3.learning_rate": 7e-4}}))
  assert presets.race("mountain_car").methods["td3_from_start"].learning_rate == 7e-4
  (tmp_path / "sweep_mountain_car_td3_from_start_race.json").write_text(  # unless tuned for itself
      json.dumps({"best": {"methods.td3_from_start.learning_rate": 2e-4}}))
  assert presets.race("mountain_car").methods["td3_from_start"].learning_rate == 2e-4
  assert before.methods["sac_from_start"].learning_rate == before.methods["sac"].learning_rate
  from experiments import race_tune
  assert race_tune.cells("mountain_car", "latent_cmaes") == ("methods.latent_cmaes.std_init", [0.167, 0.5, 1.5])
  assert race_tune.cells("mountain_car", "latent_openes")[0] == "methods.latent_openes.lr"
  assert race_tune.cells("mountain_car", "latent_td3")[0] == "methods.latent_td3.learning_rate"
  assert race_tune.cells("mountain_car", "latent_then_sac") == ("methods.latent_then_sac.fraction", [0.25, 0.5, 0.75])
  # tuned for the reward-free start: every search its std_init, read by the race_mean preset only
  assert race_tune.cells("mountain_car", "latent_pgpe", "mean")[0] == "methods.latent_pgpe.std_init"
  with pytest.raises(SystemExit):  # PPO never starts from the mean code: nothing to tune for it there
    race_tune.main(["mountain_car", "--start", "mean", "--methods", "ppo"])
  with pytest.raises(SystemExit):  # a --from that is no run directory is refused before any cell runs
    race_tune.main(["mountain_car", "--methods", "ppo", "--from", str(tmp_path / "no_run")])
  (tmp_path / "sweep_mountain_car_latent_pgpe_race_mean.json").write_text(
      json.dumps({"best": {"methods.latent_pgpe.std_init": 0.9}}))
  mean = presets.race_mean("mountain_car")
  assert mean.search.latent_start == "mean" and mean.methods["latent_pgpe"].std_init == 0.9
  assert mean.methods["latent_pgpe"].lr == 0.7 and presets.race("mountain_car").methods["latent_pgpe"].std_init != 0.9


def test_compare_runs_reads_one_datasets_runs_under_one_label_and_refuses_any_other_pair(tmp_path):
  from experiments.compare_runs import merge
  from lsc.plots import plot_finals
  best = {"goal": {"index": 3, "collected": 9.0}}

  def summary(run, methods, digest="d1", recovery=1.0, budget=100):
    return {"run": run, "dataset_digest": digest, "tasks": {"goal": {"methods": methods}},
            "results": {"dataset_best": best, "recovery": {"trained": {"goal": {"recovery": recovery}}},
                        "config": {"search": {"budget": budget, "seeds": 2, "seed": 0}},
                        "curves": {"goal": {m: {"eval_steps": [0, 50, 100]} for m in methods}}}}

  first = summary("A", {"x": [1.0], "y": [2.0]})
  merged = merge(first, summary("B", {"y": [2.0], "z": [3.0]}), "f")["tasks"]["goal"]["methods"]
  assert merged == {"x": [1.0], "y": [2.0], "z": [3.0]}
  # side by side: a variant that did not run a method leaves a gap
  path = plot_finals({"goal": {m: {"f": v, **({"g": [0.5, 1.5]} if m == "x" else {})} for m, v in merged.items()}},
                     tmp_path / "finals.png", "finals")
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  for other, fragment in [(summary("B", {"y": [2.5]}), "both ran ['y'] on goal, with other results"),
                          (summary("B", {"z": [3.0]}, digest="d2"), "dataset digests differ"),
                          (summary("B", {"z": [3.0]}, recovery=1.1), "autoencoder recovery 1.0 vs 1.1"),
                          (summary("B", {"z": [3.0]}, budget=200), "which differ in budget")]:
    with pytest.raises(ValueError, match=re.escape(fragment)):
      merge(first, other, "f")
