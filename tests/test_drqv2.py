"""DrQ-v2: n-step clipped double Q targets, scheduled exploration noise, random shift in training only,
one critic-trained encoder reused by the actor and the target critic, the official defaults."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fill, pixel_env
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from sb3_latent import (
    DrQv2,
    NStepFrameStoreReplayBuffer,
    RandomShift,
    flare_kwargs,
    latent_stack_kwargs,
    make_moving_dot_env,
    pixel_flow_kwargs,
)
from sb3_latent.algos.drqv2 import PRESETS, DrQv2Policy, parse_stddev_schedule
from sb3_latent.algos.drqv2.drqv2 import clipped_noise_action
from sb3_latent.extractors import LatentStackExtractor, RadEncoder
from sb3_latent.zoo import build_from_config, load_zoo_config

ZOO = Path(__file__).resolve().parent.parent / "zoo_configs" / "drqv2.yml"
TINY = dict(features_dim=16, encoder_kwargs={"num_filters": 8})
FAST = dict(buffer_size=400, batch_size=16, learning_starts=64)


def make(policy_kwargs=None, env=None, **kw):
    pk = {"net_arch": [32, 32], "features_extractor_kwargs": TINY, **(policy_kwargs or {})}
    return DrQv2("CnnPolicy", env or pixel_env(), policy_kwargs=pk, **{"seed": 0, **FAST, **kw})


def test_defaults_are_the_official_codes() -> None:
    model = DrQv2("CnnPolicy", pixel_env(), buffer_size=100)
    assert (model.learning_rate, model.batch_size, model.tau, model.gamma, model.n_steps) == (1e-4, 256, 0.01, 0.99, 3)
    assert (model.learning_starts, model.train_freq.frequency, model.gradient_steps) == (2000, 2, 1)
    assert (model.stddev_schedule, model.stddev_clip) == ("linear(1.0,0.1,500000)", 0.3)
    assert model.policy.net_arch == [1024, 1024]
    fe = model.critic.features_extractor
    assert isinstance(fe, LatentStackExtractor) and fe.n_frames == 1 and fe.features_dim == 50
    assert isinstance(fe.encoder, RadEncoder)
    convs = [m for m in fe.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(32, (3, 3), (2, 2))] + [
        (32, (3, 3), (1, 1))
    ] * 3
    assert isinstance(model.policy.augmentation, RandomShift) and model.policy.augmentation.pad == 4
    buffer = model.replay_buffer
    assert isinstance(buffer, NStepFrameStoreReplayBuffer) and (buffer.n_steps, buffer.gamma) == (3, 0.99)
    lrs = [g["lr"] for opt in (model.actor.optimizer, model.critic.optimizer) for g in opt.param_groups]
    assert lrs == [1e-4, 1e-4, 1e-4]  # actor, critic, encoder: three Adams at 1e-4 in the official code
    assert not hasattr(model.policy, "actor_target")


def test_presets_are_the_official_task_groups() -> None:
    assert {k: (v["stddev_schedule"], v["n_timesteps"]) for k, v in PRESETS.items()} == {
        "easy": ("linear(1.0,0.1,100000)", 550_000),
        "medium": ("linear(1.0,0.1,500000)", 1_550_000),
        "hard": ("linear(1.0,0.1,2000000)", 15_050_000),
        "humanoid": ("linear(1.0,0.1,2000000)", 15_050_000),
    }
    model = DrQv2.from_preset("humanoid", "CnnPolicy", pixel_env(), buffer_size=100)
    assert model.learning_rate == 8e-5 and model.critic.features_extractor.features_dim == 100
    assert model.stddev_schedule == "linear(1.0,0.1,2000000)"
    model = DrQv2.from_preset("easy", "CnnPolicy", pixel_env(), buffer_size=100, policy_kwargs=flare_kwargs(**TINY))
    assert model.stddev_schedule == "linear(1.0,0.1,100000)" and model.critic.features_extractor.features_dim == 16
    with pytest.raises(ValueError, match="unknown DrQ-v2 preset 'extreme'"):
        DrQv2.from_preset("extreme", "CnnPolicy", pixel_env())


@pytest.mark.parametrize(
    "spec, values",
    [
        ("linear(1.0, 0.1, 100)", {0: 1.0, 50: 0.55, 100: 0.1, 10_000: 0.1}),
        ("linear(1.0,0.1,100)", {25: 0.775}),
        ("step_linear(1.0, 0.5, 10, 0.1, 20)", {0: 1.0, 5: 0.75, 10: 0.5, 20: 0.3, 30: 0.1, 99: 0.1}),
        ("constant(0.2)", {0: 0.2, 10**9: 0.2}),
        ("0.3", {7: 0.3}),
        (0.4, {7: 0.4}),
        (1, {7: 1.0}),
    ],
)
def test_schedule_parser_accepts_the_official_forms(spec, values) -> None:
    schedule = parse_stddev_schedule(spec)
    for step, expected in values.items():
        assert schedule(step) == pytest.approx(expected)


@pytest.mark.parametrize(
    "spec",
    [
        "linear(1.0, 0.1)",
        "cosine(1, 0, 10)",
        "fast",
        "linear(1, 0.1, 0)",
        "linear(a, b, c)",
        "-0.1",
        "step_linear(1, 0.5, 10, 0.1)",
        "",
        True,
        None,
    ],
)
def test_schedule_parser_rejects_anything_else_naming_the_accepted_forms(spec) -> None:
    with pytest.raises(
        ValueError,
        match=r"invalid stddev_schedule .*'constant\(x\)', 'linear\(init, final, "
        r"duration\)' or 'step_linear\(init, final1, duration1, final2, duration2\)'",
    ):
        parse_stddev_schedule(spec)


def test_n_step_target_equals_the_value_computed_by_hand() -> None:
    """Episodes: A = steps 0-2 (terminates at 2), B = 3-4 (truncated at 4), C = 5-8 (running); n = 3, γ = 0.9.
    The target reads rewards, dones and γ^m of the frame-store n-step sample and the target critic on the
    online encoder; the hand computation reads raw rewards and runs the SB3 modules on the raw stacks."""
    gamma, env = 0.9, pixel_env()
    model = make(gamma=gamma)
    with torch.no_grad():  # a target critic visibly different from the online one
        for p in [*model.critic_target.qf0.parameters(), *model.critic_target.features_extractor.fc.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    buffer = NStepFrameStoreReplayBuffer(50, env.observation_space, env.action_space, n_steps=3, gamma=gamma)
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=9).astype(np.float32)
    ends = {2: "terminated", 4: "truncated"}
    next_stacks, stack = [], None
    for t in range(9):
        if stack is None:
            first = rng.integers(0, 256, (3, 20, 20), dtype=np.uint8)
            stack = np.concatenate([first] * 3)
        nxt = np.concatenate([stack[3:], rng.integers(0, 256, (3, 20, 20), dtype=np.uint8)])
        end = ends.get(t)
        buffer.add(
            stack[None],
            nxt[None],
            rng.uniform(-1, 1, (1, 2)),
            rewards[t : t + 1],
            np.array([end is not None]),
            [{"TimeLimit.truncated": end == "truncated"}],
        )
        next_stacks.append(nxt)
        stack = None if end else nxt

    def by_hand(i: int) -> float:
        m = next(j for j in range(1, 4) if j == 3 or ends.get(i + j - 1))  # steps up to the episode end, at most n
        ret = sum(gamma**j * rewards[i + j] for j in range(m))
        if ends.get(i + m - 1) == "terminated":
            return ret
        last = torch.as_tensor(next_stacks[i + m - 1][None])
        q1, q2 = model.critic_target(last, model.actor(last))
        return ret + gamma**m * torch.min(q1, q2).item()

    rows = np.array([0, 1, 3, 4, 5])
    data = buffer._get_samples(rows)
    next_maps = model._encode(data.observations, data.next_observations)[1]
    y = model._target_q(data, data.next_observations, next_maps, stddev=0.0)  # σ = 0: a' is the actor's mean
    np.testing.assert_allclose(y.squeeze(1).numpy(), [by_hand(i) for i in rows], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        data.discounts.squeeze(1).numpy(), [gamma**3, gamma**2, gamma**2, gamma, gamma**3], rtol=1e-6
    )


def test_noise_is_clipped_in_updates_and_not_while_acting() -> None:
    mean = torch.full((4000, 2), 0.5, requires_grad=True)
    a = clipped_noise_action(mean, stddev=10.0, clip=0.3)
    offsets = (a - 0.5).abs()
    assert 0.29 < offsets.max() <= 0.3 + 1e-6  # mean ± c
    a.sum().backward()
    assert torch.equal(mean.grad, torch.ones_like(mean))  # straight-through clamp, as the official TruncatedNormal
    model = make(learning_starts=0, stddev_schedule="constant(50.0)")
    model._last_obs = np.stack([model.observation_space.sample() for _ in range(1)])
    actions = np.concatenate([model._sample_action(0)[0] for _ in range(200)])
    assert np.mean(np.abs(actions) == 1.0) > 0.9  # the acting noise is clipped to the bounds only, not to ± c
    model = make(learning_starts=0, stddev_schedule=0.0)
    model._last_obs = np.stack([model.observation_space.sample()])
    np.testing.assert_array_equal(model._sample_action(0)[0], model.predict(model._last_obs, deterministic=True)[0])


class Spy:
    """Records calls of an augmentation."""

    def __init__(self, aug):
        self.aug, self.calls = aug, []

    def __call__(self, *xs, same=False):
        self.calls.append(same)
        return self.aug(*xs, same=same)

    def center(self, x):
        return self.aug.center(x)


def test_augmentation_is_applied_in_training_only() -> None:
    model = make()
    fill(model)
    spy = model.policy.augmentation = Spy(model.policy.augmentation)
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    a1, a2 = model.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    np.testing.assert_array_equal(a1, a2)
    with torch.no_grad():
        direct = model.actor.mu(model.actor.features_extractor(torch.as_tensor(obs).float() / 255))
    np.testing.assert_allclose(a1, direct.numpy(), atol=1e-6)
    assert spy.calls == []  # prediction never shifts
    seen = []
    hook = model.critic.features_extractor.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    data = model.replay_buffer.sample(32)
    model.replay_buffer.sample = lambda *a, **k: data
    model.train(gradient_steps=1, batch_size=32)
    hook.remove()
    assert spy.calls == [False]  # obs and next_obs shifted, drawn independently
    assert len(seen) == 2  # one encoder pass for obs and one for next_obs: the actor reuses the encoding
    raw = data.observations.float() / 255
    shifted = [(s - r).abs().max() > 0.1 for s, r in zip(seen[0], raw, strict=True)]
    assert sum(shifted) >= 24  # each sample shifted by one of 81 offsets, (0, 0) only by chance


def test_one_encoder_trained_by_the_critic_only_and_no_target_encoder() -> None:
    model = make(tau=0.3)
    enc = model.critic.features_extractor.encoder
    assert model.actor.features_extractor.encoder is enc and model.actor.features_extractor.detach_encoder
    assert model.critic_target.features_extractor.encoder is enc  # the target reads the online encoder
    enc_ids = {id(p) for p in enc.parameters()}
    assert not enc_ids & {id(p) for g in model.actor.optimizer.param_groups for p in g["params"]}
    assert enc_ids <= {id(p) for g in model.critic.optimizer.param_groups for p in g["params"]}
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(4)]))
    model.actor(obs).sum().backward()  # the actor's loss never reaches the encoder
    assert all(p.grad is None for p in enc.parameters()) and model.actor.features_extractor.fc.weight.grad is not None
    fill(model)

    target = [
        m
        for m in (
            model.critic_target.features_extractor.fc,
            model.critic_target.features_extractor.ln,
            *model.critic_target.q_networks,
        )
    ]
    online = [model.critic.features_extractor.fc, model.critic.features_extractor.ln, *model.critic.q_networks]
    old = [p.clone() for m in target for p in m.parameters()]
    enc_before = [p.clone() for p in enc.parameters()]
    model.train(gradient_steps=1, batch_size=16)
    assert any(not torch.equal(a, b) for a, b in zip(enc_before, enc.parameters(), strict=True))  # critic-trained
    new, cur = [p for m in target for p in m.parameters()], [p for m in online for p in m.parameters()]
    for o, n, c in zip(old, new, cur, strict=True):  # EMA with τ of trunk and Qs, every update
        torch.testing.assert_close(n, 0.7 * o + 0.3 * c)


def test_learns_to_follow_the_moving_dot_from_pixels() -> None:
    """MovingDot, 20x20 pixels, 3 stacked frames: only motion tells where to push (a . v). A random or
    single-frame policy earns about 0 per episode (|mean| < 2.5 over 10 episodes), the velocity oracle
    about 19. 1500 agent steps, an update per step, ~15 s on one CPU core."""
    model = DrQv2(
        "CnnPolicy",
        pixel_env(),
        buffer_size=1500,
        batch_size=64,
        learning_starts=500,
        learning_rate=1e-3,
        train_freq=1,
        gamma=0.9,
        stddev_schedule="linear(1.0, 0.1, 1500)",
        seed=0,
        policy_kwargs={
            "net_arch": [32, 32],
            "features_extractor_kwargs": {"features_dim": 32, "encoder_kwargs": {"num_filters": 8}},
        },
    )
    model.learn(1500)
    eval_env = make_moving_dot_env(frame_stack=3, seed=1, size=20)
    eval_env.reset()
    random_return = np.mean(
        [sum(eval_env.step(np.array([eval_env.action_space.sample()]))[1][0] for _ in range(50)) for _ in range(10)]
    )
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10)
    assert abs(random_return) < 2.5 and mean > 8.0, f"learned {mean:.1f}, random {random_return:.1f}"


@pytest.mark.parametrize(
    "kwargs",
    [flare_kwargs(n_frames=3, **TINY), latent_stack_kwargs(n_frames=3, **TINY), pixel_flow_kwargs(n_frames=3, **TINY)],
)
def test_every_extractor_replaces_the_encoder_and_logs(kwargs, tmp_path) -> None:
    model = make(policy_kwargs={**kwargs, "net_arch": [32, 32]})
    assert type(model.critic.features_extractor) is kwargs["features_extractor_class"]
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(96)
    model.logger.dump(model.num_timesteps)
    log = (tmp_path / "progress.csv").read_text()
    for key in ("train/critic_loss", "train/actor_loss", "train/stddev", "train/critic_q"):
        assert key in log


def test_save_load_gives_identical_actions_and_replay_buffer(tmp_path) -> None:
    model = make()
    fill(model, 100)
    model.save(tmp_path / "drqv2.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = DrQv2.load(tmp_path / "drqv2.zip", env=pixel_env())
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.critic_target.features_extractor.encoder is loaded.critic.features_extractor.encoder
    assert isinstance(loaded.policy, DrQv2Policy) and loaded.stddev_schedule == model.stddev_schedule
    assert isinstance(loaded.replay_buffer, NStepFrameStoreReplayBuffer)
    assert loaded.replay_buffer.size() == model.replay_buffer.size() and loaded.replay_buffer.n_steps == 3
    loaded.learn(20, reset_num_timesteps=False, progress_bar=True)
    assert loaded.num_timesteps == 120 and loaded._n_updates > model._n_updates


def test_seeding_makes_runs_repeatable() -> None:
    a = make(seed=3)
    fill(a, 70)
    b = make(seed=3)
    fill(b, 70)
    obs = np.stack([a.observation_space.sample() for _ in range(4)])
    np.testing.assert_array_equal(a.predict(obs)[0], b.predict(obs)[0])


def test_mlp_policy_is_n_step_ddpg_with_scheduled_noise() -> None:
    env = make_moving_dot_env(frame_stack=3, seed=0, obs_type="position")
    model = DrQv2(
        "MlpPolicy", env, buffer_size=300, batch_size=16, learning_starts=50, policy_kwargs={"net_arch": [32]}
    )
    assert isinstance(model.replay_buffer, NStepReplayBuffer) and model.replay_buffer.n_steps == 3
    assert getattr(model.policy, "augmentation", None) is None and not hasattr(model.policy, "actor_target")
    model.learn(80)
    assert model._n_updates > 0


def test_clear_errors_before_any_work() -> None:
    with pytest.raises(TypeError, match="DrQ-v2 is for continuous control"):
        DrQv2("CnnPolicy", pixel_env(action_type="discrete"))
    with pytest.raises(TypeError, match="DrQ-v2's CnnPolicy needs image observations"):
        DrQv2("CnnPolicy", make_moving_dot_env(frame_stack=3, obs_type="position"))
    with pytest.raises(ValueError, match="invalid stddev_schedule 'cosine"):
        DrQv2("CnnPolicy", pixel_env(), stddev_schedule="cosine(1, 0, 10)")
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        DrQv2("CnnPolicy", pixel_env(), n_steps=0)


def test_zoo_config_holds_the_papers_settings() -> None:
    easy = [
        "cartpole-balance",
        "cartpole-balance_sparse",
        "cartpole-swingup",
        "ball_in_cup-catch",
        "finger-spin",
        "hopper-stand",
        "pendulum-swingup",
        "walker-stand",
        "walker-walk",
    ]
    medium = [
        "acrobot-swingup",
        "cartpole-swingup_sparse",
        "cheetah-run",
        "finger-turn_easy",
        "finger-turn_hard",
        "hopper-hop",
        "quadruped-run",
        "quadruped-walk",
        "reacher-easy",
        "reacher-hard",
        "walker-run",
    ]
    for group, tasks in (("easy", easy), ("medium", medium)):
        for task in tasks:
            cfg = load_zoo_config(ZOO, f"sb3_latent/{task}-pixels-v0")
            assert cfg["env_kwargs"] == {
                "size": 84,
                "frame_stack": 3,
                "action_repeat": 2,
                "camera_id": 2 if task.startswith("quadruped") else 0,
            }
            assert cfg["stddev_schedule"] == PRESETS[group]["stddev_schedule"]
            assert cfg["n_timesteps"] == PRESETS[group]["n_timesteps"]
            walker = task.startswith("walker")  # the official walker configs: nstep 1, batch 512
            assert (cfg["n_steps"], cfg["batch_size"]) == ((1, 512) if walker else (3, 256))
            assert cfg["buffer_size"] == (100_000 if task == "quadruped-run" else 1_000_000)


@pytest.mark.dmc
def test_a_zoo_entry_builds_drqv2() -> None:
    cfg = load_zoo_config(ZOO, "sb3_latent/cartpole-swingup-pixels-v0")
    model, n_timesteps = build_from_config(
        DrQv2, "sb3_latent/cartpole-swingup-pixels-v0", cfg, seed=0, env_kwargs={"size": 32}, buffer_size=100
    )
    assert n_timesteps == 550_000 and isinstance(model, DrQv2)
    assert model.observation_space.shape == (9, 32, 32) and model.critic.features_extractor.features_dim == 50


@pytest.mark.parametrize("n_envs", [1, 2, 4])
def test_several_envs_keep_one_update_per_train_freq_agent_steps(n_envs: int) -> None:
    """DrQ-v2 counts its schedule in agent steps, as the paper: with n envs, train_freq=2 still means one update
    every 2 agent steps (SB3 alone would make one every 2 * n)."""
    model = make(
        env=make_moving_dot_env(n_envs=n_envs, frame_stack=3, seed=0, size=20),
        learning_starts=40,
        train_freq=2,
        batch_size=8,
    )
    model.learn(200)
    assert model.num_timesteps == 200 and model._n_updates == (200 - 40) // 2
    assert model.predict(model.get_env().reset(), deterministic=True)[0].shape == (n_envs, 2)


@pytest.mark.parametrize("kwargs", [{}, flare_kwargs(n_frames=3, **TINY)])
def test_the_trunk_keeps_its_tanh(kwargs) -> None:
    # official drqv2.py: trunk = Linear -> LayerNorm -> Tanh, whatever extractor feeds it; RAD/Flare heads have none
    model = make(policy_kwargs=kwargs)
    for fe in (model.actor.features_extractor, model.critic.features_extractor):
        assert fe.tanh and isinstance(fe.act, torch.nn.Tanh)
    off = make(policy_kwargs={"features_extractor_kwargs": {**TINY, "tanh": False}})
    assert not off.critic.features_extractor.tanh


def test_actor_and_critic_are_initialised_as_the_official_weight_init() -> None:
    """drqv2 utils.weight_init: every Linear orthogonal (gain 1), convolutions orthogonal with ReLU gain on every
    tap (not the SAC-AE delta-orthogonal), biases zero; official_init=False keeps the old scheme."""
    model = make()
    for m in [m for net in (model.actor, model.critic) for m in net.modules() if isinstance(m, torch.nn.Linear)]:
        w = m.weight if m.weight.shape[0] <= m.weight.shape[1] else m.weight.T
        torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-4, rtol=0)
        assert not m.bias.any()
    for conv in [m for m in model.critic.modules() if isinstance(m, torch.nn.Conv2d)]:
        w = conv.weight.flatten(1)
        w = w if w.shape[0] <= w.shape[1] else w.T
        torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(w.shape[0]), atol=1e-4, rtol=0)
        assert (conv.weight[:, :, 0, 0] != 0).any()  # every tap
    old = make(policy_kwargs={"official_init": False})
    conv = next(m for m in old.critic.modules() if isinstance(m, torch.nn.Conv2d))
    assert not conv.weight[:, :, 0, 0].any()
