"""Augmentations: one random transform per sample, shared by all of its frames."""

import pytest
import torch
import torch.nn.functional as F

from sb3_latent import RandomCrop, RandomShift, RandomTranslate, make_augmentation


def stacked_batch(b: int = 16, frames: int = 3, size: int = 20) -> torch.Tensor:
    """A batch of stacks whose frames are identical copies of one random image."""
    img = torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8)
    return img.repeat(1, frames, 1, 1)


def assert_frames_move_together(out: torch.Tensor, frames: int = 3) -> None:
    chunks = out.chunk(frames, dim=1)
    for c in chunks[1:]:
        assert torch.equal(c, chunks[0])


def test_shift_is_an_integer_translation_of_the_replicate_padded_image() -> None:
    aug = RandomShift(pad=4)
    x = stacked_batch().float()
    params = aug.sample_params(x)
    assert params.min() >= 0 and params.max() <= 8
    out = aug.apply(x, params)
    padded = F.pad(x, (4, 4, 4, 4), mode="replicate")
    for i in range(x.shape[0]):
        r, c = params[i].tolist()
        torch.testing.assert_close(out[i], padded[i, :, r : r + 20, c : c + 20], atol=1e-3, rtol=0)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert_frames_move_together(out)


def test_shift_with_no_padding_and_centre_are_identity() -> None:
    x = stacked_batch().float()
    assert torch.equal(RandomShift(pad=0)(x), x)
    assert torch.equal(RandomShift(pad=4).center(x), x)


def test_translate_places_the_whole_image_on_a_zero_canvas() -> None:
    aug = RandomTranslate(size=28)
    x = stacked_batch(size=20) + 1  # no zero pixels, so the canvas border is recognisable
    params = aug.sample_params(x)
    out = aug.apply(x, params)
    assert out.shape == (16, 9, 28, 28) and out.dtype == torch.uint8
    for i in range(16):
        r, c = params[i].tolist()
        assert torch.equal(out[i, :, r : r + 20, c : c + 20], x[i])
        assert out[i].sum(dtype=torch.int64) == x[i].sum(dtype=torch.int64)  # zeros elsewhere
    assert_frames_move_together(out)
    assert aug.output_size(20, 20) == (28, 28)


def test_crop_returns_a_window_of_the_image() -> None:
    aug = RandomCrop(size=14)
    x = stacked_batch(size=20)
    params = aug.sample_params(x)
    out = aug.apply(x, params)
    assert out.shape == (16, 9, 14, 14) and out.dtype == torch.uint8
    for i in range(16):
        r, c = params[i].tolist()
        assert torch.equal(out[i], x[i, :, r : r + 14, c : c + 14])
    assert_frames_move_together(out)
    assert torch.equal(aug.center(x), x[:, :, 3:17, 3:17])


def test_each_sample_gets_its_own_transform() -> None:
    params = RandomCrop(size=10).sample_params(stacked_batch(b=64, size=20))
    assert len({tuple(p) for p in params.tolist()}) > 20


@pytest.mark.parametrize("aug", [RandomShift(4), RandomTranslate(28), RandomCrop(14)])
def test_same_true_reuses_the_transforms_for_obs_and_next_obs(aug) -> None:
    x = stacked_batch(b=32).float()
    a, b = aug(x, x.clone(), same=True)
    assert torch.equal(a, b)
    a, b = aug(x, x.clone())  # independent by default
    assert not torch.equal(a, b)


def test_bad_inputs_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="no larger than the canvas"):
        RandomTranslate(size=16)(stacked_batch(size=20))
    with pytest.raises(ValueError, match="at least that large"):
        RandomCrop(size=24)(stacked_batch(size=20))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        RandomShift()(torch.zeros(3, 20, 20))
    with pytest.raises(ValueError, match="one shape"):
        RandomShift()(torch.zeros(2, 3, 20, 20), torch.zeros(2, 3, 24, 24), same=True)
    with pytest.raises(ValueError, match="pad must be >= 0"):
        RandomShift(pad=-1)


def test_augmentations_by_registry_name() -> None:
    aug = make_augmentation("translate", size=108)
    assert isinstance(aug, RandomTranslate) and aug.size == 108
    assert make_augmentation(None) is None
    with pytest.raises(ValueError, match="Did you mean 'shift'"):
        make_augmentation("shfit")


def test_shift_equals_drqs_bilinear_resampling_at_integer_offsets() -> None:
    """DrQ samples the padded image with bilinear grid_sample on a grid of pixel centres moved by whole
    pixels; RandomShift gathers those pixels directly (the same image, up to the interpolation's rounding)."""
    aug, p = RandomShift(pad=4), 4
    x = stacked_batch().float()
    params = aug.sample_params(x)
    _n, _, h, _w = x.shape
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    centres = (torch.arange(h) * 2 + 1) / (h + 2 * p) - 1.0  # the first h pixel centres of the padded image
    grid = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), dim=-1)[None]
    grid = grid + params.flip(-1)[:, None, None, :] * 2.0 / (h + 2 * p)
    reference = F.grid_sample(padded, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(aug.apply(x, params), reference, atol=0.01, rtol=0)
    assert torch.equal(aug.apply(x.to(torch.uint8), params), aug.apply(x, params))  # bytes in, same floats out
