"""Rainbow: the C51 projection, noisy layers, the sum tree and prioritized n-step replay, the presets and ablations,
learning on a discrete MovingDot, save/load with priorities, and a short Atari run."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_latent import PrioritizedFrameStoreReplayBuffer, Rainbow, make_moving_dot_env
from sb3_latent.algos.rainbow import PRESETS, NoisyLinear, project_distribution
from sb3_latent.buffers import SumTree

SMALL = dict(
    buffer_size=500,
    learning_starts=30,
    batch_size=8,
    n_steps=3,
    target_update_interval=20,
    hidden=16,
    policy_kwargs=dict(features_extractor_kwargs=dict(arch=[(4, 3, 2), (8, 3, 2)])),
)


def dot_env(seed: int = 0, **kw):
    return make_moving_dot_env(
        n_envs=1,
        frame_stack=3,
        seed=seed,
        size=20,
        action_type="discrete",
        episode_length=kw.pop("episode_length", 20),
        **kw,
    )


# --- the C51 projection ---------------------------------------------------------------------------------------------


def reference_projection(p, r, done, discount, z):
    """Bellemare et al. 2017, Algorithm 1, one sample at a time."""
    n, dz = len(z), (z[-1] - z[0]) / (len(z) - 1)
    m = np.zeros(n)
    for j in range(n):
        tz = np.clip(r + (1 - done) * discount * z[j], z[0], z[-1])
        b = (tz - z[0]) / dz
        lo, hi = int(np.floor(b)), int(np.ceil(b))
        if lo == hi:
            m[lo] += p[j]
        else:
            m[lo] += p[j] * (hi - b)
            m[hi] += p[j] * (b - lo)
    return m


def project(p, r, done, discount, z):
    def t(x):
        return torch.as_tensor(np.asarray(x, dtype=np.float64))

    return project_distribution(t([p]), t([[r]]), t([[done]]), t([[discount]]), t(z))[0].numpy()


def test_projection_on_hand_made_distributions() -> None:
    z = [-2.0, -1.0, 0.0, 1.0, 2.0]
    one_hot = [1.0, 0.0, 0.0, 0.0, 0.0]
    # full window, not terminal: the atom at -2 moves to 0.5 - 2 = -1.5, half to -2, half to -1
    np.testing.assert_allclose(project(one_hot, 0.5, 0.0, 1.0, z), [0.5, 0.5, 0, 0, 0])
    # terminal window: every atom goes to the return 1.3: 0.7 at 1, 0.3 at 2
    np.testing.assert_allclose(project([0.2, 0.2, 0.2, 0.2, 0.2], 1.3, 1.0, 0.99**3, z), [0, 0, 0, 0.7, 0.3])
    # a window truncated after 2 of n steps (time limit): bootstrap with gamma^2, not gamma^n
    p = [0.1, 0.2, 0.3, 0.25, 0.15]
    np.testing.assert_allclose(project(p, 0.3, 0.0, 0.9**2, z), reference_projection(p, 0.3, 0.0, 0.9**2, z))
    # clipped to the support; an atom that lands on an atom keeps all its mass there
    np.testing.assert_allclose(project(p, 50.0, 0.0, 0.9, z), [0, 0, 0, 0, 1])
    np.testing.assert_allclose(project(p, 1.0, 0.0, 1.0, z), [0, 0.1, 0.2, 0.3, 0.4])
    # random cases against the reference, mass conserved
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.dirichlet(np.ones(51))
        zz = np.linspace(-10, 10, 51)
        r, done, disc = rng.normal(0, 5), float(rng.integers(0, 2)), 0.99 ** rng.integers(1, 21)
        out = project(p, r, done, disc, zz)
        np.testing.assert_allclose(out, reference_projection(p, r, done, disc, zz), atol=1e-12)
        assert abs(out.sum() - 1) < 1e-12


# --- noisy layers -----------------------------------------------------------------------------------------------


def test_noisy_linear_noise_and_deterministic_acting() -> None:
    layer = NoisyLinear(6, 3, sigma0=0.5)
    x = torch.randn(4, 6)
    assert torch.allclose(layer.weight_sigma, torch.full((3, 6), 0.5 / 6**0.5))
    y1, y1b = layer(x), layer(x)
    assert torch.equal(y1, y1b)  # noise only changes on reset_noise
    layer.reset_noise()
    assert not torch.allclose(layer(x), y1)
    # the layer equals (mu + sigma * eps) x + ..., eps = f(eps_out) f(eps_in)^T
    w = layer.weight + layer.weight_sigma * torch.outer(layer.eps_out, layer.eps_in)
    b = layer.bias + layer.bias_sigma * layer.eps_out
    torch.testing.assert_close(layer(x), x @ w.T + b)
    layer.noise = False
    torch.testing.assert_close(layer(x), x @ layer.weight.T + layer.bias)

    model = Rainbow("CnnPolicy", dot_env(), sigma0=2.0, seed=0, **SMALL)
    obs = model.get_env().reset()
    q = []
    for _ in range(5):
        model.q_net.reset_noise()
        with torch.no_grad(), model.q_net.noise(False):
            q.append(model.policy.q_values(model.q_net, model.policy.obs_to_tensor(obs)[0]))
        assert model.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]
    assert all(torch.equal(q[0], qi) for qi in q)  # deterministic: the noise-free network
    noisy = set()
    for _ in range(20):
        model.q_net.reset_noise()
        noisy.add(int(model.predict(obs, deterministic=False)[0][0]))
    assert len(noisy) > 1  # acting with noise explores
    # one learn step per env step draws new acting noise
    before = model.q_net.advantage[0].eps_in.clone()
    model.learn(2)
    assert not torch.equal(before, model.q_net.advantage[0].eps_in)


# --- the sum tree -----------------------------------------------------------------------------------------------


def test_sum_tree_sampling_proportions_and_updates() -> None:
    tree = SumTree(5)
    tree.update(np.arange(5), [1.0, 2.0, 3.0, 0.0, 4.0])
    assert tree.total == 10.0
    rng = np.random.default_rng(0)
    counts = np.bincount(tree.find(rng.uniform(0, tree.total, 100_000)), minlength=5) / 100_000
    np.testing.assert_allclose(counts, [0.1, 0.2, 0.3, 0.0, 0.4], atol=0.01)
    tree.update([4, 3, 4], [0.0, 5.0, 1.0])  # the last value of a repeated leaf wins
    assert tree.total == 12.0 and list(tree[np.arange(5)]) == [1, 2, 3, 5, 1]
    assert (tree.find(np.nextafter(np.array([tree.total]), 0)) == [4]).all()
    with pytest.raises(ValueError, match="finite"):
        tree.update([0], [np.nan])
    with pytest.raises(IndexError):
        tree.update([5], [1.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=40), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_sum_tree_against_a_plain_reference(priorities, fractions) -> None:
    values = np.array(priorities)
    tree = SumTree(len(values))
    tree.update(np.arange(len(values)), values)
    assert np.isclose(tree.total, values.sum())
    if values.sum() <= 0:
        return
    mass = np.array(fractions) * values.sum() * (1 - 1e-9)
    got = tree.find(mass)
    assert (values[got] > 0).all()
    expected = np.searchsorted(np.cumsum(values), mass, side="right")
    # the same leaf, except where the mass lies (within rounding) on a boundary next to an empty leaf
    same = got == np.minimum(expected, len(values) - 1)
    cum = np.cumsum(values)
    near = np.isclose(mass[:, None], cum[None, :], rtol=1e-9, atol=1e-9).any(axis=1)
    assert (same | near).all()


# --- prioritized n-step replay ------------------------------------------------------------------------------------


def _fill(buffer, sb3=None, steps=60, seed=0):
    env = dot_env(seed=seed, episode_length=7)
    rng = np.random.default_rng(seed)
    obs = env.reset()
    for t in range(steps):
        action = rng.integers(0, 4, size=(1, 1))
        nxt, _, done, infos = env.step(action[:, 0])
        reward = np.array([float(t)])  # rewards that tell the steps apart
        if t == 20:  # a termination (not a time limit) in the middle of an episode
            done, infos = np.array([True]), [{}]
            nxt = env.reset()
            real = obs.copy()
            real[0, :-3] = obs[0, 3:]
        else:
            real = nxt.copy()
            if done[0]:
                real[0] = infos[0]["terminal_observation"]
        buffer.add(obs, real, action, reward, done, infos)
        if sb3 is not None:
            sb3.add(obs, real, action, reward, done, infos)
        obs = nxt
    return env


def test_n_step_targets_with_prioritized_replay() -> None:
    env = dot_env()
    per = PrioritizedFrameStoreReplayBuffer(
        100, env.observation_space, env.action_space, device="cpu", n_frames=3, n_steps=4, gamma=0.9
    )
    sb3 = NStepReplayBuffer(100, env.observation_space, env.action_space, device="cpu", n_steps=4, gamma=0.9)
    _fill(per, sb3)
    rows, envs = np.arange(60), np.zeros(60, dtype=np.int64)
    ours = per.n_step_samples(rows, envs)
    theirs = sb3._get_samples(rows)
    for x, field in zip(
        ours, ["observations", "actions", "next_observations", "dones", "rewards", "discounts"], strict=True
    ):
        np.testing.assert_allclose(x.numpy(), getattr(theirs, field).numpy(), err_msg=field)
    # by hand: row 18 sums rewards 18, 19, 20 and ends in the termination at 20
    assert ours[4][18, 0].item() == pytest.approx(18 + 0.9 * 19 + 0.81 * 20) and ours[3][18, 0] == 1
    # a time-limit end (episode_length=7: steps 6, 13) truncates the window and bootstraps with gamma^steps
    assert ours[3][5, 0] == 0 and ours[5][5, 0].item() == pytest.approx(0.81)
    # the newest transition's window stops at it
    assert ours[5][59, 0].item() == pytest.approx(0.9)


def test_priorities_weights_and_new_transitions() -> None:
    env = dot_env()
    per = PrioritizedFrameStoreReplayBuffer(
        100, env.observation_space, env.action_space, device="cpu", n_frames=3, n_steps=2, alpha=0.5, beta=0.4
    )
    _fill(per, steps=40)
    assert np.allclose(per.tree[np.arange(40)], 1.0) and per.tree.total == pytest.approx(40)
    leaves = np.arange(40)
    per.update_priorities(leaves, np.where(leaves == 7, 99.0, 0.0))
    assert per.tree[np.array([7])][0] == pytest.approx((99 + per.eps) ** 0.5)
    assert per.max_priority == pytest.approx((99 + per.eps) ** 0.5)
    np.random.seed(0)
    batch = per.sample(64)
    assert (batch.leaves == 7).mean() > 0.9
    p = per.tree[batch.leaves] / per.tree.total
    w = (40 * p) ** -0.4
    np.testing.assert_allclose(batch.weights.numpy().ravel(), w / w.max(), rtol=1e-6)
    _fill(per, steps=1, seed=3)  # a new transition gets the largest priority
    assert per.tree[np.array([40])][0] == pytest.approx(per.max_priority)


# --- the algorithm ----------------------------------------------------------------------------------------------


def test_presets_and_switches() -> None:
    der = PRESETS["der"]
    assert (
        der["learning_rate"],
        der["n_steps"],
        der["batch_size"],
        der["target_update_interval"],
        der["learning_starts"],
        der["hidden"],
        der["train_freq"],
        der["adam_eps"],
    ) == (1e-4, 20, 32, 2000, 1600, 256, 1, 1.5e-4)
    assert PRESETS["lever"] == {**der, "prioritized": False}
    assert PRESETS["rainbow"]["learning_rate"] == 6.25e-5 and PRESETS["rainbow"]["sigma0"] == 0.5
    with pytest.raises(ValueError, match="Unknown Rainbow preset"):
        Rainbow("CnnPolicy", dot_env(), preset="dqn")
    with pytest.raises(TypeError, match="Discrete"):
        Rainbow("CnnPolicy", make_moving_dot_env(frame_stack=3, size=20))
    for switch in [
        dict(noisy=False),
        dict(dueling=False),
        dict(distributional=False),
        dict(prioritized=False),
        dict(n_steps=1),
        dict(double=False),
        dict(distributional=False, noisy=False, prioritized=False),
    ]:
        model = Rainbow("CnnPolicy", dot_env(), seed=0, **{**SMALL, **switch})
        model.learn(60)
        assert model._n_updates > 0 and np.isfinite(model.logger.name_to_value["train/loss"]), switch
    assert not isinstance(model.replay_buffer, PrioritizedFrameStoreReplayBuffer)  # prioritized=False: uniform


def test_rainbow_learns_the_discrete_moving_dot() -> None:
    """Only motion tells the dot's direction: a policy on 3 stacked frames earns ~0.5 a step, random play 0."""
    env = dot_env(episode_length=50)
    model = Rainbow(
        "CnnPolicy",
        env,
        buffer_size=5000,
        learning_starts=200,
        batch_size=32,
        n_steps=3,
        target_update_interval=100,
        hidden=64,
        learning_rate=1e-3,
        v_min=-5,
        v_max=5,
        seed=0,
        policy_kwargs=dict(features_extractor_kwargs=dict(arch=[(16, 3, 2), (16, 3, 2)])),
    )
    eval_env = dot_env(seed=100, episode_length=50)
    before, _ = evaluate_policy(model, eval_env, 10)
    model.learn(1500)
    after, _ = evaluate_policy(model, eval_env, 10)
    assert after > 8.0 and after > before + 5.0, (before, after)


def test_save_load_with_priorities(tmp_path) -> None:
    model = Rainbow("CnnPolicy", dot_env(), seed=0, **SMALL)
    model.learn(80)
    obs = model.get_env().reset()
    expected = model.predict(obs, deterministic=True)[0]
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = Rainbow.load(tmp_path / "model", env=dot_env())
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)
    assert loaded.n_steps == 3 and loaded.policy.sigma0 == model.policy.sigma0
    loaded.load_replay_buffer(tmp_path / "buffer")
    a, b = model.replay_buffer, loaded.replay_buffer
    assert isinstance(b, PrioritizedFrameStoreReplayBuffer)
    np.testing.assert_array_equal(a.tree.tree, b.tree.tree)
    assert a.max_priority == b.max_priority and not np.allclose(a.tree[np.arange(50)], 1.0)
    loaded.learn(20, reset_num_timesteps=False)


@pytest.mark.atari
def test_a_short_atari_run() -> None:
    """The der preset's network on real Atari frames: a few hundred steps of Pong with updates and evaluation."""
    from sb3_latent import make_atari_env

    model = Rainbow(
        "CnnPolicy",
        make_atari_env("Pong", seed=0),
        preset="der",
        buffer_size=1000,
        learning_starts=100,
        target_update_interval=100,
        seed=0,
    )
    assert model.q_net.features_extractor.features_dim == 576 and model.replay_buffer.n_frames == 4
    model.learn(300)
    assert model._n_updates == 200 and np.isfinite(model.logger.name_to_value["train/loss"])
    reward, _ = evaluate_policy(model, make_atari_env("Pong", training=False, seed=1, max_frames=2000), 1)
    assert -21 <= reward <= 21


# --- LeVER on Rainbow ---------------------------------------------------------------------------------------------


def test_lever_freeze_keeps_priorities_and_targets_read_online_latents() -> None:
    from sb3_latent import LeVERExtractor, LeVERReplayBuffer
    from sb3_latent.lever import PrioritizedLeVERReplayBuffer

    env = make_moving_dot_env(frame_stack=3, size=36, action_type="discrete", episode_length=20, seed=0)
    model = Rainbow(
        "CnnPolicy",
        env,
        seed=0,
        replay_buffer_class=PrioritizedLeVERReplayBuffer,
        replay_buffer_kwargs=dict(T_f=40),
        **{**SMALL, "buffer_size": 50},
    )
    b = model.replay_buffer
    assert isinstance(b, PrioritizedLeVERReplayBuffer) and isinstance(model.q_net.features_extractor, LeVERExtractor)
    assert (b.freeze_mode, b.K, b.augment, b.n_steps) == ("conv", 1, None, 3)  # the paper's Atari choices
    model.learn(60)  # 30 updates: not frozen yet; the buffer has wrapped around (row 10 is the oldest)
    assert not b.frozen and model._n_updates == 30 and b.full and b.pos == 10
    leaves = np.arange(50)
    b.update_priorities(leaves, np.arange(1, 51, dtype=float))  # distinct priorities
    oldest_first = (np.arange(50) + 10) % 50
    before = [b.tree[oldest_first], b.rewards[oldest_first, 0].copy(), b.actions[oldest_first, 0, 0].copy()]
    conv = [p.detach().clone() for p in model.q_net.features_extractor.cnn.parameters()]
    b.freeze()
    assert b.frozen and b.buffer_size > 50 and b.pos == 50
    # LeVER re-lays the transitions oldest first; each keeps its priority
    for x, y in zip(before, [b.tree[leaves], b.rewards[:50, 0], b.actions[:50, 0, 0]], strict=True):
        np.testing.assert_array_equal(x, y)
    assert b.tree.total == pytest.approx(before[0].sum())
    assert all(
        not p.requires_grad and p not in model.policy.optimizer.state
        for p in model.q_net.features_extractor.cnn.parameters()
    )
    model.learn(40, reset_num_timesteps=False)
    assert all(torch.equal(a, p) for a, p in zip(conv, model.q_net.features_extractor.cnn.parameters(), strict=True))
    # a new transition (a latent now) gets the largest priority; samples are latents (B, N=1, L) with IS weights
    obs = model._last_obs
    nxt, reward, done, infos = model.env.step(np.array([0]))
    real = infos[0]["terminal_observation"][None] if done[0] else nxt
    b.add(obs, real, np.array([[0]]), reward, done, infos)
    assert b.tree[np.array([b.pos - 1])][0] == pytest.approx(b.max_priority)
    model._last_obs = nxt
    batch = b.sample(8)
    assert batch.observations.shape == (8, 1, b.z_next.shape[-1]) and batch.weights.shape == (8, 1)
    # the stored latent of the newest next_obs is the online encoder's output: the target network reads it
    newest = torch.as_tensor(real, dtype=torch.float32) / 255.0
    with torch.no_grad():
        online = model.q_net.features_extractor.split.latent(newest)[0].numpy()
    np.testing.assert_allclose(b.z_next[(b.n_added - 1) % len(b.z_next), 0, 0, 0], online, rtol=1e-5, atol=1e-6)
    # the paper's code (preset "lever"): uniform replay, LeVER's own buffer
    plain = Rainbow(
        "CnnPolicy",
        env,
        preset="lever",
        seed=0,
        replay_buffer_class=LeVERReplayBuffer,
        replay_buffer_kwargs=dict(T_f=30, T_f_unit="steps"),
        **{**SMALL, "buffer_size": 300},
    )
    plain.learn(60)
    assert plain.replay_buffer.frozen and np.isfinite(plain.logger.name_to_value["train/loss"])
    with pytest.raises(ValueError, match="prioritized=True needs a prioritized buffer"):
        Rainbow("CnnPolicy", env, replay_buffer_class=LeVERReplayBuffer, **SMALL)
