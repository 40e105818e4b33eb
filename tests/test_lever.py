"""LeVER: the encoder freezes at T_f, stored images become latents, the buffer grows, training goes on."""

import numpy as np
import pytest
import torch
from sb3_contrib import QRDQN
from stable_baselines3 import DQN, SAC, TD3

from sb3_latent import (
    RAD,
    DrQv2,
    LeVERReplayBuffer,
    attach_lever,
    flare_kwargs,
    load_encoder,
    make_moving_dot_env,
    registry,
)
from sb3_latent.lever import LeVERExtractor, split_extractor

SIZE, FEAT = 36, 16
SMALL = dict(buffer_size=200, batch_size=8, learning_starts=40, seed=0)


def tiny() -> dict:
    """Small networks (a fresh dict: SB3 adds keys to the policy_kwargs it is given)."""
    return dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=FEAT))


def env(n_envs: int = 1, discrete: bool = False):
    return make_moving_dot_env(
        n_envs=n_envs, frame_stack=3, seed=0, size=SIZE, action_type="discrete" if discrete else "continuous"
    )


def sac(**lever) -> SAC:
    model = SAC("CnnPolicy", env(), policy_kwargs=tiny(), **SMALL)
    return attach_lever(model, **{"T_f": 10, "K": 2, **lever})  # type: ignore[return-value]


def drqv2(**lever) -> DrQv2:
    return DrQv2(
        "CnnPolicy",
        env(),
        policy_kwargs=tiny(),
        replay_buffer_class=LeVERReplayBuffer,
        replay_buffer_kwargs={"T_f": 10, "K": 2, **lever},
        **SMALL,
    )


def online_frozen(model) -> list[torch.nn.Parameter]:
    return model.replay_buffer._binding.frozen_params


def test_registered_and_a_replay_buffer() -> None:
    assert registry.load("buffers", "lever") is LeVERReplayBuffer
    from stable_baselines3.common.buffers import ReplayBuffer

    assert issubclass(LeVERReplayBuffer, ReplayBuffer)


@pytest.mark.parametrize("make", [sac, drqv2], ids=["SAC", "DrQv2"])
def test_stored_latents_are_the_frozen_encoder_of_the_stored_images(make) -> None:
    model = make(K=1, augment=None, T_f=10_000)
    model.learn(60)
    rb = model.replay_buffer
    rows = np.arange(rb.pos)
    envs = np.zeros_like(rows)
    obs, nxt = rb._rebuild(rows, envs)  # the images, before the freeze
    rb.freeze()
    rb._k = np.zeros(len(rows), dtype=np.int64)
    z_obs, z_next = rb._rebuild(rows, envs)
    binding = rb._binding
    with torch.no_grad():
        for slot, split in enumerate(binding.slots):
            for images, z in ((obs, z_obs), (nxt, z_next)):
                x = binding.view(torch.as_tensor(images).float()) / 255.0
                np.testing.assert_allclose(z[:, slot], split.latent(x).numpy(), rtol=1e-5, atol=1e-6)


def test_each_augmented_copy_is_the_encoding_of_a_shifted_image() -> None:
    model = sac(K=3, augment="shift", augment_kwargs={"pad": 1}, T_f=10_000)
    model.learn(45)
    rb = model.replay_buffer
    _obs, nxt = rb._rebuild(np.arange(3), np.zeros(3, dtype=int))
    rb.freeze()
    split = rb._binding.slots[0]
    padded = np.pad(nxt, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    for i in range(3):
        shifts = np.stack([padded[i, :, dy : dy + SIZE, dx : dx + SIZE] for dy in range(3) for dx in range(3)])
        with torch.no_grad():
            candidates = split.latent(torch.as_tensor(shifts).float() / 255.0).numpy()
        g = rb._add_counts(np.array([i]))[0]
        for k in range(3):
            z = rb.z_next[g % len(rb.z_next), 0, 0, k]
            assert np.abs(candidates - z).max(axis=1).min() < 1e-5


def test_layout_across_episodes_envs_and_the_freeze() -> None:
    """Transitions added by hand before and after the freeze (two envs, episode ends, a reset without
    done): every sampled latent is the encoder of the true observation."""
    model = SAC(
        "CnnPolicy",
        env(n_envs=2),
        buffer_size=40,
        policy_kwargs=dict(net_arch=[8], features_extractor_kwargs=dict(features_dim=8)),
        seed=0,
    )
    attach_lever(model, T_f=10_000, K=1, augment=None)
    rb: LeVERReplayBuffer = model.replay_buffer  # type: ignore[assignment]
    rng = np.random.default_rng(0)
    truth: list[tuple[np.ndarray, np.ndarray]] = []
    stacks = [rng.integers(0, 256, (3, 3, SIZE, SIZE), dtype=np.uint8) for _ in range(2)]
    for t in range(60):
        if t == 25:
            rb.freeze()
        obs = np.stack([s.reshape(9, SIZE, SIZE) for s in stacks])
        new = rng.integers(0, 256, (2, 3, SIZE, SIZE), dtype=np.uint8)
        nxt_stacks = [np.concatenate([s[1:], n[None]]) for s, n in zip(stacks, new, strict=True)]
        nxt = np.stack([s.reshape(9, SIZE, SIZE) for s in nxt_stacks])
        done = np.array([t % 7 == 6, t % 11 == 10])
        rb.add(obs, nxt, rng.uniform(-1, 1, (2, 2)), rng.random(2), done, [{}, {}])
        truth.append((obs, nxt))
        stacks = [
            rng.integers(0, 256, (3, 3, SIZE, SIZE), dtype=np.uint8) if d else s
            for s, d in zip(nxt_stacks, done, strict=True)
        ]
        if t == 40:  # env 1 reset without done (as when learn() is called again)
            stacks[1] = rng.integers(0, 256, (3, 3, SIZE, SIZE), dtype=np.uint8)
    assert rb.frozen and rb.frames.size == 0 and rb._pool.size == 0
    n = rb.buffer_size if rb.full else rb.pos
    rows = np.arange(n).repeat(2)
    envs = np.tile([0, 1], n)
    rb._k = np.zeros(len(rows), dtype=np.int64)
    z_obs, z_next = rb._rebuild(rows, envs)
    g = rb._add_counts(rows)
    split = rb._binding.slots[0]
    with torch.no_grad():
        want_obs, want_next = (
            split.latent(torch.as_tensor(np.stack([truth[i][j][e] for i, e in zip(g, envs, strict=True)])) / 255.0)
            for j in (0, 1)
        )
    np.testing.assert_allclose(z_obs[:, 0], want_obs.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z_next[:, 0], want_next.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [sac, drqv2], ids=["SAC", "DrQv2"])
def test_after_T_f_updates_the_encoder_never_changes_and_gets_no_gradient(make) -> None:
    model = make(T_f=5)
    model.learn(60)  # 20 updates (SAC) / 10 (DrQ-v2: every 2 steps): frozen at the 6th
    rb = model.replay_buffer
    assert rb.frozen
    frozen = online_frozen(model)
    before = [p.detach().clone() for p in frozen]
    trainable = [p for p in model.policy.parameters() if p.requires_grad]
    trainable_before = [p.detach().clone() for p in trainable]
    model.learn(80, reset_num_timesteps=False)
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    assert all(torch.equal(a, p) for a, p in zip(before, frozen, strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(trainable_before, trainable, strict=True))
    sample = rb.sample(4)
    assert sample.observations.shape == (4, rb._binding.n_slots, FEAT)


def test_freezes_after_T_f_updates_or_env_steps() -> None:
    model = sac(T_f=5)
    model.learn(44)  # 4 updates
    assert not model.replay_buffer.frozen
    model.learn(2, reset_num_timesteps=False)
    assert model.replay_buffer.frozen and model.replay_buffer.n_sampled == 6
    model = sac(T_f=30, T_f_unit="steps")
    model.learn(29)
    assert not model.replay_buffer.frozen
    model.learn(1, reset_num_timesteps=False)
    assert model.replay_buffer.frozen


def test_capacity_follows_the_papers_formula_and_the_memory_budget() -> None:
    model = sac(T_f=5, K=4)
    model.learn(50)
    rb = model.replay_buffer
    n, L, P, C = rb._binding.n_slots, FEAT, 3 * SIZE * SIZE, 200  # P: one RGB frame, not the stack (SEER train.py)
    assert n == 2  # SAC: actor and critic have their own encoders
    assert rb.buffer_size == C * P // (4 * n * 4 * L)
    assert rb.bytes_per_transition() < 4 * n * 4 * L * 1.2  # the latents, next_obs only, plus a little
    budget = 300 * rb.bytes_per_latent_transition()
    model = sac(T_f=5, K=4, memory_budget=budget)
    model.learn(50)
    assert model.replay_buffer.buffer_size == 300


def test_a_shared_extractor_is_one_encoder_and_targets_read_the_online_latents() -> None:
    model = SAC(
        "CnnPolicy",
        env(),
        policy_kwargs=dict(
            net_arch=[16], share_features_extractor=True, features_extractor_kwargs=dict(features_dim=FEAT)
        ),
        **SMALL,
    )
    attach_lever(model, T_f=5, K=1)
    assert model.replay_buffer._binding.n_slots == 1
    assert isinstance(model.critic_target.features_extractor, LeVERExtractor)
    assert model.critic_target.features_extractor.slot == 0
    model.learn(60)
    assert model.replay_buffer.frozen


@pytest.mark.parametrize("algo", [TD3, DQN, QRDQN])
def test_stock_algorithms_train_on_latents(algo) -> None:
    discrete = algo in (DQN, QRDQN)
    kw = dict(SMALL, train_freq=1) if discrete else SMALL
    model = attach_lever(algo("CnnPolicy", env(n_envs=2, discrete=discrete), policy_kwargs=tiny(), **kw), T_f=5, K=2)
    model.learn(120)
    rb = model.replay_buffer
    assert rb.frozen and rb.n_sampled > 5
    assert rb._binding.n_slots == (1 if discrete else 2)
    assert np.isfinite(rb.z_next).all()


def test_rad_with_flare_freezes_the_frame_encoder_and_the_fusing_linear() -> None:
    model = RAD(
        "CnnPolicy",
        env(),
        policy_kwargs=flare_kwargs(n_frames=3, features_dim=FEAT, net_arch=[16]),
        replay_buffer_class=LeVERReplayBuffer,
        replay_buffer_kwargs=dict(T_f=5, K=2),
        **SMALL,
    )
    fe = model.critic.features_extractor
    frozen_ids = {id(p) for p in online_frozen(model)}
    assert {id(p) for p in [*fe.encoder.parameters(), *fe.fc.parameters()]} <= frozen_ids
    assert not {id(p) for p in fe.ln.parameters()} & frozen_ids
    model.learn(60)
    assert model.replay_buffer.frozen and model.replay_buffer.z_next.shape[2:] == (2, 2, FEAT)
    # features from a stored latent equal the features of the image it came from (K=1, no augmentation)
    model = RAD(
        "CnnPolicy",
        env(),
        policy_kwargs=flare_kwargs(n_frames=3, features_dim=FEAT, net_arch=[16]),
        replay_buffer_class=LeVERReplayBuffer,
        replay_buffer_kwargs=dict(T_f=5, K=1, augment=None),
        **SMALL,
    )
    model.learn(50)
    rb = model.replay_buffer
    obs = model.env.reset()
    with torch.no_grad():
        images = model.policy.eval_view(torch.as_tensor(obs).float())
        z = rb._binding.encode(obs, 1)[:, :, 0]
        for fe in (model.critic.features_extractor, model.actor.features_extractor):
            assert isinstance(fe, LeVERExtractor)  # the one seam: RAD's networks get the adapter stock models get
            direct = fe(images)  # which scales images itself (the networks no longer normalize)
            np.testing.assert_allclose(rb.latent_features(fe, torch.as_tensor(z)).numpy(), direct.numpy(), atol=1e-5)


def test_drqv2_keeps_n_step_returns_on_latents() -> None:
    model = drqv2(T_f=5)
    assert model.replay_buffer.n_steps == 3
    model.learn(80)
    batch = model.replay_buffer.sample(8)
    assert batch.observations.dim() == 3 and batch.discounts is not None
    assert {round(float(d), 5) for d in batch.discounts.numpy().ravel()} <= {round(0.99**k, 5) for k in (1, 2, 3)}


def test_save_and_load_before_and_after_the_freeze(tmp_path) -> None:
    model = sac(T_f=10)
    model.learn(45)
    model.save(tmp_path / "early")
    model.save_replay_buffer(tmp_path / "early_rb")
    model.learn(40, reset_num_timesteps=False)
    assert model.replay_buffer.frozen
    model.save(tmp_path / "late")
    model.save_replay_buffer(tmp_path / "late_rb")
    obs = model.env.reset()
    action, _ = model.predict(obs, deterministic=True)

    early = attach_lever(SAC.load(tmp_path / "early", env=env()))
    early.load_replay_buffer(tmp_path / "early_rb")
    attach_lever(early)
    assert not early.replay_buffer.frozen and early.replay_buffer.size() == 45
    early.learn(40, reset_num_timesteps=False)
    assert early.replay_buffer.frozen  # T_f kept from the saved settings

    late = SAC.load(tmp_path / "late", env=env())
    attach_lever(late)
    assert late.replay_buffer.frozen and all(not p.requires_grad for p in online_frozen(late))
    np.testing.assert_allclose(late.predict(obs, deterministic=True)[0], action, atol=1e-6)
    late.load_replay_buffer(tmp_path / "late_rb")
    attach_lever(late)
    rb = late.replay_buffer
    assert rb.frozen and rb.buffer_size == model.replay_buffer.buffer_size and rb.size() == model.replay_buffer.size()
    frozen = [p.detach().clone() for p in online_frozen(late)]
    late.learn(30, reset_num_timesteps=False)  # resumes with latents
    assert rb.size() == model.replay_buffer.size() + 30
    assert all(torch.equal(a, p) for a, p in zip(frozen, online_frozen(late), strict=True))


def test_our_algorithms_rebind_a_loaded_buffer(tmp_path) -> None:
    model = drqv2(T_f=5)
    model.learn(70)
    model.save(tmp_path / "m")
    model.save_replay_buffer(tmp_path / "rb")
    loaded = DrQv2.load(tmp_path / "m", env=env())
    assert loaded.replay_buffer.frozen  # saved after the freeze: reloads frozen, latents from now on
    loaded.load_replay_buffer(tmp_path / "rb")
    assert loaded.replay_buffer.frozen and loaded.replay_buffer.size() == model.replay_buffer.size()
    loaded.learn(20, reset_num_timesteps=False)


def test_transfer_starts_frozen_with_the_source_encoder(tmp_path) -> None:
    source = sac(T_f=5)
    source.learn(50)
    source.save(tmp_path / "src")
    target = SAC("CnnPolicy", env(), policy_kwargs=tiny(), **{**SMALL, "seed": 1})
    attach_lever(target, T_f=1, K=2, encoder_from=tmp_path / "src.zip")
    assert target.replay_buffer.frozen
    src = dict(source.policy.named_parameters())
    copied = load_encoder(target, source)
    assert copied and all(torch.equal(src[n], dict(target.policy.named_parameters())[n]) for n in copied)
    target.learn(50)
    assert target.replay_buffer.size() == 50 and target.replay_buffer.z_next is not None


def test_logs_freeze_capacity_bytes_and_reencoding_time() -> None:
    model = sac(T_f=5)
    model.learn(60)
    model.replay_buffer.sample(4)
    values = model.logger.name_to_value
    assert values["lever/frozen"] == 1 and values["lever/capacity"] == model.replay_buffer.buffer_size
    assert values["lever/bytes_per_transition"] > 0 and values["lever/reencode_seconds"] > 0


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="T_f must be an integer >= 1"):
        sac(T_f=0)
    with pytest.raises(ValueError, match="K must be an integer >= 1"):
        sac(K=0)
    with pytest.raises(ValueError, match="T_f_unit"):
        sac(T_f_unit="episodes")
    with pytest.raises(ValueError, match="freeze must be"):
        sac(freeze="all")
    with pytest.raises(ValueError, match="memory_budget=100 bytes is smaller"):
        sac(memory_budget=100)
    with pytest.raises(ValueError, match="would shrink the buffer"):
        drqv2(freeze="conv")  # conv maps 32x11x11 floats x K=2 > a 9x36x36 byte image
    with pytest.raises(ValueError, match="need an augmentation"):
        sac(K=2, augment=None)
    with pytest.raises(TypeError, match="image observations"):
        attach_lever(SAC("MlpPolicy", make_moving_dot_env(obs_type="state", frame_stack=1), buffer_size=100), T_f=5)
    with pytest.raises(TypeError, match="cannot split"):
        split_extractor(torch.nn.Linear(2, 2))
    used = SAC("CnnPolicy", env(), policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=FEAT)), **SMALL)
    used.learn(5)
    with pytest.raises(ValueError, match="already holds 5 transitions"):
        attach_lever(used, T_f=5)
    loaded = LeVERReplayBuffer(100, used.observation_space, used.action_space, T_f=5)
    with pytest.raises(RuntimeError, match="attach_lever"):
        loaded.sample(2)


def test_freezing_only_the_convs_stores_conv_features_and_keeps_training_the_linear() -> None:
    model = drqv2(freeze="conv", K=1, T_f=5, memory_budget=10**7)
    model.learn(60)
    rb = model.replay_buffer
    fe = model.critic.features_extractor
    assert rb.frozen and rb._binding.n_slots == 1  # actor and critic share the conv encoder
    assert rb.z_next.shape[-1] == fe.fc.in_features and fe.fc.weight.requires_grad
    assert all(not p.requires_grad for p in fe.encoder.parameters())


def test_stock_sac_with_flare_keeps_working_after_the_freeze() -> None:
    model = SAC("CnnPolicy", env(), policy_kwargs=flare_kwargs(n_frames=3, features_dim=FEAT, net_arch=[16]), **SMALL)
    attach_lever(model, T_f=5, K=2)
    model.learn(60)
    assert model.replay_buffer.frozen
    action, _ = model.predict(model.env.reset(), deterministic=True)
    assert np.isfinite(action).all()


def test_models_without_a_replay_buffer_are_refused() -> None:
    from stable_baselines3 import PPO

    with pytest.raises(TypeError, match="off-policy model with a replay buffer"):
        attach_lever(PPO("CnnPolicy", env(), n_steps=8, batch_size=8), T_f=5)


def test_lever_zoo_files_hold_the_papers_freezing_times() -> None:
    """LeVER Appendix G, Table 4 (Figure 2): T_f per task, in training steps of one update each."""
    from pathlib import Path

    from sb3_latent.zoo import load_zoo_config

    table4 = {"cartpole-swingup": 10_000, "finger-spin": 50_000, "reacher-easy": 50_000}
    table4 |= {"walker-walk": 60_000, "cheetah-run": 80_000}
    root = Path(__file__).resolve().parent.parent / "sb3_latent" / "zoo" / "zoo_configs"
    for name in ("rad_lever.yml", "drqv2_lever.yml"):
        for task, t_f in table4.items():
            assert load_zoo_config(root / name, f"sb3_latent/{task}-pixels-v0")["lever"]["T_f"] == t_f, (name, task)


def test_capacity_counts_one_frame_not_the_stack() -> None:
    """SEER train.py: P = 3 * H * W (one RGB frame). With 3 stacked frames the grown buffer is a third of what
    counting the whole stack gives."""
    model = sac(T_f=5, K=1)
    rb = model.replay_buffer
    n, L = rb._binding.n_slots, FEAT
    assert rb.n_frames == 3 and rb._image_bytes() == 3 * SIZE * SIZE
    assert rb._capacity_after() == 200 * 3 * SIZE * SIZE // (4 * n * 1 * L)
