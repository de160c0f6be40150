"""The python blocks of README.md and of every docs/*.md page run verbatim, in one
temporary directory: README.md's blocks in one scope, in order (its `# bring your own
env` block is tests/test_byo_env.py's), then each docs page's blocks in a scope of their
own, in order (a page imports what it uses in its first block). The relative links of
these pages point at files that exist."""

import pathlib
import re

import numpy as np

from lsc import checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
BYO = "# bring your own env"


def python_blocks(path):
  blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
  return [b for b in blocks if not b.startswith(BYO)]  # tests/test_byo_env.py runs it


def run_blocks(path):
  scope = {}
  for block in python_blocks(path):
    exec(compile(block, str(path), "exec"), scope)
  return scope


def test_the_readme_example_is_where_docs_python_starts():
  """README's example is docs/python.md's script with lines left out: the same settings,
  so the test below trains one dataset and one autoencoder for both."""
  (example,) = python_blocks(README)
  script = iter(python_blocks(DOCS / "python.md")[0].splitlines())
  assert [line for line in example.splitlines() if line not in script] == []


def test_readme_and_docs_python_blocks_run(tmp_path, monkeypatch):
  pages = sorted(DOCS.glob("*.md"))
  assert python_blocks(README) and DOCS / "python.md" in pages
  monkeypatch.chdir(tmp_path)
  from lsc.methods import METHODS
  for name in set(METHODS):  # what the docs register is gone after the test
    monkeypatch.setitem(METHODS, name, METHODS[name])
  registered = set(METHODS)

  def digests():
    return [checkpoint.digest(tmp_path / "runs" / "py" / name) for name in ("dataset", "ae/model")]

  readme = run_blocks(README)
  first = digests()
  scopes = {}
  for page in pages:
    scopes[page.name] = run_blocks(page)
    if page.name == "python.md":
      # docs/python.md collects again into the README's directory: the identical dataset keeps its
      # digest, so the autoencoder the README trained is reused (once refused: "trained on other inputs")
      assert digests() == first
  assert set(METHODS) - registered == {"latent_xnes"}  # docs/search.md registers it
  for name in set(METHODS) - registered:
    del METHODS[name]
  # what the README and the pages say they show
  for scope in (readme, scopes["python.md"]):
    record = scope["compressed"].autoencoder.record  # the in-memory dataset is named by its saved artifact's digest
    assert record["config"]["inputs"] == {"dataset": first[0]} and record["digest"] == first[1]
    assert scope["found"].final_returns.shape == (2,)
  assert (tmp_path / "runs" / "py" / "ae" / "recovery.json").exists()
  python = scopes["python.md"]
  np.testing.assert_allclose(python["centres"], np.tile([1.0, -2.0], (3, 1)), atol=0.2)
  outcome = python["outcome"]  # run in memory: the solutions are in the Outcome, not on disk
  assert outcome.method == "latent_cmaes" and (outcome.final_env_steps <= 50_000).all()
  assert outcome.final_thetas.shape == (2, python["ae"].policy.num_params) and not (tmp_path / "runs" / "py" / "cmaes").exists()
  result = scopes["rollouts.md"]["result"]
  assert result.returns.shape == (256, 3) and result.obs_samples.shape == (256, 32, 11)


def anchor(heading):
  """GitHub's anchor of a markdown heading."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_point_at_files_and_headings():
  pages = [README, *sorted(DOCS.glob("*.md")), ROOT / "experiments" / "RESULTS.md", ROOT / "experiments" / "ARCHIVE.md"]
  broken = []
  for page in pages:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
      if re.match(r"[a-z]+:", target):
        continue
      path, _, fragment = target.partition("#")
      linked = (page.parent / path).resolve() if path else page
      if not linked.exists():
        broken.append(f"{page.name}: {target}")
      elif fragment and linked.suffix == ".md":
        headings = re.findall(r"^#+ (.*)$", re.sub(r"```.*?```", "", linked.read_text(), flags=re.S), flags=re.M)
        if fragment not in {anchor(h) for h in headings}:
          broken.append(f"{page.name}: {target} (no such heading)")
  assert broken == []
