"""Dreamer (DreamerV3): the maths (symlog, two-hot, unimix, KL balance, λ-returns, return scale) against hand-computed
values; the RSSM's shapes; the world model learns; the agent beats random on a small task; save/load, errors."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_latent import Dreamer, MovingDotEnv, SequenceReplayBuffer, make_moving_dot_env
from sb3_latent.algos.dreamer import PAPER_XS, SIZES, DreamerPolicy, open_loop_predictions, write_open_loop
from sb3_latent.algos.dreamer.distributions import (
    ReturnNormalizer,
    TwoHotSymexp,
    categorical_kl,
    kl_balance,
    lambda_return,
    make_bins,
    onehot_straight_through,
    symexp,
    symlog,
    twohot,
    unimix_logits,
)
from sb3_latent.algos.dreamer.networks import State, feat
from sb3_latent.algos.dreamer.policies import PARAMS
from sb3_latent.common.amp import bf16_supported

# --- maths ------------------------------------------------------------------------------------------------


def test_symlog_values_and_symexp_inverts_it() -> None:
    x = torch.tensor([-1000.0, -math.e + 1, -1.0, 0.0, 0.5, 1e4])
    assert torch.allclose(symlog(x)[1:3], torch.tensor([-1.0, -math.log(2)]))
    assert symlog(torch.tensor(0.0)) == 0 and symlog(torch.tensor(1e4)) < 9.22
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)


def test_twohot_puts_the_mass_on_the_two_neighbouring_bins() -> None:
    bins = make_bins(9)  # -20, -15, ..., 20 (the slides' example uses 9 bins)
    assert torch.allclose(bins, torch.arange(-20.0, 21.0, 5.0))
    w = twohot(torch.tensor([-18.75, 3.0, 5.0, 25.0]), bins)
    assert torch.allclose(w[0, :2], torch.tensor([0.75, 0.25])) and w[0, 2:].sum() == 0
    assert torch.allclose(w[1, 4:6], torch.tensor([0.4, 0.6])) and w[1].sum() == 1
    assert w[2, 5] == 1 and w[2].sum() == 1  # exactly on a bin: all of it there
    assert w[3, -1] == 1  # beyond the range: the edge bin
    # the slides' worked example: loss = -(0.75 log p0 + 0.25 log p1)
    probs = torch.tensor([0.20, 0.15, 0.01, 0.30, 0.11, 0.20, 0.01, 0.01, 0.01])
    d = TwoHotSymexp(probs.log(), bins)
    y = symexp(torch.tensor(-18.75))
    assert math.isclose(float(d.log_prob(y)), 0.75 * math.log(0.20) + 0.25 * math.log(0.15), rel_tol=1e-4)


def test_twohot_expectation_returns_the_value() -> None:
    bins = make_bins()  # 255 bins over ±20 in symlog space
    y = torch.tensor([-3000.0, -1.5, 0.0, 0.3, 42.0, 1e6])
    target = twohot(symlog(y), bins)
    d = TwoHotSymexp(torch.log(target + 1e-30), bins)  # logits that reproduce the two-hot
    assert torch.allclose(d.mean(), y, rtol=1e-4, atol=1e-5)
    assert torch.allclose(target @ bins, symlog(y), atol=1e-5)


def test_unimix_keeps_one_percent_spread_over_all_classes() -> None:
    logits = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    p = unimix_logits(logits, 0.01).exp()
    assert torch.allclose(p, torch.tensor([[0.99 + 0.0025, 0.0025, 0.0025, 0.0025]]), atol=1e-6)
    assert torch.allclose(unimix_logits(logits, 0.0).exp(), logits.softmax(-1))


def test_straight_through_sample_is_one_hot_with_the_probabilities_gradient() -> None:
    logits = torch.tensor([[0.1, 2.0, -1.0]], requires_grad=True)
    lp = unimix_logits(logits)
    z = onehot_straight_through(lp, sample=False)
    assert torch.equal(z.detach(), torch.tensor([[0.0, 1.0, 0.0]]))
    (z * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    probs = lp.exp().detach()
    # d/dlogits sum_k c_k p_k with p = 0.99 softmax + 0.01/3
    c = torch.tensor([1.0, 2.0, 3.0])
    sm = logits.detach().softmax(-1)
    expected = 0.99 * sm * (c - (sm * c).sum())
    assert torch.allclose(logits.grad, expected, atol=1e-6) and torch.allclose(probs.sum(), torch.tensor(1.0))
    samples = onehot_straight_through(lp.detach().expand(4000, 3)).sum(0) / 4000
    assert torch.allclose(samples, probs[0], atol=0.03)


def test_kl_balance_and_free_bits_on_fixed_tensors() -> None:
    post = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]]).clamp(min=1e-8).log()  # 2 categoricals of 3
    prior = torch.tensor([[0.2, 0.5, 0.3], [0.25, 0.25, 0.5]]).log()
    p, q = post.exp(), prior.exp()
    hand = float((p * (p.log() - q.log())).sum())  # ≈ 0.6215 + 0.6931
    assert math.isclose(float(categorical_kl(post, prior)), hand, rel_tol=1e-5)
    dyn, rep = kl_balance(post[None], prior[None], free=1.0)  # KL ≈ 1.31 > 1: no clipping
    assert math.isclose(float(dyn), hand, rel_tol=1e-5) and math.isclose(float(rep), hand, rel_tol=1e-5)
    dyn, rep = kl_balance(post[None], prior[None], free=2.0)  # below the free bits: clipped, no gradient
    assert float(dyn) == 2.0 and float(rep) == 2.0
    # the gradients go apart: dyn trains only the prior, rep only the posterior
    a, b = post.clone().requires_grad_(True), prior.clone().requires_grad_(True)
    dyn, _ = kl_balance(a[None], b[None])
    dyn.sum().backward()
    assert a.grad is None or a.grad.abs().sum() == 0
    assert b.grad is not None and b.grad.abs().sum() > 0
    a, b = post.clone().requires_grad_(True), prior.clone().requires_grad_(True)
    _, rep = kl_balance(a[None], b[None])
    rep.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0 and (b.grad is None or b.grad.abs().sum() == 0)


def test_lambda_return_matches_a_hand_computed_example_with_continuation_flags() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0])  # r_1..r_3
    values = torch.tensor([0.0, 10.0, 20.0, 30.0])  # v_0..v_3
    cont = torch.tensor([1.0, 0.0, 1.0])  # s_2 is terminal: nothing after it counts
    g, lam = 0.9, 0.5
    r2 = 3.0 + g * 1.0 * 30.0  # R_2 = r_3 + γ c_3 v_3 (R_3 = v_3)
    r1 = 2.0 + g * 0.0 * ((1 - lam) * 20.0 + lam * r2)  # = 2
    r0 = 1.0 + g * 1.0 * ((1 - lam) * 10.0 + lam * r1)
    out = lambda_return(rewards[:, None], values[:, None], cont[:, None], g, lam)[:, 0]
    assert torch.allclose(out, torch.tensor([r0, r1, r2]))
    assert torch.allclose(out, torch.tensor([1.0 + 0.9 * (5.0 + 1.0), 2.0, 30.0]))
    with pytest.raises(ValueError, match="H \\+ 1 values"):
        lambda_return(rewards, values[:3], cont, g, lam)


def test_return_scale_is_an_ema_of_the_5_to_95_percentile_range_limited_below_by_1() -> None:
    norm = ReturnNormalizer(decay=0.99)
    returns = torch.arange(101.0)  # percentiles 5 and 95: 5 and 95
    scale = norm.update(returns)
    assert math.isclose(float(norm.low_ema), 0.05, rel_tol=1e-6)
    assert math.isclose(float(norm.high_ema), 0.95, rel_tol=1e-6)
    assert float(scale) == 1.0  # range 0.9 < limit 1
    for _ in range(2000):
        scale = norm.update(returns)
    assert math.isclose(float(scale), 90.0, rel_tol=1e-3)
    assert float(ReturnNormalizer().update(torch.full((10,), 0.3))) == 1.0  # small returns are not scaled up


# --- model ------------------------------------------------------------------------------------------------

TINY = dict(deter=32, stoch=4, classes=4, units=32, layers=1, depth=4)
FAST = dict(batch_size=4, batch_length=8, learning_starts=40, buffer_size=2000)


def dot_env(obs_type: str = "pixels", **kw):
    return make_moving_dot_env(n_envs=kw.pop("n_envs", 1), frame_stack=1, seed=0, size=16, obs_type=obs_type, **kw)


def make(policy: str = "CnnPolicy", env=None, size=None, **kw) -> Dreamer:
    return Dreamer(
        policy, env if env is not None else dot_env(), policy_kwargs={"size": size or TINY}, **{"seed": 0, **FAST, **kw}
    )


def test_defaults_are_the_papers() -> None:
    m = Dreamer("CnnPolicy", dot_env(), buffer_size=1000)
    assert (m.batch_size, m.batch_length, m.train_ratio, m.horizon, m.gamma, m.lam) == (16, 64, 512, 15, 0.997, 0.95)
    assert (m.learning_rate, m.policy.actor_lr, m.policy.critic_lr, m.ent_coef) == (1e-4, 3e-5, 3e-5, 3e-4)
    assert (m.kl_dyn, m.kl_rep, m.free_bits, m.slow_critic_tau) == (0.5, 0.1, 1.0, 0.02)
    assert m.policy.critic.out.out_features == 255 and m.policy.world_model.reward.out.out_features == 255
    assert float(m.policy.critic.bins[0]) == -20 and float(m.policy.critic.bins[-1]) == 20
    # zero-initialised outputs: the first reward and value predictions are exactly 0
    assert m.policy.world_model.reward.out.weight.abs().sum() == 0 and m.policy.critic.out.weight.abs().sum() == 0
    assert isinstance(m.replay_buffer, SequenceReplayBuffer) and m.replay_buffer.mode == "window"
    assert m.replay_buffer.sequence_length == 65  # 64 steps and the observation before them


def test_size_presets_have_the_documented_parameter_counts() -> None:
    obs, act = spaces.Box(0, 255, (3, 64, 64), np.uint8), spaces.Box(-1, 1, (6,), np.float32)
    for name, size in [*SIZES.items(), ("paper_xs", PAPER_XS)]:
        with torch.device("meta"):  # no memory, no time: the 200M model too
            n = DreamerPolicy(obs, act, lambda _: 1e-4, size=size).n_parameters()
        assert n == PARAMS[name], name
    # the paper's table: XS 8M, S 18M, M 37M, L 77M, XL 200M
    assert [round(PARAMS[k] / 1e6) for k in ("paper_xs", "s", "m", "l", "xl")] == [8, 18, 37, 77, 201]


def test_rssm_and_imagination_shapes() -> None:
    m = make()
    p, (B, T, H) = m.policy, (3, 5, 4)
    wm = p.world_model
    obs = {"obs": torch.randint(0, 255, (B, T, 3, 16, 16), dtype=torch.uint8)}
    embed = wm.encoder(obs)
    post, post_lp, prior_lp = wm.rssm.observe(embed, torch.rand(B, T, 2) * 2 - 1, torch.zeros(B, T))
    assert post.deter.shape == (B, T, 32) and post.stoch.shape == (B, T, 4, 4) and prior_lp.shape == (B, T, 4, 4)
    assert torch.allclose(post.stoch.sum(-1), torch.ones(B, T, 4))  # one-hot samples
    assert torch.allclose(post_lp.exp().sum(-1), torch.ones(B, T, 4)) and post_lp.exp().min() >= 0.01 / 4 - 1e-6
    assert wm.decoder(feat(post))["obs"].shape == (B, T, 3, 16, 16)
    start = State(post.deter.detach().flatten(0, 1), post.stoch.detach().flatten(0, 1))
    states, actions, logp, ent = m.imagine(start, H)
    assert states.deter.shape == (H + 1, B * T, 32) and actions.shape == (H, B * T, 2)
    assert logp.shape == ent.shape == (H, B * T) and logp.requires_grad and not states.deter.requires_grad
    assert actions.abs().max() <= 1


def fill(m: Dreamer, n: int) -> None:
    """Collect ``n`` random steps without training (learning_starts beyond them)."""
    ls = m.learning_starts
    m.learning_starts = n + 1
    m.learn(n)
    m.learning_starts = ls


@pytest.mark.parametrize(
    "amp",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="this CPU has no native bfloat16"),
        ),
    ],
)
def test_world_model_loss_falls_on_a_small_pixel_env(amp: bool) -> None:
    m = make(learning_rate=1e-3, batch_size=8, batch_length=16, amp=amp)  # amp: bfloat16 compute, as the official code
    fill(m, 600)
    losses = []
    for _ in range(120):
        logs = m.update(m.replay_buffer.sample(m.batch_size))
        losses.append(float(logs["model_loss"]))
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.5 * first, (first, last)  # mostly the decoder: the dot's frames are learned


def test_amp_without_native_bfloat16_is_refused(monkeypatch, tmp_path) -> None:
    saved = make("MlpPolicy", dot_env("state"))
    saved.amp = True  # as if trained with amp on a machine that has bfloat16
    saved.save(tmp_path / "amp.zip")
    monkeypatch.setattr("sb3_latent.common.amp.bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match="amp=True needs native bfloat16"):
        make(amp=True)
    with pytest.warns(UserWarning, match="trains in float32 here"):  # loads here all the same
        loaded = Dreamer.load(tmp_path / "amp.zip", env=dot_env("state"), train_ratio=8)
    loaded.learn(60)
    assert loaded.amp is False and loaded._n_updates > 0


def test_train_ratio_sets_the_number_of_updates() -> None:
    # 4 x 8 = 32 replayed steps per update; ratio 16 -> one update every 2 env steps after learning_starts
    m = make("MlpPolicy", dot_env("state"), train_ratio=16)
    m.learn(140)
    assert m._n_updates == pytest.approx((140 - 40) * 16 / 32, abs=1)
    for key in ("model_loss", "kl_dyn", "kl_rep", "actor_loss", "critic_loss", "return_scale", "entropy"):
        assert f"train/{key}" in m.logger.name_to_value, key


def test_learning_beats_random_on_the_moving_dot_with_state_observations() -> None:
    """The reward is the action along the dot's velocity: random actions earn 0, the best about 0.35 a step."""
    env = dot_env("state", episode_length=50)
    m = Dreamer(
        "MlpPolicy",
        env,
        policy_kwargs={
            "size": dict(deter=64, stoch=8, classes=8, units=64, layers=1, depth=8),
            "actor_lr": 3e-4,
            "critic_lr": 3e-4,
        },
        learning_rate=1e-3,
        batch_size=16,
        batch_length=16,
        learning_starts=200,
        train_ratio=64,
        seed=0,
    )
    rand, _ = evaluate_policy(RandomAgent(env), env, n_eval_episodes=10)
    m.learn(2000)
    trained, _ = evaluate_policy(m, env, n_eval_episodes=10)
    assert trained > rand + 5.0, (rand, trained)  # 50 steps: 5 is 0.1 a step


def test_predict_keeps_a_recurrent_state_per_env_and_resets_it_at_episode_starts() -> None:
    m = make("MlpPolicy", dot_env("state", n_envs=2))
    obs = m.env.reset()
    a0, s0 = m.predict(obs, deterministic=True)
    assert a0.shape == (2, 2) and [x.shape for x in s0] == [(2, 32), (2, 4, 4), (2, 2)]
    _a1, s1 = m.predict(obs, state=s0, episode_start=np.array([False, False]), deterministic=True)
    assert not np.allclose(s1[0], s0[0])  # the state moved on
    # an episode start forgets the state: the same as a fresh start
    torch.manual_seed(1)
    a2, s2 = m.predict(obs, state=s1, episode_start=np.array([True, True]), deterministic=True)
    torch.manual_seed(1)
    a3, s3 = m.predict(obs, deterministic=True)
    np.testing.assert_allclose(a2, a3, atol=1e-6)
    np.testing.assert_allclose(s2[0], s3[0], atol=1e-6)
    single, _ = m.predict(obs[0], deterministic=True)
    assert single.shape == (2,)


def test_save_load_gives_identical_actions_and_keeps_the_recurrent_state(tmp_path) -> None:
    m = make("MlpPolicy", dot_env("state"), train_ratio=8)
    m.learn(60)
    path = tmp_path / "dreamer.zip"
    m.save(path)
    loaded = Dreamer.load(path, env=dot_env("state"))
    for a, b in zip(m._recurrent, loaded._recurrent, strict=True):  # the collection state is saved
        np.testing.assert_array_equal(a, b)
    obs = m.env.reset()
    state, state2 = None, None
    for _ in range(5):
        torch.manual_seed(3)
        a, state = m.predict(obs, state, np.zeros(1, bool))
        torch.manual_seed(3)
        b, state2 = loaded.predict(obs, state2, np.zeros(1, bool))
        np.testing.assert_array_equal(a, b)
        obs, *_ = m.env.step(a)
    loaded.learn(20, reset_num_timesteps=False)  # training goes on


def test_discrete_actions_and_dict_observations() -> None:
    m = make("CnnPolicy", dot_env(action_type="discrete"), train_ratio=16)
    m.learn(60)
    a, _ = m.predict(m.env.reset())
    assert m.policy.actor.discrete and a.shape == (1,) and 0 <= a[0] < 4
    env = DummyVecEnv([lambda: DictDot()])
    m = make("MultiInputPolicy", env, train_ratio=16)
    m.learn(60)
    assert m._n_updates > 0 and set(m.policy.world_model.decoder(torch.zeros(1, 32 + 16))) == {"image", "pos"}


def test_open_loop_predictions_are_written_as_png_and_gif(tmp_path) -> None:
    m = make(train_ratio=8, buffer_size=3000)
    m.learn(200)
    truth, pred = open_loop_predictions(m, n_sequences=2, context=3, horizon=5)
    assert truth.shape == pred.shape == (2, 8, 16, 16, 3) and truth.dtype == np.uint8
    png, gif = write_open_loop(m, tmp_path / "openloop", n_sequences=2, context=3, horizon=5)
    assert png.stat().st_size > 0 and gif.stat().st_size > 0
    with pytest.raises(ValueError, match="show images"):
        open_loop_predictions(make("MlpPolicy", dot_env("state")))


def test_errors_name_the_value_and_what_was_expected() -> None:
    with pytest.raises(ValueError, match="train_ratio"):
        make(train_ratio=0)
    with pytest.raises(ValueError, match="unknown Dreamer size 'huge'"):
        make(size="huge")
    with pytest.raises(ValueError, match="exactly the keys"):
        make(size={"deter": 8})
    with pytest.raises(TypeError, match="CnnPolicy needs image"):
        make("CnnPolicy", dot_env("state"))
    with pytest.raises(TypeError, match="MlpPolicy needs 1-D"):
        make("MlpPolicy", dot_env())
    with pytest.raises(ValueError, match="4 \\* 2\\^k"):
        make(env=make_moving_dot_env(frame_stack=1, size=20))
    with pytest.raises(TypeError, match=r"Box .continuous. or Discrete"):
        make("MlpPolicy", SpacesEnv(spaces.Box(-1, 1, (4,)), spaces.MultiDiscrete([2, 3])))
    with pytest.raises(TypeError, match="Box observations"):
        make("MlpPolicy", SpacesEnv(spaces.Discrete(5), spaces.Discrete(2)))
    with pytest.raises(TypeError, match="Box observations"):
        make("MultiInputPolicy", DummyVecEnv([lambda: DictDot(discrete_obs=True)]))
    unbounded = SpacesEnv(spaces.Box(-1, 1, (4,)), spaces.Box(-np.inf, np.inf, (2,)))
    with pytest.raises(ValueError, match=r"actions must be bounded .* RescaleAction"):  # not SB3's bare assertion
        make("MlpPolicy", unbounded)
    model = make("MlpPolicy", SpacesEnv(spaces.Box(-1, 1, (4,)), spaces.Box(-1, 1, (2,))))
    with pytest.raises(ValueError, match="actions must be bounded"):
        model.set_env(unbounded)


class SpacesEnv(gym.Env):
    """An env that only has spaces (Dreamer checks them before anything runs)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space


class RandomAgent:
    def __init__(self, env) -> None:
        self.space = env.action_space

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.stack([self.space.sample() for _ in range(len(obs))]), None


class DictDot(gym.Env):
    """A Dict observation: an image and a vector (or a Discrete, which Dreamer refuses)."""

    def __init__(self, discrete_obs: bool = False) -> None:
        self.dot = MovingDotEnv(size=16, obs_type="state")
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (3, 16, 16), np.uint8),
                "pos": spaces.Discrete(3) if discrete_obs else spaces.Box(-1, 1, (4,), np.float32),
            }
        )
        self.action_space = self.dot.action_space

    def _obs(self, state: np.ndarray) -> dict:
        return {"image": self.dot.render().transpose(2, 0, 1).copy(), "pos": state}

    def reset(self, *, seed=None, options=None):
        state, info = self.dot.reset(seed=seed)
        return self._obs(state), info

    def step(self, action):
        state, *rest = self.dot.step(action)
        return (self._obs(state), *rest)
