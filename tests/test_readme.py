"""The README's Python blocks run verbatim (in a temporary directory)."""

import pathlib
import re

import numpy as np

from lsc import checkpoint

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  blocks = [b for b in blocks if not b.startswith("# bring your own env")]  # tests/test_byo_env.py runs it
  assert blocks, "the README has no python block"
  monkeypatch.chdir(tmp_path)
  from lsc.methods import METHODS
  for name in set(METHODS):  # what the README registers is gone after the test
    monkeypatch.setitem(METHODS, name, METHODS[name])
  registered = set(METHODS)
  digests = []
  for run in range(2):  # twice in one directory: the second collect's identical dataset keeps its digest,
    scope = {}          # so the autoencoder it trained is reused (once refused: "trained on other inputs")
    for block in blocks:
      exec(compile(block, str(README), "exec"), scope)
    digests.append([checkpoint.digest(tmp_path / "runs" / "py" / name) for name in ("dataset", "ae/model")])
  assert digests[0] == digests[1]
  assert set(METHODS) - registered == {"latent_xnes"}
  for name in set(METHODS) - registered:
    del METHODS[name]
  # what the script says it shows
  np.testing.assert_allclose(scope["centres"], np.tile([1.0, -2.0], (3, 1)), atol=0.2)
  assert scope["found"].final_returns.shape == (2,) and (tmp_path / "runs" / "py" / "ae" / "recovery.json").exists()
  record = scope["compressed"].autoencoder.record  # the in-memory dataset is named by its saved artifact's digest
  assert record["config"]["inputs"] == {"dataset": digests[1][0]} and record["digest"] == digests[1][1]
  outcome = scope["outcome"]  # run in memory: the solutions are in the Outcome, not on disk
  assert outcome.method == "latent_cmaes" and (outcome.final_env_steps <= 50_000).all()
  assert outcome.final_thetas.shape == (2, scope["ae"].policy.num_params) and not (tmp_path / "runs" / "py" / "cmaes").exists()
  assert scope["result"].returns.shape == (256, 3) and scope["result"].obs_samples.shape == (256, 32, 11)
