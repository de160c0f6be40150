"""The `mjx_warp` backend (`lsc.envs.mjx_impl`): how it is selected and refused, that
lsc's MJX pipeline is Brax's `mjx` pipeline bit for bit with MJX's JAX implementation,
and, where warp-lang is installed (`make test` installs it; no GPU needed: Warp runs its
CPU kernels), that MuJoCo Warp steps the same physics, tasks and observations."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import keys
from lsc.pipeline import validate
from experiments.presets import PRESETS
from lsc import envs
from lsc.envs import default_backend, for_worlds, make_env, mjx_impl
from lsc.policy import make_policy, pool_thetas
from lsc.rollout import rollout


def brax_mjx_rollout():
  """Brax's `mjx` hopper rollout of tests/test_rollout.py: the same arguments, so one
  compiled program serves all three tests."""
  env = make_env("hopper", backend="mjx", episode_length=20)
  policy = make_policy(env, "small")
  thetas = pool_thetas(policy, 0, jnp.arange(2))
  return policy, thetas, rollout(env, policy, thetas, keys(2), n_samples=4)


def test_mjx_warp_is_chosen_on_cuda_with_warp_and_refused_without_warp(monkeypatch):
  assert default_backend("hopper") == "spring"  # this CPU
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setattr(mjx_impl, "cuda_available", lambda: True)
  monkeypatch.setattr(mjx_impl, "warp_installed", lambda: True)
  assert default_backend("hopper") == "mjx_warp" and default_backend("mountain_car") == "jax"
  smoke = PRESETS["hopper"]["smoke"]()  # its methods include ppo: the whole run gets mjx
  assert "ppo" in smoke.search.methods and validate(smoke).env.backend == "mjx"
  only_latent = dataclasses.replace(smoke, search=dataclasses.replace(smoke.search, methods=("latent_pgpe",)))
  assert validate(only_latent).env.backend == "mjx_warp"
  monkeypatch.setattr(mjx_impl, "warp_installed", lambda: False)
  assert default_backend("halfcheetah") == "mjx"
  monkeypatch.setattr(mjx_impl, "cuda_available", lambda: False)  # e.g. a ROCm GPU
  monkeypatch.setattr(mjx_impl, "warp_installed", lambda: True)
  assert default_backend("reacher") == "mjx"
  monkeypatch.setattr(mjx_impl, "warp_installed", lambda: False)
  with pytest.raises(RuntimeError, match=r"needs warp-lang: pip install -e '\.\[warp\]'"):
    make_env("hopper", backend="mjx_warp")
  with pytest.raises(ValueError, match="valid backends: jax"):
    make_env("mountain_car", backend="mjx_warp")
  assert "mjx_warp" in envs.get_env_spec("hopper").backends and envs.get_env_spec("hopper").contacts_per_world == 16
  with pytest.raises(ValueError, match="impl 'warp' needs contacts_per_world >= 1"):
    mjx_impl.MjxPipeline(None, "warp")  # its contact buffer's size comes from the env's spec
  spring = make_env("hopper", backend="spring")
  assert for_worlds(spring, 64) is spring and spring.worlds == 1


@pytest.mark.slow
def test_lsc_mjx_pipeline_with_the_jax_implementation_is_brax_mjx():
  """The glue the Warp backend runs on (the Brax state built from MJX data, init, the
  substeps, `mjx.Data.where` when an episode ends) with impl='jax': Brax's `mjx`
  rollouts bit for bit, returns of every task included."""
  lsc_env = make_env("hopper", backend="mjx", episode_length=20)
  lsc_env.use_mjx_pipeline(mjx_impl.MjxPipeline(lsc_env.sys.mj_model, "jax"), "mjx")
  assert lsc_env != make_env("hopper", backend="mjx", episode_length=20)  # its own compiled programs
  policy, thetas, expected = brax_mjx_rollout()
  got = rollout(lsc_env, policy, thetas, keys(2), n_samples=4)
  assert np.any(np.asarray(expected.lengths) < 20)  # an episode ended: Data.where froze its state
  for name in ("returns", "lengths", "obs_samples", "displacement"):
    np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)


@pytest.mark.slow
def test_mjx_warp_steps_the_physics_of_mjx_and_refuses_to_drop_contacts(monkeypatch):
  pytest.importorskip("warp")
  from lsc import checkpoint
  warp_env = make_env("hopper", backend="mjx_warp", episode_length=20)
  assert warp_env.backend == "mjx_warp" and warp_env != make_env("hopper", backend="mjx", episode_length=20)
  sized = for_worlds(warp_env, 32)
  assert sized.worlds == 32 and for_worlds(sized, 8) is sized and warp_env.worlds == 1
  policy, thetas, expected = brax_mjx_rollout()
  assert checkpoint.policy_identity(warp_env, policy)["backend"] == "mjx_warp"  # in every artifact's identity
  got = rollout(warp_env, policy, thetas, keys(2), n_samples=4)
  np.testing.assert_array_equal(got.lengths, expected.lengths)  # one episode ends at step 8 on both
  np.testing.assert_allclose(got.returns, expected.returns, atol=1e-3)  # float32 solvers of their own
  np.testing.assert_allclose(got.obs_samples, expected.obs_samples, atol=1e-3)
  # 32 worlds: finite when the env is sized for them (rollout does it); through one
  # world's contact buffer, NaN rather than physics with contacts dropped
  n = 32
  thetas = pool_thetas(policy, 0, jnp.arange(n))
  assert np.all(np.isfinite(rollout(warp_env, policy, thetas, keys(n), n_samples=4).returns))
  from lsc import rollout as rollout_module
  monkeypatch.setattr(rollout_module, "for_worlds", lambda env, worlds: env)
  rollout_module._build_rollout_fn.cache_clear()  # it holds the sized program
  overflowed = rollout(warp_env, policy, thetas, keys(n), n_samples=4)
  assert np.isnan(np.asarray(overflowed.returns)).any()
