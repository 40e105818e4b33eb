"""RAD-SAC: one critic-trained encoder shared with the actor, EMA targets, augmentation, Flare's defaults."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import fill, pixel_env
from stable_baselines3.common.logger import configure

from sb3_latent import (
    RAD,
    FrameStoreReplayBuffer,
    flare_kwargs,
    latent_stack_kwargs,
    make_moving_dot_env,
    pixel_flow_kwargs,
)
from sb3_latent.algos.rad import RADPolicy

TINY = dict(features_dim=16, encoder_kwargs={"num_filters": 8})
FAST = dict(buffer_size=400, batch_size=16, learning_starts=64, policy_kwargs=None)


def make(policy_kwargs=None, env=None, **kw):
    args = {**FAST, **kw, "policy_kwargs": {"net_arch": [32, 32], **(policy_kwargs or {})}}
    return RAD("CnnPolicy", env or pixel_env(), seed=0, **args)


def test_defaults_are_the_flare_papers() -> None:
    model = RAD("CnnPolicy", pixel_env(), buffer_size=100)
    assert (model.batch_size, model.learning_rate, model.tau, model.encoder_tau) == (128, 2e-4, 0.01, 0.05)
    assert (model.actor_update_interval, model.target_update_interval, model.gamma) == (2, 2, 0.99)
    assert torch.exp(model.log_ent_coef).item() == pytest.approx(0.1)
    assert model.ent_coef_optimizer.defaults["lr"] == 1e-4
    assert model.ent_coef_optimizer.defaults["betas"] == (0.5, 0.999)
    assert model.policy.net_args["net_arch"] == [1024, 1024]
    groups = {g["name"]: g["lr"] for g in model.critic.optimizer.param_groups}
    assert groups == {"critic": 2e-4, "encoder": 2e-4}  # official: the encoder in the critic's optimizer
    assert model.critic.features_extractor.features_dim == 64
    assert model.policy.augment == "translate" and model.policy.encoder_space.shape == (9, 28, 28)  # 20 -> 28
    assert isinstance(model.replay_buffer, FrameStoreReplayBuffer) and model.replay_buffer.n_frames == 3


def test_one_encoder_shared_by_actor_and_critic_and_trained_by_the_critic_only() -> None:
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY))
    enc = model.critic.features_extractor.encoder
    assert model.actor.features_extractor.encoder is enc
    assert model.actor.features_extractor.detach_encoder
    assert model.critic_target.features_extractor.encoder is not enc
    actor_param_ids = {id(p) for g in model.actor.optimizer.param_groups for p in g["params"]}
    assert not actor_param_ids & {id(p) for p in enc.parameters()}
    critic_param_ids = {id(p) for g in model.critic.optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in enc.parameters()} <= critic_param_ids
    # the actor's output carries no gradient into the encoder, but does into its own head
    obs = torch.randint(0, 256, (4, 9, 28, 28), dtype=torch.uint8)
    model.actor(obs).sum().backward()
    assert all(p.grad is None for p in enc.parameters())
    assert model.actor.features_extractor.fc.weight.grad is not None


@pytest.mark.parametrize("same", [True, False])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"features_extractor_kwargs": TINY},
        flare_kwargs(n_frames=3, **TINY),
        latent_stack_kwargs(n_frames=3, **TINY),
        pixel_flow_kwargs(n_frames=3, **TINY),
    ],
)
def test_critic_updates_train_the_encoder(kwargs, same) -> None:
    """Whatever the extractor (the default stacked one too) and whether or not frames are shared."""
    model = make(policy_kwargs=kwargs, same_augmentation=same)
    fill(model)
    enc = model.critic.features_extractor.encoder
    before = [p.clone() for p in enc.parameters()]
    model.train(gradient_steps=2, batch_size=16)
    assert any(not torch.equal(a, b) for a, b in zip(before, enc.parameters(), strict=True))


def test_targets_follow_by_ema_with_separate_taus() -> None:
    """The whole target encoder (convolutions and its Linear/LayerNorm head) follows at encoder_tau, as the official
    soft_update_params(critic.encoder, critic_target.encoder, encoder_tau); the Qs at tau."""
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY), target_update_interval=1, tau=0.3, encoder_tau=0.6)
    fill(model)
    online_enc = model.critic.features_extractor.encoder
    target_enc = model.critic_target.features_extractor.encoder
    target_head = [
        *model.critic_target.features_extractor.fc.parameters(),
        *model.critic_target.features_extractor.ln.parameters(),
    ]
    online_head = [*model.critic.features_extractor.fc.parameters(), *model.critic.features_extractor.ln.parameters()]
    old_target_enc = [p.clone() for p in [*target_enc.parameters(), *target_head]]
    old_target_q = [p.clone() for p in model.critic_target.qf0.parameters()]
    model.train(gradient_steps=1, batch_size=16)
    new_target = [*target_enc.parameters(), *target_head]
    for old, new, online in zip(old_target_enc, new_target, [*online_enc.parameters(), *online_head], strict=True):
        torch.testing.assert_close(new, 0.4 * old + 0.6 * online)
    pairs = zip(old_target_q, model.critic_target.qf0.parameters(), model.critic.qf0.parameters(), strict=True)
    for old, new, online in pairs:
        torch.testing.assert_close(new, 0.7 * old + 0.3 * online)


def test_each_unique_frame_is_encoded_once_and_the_result_is_the_same() -> None:
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY))
    fill(model)
    fe = model.critic.features_extractor
    data = model.replay_buffer.sample(16)
    obs, next_obs = model._augment(data.observations, data.next_observations)
    seen = []
    hook = fe.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    obs_maps, next_maps = model._encode(obs, next_obs)
    hook.remove()
    assert sum(seen) == 16 * 4  # 4 unique frames per sample (3 + the new one), not 2 x 3
    torch.testing.assert_close(obs_maps, fe.encode(model._preprocess(obs)))
    torch.testing.assert_close(next_maps, fe.encode(model._preprocess(next_obs)))
    assert next_maps.requires_grad is False and obs_maps.requires_grad


def test_independent_augmentation_falls_back_to_encoding_both_stacks() -> None:
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY), same_augmentation=False)
    fill(model)
    data = model.replay_buffer.sample(16)
    a, b = model._augment(data.observations, data.next_observations)
    _obs_maps, next_maps = model._encode(a, b)
    fe = model.critic.features_extractor
    torch.testing.assert_close(next_maps, fe.encode(model._preprocess(b)))


@pytest.mark.parametrize(
    "kwargs",
    [
        None,
        flare_kwargs(n_frames=3, **TINY),
        latent_stack_kwargs(n_frames=3, **TINY),
        pixel_flow_kwargs(n_frames=3, **TINY),
    ],
)
@pytest.mark.parametrize("augment", ["translate", "crop", "shift", None])
def test_every_extractor_and_augmentation_trains_and_logs(kwargs, augment, tmp_path) -> None:
    aug_kwargs = {"size": 16} if augment == "crop" else None
    model = make(
        policy_kwargs=kwargs or {"features_extractor_kwargs": TINY}, augment=augment, augment_kwargs=aug_kwargs
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(96)
    model.logger.dump(model.num_timesteps)
    log = (tmp_path / "progress.csv").read_text()
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef"):
        assert key in log
    action, _ = model.predict(model.get_env().reset(), deterministic=True)  # env-size frames, centred
    assert action.shape == (1, 2)


def test_save_load_gives_identical_actions_and_replay_buffer(tmp_path) -> None:
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY))
    fill(model, 100)
    model.save(tmp_path / "rad.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = RAD.load(tmp_path / "rad.zip", env=pixel_env())
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.actor.features_extractor.encoder is loaded.critic.features_extractor.encoder
    assert loaded.replay_buffer.size() == model.replay_buffer.size()
    assert isinstance(loaded.policy, RADPolicy) and loaded.policy.augment == "translate"
    loaded.learn(20, reset_num_timesteps=False)


def test_mlp_policy_is_sac_with_the_papers_schedule() -> None:
    env = make_moving_dot_env(frame_stack=3, seed=0, obs_type="position")
    model = RAD("MlpPolicy", env, buffer_size=300, batch_size=16, learning_starts=50, policy_kwargs={"net_arch": [32]})
    model.learn(80)
    assert model._n_updates > 0


def test_clear_errors() -> None:
    with pytest.raises(TypeError, match="needs image observations"):
        RAD("CnnPolicy", make_moving_dot_env(frame_stack=3, obs_type="position"))
    with pytest.raises(TypeError, match="continuous actions"):
        RAD("CnnPolicy", pixel_env(action_type="discrete"))
    with pytest.raises(ValueError, match="actor_update_interval must be an integer >= 1"):
        RAD("CnnPolicy", pixel_env(), actor_update_interval=0)
    with pytest.raises(ValueError, match="encoder_tau must be in"):
        RAD("CnnPolicy", pixel_env(), encoder_tau=0.0)
    with pytest.raises(ValueError, match="Unknown augmentation 'flip'"):
        RAD("CnnPolicy", pixel_env(), augment="flip")
    assert isinstance(pixel_env().action_space, spaces.Box)


def test_learn_with_progress_bar_and_registry_name(capsys) -> None:
    from sb3_latent import registry

    assert registry.load("algorithms", "rad") is RAD
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY))
    model.learn(70, progress_bar=True)
    assert model.num_timesteps == 70


def test_initial_policy_std_is_the_official_codes() -> None:
    """rad/flare/curl Actor.forward: log σ = -10 + 6 (tanh(x) + 1); with the orthogonal init x starts near 0, so σ
    starts near exp(-4) ≈ 0.018 (measured 0.011-0.028 with the full-size nets; the issue guessed 0.03), not SB3's
    clamp (σ ≈ 1)."""
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY))
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(64)]))
    with torch.no_grad():
        _, log_std, _ = model.actor.get_action_dist_params(model.policy.eval_view(obs).float() / 255)
    std = log_std.exp()
    assert std.min() > 0.002 and std.max() < 0.06 and abs(std.median().item() - np.exp(-4)) < 0.01
    raw = torch.tensor([-100.0, 0.0, 100.0])
    torch.testing.assert_close(model.actor.squash_log_std(raw), torch.tensor([-10.0, -4.0, 2.0]))
    sb3 = make(policy_kwargs={**flare_kwargs(n_frames=3, **TINY), "log_std_bounds": None})
    torch.testing.assert_close(sb3.actor.squash_log_std(raw), torch.tensor([-20.0, 0.0, 2.0]))


def test_actor_and_critic_are_initialised_as_the_official_weight_init() -> None:
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY))
    linears = [m for net in (model.actor, model.critic) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) > 6
    for m in linears:  # orthogonal (gain 1), zero bias
        w = m.weight if m.weight.shape[0] <= m.weight.shape[1] else m.weight.T
        torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-4, rtol=0)
        assert not m.bias.any()
    for conv in [m for m in model.critic.modules() if isinstance(m, torch.nn.Conv2d)]:  # delta-orthogonal
        w = conv.weight
        off_centre = w.clone()
        off_centre[:, :, 1, 1] = 0
        assert not off_centre.any() and not conv.bias.any()
        c = w[:, :, 1, 1]
        c = c if c.shape[0] <= c.shape[1] else c.T
        torch.testing.assert_close(c @ c.T, 2.0 * torch.eye(c.shape[0]), atol=1e-4, rtol=0)  # ReLU gain^2 = 2
    target = dict(model.critic_target.named_parameters())
    for name, p in model.critic.named_parameters():
        assert torch.equal(p, target[name])


def test_temperature_loss_is_curl_sacs_and_log_alpha_is_an_option() -> None:
    """curl_sac.py: alpha_loss = (α (-log π - H̄)).mean(); its gradient in log α is α times SB3's."""
    grads = {}
    for form in ("alpha", "log_alpha"):
        model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY), alpha_loss=form, actor_update_interval=1)
        fill(model)
        model.ent_coef_optimizer.step = lambda *a, **k: None  # keep log α; read its gradient
        torch.manual_seed(0)
        model.train(gradient_steps=1, batch_size=16)
        grads[form] = model.log_ent_coef.grad.clone()
    torch.testing.assert_close(grads["alpha"], 0.1 * grads["log_alpha"], rtol=1e-3, atol=1e-7)
    with pytest.raises(ValueError, match="alpha_loss"):
        make(alpha_loss="beta")


def test_encoder_lr_defaults_to_the_critics_and_stays_an_option() -> None:
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY), learning_rate=3e-4)
    assert {g["name"]: g["lr"] for g in model.critic.optimizer.param_groups} == {"critic": 3e-4, "encoder": 3e-4}
    model = make(policy_kwargs=flare_kwargs(n_frames=3, **TINY), learning_rate=3e-4, encoder_lr=1e-3)
    model._set_learning_rates()
    assert {g["name"]: g["lr"] for g in model.critic.optimizer.param_groups} == {"critic": 3e-4, "encoder": 1e-3}
