"""CURL as a plugin: RAD's update plus a contrastive loss on the critic's encoder, keys from the momentum
encoder, similarity through W; SB3's interface."""

import numpy as np
import pytest
import torch
from sb3_latent_curl import CURL

from sb3_latent import make_moving_dot_env


def tiny(**kwargs) -> CURL:
    env = make_moving_dot_env(frame_stack=3, size=32, seed=0)
    kw = dict(
        augment_kwargs={"size": 28},
        buffer_size=200,
        learning_starts=20,
        batch_size=8,
        policy_kwargs={"net_arch": [16, 16]},
        seed=0,
        device="cpu",
    )
    return CURL("CnnPolicy", env, **{**kw, **kwargs})


def test_contrastive_loss_trains_the_online_encoder_and_W_but_not_the_key_encoder() -> None:
    model = tiny()
    model.learn(30)
    obs = torch.as_tensor(model.replay_buffer.sample(8).observations)
    online = model.critic.features_extractor.encoder
    key = model.critic_target.features_extractor.encoder
    model.curl_optimizer.zero_grad()
    loss = model.contrastive_loss(obs)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert model.policy.curl_W.grad is not None and model.policy.curl_W.grad.abs().sum() > 0
    assert all(p.grad is not None for p in online.parameters())
    assert all(p.grad is None for p in key.parameters())  # momentum encoder: EMA only
    assert key is not online


def test_learn_logs_the_loss_and_lowers_it_on_a_fixed_batch() -> None:
    model = tiny()
    model.learn(60)
    assert "curl_loss" in model.update(model.replay_buffer.sample(8))  # logged as train/curl_loss
    obs = torch.as_tensor(model.replay_buffer.sample(16).observations)
    torch.manual_seed(1)
    before = model.contrastive_loss(obs).item()
    for _ in range(30):
        torch.manual_seed(1)  # same crops: the loss of this batch must go down
        loss = model.contrastive_loss(obs)
        model.curl_optimizer.zero_grad()
        loss.backward()
        model.curl_optimizer.step()
    torch.manual_seed(1)
    assert model.contrastive_loss(obs).item() < before


def test_save_load_round_trip_keeps_W_and_predictions(tmp_path) -> None:
    model = tiny()
    model.learn(40)
    model.save(tmp_path / "curl.zip")
    loaded = CURL.load(tmp_path / "curl.zip", device="cpu")
    assert torch.equal(loaded.policy.curl_W, model.policy.curl_W)
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.curl_optimizer.state_dict()["state"]  # optimizer state came back too


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="curl_lr and curl_weight must be > 0"):
        tiny(curl_lr=0.0)
    with pytest.raises(TypeError, match="image observations"):
        CURL("CnnPolicy", make_moving_dot_env(frame_stack=3, obs_type="position"))


def test_crops_are_independent_and_batches_per_task_as_the_source() -> None:
    """curl utils.ReplayBuffer.sample_cpc crops obs, next_obs and the positive independently; batch 512 for cheetah
    run, 128 elsewhere (LeVER Table 4 on the CURL code; the CURL README's cartpole command)."""
    from pathlib import Path

    from sb3_latent.zoo import load_zoo_config

    assert tiny().same_augmentation is False
    zoo = Path(__file__).resolve().parent.parent / "zoo_configs" / "curl.yml"
    for task, batch in [("cheetah-run", 512), ("cartpole-swingup", 128), ("walker-walk", 128), ("finger-spin", 128)]:
        cfg = load_zoo_config(zoo, f"sb3_latent/{task}-pixels-v0")
        assert cfg["batch_size"] == batch and "encoder_lr" not in cfg  # the encoder at the critic's rate
