"""Flare-family extractors: shapes, the detached flow, channel layouts and clear errors."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from sb3_latent import (
    FlareExtractor,
    LatentStackExtractor,
    PixelFlowExtractor,
    StateFlareExtractor,
    flare_kwargs,
    latent_stack_kwargs,
    pixel_flow_kwargs,
    state_flare_kwargs,
)

PIXEL_EXTRACTORS = [FlareExtractor, LatentStackExtractor, PixelFlowExtractor]


def image_space(frames: int = 3, size: int = 24, channels_last: bool = False) -> gym.spaces.Box:
    shape = (size, size, 3 * frames) if channels_last else (3 * frames, size, size)
    return gym.spaces.Box(0, 255, shape, np.uint8)


def small(cls, space, **kw):
    return cls(space, features_dim=16, encoder_kwargs={"num_filters": 8}, **kw)


@pytest.mark.parametrize("cls", PIXEL_EXTRACTORS)
def test_head_is_linear_layernorm_without_tanh_unless_asked(cls) -> None:
    # official flare/rad/curl encoders run with output_logits=True: Linear -> LayerNorm, no tanh
    ext = small(cls, image_space(), n_frames=3)
    x = torch.rand(5, 9, 24, 24)
    out = ext(x)
    assert out.shape == (5, 16) and ext.features_dim == 16
    assert not ext.tanh and isinstance(ext.act, torch.nn.Identity)
    torch.testing.assert_close(out, ext.ln(ext.fc(ext.fuse(ext.encode(x)))))
    with_tanh = small(cls, image_space(), n_frames=3, tanh=True)  # DrQ-v2's trunk
    with_tanh.load_state_dict(ext.state_dict())
    torch.testing.assert_close(with_tanh(x), torch.tanh(out))


def test_flare_fuses_latents_of_the_newest_frames_and_their_flow() -> None:
    ext = small(FlareExtractor, image_space(), n_frames=3)
    x = torch.rand(4, 9, 24, 24)
    z = torch.stack([ext.encoder(x[:, 3 * i : 3 * i + 3]) for i in range(3)], dim=1)
    fused = torch.cat([z[:, 1], z[:, 2], z[:, 1] - z[:, 0], z[:, 2] - z[:, 1]], dim=1).flatten(1)
    torch.testing.assert_close(ext(x), ext.ln(ext.fc(fused)))


def input_grad_per_frame(ext, frames: int = 3) -> list[float]:
    x = torch.rand(2, 3 * frames, 24, 24, requires_grad=True)
    out = ext(x)  # a random projection: the sum of a LayerNorm's output is constant
    (out * torch.randn(out.shape[1:], generator=torch.Generator().manual_seed(0))).sum().backward()
    return [x.grad[:, 3 * i : 3 * i + 3].abs().sum().item() for i in range(frames)]


def test_flare_flow_detaches_the_previous_latent() -> None:
    # The oldest frame enters Flare only as the detached z_{t-1} of the first flow term,
    # so no gradient reaches it; the newer frames get gradients through z_j.
    grads = input_grad_per_frame(small(FlareExtractor, image_space(), n_frames=3))
    assert grads[0] == 0.0 and grads[1] > 0 and grads[2] > 0


def test_latent_stack_and_pixel_flow_train_on_every_frame() -> None:
    for cls in (LatentStackExtractor, PixelFlowExtractor):
        assert all(g > 0 for g in input_grad_per_frame(small(cls, image_space(), n_frames=3)))


def test_flare_encoder_gets_gradients() -> None:
    ext = small(FlareExtractor, image_space(), n_frames=3)
    out = ext(torch.rand(2, 9, 24, 24))
    (out * torch.randn(out.shape[1:])).sum().backward()  # the sum of a LayerNorm's output is constant
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ext.encoder.parameters())


@pytest.mark.parametrize("cls", PIXEL_EXTRACTORS)
def test_channels_last_input_gives_the_same_features(cls) -> None:
    first = small(cls, image_space(), n_frames=3)
    last = small(cls, image_space(channels_last=True), n_frames=3)
    assert last.channels_last and not first.channels_last
    last.load_state_dict(first.state_dict())
    x = torch.rand(3, 9, 24, 24)
    torch.testing.assert_close(last(x.permute(0, 2, 3, 1)), first(x))


def test_nature_encoder_option() -> None:
    ext = FlareExtractor(image_space(size=64), features_dim=32, n_frames=3, encoder="nature")
    assert ext(torch.rand(2, 9, 64, 64)).shape == (2, 32)
    assert ext.map_shape == (64, 4, 4)


def test_state_flare_is_position_now_plus_offsets() -> None:
    ext = StateFlareExtractor(gym.spaces.Box(-1, 1, (6,), np.float32), n_frames=3)
    x = torch.tensor([[0.0, 1.0, 0.5, 2.0, 1.5, 4.0]])  # s1=(0,1), s2=(.5,2), s3=(1.5,4)
    assert ext.features_dim == 6
    torch.testing.assert_close(ext(x), torch.tensor([[1.5, 4.0, 1.0, 2.0, 0.5, 1.0]]))


def test_kwargs_helpers_name_the_extractor_and_its_settings() -> None:
    kw = flare_kwargs(n_frames=2, features_dim=50, net_arch=[1024, 1024])
    assert kw["features_extractor_class"] is FlareExtractor
    assert kw["features_extractor_kwargs"]["n_frames"] == 2 and kw["net_arch"] == [1024, 1024]
    assert latent_stack_kwargs()["features_extractor_class"] is LatentStackExtractor
    assert pixel_flow_kwargs()["features_extractor_class"] is PixelFlowExtractor
    assert state_flare_kwargs(share_features_extractor=False)["share_features_extractor"] is False


@pytest.mark.parametrize("cls", PIXEL_EXTRACTORS)
def test_pixel_extractors_reject_non_image_spaces(cls) -> None:
    with pytest.raises(TypeError, match="needs an image observation space"):
        cls(gym.spaces.Box(-1, 1, (12,), np.float32))
    with pytest.raises(TypeError, match="needs an image observation space"):
        cls(gym.spaces.Discrete(4))


@pytest.mark.parametrize("cls", PIXEL_EXTRACTORS)
def test_frames_must_divide_the_channels(cls) -> None:
    with pytest.raises(ValueError, match="10 channels, which n_frames=3 does not divide"):
        cls(gym.spaces.Box(0, 255, (10, 24, 24), np.uint8), n_frames=3)


@pytest.mark.parametrize("cls", [FlareExtractor, PixelFlowExtractor])
def test_flow_extractors_need_two_frames(cls) -> None:
    with pytest.raises(ValueError, match="needs n_frames >= 2, got 1"):
        cls(image_space(frames=1), n_frames=1)
    assert LatentStackExtractor(image_space(frames=1), n_frames=1, features_dim=8).features_dim == 8


def test_state_flare_errors() -> None:
    with pytest.raises(TypeError, match="1-D Box of stacked positions"):
        StateFlareExtractor(image_space())
    with pytest.raises(ValueError, match="not divisible by n_frames=4"):
        StateFlareExtractor(gym.spaces.Box(-1, 1, (6,), np.float32), n_frames=4)
    with pytest.raises(ValueError, match="needs n_frames >= 2"):
        StateFlareExtractor(gym.spaces.Box(-1, 1, (6,), np.float32), n_frames=1)


def test_too_small_images_and_unknown_encoders() -> None:
    with pytest.raises(ValueError, match="cannot encode 24x24 images"):
        FlareExtractor(image_space(size=24), encoder="nature")
    with pytest.raises(ValueError, match="Unknown encoder 'resnet'"):
        FlareExtractor(image_space(), encoder="resnet")


@pytest.mark.parametrize("cls", PIXEL_EXTRACTORS)
def test_detach_encoder_trains_the_head_but_not_the_encoder(cls) -> None:
    """How RAD/DrQ share one critic-trained encoder with the actor: the actor's copy detaches the maps."""
    ext = small(cls, image_space(), n_frames=3)
    x = torch.rand(2, 9, 24, 24)
    expected = ext(x)
    ext.detach_encoder = True
    torch.testing.assert_close(ext.head(ext.encode(x)), expected)
    (ext.head(ext.encode(x)) * torch.randn(16)).sum().backward()  # a LayerNorm's output sums to a constant
    assert all(p.grad is None for p in ext.encoder.parameters())
    assert ext.fc.weight.grad is not None and ext.fc.weight.grad.abs().sum() > 0


def test_large_cpu_batches_are_encoded_in_chunks_with_the_same_result(monkeypatch) -> None:
    from sb3_latent.extractors import base

    ext = small(FlareExtractor, image_space(size=16), n_frames=3)
    x = torch.rand(8, 9, 16, 16)
    whole = ext(x)
    calls = []
    ext.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    monkeypatch.setattr(base, "CPU_ENCODE_CHUNK", 5)
    torch.testing.assert_close(ext(x), whole)
    assert calls == [5, 5, 5, 5, 4]  # 24 frames in chunks of at most 5
