"""What a LeVER buffer needs from its model (never pickled): the networks' extractors cut at the freeze and
wrapped in :class:`~sb3_latent.lever.extractor.LeVERExtractor`, the augmentation of the K copies, encoding,
and freezing the encoders."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from torch import nn

from sb3_latent.augment import Augmentation, make_augmentation
from sb3_latent.lever.extractor import LeVERExtractor, Split, split_extractor

if TYPE_CHECKING:
    from sb3_latent.lever.buffer import LeVERReplayBuffer

#: online networks that own an extractor, and the online network each target network follows
CONSUMERS: dict[str, str | None] = {
    "critic": None,
    "actor": None,
    "q_net": None,
    "quantile_net": None,
    "critic_target": "critic",
    "actor_target": "actor",
    "q_net_target": "q_net",
    "quantile_net_target": "quantile_net",
}


class Binding:
    """What the buffer needs from its model (never pickled): the cut extractors and how to encode."""

    def __init__(self, model: BaseAlgorithm, buffer: LeVERReplayBuffer) -> None:
        policy = model.policy
        space = model.observation_space
        if not isinstance(space, spaces.Box) or not is_image_space(space, check_channels=False):
            raise TypeError(f"LeVERReplayBuffer needs image observations (C, H, W); {type(model).__name__} has {space}")
        self.model = model
        found = {
            name: getattr(policy, name)
            for name in CONSUMERS
            if isinstance(getattr(getattr(policy, name, None), "features_extractor", None), nn.Module)
        }
        if not found:
            raise TypeError(
                f"LeVER cannot work with {type(model).__name__}: its policy has none of the networks "
                f"{sorted(CONSUMERS)} with a features extractor (SAC, TD3, DQN, QRDQN, RAD, DrQ-v2 do)"
            )
        self.normalize = bool(getattr(policy, "normalize_images", True))
        # one slot per distinct frozen encoder among the online networks; targets read their online network's
        keys: dict[tuple[int, ...], int] = {}
        self.slots: list[Split] = []
        self.by_extractor: dict[int, tuple[int, Split]] = {}
        for name in sorted(found, key=lambda n: CONSUMERS[n] is not None):
            fe = found[name].features_extractor
            split = split_extractor(fe, buffer.freeze_mode)
            source = CONSUMERS[name]
            if source is None:
                key = tuple(id(p) for p in split.frozen)
                slot = keys.setdefault(key, len(keys))
                if slot == len(self.slots):
                    self.slots.append(split)
            else:
                slot = self.by_extractor[id(found[source].features_extractor)][0]
            self.by_extractor[id(fe)] = (slot, split)
        self._networks, self._freeze_mode = found, buffer.freeze_mode
        self.frozen_params = list({id(p): p for s in self.slots for p in s.frozen}.values())
        self.aug, self.view = self._augmentation(policy, buffer)

    def install(self) -> None:
        """Put a :class:`LeVERExtractor` in each network (once the buffer accepted the binding: a refused one leaves
        the model as it was)."""
        for network in self._networks.values():
            fe = network.features_extractor
            if not isinstance(fe, LeVERExtractor):
                slot, split = self.by_extractor[id(fe)]
                network.features_extractor = LeVERExtractor(fe, self._freeze_mode, slot, self.normalize)
                network.normalize_images = False
                self.by_extractor[id(network.features_extractor)] = (slot, split)

    @staticmethod
    def _augmentation(policy: Any, buffer: LeVERReplayBuffer) -> tuple[Augmentation | None, Callable[..., Any]]:
        view = getattr(policy, "eval_view", lambda x: x)
        if buffer.augment == "default":
            # the algorithm's own (RAD: translate, DrQ-v2: shift); stock SB3 has none: DrQ's shift, pad 4
            aug = policy.augmentation if hasattr(policy, "augmentation") else make_augmentation("shift")
        else:
            aug = make_augmentation(buffer.augment, **(buffer.augment_kwargs or {}))
        if aug is None and buffer.K > 1:
            raise ValueError(f"K={buffer.K} augmented copies need an augmentation; got augment=None (use K=1)")
        return aug, view

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    @property
    def latent_dim(self) -> int:
        return self.slots[0].latent_dim

    @torch.no_grad()
    def encode(self, images: np.ndarray, K: int) -> np.ndarray:
        """Latents ``(B, N, K, L)`` of uint8 images ``(B, C, H, W)``: K augmented copies through each frozen encoder."""
        x = torch.as_tensor(images, device=self.model.device).float()
        out = np.empty((len(images), self.n_slots, K, self.latent_dim), dtype=np.float32)
        for k in range(K):
            xk = self.aug(x) if self.aug is not None else self.view(x)
            assert isinstance(xk, torch.Tensor)
            xk = xk / 255.0 if self.normalize else xk
            bodies: dict[int, torch.Tensor] = {}  # a conv encoder shared by two slots runs once
            for n, split in enumerate(self.slots):
                if split.body_id not in bodies:
                    bodies[split.body_id] = split.body(xk)
                out[:, n, k] = split.tail(bodies[split.body_id]).float().cpu().numpy()
        return out

    def freeze_model(self) -> None:
        """Freeze the encoders: no gradient, no optimizer state; remember it in the model's buffer kwargs
        (a saved model reloads frozen)."""
        optimizers: list[torch.optim.Optimizer] = [
            opt
            for m in [self.model.policy, *self.model.policy.modules()]
            if isinstance(opt := getattr(m, "optimizer", None), torch.optim.Optimizer)
        ]
        for p in self.frozen_params:
            p.requires_grad_(False)
            p.grad = None
            for opt in optimizers:
                opt.state.pop(p, None)
        kwargs = dict(getattr(self.model, "replay_buffer_kwargs", None) or {})
        setattr(self.model, "replay_buffer_kwargs", {**kwargs, "frozen": True})  # noqa: B010
