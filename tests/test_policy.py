"""Flat-vector MLP policies: sizes, init, regeneration by index."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsc.envs import env_names, get_env_spec
from lsc.policy import MLPPolicy, check_finite, pool_thetas, preset_hidden


def preset(env, name, **kw):
  spec = get_env_spec(env)
  return MLPPolicy(spec.observation_size, spec.action_size, preset_hidden(env, name), **kw)


def test_preset_parameter_counts():
  assert preset("mountain_car", "small").num_params == 17
  assert preset("mountain_car", "medium").num_params == 1185
  assert preset("mountain_car", "large").num_params == 121_801  # the paper's policy
  for env in env_names():
    obs, act = get_env_spec(env).observation_size, get_env_spec(env).action_size
    if env != "mountain_car":
      assert preset(env, "small").num_params == obs * act + act  # linear
      assert 10**3 <= preset(env, "medium").num_params < 10**4


def test_unknown_preset_and_bad_sizes():
  with pytest.raises(ValueError, match="valid presets: small, medium, large"):
    preset_hidden("hopper", "huge")
  with pytest.raises(ValueError, match="activation"):
    MLPPolicy(2, 1, (4,), activation="gelu")
  with pytest.raises(ValueError, match=">= 1"):
    MLPPolicy(2, 1, (0,))


def test_pool_member_is_regenerated_from_seed_and_index():
  policy = preset("hopper", "medium")
  pool = pool_thetas(policy, 7, jnp.arange(50))
  assert pool.shape == (50, policy.num_params) and pool.dtype == jnp.float32
  again = pool_thetas(policy, 7, jnp.array([31, 3]))  # other indices, other order
  np.testing.assert_array_equal(again, pool[jnp.array([31, 3])])
  assert not np.allclose(pool_thetas(policy, 8, jnp.array([31])), pool[31])
  assert len(np.unique(np.asarray(pool[:, 0]))) == 50


def test_uniform_init_matches_torch_linear_bounds():
  policy = MLPPolicy(4, 2, (8,))
  theta = policy.init(jax.random.key(0))
  (k1, b1), (k2, b2) = policy.unflatten(theta)
  assert k1.shape == (4, 8) and b1.shape == (8,) and k2.shape == (8, 2) and b2.shape == (2,)
  assert np.abs(k1).max() <= 0.5 and np.abs(b1).max() <= 0.5  # 1/sqrt(4)
  assert np.abs(k2).max() <= 1 / np.sqrt(8) + 1e-7
  assert np.abs(b1).max() > 0  # biases are drawn, not zero


def test_lecun_normal_init_variance():
  policy = MLPPolicy(400, 1, (), init_scheme="lecun_normal")
  thetas = pool_thetas(policy, 0, jnp.arange(200))
  kernels, biases = thetas[:, :400], thetas[:, 400:]
  assert np.var(np.asarray(kernels)) == pytest.approx(1 / 400, rel=0.05)
  assert np.all(np.asarray(biases) == 0)


def test_apply_respects_action_bounds_and_batches():
  policy = MLPPolicy(3, 2, (16,), action_low=-2.0, action_high=0.5)
  theta = 50 * policy.init(jax.random.key(1))  # saturating weights
  obs = jax.random.normal(jax.random.key(2), (5, 7, 3)) * 10
  actions = policy.apply(theta, obs)
  assert actions.shape == (5, 7, 2)
  assert float(actions.min()) >= -2.0 and float(actions.max()) <= 0.5
  np.testing.assert_allclose(actions[2, 3], policy.apply(theta, obs[2, 3]), rtol=1e-6)


def test_check_finite_names_the_bad_row():
  thetas = np.zeros((4, 3), np.float32)
  check_finite(thetas)
  thetas[2, 1] = np.nan
  with pytest.raises(ValueError, match="row 2"):
    check_finite(thetas)


@pytest.mark.parametrize("scheme", ["uniform", "lecun_normal"])
def test_init_std_matches_the_init_distribution(scheme):
  policy = MLPPolicy(3, 2, (50,), init_scheme=scheme)
  thetas = np.asarray(jax.vmap(policy.init)(jax.random.split(jax.random.key(0), 400)))
  std = policy.init_std()
  kernel = slice(0, 3 * 50)  # first layer's kernel, then biases, second kernel
  assert std.shape == (policy.num_params,)
  assert thetas[:, kernel].std() == pytest.approx(std[0], rel=0.05)
  second = slice(3 * 50 + 50, 3 * 50 + 50 + 50 * 2)
  assert thetas[:, second].std() == pytest.approx(std[second][0], rel=0.05)


def test_observation_normalisation_is_a_change_of_first_layer():
  from lsc.envs import make_env, obs_normalization
  from lsc.policy import make_policy
  env = make_env("mountain_car")
  raw, normed = make_policy(env, "medium"), make_policy(env, "medium", normalize_obs=True)
  shift, scale = (np.asarray(v, np.float32) for v in obs_normalization("mountain_car"))
  np.testing.assert_allclose(shift, [-0.3, 0.0], atol=1e-7)
  np.testing.assert_allclose(scale, [0.9, 0.07], atol=1e-7)
  thetas = np.asarray(pool_thetas(raw, 3, jnp.arange(4)))
  # (obs - c) / s @ W + b == obs @ (W / s) + (b - (c / s) @ W): the same policy without normalisation
  h = raw.hidden[0]
  kernel, bias = thetas[:, :2 * h].reshape(4, 2, h), thetas[:, 2 * h:3 * h]
  folded = thetas.copy()
  folded[:, :2 * h] = (kernel / scale[None, :, None]).reshape(4, -1)
  folded[:, 2 * h:3 * h] = bias - np.einsum("i,nij->nj", shift / scale, kernel)
  obs = np.stack([np.random.default_rng(0).uniform(-1.2, 0.6, 64), np.random.default_rng(1).uniform(-0.07, 0.07, 64)], 1)
  for theta, same in zip(thetas, folded):
    np.testing.assert_allclose(normed.apply(jnp.asarray(theta), obs), raw.apply(jnp.asarray(same), obs), atol=1e-5)
  assert not np.allclose(normed.apply(jnp.asarray(thetas[0]), obs), raw.apply(jnp.asarray(thetas[0]), obs))


def test_observation_normalisation_is_refused_where_it_cannot_apply():
  from lsc.envs import make_env
  from lsc.policy import make_policy
  with pytest.raises(ValueError, match="known observation bounds; envs that have them: mountain_car"):
    make_policy(make_env("reacher"), "small", normalize_obs=True)
  with pytest.raises(ValueError, match="give both or neither"):
    MLPPolicy(2, 1, (4,), obs_shift=(0.0, 0.0))
  with pytest.raises(ValueError, match="need 2 values each"):
    MLPPolicy(2, 1, (4,), obs_shift=(0.0,), obs_scale=(1.0,))
  with pytest.raises(ValueError, match="> 0"):
    MLPPolicy(2, 1, (4,), obs_shift=(0.0, 0.0), obs_scale=(1.0, 0.0))
