"""Atari through ale-py: the gym ids, the presets' wrappers (training vs evaluation), 84x84 area resizing, and the
frame-store buffers on one-channel frames (each frame stored once, n-step)."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.atari_wrappers import ClipRewardEnv, EpisodicLifeEnv, FireResetEnv
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer

from sb3_latent import FrameStoreReplayBuffer, NStepFrameStoreReplayBuffer, atari_env_id, make_atari_env
from sb3_latent.envs.atari import ATARI_GAMES, ATARI_PRESETS, Resize84, _area_weights, rom_id

pytestmark = pytest.mark.atari


def test_the_game_list_is_ale_pys() -> None:
    from ale_py.roms import get_all_rom_ids

    assert sorted(ATARI_GAMES) == sorted(get_all_rom_ids())
    assert rom_id("BankHeist") == rom_id("bank_heist") == rom_id("ALE/BankHeist-v5") == "bank_heist"
    with pytest.raises(ValueError, match=r"Unknown Atari game 'Bankheis'.*'BankHeist'"):
        rom_id("Bankheis")
    with pytest.raises(ValueError, match="Unknown Atari preset"):
        make_atari_env("Pong", preset="nope")
    with pytest.raises(ValueError, match=r"Unknown Atari env settings \['frameskip'\]"):
        make_atari_env("Pong", frameskip=4)


def test_training_and_evaluation_envs() -> None:
    env = make_atari_env("Breakout", n_envs=2, seed=0)
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    obs = env.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert all(env.env_is_wrapped(EpisodicLifeEnv)) and all(env.env_is_wrapped(ClipRewardEnv))
    assert not any(env.env_is_wrapped(FireResetEnv))  # the der preset does not press FIRE at reset
    # a lost life ends a training episode while the game goes on; rewards are clipped, the raw one is kept
    rng = np.random.default_rng(0)
    life_end = False
    for _ in range(2000):
        obs, rewards, dones, infos = env.step(rng.integers(0, env.action_space.n, size=2))
        assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}
        for i in np.flatnonzero(dones):
            life_end |= "episode" not in infos[i]  # Monitor (under the wrappers) reports whole games only
        if life_end:
            break
    assert life_end
    ev = make_atari_env("Breakout", training=False, seed=0)
    assert not any(ev.env_is_wrapped(EpisodicLifeEnv)) and not any(ev.env_is_wrapped(ClipRewardEnv))
    assert make_atari_env("Breakout", preset="sb3").env_is_wrapped(FireResetEnv) == [True]
    assert ATARI_PRESETS["der"] == ATARI_PRESETS["lever"]


def test_seeding_and_gym_id() -> None:
    def run(seed: int) -> np.ndarray:
        env = make_atari_env("Pong", seed=seed)
        env.action_space.seed(seed)
        frames = [env.reset()]
        for _ in range(30):
            frames.append(env.step([env.action_space.sample()])[0])
        return np.stack(frames)

    np.testing.assert_array_equal(run(3), run(3))
    env = gym.make(atari_env_id("pong"), training=False, frame_stack=2)
    obs, _ = env.reset(seed=0)
    assert atari_env_id("pong") == "sb3_latent/Pong-atari-v0" and obs.shape == (2, 84, 84)


def test_area_resize_matches_a_dense_reference() -> None:
    def dense(n_in: int, n_out: int) -> np.ndarray:
        idx, w = _area_weights(n_in, n_out)
        m = np.zeros((n_out, n_in))
        np.put_along_axis(m, idx, w, axis=1)
        return m

    class Screen(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (210, 160), np.uint8)
        action_space = gym.spaces.Discrete(2)

    frame = np.random.default_rng(0).integers(0, 256, (210, 160), dtype=np.uint8)
    rows, cols = dense(210, 84), dense(160, 84)
    np.testing.assert_allclose(rows.sum(1), 1.0)
    reference = rows @ frame.astype(np.float64) @ cols.T
    out = Resize84(Screen()).observation(frame)
    assert out.shape == (1, 84, 84) and np.abs(out[0].astype(float) - reference).max() <= 0.5 + 1e-3
    flat = np.full((210, 160), 77, np.uint8)
    assert (Resize84(Screen()).observation(flat) == 77).all()


def _atari_stream(steps: int = 300):
    env = make_atari_env("Breakout", seed=1)
    rng = np.random.default_rng(1)
    obs = env.reset()
    for _ in range(steps):
        action = rng.integers(0, env.action_space.n, size=(1, 1))
        nxt, reward, done, infos = env.step(action[:, 0])
        real_next = nxt.copy()
        if done[0]:
            real_next[0] = infos[0]["terminal_observation"]
        yield env, obs, real_next, action, reward, done, infos
        obs = nxt


@pytest.mark.parametrize("n_step", [False, True])
def test_frame_store_on_one_channel_frames(n_step: bool) -> None:
    """(4, 84, 84) stacks of grayscale frames: n_frames=4, each frame stored once; samples equal SB3's buffer's."""
    env = make_atari_env("Breakout")
    kw = dict(n_steps=5, gamma=0.9) if n_step else {}
    ours_cls, sb3_cls = (
        (NStepFrameStoreReplayBuffer, NStepReplayBuffer) if n_step else (FrameStoreReplayBuffer, ReplayBuffer)
    )
    ours = ours_cls(200, env.observation_space, env.action_space, device="cpu", n_frames=4, validate=True, **kw)
    sb3 = sb3_cls(200, env.observation_space, env.action_space, device="cpu", **kw)
    dones = 0
    for _, obs, nxt, action, reward, done, infos in _atari_stream(300):
        ours.add(obs, nxt, action, reward, done, infos)
        sb3.add(obs, nxt, action, reward, done, infos)
        dones += int(done[0])
    assert dones >= 1 and ours.full
    assert ours.frames.shape[2:] == (1, 84, 84)  # one frame per transition
    assert ours.nbytes() < sb3.observations.nbytes / 3
    rows = np.arange(200)
    a, b = ours._get_samples(rows), sb3._get_samples(rows)
    for field in a._fields:
        x, y = getattr(a, field), getattr(b, field)
        if x is None:
            assert y is None
        else:
            np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=field)


@pytest.mark.parametrize("algo", ["dqn", "qrdqn"])
def test_attach_lever_with_stock_dqn_and_qrdqn_on_atari(algo: str) -> None:
    """LeVER on stock SB3 DQN / sb3-contrib QR-DQN on real Atari frames. NatureCNN's conv output (3136 floats) is larger
    than one 84x84 frame, so freezing only the convolutions would shrink the buffer (refused, with the fix named);
    freezing its Linear too replays 512-float latents and grows the buffer."""
    from sb3_contrib import QRDQN
    from stable_baselines3 import DQN

    from sb3_latent import attach_lever

    cls = {"dqn": DQN, "qrdqn": QRDQN}[algo]
    model = cls(
        "CnnPolicy",
        make_atari_env("Breakout", seed=0),
        buffer_size=300,
        learning_starts=20,
        batch_size=8,
        train_freq=1,
        seed=0,
    )
    with pytest.raises(
        ValueError,
        match=r"LeVER would shrink the buffer from 300 to 168 transitions: a latent \(N=1 x K=1 x "
        r"L=3136 floats\) is larger than an image \(7056 bytes\); use freeze='fc'",
    ):
        attach_lever(model, T_f=30, K=1, augment=None, freeze="conv", n_frames=4)
    model = attach_lever(model, T_f=30, K=1, augment=None, freeze="fc", n_frames=4)
    model.learn(80)
    buffer = model.replay_buffer
    assert buffer.frozen and buffer.z_next.shape[-1] == 512 and buffer.buffer_size == 300 * 7056 // (4 * 512)
    net = model.policy.q_net if algo == "dqn" else model.policy.quantile_net
    assert all(not p.requires_grad for p in net.features_extractor.cnn.parameters())
