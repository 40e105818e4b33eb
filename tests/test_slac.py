"""SLAC: a sequential latent variable model learned from pixels, SAC on its latents, an actor on histories."""

import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_latent import SLAC, SequenceReplayBuffer, make_moving_dot_env, registry
from sb3_latent.algos.slac import LatentModel, write_rollouts
from sb3_latent.algos.slac.policies import gaussian_kl, gaussian_nll

#: small networks for fast tests (the paper's: widths 32..256, z2 256, features 256, hidden 256)
TINY = dict(conv_width=4, feature_dim=32, z1_dim=8, z2_dim=16, hidden=[32, 32])


def dot_env(n_envs: int = 1, size: int = 32, **kw):
    """MovingDot frames: 32x32 for speed (SLAC's conv stack takes any multiple of 16; the paper's is 64)."""
    return make_moving_dot_env(n_envs=n_envs, frame_stack=1, seed=0, size=size, **kw)


def tiny(**kw) -> SLAC:
    args = dict(
        buffer_size=2_000,
        learning_starts=100,
        batch_size=16,
        model_batch_size=8,
        initial_model_updates=5,
        seed=0,
        policy_kwargs=dict(TINY),
    )
    args.update(kw)
    return SLAC("CnnPolicy", args.pop("env", None) or dot_env(), **args)


def test_kl_of_two_gaussians_equals_the_closed_form_by_hand() -> None:
    # KL(N(1, 0.5^2) || N(0, 1)) = log(1/0.5) + (0.5^2 + 1^2) / 2 - 1/2
    kl = gaussian_kl(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor([1.0]))
    assert kl.item() == pytest.approx(math.log(2) + 1.25 / 2 - 0.5)
    # KL(N(0, 2^2) || N(3, 1)) = log(1/2) + (4 + 9) / 2 - 1/2
    kl = gaussian_kl(torch.tensor([0.0]), torch.tensor([2.0]), torch.tensor([3.0]), torch.tensor([1.0]))
    assert kl.item() == pytest.approx(math.log(0.5) + 13 / 2 - 0.5)
    nll = gaussian_nll(torch.tensor(1.0), torch.tensor(0.0), 1.0).item()
    assert nll == pytest.approx(0.5 + 0.5 * math.log(2 * math.pi))


@pytest.mark.parametrize("b,t,size", [(2, 3, 64), (5, 9, 64), (3, 4, 48)])
def test_shapes_through_the_model(b: int, t: int, size: int) -> None:
    model = LatentModel(3, 2, z1_dim=8, z2_dim=16, feature_dim=32, hidden=(32,), conv_width=4, size=size)
    x, a = torch.rand(b, t, 3, size, size), torch.rand(b, t - 1, 2)
    f = model.encode(x)
    mean, std, z1, z2 = model.posterior(f, a)
    assert f.shape == (b, t, 32) and mean.shape == std.shape == z1.shape == (b, t, 8) and z2.shape == (b, t, 16)
    assert (std > 0).all()
    assert model.decode(torch.cat([z1, z2], -1)).shape == (b, t, 3, size, size)
    assert model.imagine(z1[:, 0], z2[:, 0], a).shape == (b, t, 24)
    losses = model.loss(x, a, torch.rand(b, t - 1, 1), torch.zeros(b, t - 1, 1))
    assert {"kl", "recon", "reward_nll", "loss"} <= set(losses) and all(v.dim() == 0 for v in losses.values())
    assert losses["loss"].item() == pytest.approx((losses["kl"] + losses["recon"] + losses["reward_nll"]).item())


def test_the_prior_of_the_first_latent_is_standard_normal() -> None:
    model = LatentModel(3, 2, z1_dim=8, z2_dim=16, feature_dim=32, hidden=(32,), conv_width=4)
    mean, std = model.prior_of(torch.rand(4, 3, 16), torch.rand(4, 2, 2))
    assert torch.equal(mean[:, 0], torch.zeros(4, 8)) and torch.equal(std[:, 0], torch.ones(4, 8))


def test_registered_and_paper_defaults() -> None:
    assert registry.load("algorithms", "slac") is SLAC
    model = SLAC("CnnPolicy", dot_env(size=64), buffer_size=1000)
    p = model.policy
    assert (p.sequence_length, p.z1_dim, p.z2_dim, p.feature_dim, p.hidden) == (8, 32, 256, 256, (256, 256))
    assert (model.batch_size, model.model_batch_size, model.learning_rate, p.model_lr) == (256, 32, 3e-4, 1e-4)
    assert (model.tau, model.gamma, model.learning_starts) == (0.005, 0.99, 10_000)
    assert model.initial_model_updates == 100_000
    assert isinstance(model.replay_buffer, SequenceReplayBuffer)
    assert p.latent.pixel_std == pytest.approx(math.sqrt(0.1))


def test_clear_errors() -> None:
    with pytest.raises(TypeError, match="continuous"):
        SLAC("CnnPolicy", dot_env(action_type="discrete"))
    with pytest.raises(TypeError, match="uint8 image frames"):
        SLAC("CnnPolicy", make_moving_dot_env(frame_stack=1, obs_type="state"))
    with pytest.raises(ValueError, match="multiple of 16"):
        SLAC("CnnPolicy", make_moving_dot_env(frame_stack=1, size=40))
    with pytest.raises(ValueError, match="multiple of 16"):
        SLAC("CnnPolicy", make_moving_dot_env(frame_stack=1, size=36))
    assert tiny(env=dot_env(size=48)).policy.latent.encode(torch.zeros(1, 1, 3, 48, 48)).shape == (1, 1, 32)  # README
    with pytest.raises(ValueError, match="remove frame stacking"):
        SLAC("CnnPolicy", make_moving_dot_env(frame_stack=3, size=64))
    with pytest.raises(ValueError, match="initial_model_updates"):
        SLAC("CnnPolicy", dot_env(), initial_model_updates=-1)
    with pytest.raises(RuntimeError, match=r"SLAC.predict"):
        tiny().policy.predict(np.zeros((1, 3, 32, 32), np.uint8))


def test_the_model_loss_falls_on_moving_dot() -> None:
    torch.manual_seed(0)
    model = tiny(learning_starts=300, initial_model_updates=0)
    model.learn(300)  # random steps only
    losses = [model.update(model.sample_batch(sac=False))["loss"].item() for _ in range(60)]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])


def test_learn_pretrains_the_model_then_updates_both_and_logs(tmp_path) -> None:
    from stable_baselines3.common.logger import configure

    model = tiny(initial_model_updates=7)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(130)
    assert model.model_updates_done == 7 + model._n_updates and model._n_updates == 30
    model.logger.dump(model.num_timesteps)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in (
        "train/elbo",
        "train/kl",
        "train/recon",
        "train/reward_nll",
        "train/critic_loss",
        "train/actor_loss",
        "train/ent_coef",
    ):
        assert key in header


def test_predict_keeps_a_history_per_env_and_restarts_it_at_episode_start() -> None:
    model = tiny(env=dot_env(n_envs=2))
    obs = model.env.reset()
    actions, state = model.predict(obs, deterministic=True)
    f_hist, a_hist, last = state
    assert f_hist.shape == (2, 8, 32) and a_hist.shape == (2, 7, 2) and np.abs(actions).max() <= 1
    # the padding is the features of zero frames; the last row the current frame
    zero = model.policy.features(torch.zeros(1, 3, 32, 32)).numpy()
    np.testing.assert_allclose(f_hist[:, :7], np.broadcast_to(zero, (2, 7, 32)), atol=1e-6)
    _, state2 = model.predict(obs, state=state, episode_start=np.array([False, True]), deterministic=True)
    np.testing.assert_allclose(state2[1][0, -1], last[0], atol=1e-6)  # env 0 appended its last action
    np.testing.assert_allclose(state2[1][1], 0.0)  # env 1 restarted
    single, _ = model.predict(obs[0], deterministic=True)
    assert single.shape == (2,)


def test_learns_to_follow_the_moving_dot_from_pixels() -> None:
    """MovingDot from 32x32 frames (a 5-pixel dot): only the motion between frames says where to push; a
    random policy earns about 0, one that reads the motion up to about 25 per 50-step episode. The rewards
    are small (at most 0.5 a step), so the temperature starts at 0.1. 2500 steps, about 1.5 min on one core."""
    pk = dict(conv_width=8, feature_dim=64, z1_dim=16, z2_dim=64, hidden=[64, 64], model_lr=1e-3)
    model = tiny(
        env=dot_env(dot=5),
        buffer_size=5_000,
        learning_starts=500,
        initial_model_updates=300,
        batch_size=32,
        gamma=0.9,
        learning_rate=1e-3,
        ent_coef="auto_0.1",
        policy_kwargs=pk,
    )
    model.learn(2_500)
    eval_env = dot_env(dot=5)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=False)
    eval_env.reset()
    random_return = np.mean(
        [sum(eval_env.step(np.array([eval_env.action_space.sample()]))[1][0] for _ in range(50)) for _ in range(10)]
    )
    assert abs(random_return) < 2.5 and mean > 5.0, f"learned {mean:.1f}, random {random_return:.1f}"


def test_save_load_gives_identical_actions_and_keeps_the_history(tmp_path) -> None:
    model = tiny()
    model.learn(120)
    obs = model.env.reset()
    _, state = model.predict(obs, deterministic=True)
    model.save(tmp_path / "slac")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = SLAC.load(tmp_path / "slac", env=dot_env())
    a1, _ = model.predict(obs, state=state, episode_start=np.array([False]), deterministic=True)
    a2, _ = loaded.predict(obs, state=state, episode_start=np.array([False]), deterministic=True)
    np.testing.assert_allclose(a1, a2, atol=1e-6)
    np.testing.assert_allclose(loaded._history[0], model._history[0])
    assert loaded.model_updates_done == model.model_updates_done
    loaded.load_replay_buffer(tmp_path / "buffer")
    loaded.learn(20, reset_num_timesteps=False)


def test_write_rollouts_draws_truth_posterior_and_priors(tmp_path) -> None:
    model = tiny()
    model.learn(120)
    path = write_rollouts(model, tmp_path / "rollouts.png", n_sequences=2)
    assert path.stat().st_size > 10_000


def test_dense_layers_of_encoder_and_decoder_equal_the_convolutions() -> None:
    from sb3_latent.algos.slac.policies import FullConv2d, FullConvTranspose2d

    conv, x = FullConv2d(8, 5, 4), torch.randn(3, 8, 4, 4)
    for inp in (x, x.contiguous(memory_format=torch.channels_last)):
        torch.testing.assert_close(conv(inp), torch.nn.functional.conv2d(x, conv.weight, conv.bias))
    deconv, z = FullConvTranspose2d(6, 7, 4), torch.randn(3, 6, 1, 1)
    torch.testing.assert_close(deconv(z), torch.nn.functional.conv_transpose2d(z, deconv.weight, deconv.bias))
