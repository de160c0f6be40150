"""The atlas of a behaviour space (lsc.atlas, `lsc atlas`): which codes, the episodes
drawn, MuJoCo bodies from q, and the picture itself."""

import types

import jax
import jax.numpy as jnp
import numpy as np

from lsc import cli
from lsc.atlas import body_outlines, draw_atlas, latent_grid, trajectories
from lsc.autoencoder import Autoencoder
from lsc.envs import get_env_spec, make_env
from lsc.evaluation import EvalProtocol, evaluate
from lsc.policy import make_policy, pool_thetas
from lsc.training import TrainConfig, TrainedAutoencoder, Trainer, train


def picture(path) -> np.ndarray:
  """The pixels (H, W, channels) of the PNG at `path`, after checking it is no blank page."""
  import matplotlib.image
  pixels = matplotlib.image.imread(path)
  colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
  assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.var() > 0 and len(colours) > 20, len(colours)
  return pixels


def test_codes_and_poses_without_running_an_env():
  rng = np.random.default_rng(0)
  row = latent_grid(rng.normal(size=(50, 1)), 4)
  assert (row.rows, row.cols, row.y_label) == (1, 4, None) and np.all(np.diff(row.codes[:, 0]) > 0)
  plane = latent_grid(rng.normal(size=(50, 2)), 3)
  assert plane.codes.shape == (9, 2) and plane.codes[0, 1] > plane.codes[-1, 1]  # z2 grows upwards
  assert np.all(np.diff(plane.codes[:3, 0]) > 0) and np.all(plane.codes[:3, 1] == plane.codes[0, 1])
  codes = rng.normal(size=(60, 5)) * [5.0, 2.0, 0.1, 0.1, 0.1]
  pca = latent_grid(codes, 3)  # the dataset's own codes, each used once, spread along the main direction
  assert pca.x_label == "PC1" and len({tuple(c) for c in pca.codes}) == 9
  assert all(any(np.array_equal(c, d) for d in codes) for c in pca.codes)
  assert pca.codes[2, 0] - pca.codes[0, 0] > 5.0
  # q of Brax's state is MuJoCo's qpos: the start pose stands on the ground, upright or on four legs
  for name, upright in (("hopper", True), ("halfcheetah", False)):
    model = make_env(name, backend="spring", episode_length=5).sys.mj_model
    outlines = body_outlines(model, model.qpos0)
    points = np.concatenate([poly for poly, _ in outlines])
    width, height = np.ptp(points[:, 0]), points[:, 1].max()
    assert points[:, 1].min() > -0.02 and (height > 2.5 * width if upright else width > 1.5 * height), (name, width,
                                                                                                       height)
    assert {body for _, body in outlines} == set(range(1, model.nbody))


def test_hopper_atlas_frames_follow_the_policy(tmp_path):
  env = make_env("hopper", backend="spring", episode_length=20)
  policy = make_policy(env, "small")
  ae = Autoencoder(policy, 3, (8,), (8,))
  codes = np.random.default_rng(1).normal(size=(40, 3)) * 4.0
  trained = TrainedAutoencoder(ae, ae.init(jax.random.key(0)), codes, {"config": {"env": {"name": "hopper"}}})
  out = draw_atlas(trained, tmp_path / "hopper.png", env=env, grid=2, frames=3, episodes=1)
  picture(out)
  # the episode drawn is evaluate's first: the same steps until termination
  thetas = pool_thetas(policy, 0, jnp.array([0, 1, 0, 2]))
  protocol = EvalProtocol(1, 0)
  traj = trajectories(env, policy, thetas, protocol.episode_keys()[0])  # draw_atlas's program: a state every step
  np.testing.assert_array_equal(traj.length, np.asarray(evaluate(env, policy, thetas, protocol).lengths)[:, 0])
  assert traj.q.shape == (4, 21, env.sys.mj_model.nq) and traj.obs.shape == (4, 21, env.observation_size)
  np.testing.assert_array_equal(traj.q[0], traj.q[2])  # the same policy: the same frames
  assert not np.allclose(traj.q[0, 1:], traj.q[1, 1:])  # another: others
  np.testing.assert_array_equal(traj.q[:, 0], np.broadcast_to(traj.q[0, 0], traj.q[:, 0].shape))  # one start
  last = lambda i: np.concatenate([poly for poly, _ in body_outlines(env.sys.mj_model, traj.q[i, -1])])
  np.testing.assert_array_equal(last(0), last(2))
  assert not np.allclose(last(0), last(1))


def test_atlas_command_on_a_trained_mountain_car_autoencoder(tmp_path, mountain_car, mc_policy, capsys):
  key = jax.random.key(3)
  low, high = (np.asarray(b, np.float32) for b in get_env_spec("mountain_car").obs_bounds)
  dataset = types.SimpleNamespace(
      thetas=np.asarray(pool_thetas(mc_policy, 0, jnp.arange(60))),
      probe_states=np.asarray(jax.random.uniform(key, (32, 2), minval=low, maxval=high)),
      visited_states=np.asarray(jax.random.uniform(jax.random.fold_in(key, 1), (60, 8, 2), minval=low, maxval=high)))
  config = TrainConfig(latent_dim=1, encoder_widths=(16,), decoder_widths=(16,), batch_policies=16, batch_states=32,
                       lr=3e-3, steps=40, eval_every=20, checkpoint_every=40, patience=0, val_fraction=0.2)
  train(Trainer(mountain_car, mc_policy, dataset, config), out=tmp_path / "ae" / "model")
  out = tmp_path / "atlas.png"
  assert cli.main(["atlas", str(tmp_path / "ae"), "--out", str(out), "--grid", "3", "--episode-length", "30"]) == 0
  assert f"wrote {out}" in capsys.readouterr().out
  picture(out)
  assert cli.main(["atlas", str(tmp_path), "--out", str(out)]) == 2  # no autoencoder there
  assert "is no autoencoder" in capsys.readouterr().err
