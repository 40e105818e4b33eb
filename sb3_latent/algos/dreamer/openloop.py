"""Look inside a Dreamer world model: open-loop video predictions (the DreamerV3 paper's Figure 5 / the official
code's ``openloop`` report): a few context frames are filtered by the posterior, then the model imagines the rest of
the sequence from the true actions alone; truth, model and their difference side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sb3_latent.algos.dreamer.networks import State, feat

if TYPE_CHECKING:
    from sb3_latent.algos.dreamer.dreamer import Dreamer


@torch.no_grad()
def open_loop_predictions(
    model: Dreamer, n_sequences: int = 4, context: int = 5, horizon: int = 15, key: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Truth and model frames for ``n_sequences`` sequences of ``context + horizon`` steps from the replay buffer
    (drawn inside episodes): the first ``context`` model frames are reconstructions from the posterior, the others
    open-loop predictions of the prior given the true actions (the prior's most likely latents).

    :param model: a Dreamer model with image observations and a replay buffer holding an episode of
        ``context + horizon + 1`` steps
    :param n_sequences: sequences drawn
    :param context: steps seen by the posterior
    :param horizon: steps predicted open loop
    :param key: the image key of a Dict observation (default: the first image)
    :return: truth and model frames, uint8 ``(n_sequences, context + horizon, H, W, C)``
    """
    wm = model.policy.world_model
    images = wm.decoder.images
    if not images:
        raise ValueError("open-loop predictions show images: the model's observations have none")
    key = key or images[0]
    if key not in images:
        raise ValueError(f"no image observation {key!r}; the image keys are {images}")
    if context < 1 or horizon < 1:
        raise ValueError(f"need context >= 1 and horizon >= 1, got {context} and {horizon}")
    was_training = model.policy.training
    model.policy.set_training_mode(False)
    batch = model.replay_buffer.sample(n_sequences, sequence_length=context + horizon + 1, mode="episode")
    obs, prev_a, _, first, _ = model._batch(batch)
    post, _, _ = wm.rssm.observe(
        wm.encoder({k: v[:, :context] for k, v in obs.items()}), prev_a[:, :context], first[:, :context]
    )
    s = State(post.deter[:, -1], post.stoch[:, -1])
    imagined = []
    for t in range(context, context + horizon):
        s, _ = wm.rssm.img_step(s, prev_a[:, t], sample=False)
        imagined.append(feat(s))
    f = torch.cat([feat(post), torch.stack(imagined, 1)], 1)
    pred = wm.decoder.convs[key](f) + 0.5

    def frames(x: torch.Tensor) -> np.ndarray:
        return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()

    truth = obs[key].float() / 255.0
    model.policy.set_training_mode(was_training)
    return frames(truth), frames(pred)


def write_open_loop(
    model: Dreamer, path: str | Path, n_sequences: int = 4, context: int = 5, horizon: int = 15, key: str | None = None
) -> tuple[Path, Path]:
    """Write :func:`open_loop_predictions` as a PNG grid (per sequence: rows truth, model, |difference|; a line marks
    where the open-loop part starts) and a GIF (the same three rows, one frame per step).

    :param model: see :func:`open_loop_predictions`
    :param path: file name; ``.png`` and ``.gif`` are written next to each other
    :param n_sequences: sequences shown
    :param context: steps seen by the posterior
    :param horizon: steps predicted open loop
    :param key: the image key of a Dict observation
    :return: the PNG and GIF paths
    """
    import imageio.v2 as imageio

    truth, pred = open_loop_predictions(model, n_sequences, context, horizon, key)
    diff = np.abs(truth.astype(np.int16) - pred.astype(np.int16)).astype(np.uint8)
    n, t, h, w, c = truth.shape
    rows = np.stack([truth, pred, diff], 1)  # (n, 3, t, h, w, c)
    if c == 1:
        rows = rows.repeat(3, -1)
    rows = rows[..., :3]
    pad = np.full((n, 3, t, h + 2, w + 2, 3), 255, np.uint8)
    pad[:, :, :, 1:-1, 1:-1] = rows
    pad[:, :, context:, :, 0] = (255, 0, 0)  # a red left edge on open-loop frames
    grid = pad.transpose(0, 1, 3, 2, 4, 5).reshape(n * 3 * (h + 2), t * (w + 2), 3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png, gif = path.with_suffix(".png"), path.with_suffix(".gif")
    imageio.imwrite(png, grid)
    video = pad.transpose(2, 0, 1, 3, 4, 5)  # (t, n, 3, h, w, 3) -> per step: sequences side by side, 3 rows
    video = video.transpose(0, 2, 3, 1, 4, 5).reshape(t, 3 * (h + 2), n * (w + 2), 3)
    imageio.mimsave(gif, list(video), duration=0.2, loop=0)
    return png, gif
