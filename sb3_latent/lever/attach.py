"""LeVER for a model: :func:`attach_lever` gives it a bound LeVER buffer, :func:`load_encoder` copies the layers
LeVER freezes from another model (transfer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from sb3_latent.lever.binding import CONSUMERS
from sb3_latent.lever.buffer import LeVERReplayBuffer
from sb3_latent.lever.extractor import split_extractor


def attach_lever(
    model: BaseAlgorithm,
    T_f: int | None = None,
    K: int | None = None,
    encoder_from: str | Path | BaseAlgorithm | None = None,
    **kwargs: Any,
) -> BaseAlgorithm:
    """Give a stock SB3 / sb3-contrib model (SAC, TD3, DQN, QRDQN, and our RAD / DrQ-v2) a LeVER buffer
    bound to its encoders; returns the model. Call it again after ``Model.load`` or
    ``model.load_replay_buffer`` (with no arguments it keeps the saved settings and the loaded buffer)::

        model = attach_lever(SAC("CnnPolicy", env, buffer_size=100_000), T_f=10_000, K=4)
        model.learn(200_000)  # images until 10k updates, latents after

    :param model: the model; its current buffer is replaced (a LeVER buffer it already has is kept and bound)
    :param T_f: freezing time (see :class:`LeVERReplayBuffer`)
    :param K: augmented copies per observation
    :param encoder_from: transfer (paper §5.5): a saved model (path) or a model whose frozen layers are
        copied into this one, which is then frozen from step 0
    :param kwargs: other :class:`LeVERReplayBuffer` arguments (``freeze``, ``memory_budget``, ``T_f_unit``, ...)
    """
    given = {**{k: v for k, v in {"T_f": T_f, "K": K}.items() if v is not None}, **kwargs}
    if encoder_from is not None:
        given["frozen"] = True
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        raise TypeError(f"LeVER needs an off-policy model with a replay buffer; {type(model).__name__} has none")
    settings: dict[str, Any] | None = None
    if not (isinstance(buffer, LeVERReplayBuffer) and not given):
        if not isinstance(buffer, LeVERReplayBuffer) and buffer.size() > 0:
            raise ValueError(
                f"attach_lever replaces the replay buffer, which already holds {buffer.size()} "
                "transitions; attach LeVER before learning (or save them first with save_replay_buffer)"
            )
        saved = getattr(model, "replay_buffer_kwargs", None) or {}
        settings = {**(saved if getattr(model, "replay_buffer_class", None) is LeVERReplayBuffer else {}), **given}
        if getattr(model, "n_steps", 1) > 1:
            settings.setdefault("n_steps", model.n_steps)  # type: ignore[attr-defined]
            settings.setdefault("gamma", model.gamma)  # type: ignore[attr-defined]
        buffer = LeVERReplayBuffer(
            model.buffer_size,  # type: ignore[attr-defined]
            model.observation_space,
            model.action_space,
            device=model.device,
            n_envs=model.n_envs,
            **settings,
        )
    assert isinstance(buffer, LeVERReplayBuffer)
    if encoder_from is not None:
        load_encoder(model, encoder_from, buffer.freeze_mode)
    buffer.bind(model)  # may refuse (a buffer the freeze would shrink): the model is then left as it was
    if settings is not None:
        setattr(model, "replay_buffer_class", LeVERReplayBuffer)  # noqa: B010
        setattr(model, "replay_buffer_kwargs", settings)  # noqa: B010
    model.replay_buffer = buffer  # type: ignore[attr-defined]
    return model


def load_encoder(model: BaseAlgorithm, source: str | Path | BaseAlgorithm, freeze: str = "fc") -> list[str]:
    """Copy the layers LeVER freezes (conv encoder and, for ``"fc"``, the first Linear) from ``source``
    (a model or a saved ``.zip``) into ``model``, by parameter name; return the names copied.

    :raises ValueError: when a layer is missing in ``source`` or has another shape
    """
    state: dict[str, Any]
    if isinstance(source, BaseAlgorithm):
        state = source.policy.state_dict()
    else:
        from stable_baselines3.common.save_util import load_from_zip_file

        _, params, _ = load_from_zip_file(source, device=model.device)
        if params is None or "policy" not in params:
            raise ValueError(f"{str(source)!r} holds no policy parameters")
        state = dict(params["policy"])
    names = {id(p): n for n, p in model.policy.named_parameters()}
    wanted: list[str] = []
    for name in CONSUMERS:
        fe = getattr(getattr(model.policy, name, None), "features_extractor", None)
        if isinstance(fe, nn.Module):
            wanted += [names[id(p)] for p in split_extractor(fe, freeze).frozen if id(p) in names]
    wanted = sorted(set(wanted))
    missing = [n for n in wanted if n not in state]
    bad = [n for n in wanted if n in state and state[n].shape != dict(model.policy.named_parameters())[n].shape]
    if missing or bad:
        raise ValueError(
            f"cannot transfer the encoder: source lacks {missing[:4]}{'...' if len(missing) > 4 else ''}"
            f" and has other shapes for {bad[:4]}; source and model need the same encoder architecture"
        )
    params = dict(model.policy.named_parameters())
    with torch.no_grad():
        for n in wanted:
            params[n].copy_(state[n])
    return wanted
