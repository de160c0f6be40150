"""Bad settings are refused before any work: one line on stderr naming the value, exit
code 2, no traceback, and no env built (a late refusal fails these tests).  In-process,
no compiles: the whole file takes seconds."""

import argparse

import numpy as np
import pytest

from lsc import pipeline
from experiments.presets import PRESETS
from lsc import checkpoint, cli, store
from lsc.config import EnvConfig, _coerce, override

BIG = "1000000000000"
MC = ["--env", "mountain_car", "--policy", "small"]  # 17 parameters
SEARCH = ["search", *MC, "--task", "speed", "--budget", "1000000"]


def _no_work(*args, **kwargs):
  raise AssertionError("built an env or started a stage: the setting was refused too late")


@pytest.fixture(autouse=True)
def refuse_work(monkeypatch):
  import lsc.compression
  import lsc.config
  import lsc.dataset
  import lsc.envs
  monkeypatch.setattr(lsc.config.EnvConfig, "build", _no_work)
  monkeypatch.setattr(lsc.config, "make_env", _no_work)
  monkeypatch.setattr(lsc.envs, "make_env", _no_work)
  monkeypatch.setattr(lsc.dataset, "collect", _no_work)
  monkeypatch.setattr(lsc.compression, "compress", _no_work)
  monkeypatch.setattr(store.Stages, "run", _no_work)


@pytest.fixture(scope="module")
def fake_dataset(tmp_path_factory):
  """A dataset artifact's record for a 17-parameter policy (no collect: nothing compiled)."""
  path = tmp_path_factory.mktemp("data") / "dataset"
  checkpoint.save_artifact(path, {"thetas": np.zeros((4, 17), np.float32)}, kind="dataset", config={},
                           identity={"env": "mountain_car", "policy": {"num_params": 17}})
  return path


def _one_line(capsys, code: int, fragment: str) -> str:
  err = capsys.readouterr().err
  assert code == 2, err
  assert "Traceback" not in err
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].strip(), err
  assert fragment in lines[0], lines[0]
  return lines[0]


CLI_CASES = [
    (["rollout", *MC, "--episode-length", "0"], "episode_length must be >= 1, got 0"),
    (["collect", *MC, "--episode-length", "0", "--out", "{tmp}/d"], "episode_length must be >= 1, got 0"),
    (["search", *SEARCH[1:], "--episode-length", "0", "--out", "{tmp}/s"], "episode_length must be >= 1, got 0"),
    (["rollout", *MC, "--eval-seed", "100000000000000000000"], "evaluation seed must be an integer in [0, 4294967295]"),
    (["rollout", *MC, "--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
    (["rollout", *MC, "--pool", BIG], "rollout needs about"),
    (["collect", *MC, "--seed", "-1", "--out", "{tmp}/d"], "seed must be an integer in [0, 4294967295]"),
    (["collect", *MC, "--seed", str(2**32), "--out", "{tmp}/d"], "seed must be an integer in [0, 4294967295]"),
    (["collect", *MC, "--keep", "nan", "--out", "{tmp}/d"], "keep must be a finite number, got nan"),
    (["collect", *MC, "--pool", BIG, "--out", "{tmp}/d"], "collect needs about"),
    (["train", "--dataset", "{tmp}/missing", "--out", "{tmp}/t"], "no such directory"),
    (["train", "--dataset", "{tmp}/empty", "--out", "{tmp}/t"], "is an empty directory"),
    (["train", "--dataset", "{tmp}/file", "--out", "{tmp}/t"], "is a file, not a dataset directory"),
    (["train", "--dataset", "{data}", "--lr", "nan", "--out", "{tmp}/t"], "lr must be a finite number, got nan"),
    (["train", "--dataset", "{data}", "--seed", "-1", "--out", "{tmp}/t"], "seed must be an integer in [0,"),
    (["train", "--dataset", "{data}", "--latent-dim", "1000000", "--out", "{tmp}/t"],
     "latent_dim must be <= the policy's 17 parameters, got 1,000,000"),
    ([*SEARCH, "--decoder", "linear:abc", "--out", "{tmp}/s"], "K of linear:K must be an integer, got 'abc'"),
    ([*SEARCH, "--decoder", "linear:100", "--out", "{tmp}/s"], "K must be in [1, the policy's 17 parameters]"),
    ([*SEARCH, "--decoder", "linear:2", "--std-init", "nan", "--out", "{tmp}/s"], "std_init must be a finite number"),
    ([*SEARCH, "--decoder", "linear:2", "--lr", "nan", "--out", "{tmp}/s"], "lr must be a finite number, got nan"),
    ([*SEARCH, "--decoder", "linear:2", "--population", "3", "--out", "{tmp}/s"], "population must be even"),
    ([*SEARCH, "--decoder", "linear:2", "--std-init", "1e30", "--out", "{tmp}/s"],
     "std_init = 1e+30 is in units of the search space's spread"),  # once refused after the whole budget
    (["collect", *MC, "--out", "{data}"], "already holds a dataset made with other settings"),  # once replaced it
    (["collect", *MC, "--set", "train.lr=1", "--out", "{tmp}/d"], "--set train.lr: this command takes collect.*"),
    (["train", "--dataset", "{data}", "--set", "train.activation=foo", "--out", "{tmp}/t"], "unknown activation 'foo'"),
    ([*SEARCH, "--decoder", "{tmp}/nowhere", "--out", "{tmp}/s"], "neither identity, linear:K nor an autoencoder"),
    ([*SEARCH, "--decoder", "linear:2", "--eval-seed", "100000000000000000000", "--out", "{tmp}/s"],
     "evaluation seed must be an integer in [0, 4294967295]"),
    ([*SEARCH, "--method", "param_pgpe", "--seed", "-1", "--out", "{tmp}/s"], "--seed must be an integer"),
    ([*SEARCH, "--method", "ppo", "--seed", str(2**32 - 1), "--seeds", "2", "--out", "{tmp}/s"],
     "--seed must be an integer in [0, 4294967294] (it and the 1 seed(s) after it)"),
    # every method's every setting through --set methods.<name>.<field>; a flag its config lacks is refused
    ([*SEARCH, "--method", "td3", "--budget", "100", "--set", "methods.td3.min_replay_size=100",
      "methods.td3.num_envs=4", "--out", "{tmp}/s"], "needs at least 1040 (100 prefill steps + 4 env steps per actor step, in every interval"),
    ([*SEARCH, "--method", "td3", "--set", "methods.td3.batch_size=0", "--out", "{tmp}/s"],
     "TD3Config.batch_size must be > 0, got 0"),
    ([*SEARCH, "--method", "latent_cmaes", "--decoder", "linear:2", "--lr", "0.1", "--out", "{tmp}/s"],
     "--lr for latent_cmaes: CMAESConfig has no lr setting"),
    ([*SEARCH, "--method", "latent_then_param", "--decoder", "linear:2", "--set", "methods.param_pgpe.std_init=0",
      "--out", "{tmp}/s"], "latent_then_param's param_pgpe phase (750,000 env steps of 1,000,000): std_init must be > 0"),
    ([*SEARCH, "--set", "methods.nosuch.x=1", "--out", "{tmp}/s"], "methods: unknown method 'nosuch'; valid methods: "
     "latent_pgpe,"),
    ([*SEARCH, "--set", "methods.latent_pgpe.nope=1", "--out", "{tmp}/s"], "methods.latent_pgpe: unknown key(s) nope"),
    ([*SEARCH, "--set", "search.budget=5", "--out", "{tmp}/s"], "--set search.budget: this command takes methods.* settings (e.g. methods.latent_pgpe.std_init=0.3)"),
    ([*SEARCH, "--method", "param_cmaes", "--decoder", "linear:2", "--out", "{tmp}/s"],
     "param_cmaes searches the policy's parameters: use --decoder identity"),
]


@pytest.mark.parametrize("argv, fragment", CLI_CASES, ids=[" ".join(a[:1] + a[-4:]) for a, _ in CLI_CASES])
def test_cli_refuses_before_work(argv, fragment, tmp_path, fake_dataset, capsys):
  (tmp_path / "empty").mkdir()
  (tmp_path / "file").write_text("x")
  argv = [a.format(tmp=tmp_path, data=fake_dataset) for a in argv]
  _one_line(capsys, cli.main(argv), fragment)
  assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists() and not (tmp_path / "d").exists()


SMOKE = ["--preset", "smoke"]
PIPELINE_CASES = [
    (["--budget", "0"], "search.budget must be >= 1, got 0"),
    (["--seeds", "0"], "search.seeds must be >= 1, got 0"),
    (["--latent-dim", "0"], "latent_dim must be >= 1, got 0"),
    (["--latent-dim", "1000000"], "latent_dim must be <= the policy's 17 parameters"),
    (["--set", "methods.latent_pgpe.population=3"], "population must be even and >= 2 (antithetic pairs), got 3"),
    (["--set", "methods.param_cmaes.episodes=0", "--methods", "param_cmaes"], "episodes must be >= 1, got 0"),
    (["--set", "search.budget=true"], "search.budget: expected int, got True"),
    (["--set", "search.budget=100"], "latent_pgpe (methods.latent_pgpe.*, search.budget 100): budget 100 env steps is "
     "less than one generation"),
    (["--set", "methods.latent_pgpe.lr=.nan"], "lr must be a finite number, got nan"),
    (["--set", "methods.param_pgpe.std_init=.inf"], "std_init must be a finite number, got inf"),
    (["--set", "methods.latent_pgpe.std_init=1e30"], "std_init = 1e+30 is in units of the search space's spread"),
    (["--set", "methods.ppo.num_envs=0"], "PPOConfig.num_envs must be > 0, got 0"),
    # once refused only when PPO started training, after the dataset, autoencoder and searches
    (["--set", "methods.ppo.num_envs=3", "methods.ppo.batch_size=3", "methods.ppo.num_minibatches=2"],
     "ppo (methods.ppo.*, search.budget 12,000): PPOConfig.num_envs = 3 must be divisible by the 2 devices"),
    (["--set", "search.budget=1.5e0"], "search.budget: expected int, got '1.5e0'"),
    # each once failed only after the dataset stage, or wrote NaN recovery with exit 0
    (["--set", "train.activation=foo"], "unknown activation 'foo'"),
    (["--set", "collect.visited_per_episode=0"], "visited_per_episode must be >= 1"),
    (["--set", "train.val_fraction=0.001"], "holds out 1 of the dataset's 50 policies"),
    (["--set", "collect.generations=1", "collect.mutation_std=1e30"], "mutation_std"),
    (["--set", "collect.generations=100000", "collect.mutation_std=10"], "drifts ~3,162 init stds"),
    (["--set", "train.batch_states=100000000"], "needs about"),
    (["--set", "train.lr=.nan"], "lr must be a finite number, got nan"),
    (["--set", "recovery_points=0"], "recovery_points must be >= 2 (recovery measures a range of returns"),
    (["--set", "recovery_episodes=0"], "recovery_episodes must be >= 1, got 0"),
    (["--set", "eval_episodes=0"], "eval_episodes must be >= 1, got 0"),
    (["--set", "search.n_evals=0"], "search.n_evals must be >= 1, got 0"),
    (["--set", "eval_seed=100000000000000000000"], "eval_seed must be an integer in [0, 4294967295]"),
    (["--set", "collect.seed=-1"], "seed must be an integer in [0, 4294967295], got -1"),
    (["--set", "collect.env.episode_length=0"], "episode_length must be >= 1, got 0"),
    (["--set", "collect.keep=.nan"], "keep must be a finite number, got nan"),
    (["--set", f"collect.pool={BIG}"], "collect needs about"),
    (["--set", "search.methods=[]"], "search.methods is empty"),
    (["--methods", "cma"], "unknown method 'cma'; valid methods: latent_pgpe"),
    (["--set", "tasks=fly"], "unknown task 'fly'"),
    (["--set", "search.latent_start=worst"], "unknown search.latent_start 'worst'"),
    (["--config", "{tmp}/missing.yaml"], "No such file or directory: {tmp}/missing.yaml"),
    (["--config", "{tmp}/bad.yaml"], "malformed YAML"),
    (["--config", "{tmp}/list.yaml"], "expected a mapping of settings"),
    (["--config", "{tmp}"], "Is a directory"),
]


@pytest.mark.parametrize("argv, fragment", PIPELINE_CASES, ids=[" ".join(a) for a, _ in PIPELINE_CASES])
def test_pipeline_refuses_before_work(argv, fragment, tmp_path, capsys):
  (tmp_path / "bad.yaml").write_text("search: {budget: [1,\n")
  (tmp_path / "list.yaml").write_text("- search.budget: 5\n")
  argv = [a.format(tmp=tmp_path) for a in argv]
  code = pipeline.main("mountain_car", PRESETS["mountain_car"], [*SMOKE, "--out", str(tmp_path / "out"), *argv])
  _one_line(capsys, code, fragment.format(tmp=tmp_path))
  assert not (tmp_path / "out").exists()


def test_numbers_in_scientific_notation_are_read_wherever_a_number_is_taken(tmp_path):
  # YAML 1.1 reads 1e-3 (no dot, no exponent sign) as a string: --set, YAML and even JSON
  # configs once refused it with "expected float, got '1e-3'"
  smoke = PRESETS["mountain_car"]["smoke"]()
  (tmp_path / "c.yaml").write_text("train:\n  lr: 3e-4\nsearch:\n  budget: 2e5\n")
  (tmp_path / "c.json").write_text('{"train": {"lr": 1e-3}, "search": {"budget": 1e6}}')
  flags = dict(latent_dim=None, seeds=None, budget=None, tasks=None, methods=None)
  for config, sets, lr, budget in ((None, ["train.lr=1e-3", "search.budget=1E+5"], 1e-3, 100_000),
                                   ("c.yaml", [], 3e-4, 200_000), ("c.json", [], 1e-3, 1_000_000)):
    args = argparse.Namespace(config=config and str(tmp_path / config), set=sets, **flags)
    configured = pipeline.configure(smoke, args)
    assert (configured.train.lr, configured.search.budget) == (lr, budget)
    assert type(configured.search.budget) is int
  parsed = cli.build_parser().parse_args([*SEARCH, "--budget", "1e6", "--lr", "1e-3", "--out", "x"])
  assert (parsed.budget, parsed.lr) == (1_000_000, 1e-3)
  with pytest.raises(SystemExit):  # not a whole number
    cli.build_parser().parse_args([*SEARCH, "--budget", "2.5e0", "--out", "x"])
  from lsc.validate import integer
  with pytest.raises(argparse.ArgumentTypeError, match="within 1e±300"):  # not minutes of big-int arithmetic
    integer("1e10000000")
  with pytest.raises(ValueError, match="train.lr: expected float, got True"):  # nor is a bool a number
    override(smoke, ["train.lr=true"])


def test_results_files_are_strict_json():
  from lsc import jsonfile
  text = jsonfile.dumps({"a": np.float32("nan"), "b": [np.inf, 1.5, np.int64(2)], "c": np.array([-np.inf, 0.5])})
  assert text == '{"a": null, "b": [null, 1.5, 2], "c": [null, 0.5]}'  # json.dumps wrote bare NaN and Infinity


def test_search_refuses_an_out_holding_another_result_before_work(tmp_path, capsys):
  # `lsc search --method td3 --out S`, S holding a param_pgpe result, trained TD3 fully, then refused
  from lsc import rundir
  from lsc.methods import run_fields
  out = rundir.claim(tmp_path / "s", "search")
  checkpoint.save_artifact(out / "result", {"x": np.zeros(2)}, kind="search", identity={},
                           config={"method": "param_pgpe", "run": run_fields("speed", 10**6, 1, 0)})
  _one_line(capsys, cli.main([*SEARCH, "--method", "td3", "--out", str(out)]), "holds a 'search' artifact, not a 'baseline'")
  # nor does one method's run join another's in the same --out (latent_then_param writes latent/ and param/)
  other = rundir.claim(tmp_path / "s2", "search")
  checkpoint.save_artifact(other / "param" / "result", {"x": np.zeros(2)}, kind="search", identity={},
                           config={"method": "latent_then_param", "run": run_fields("speed", 10**6, 1, 0)})
  _one_line(capsys, cli.main([*SEARCH, "--method", "param_pgpe", "--out", str(other)]),
            "holds the result of another run (method 'latent_then_param' there, 'param_pgpe' here)")
  # a result of the same method but another budget is replaced only with --overwrite
  _one_line(capsys, cli.main([*SEARCH, "--method", "param_pgpe", "--budget", "2e6", "--out", str(out)]),
            "holds the result of another run (budget 1000000 there, 2000000 here)")


def test_search_takes_method_settings_from_config_then_set_then_flags(tmp_path):
  # `lsc search` had PGPE's flags only: no other strategy's or RL baseline's setting was reachable
  from lsc.methods import get_method
  (tmp_path / "run.yaml").write_text("methods:\n  latent_pgpe: {std_init: 0.3, lr: 0.2, std_lr: 0.05}\n"
                                     "  param_pgpe:\n    std_init: 0.05\nsearch:\n  budget: 5\n")  # a pipeline's
  args = cli.build_parser().parse_args([*SEARCH, "--method", "latent_then_param", "--config", str(tmp_path / "run.yaml"),
                                        "--set", "methods.latent_pgpe.lr=0.4", "methods.td3.batch_size=64",
                                        "--population", "16", "--std-init", "0.6", "--fraction", "0.5", "--out", "x"])
  configs = cli._method_configs(args, get_method("latent_then_param"))
  latent, param = configs["latent_pgpe"], configs["param_pgpe"]
  assert (latent.std_lr, latent.lr, latent.std_init) == (0.05, 0.4, 0.6)  # the file, --set over it, a flag over both
  assert (latent.population, param.population, param.std_init, param.lr) == (16, 16, 0.05, 1.0)  # --std-init: phase 1
  assert configs["latent_then_param"].fraction == 0.5 and configs["td3"].batch_size == 64
  assert configs["param_cmaes"] == get_method("param_cmaes").config  # the rest: the registry's defaults


class Captured(Exception):
  """Raised by a stand-in for the work, carrying the config it was handed."""


def test_collect_and_train_take_config_files_and_set_with_the_pipelines_keys(tmp_path, fake_dataset, monkeypatch):
  # `lsc collect|train` had their own flags only: 4 of 17 CollectConfig and 8 of 19
  # TrainConfig fields could not be set
  import lsc.compression
  import lsc.dataset

  def capture(config, *args, **kwargs):
    raise Captured(config)
  monkeypatch.setattr(lsc.dataset, "collect", capture)
  monkeypatch.setattr(lsc.compression, "compress", lambda path, config, *a, **k: capture(config))
  (tmp_path / "run.yaml").write_text("collect:\n  n_random: 64\n  pool: 300\ntrain:\n  patience: 7\n"
                                     "search:\n  budget: 5\n")  # a pipeline's file: other sections are left out
  with pytest.raises(Captured) as got:
    cli.main(["collect", *MC, "--config", str(tmp_path / "run.yaml"), "--set", "collect.visited_per_episode=4",
              "collect.pool=400", "--keep", "0.2", "--out", str(tmp_path / "d")])
  config = got.value.args[0]
  assert (config.n_random, config.visited_per_episode, config.pool, config.keep) == (64, 4, 400, 0.2)
  assert config.policy.hidden == (4,)  # --policy small, a flag: applied last
  with pytest.raises(Captured) as got:
    cli.main(["train", "--dataset", str(fake_dataset), "--config", str(tmp_path / "run.yaml"), "--set",
              "train.patience=3", "train.rollout_every=20", "--latent-dim", "1", "--out", str(tmp_path / "t")])
  config = got.value.args[0]
  assert (config.patience, config.rollout_every, config.latent_dim, config.lr) == (3, 20, 1, 1e-3)


def test_one_name_is_one_task_and_bools_are_not_ints():
  smoke = PRESETS["mountain_car"]["smoke"]()
  assert override(smoke, ["tasks=speed", "search.methods=ppo"]).tasks == ("speed",)
  assert override(smoke, ["search.methods=ppo"]).search.methods == ("ppo",)
  with pytest.raises(ValueError, match="expected int, got True"):
    _coerce(int | None, True, "x")
  with pytest.raises(ValueError, match="expected bool, got 1"):
    _coerce(bool, 1, "x")
  assert EnvConfig("mountain_car").resolved().episode_length == 999


def test_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
  with pytest.raises(ValueError, match="episode_length must be >= 1"):
    cli.main(["rollout", *MC, "--episode-length", "0", "--debug"])
  with pytest.raises(ValueError, match="episode_length must be >= 1"):
    cli.main(["--debug", "rollout", *MC, "--episode-length", "0"])
  with pytest.raises(ValueError, match="search.budget must be >= 1"):
    pipeline.main("mountain_car", PRESETS["mountain_car"], [*SMOKE, "--out", str(tmp_path / "o"), "--budget", "0",
                                                            "--debug"])
  monkeypatch.setenv("LSC_DEBUG", "1")
  with pytest.raises(FileNotFoundError):
    pipeline.main("mountain_car", PRESETS["mountain_car"], [*SMOKE, "--config", str(tmp_path / "none.yaml")])
  monkeypatch.setenv("LSC_DEBUG", "0")
  assert cli.main(["rollout", *MC, "--episode-length", "0"]) == 2
  capsys.readouterr()
