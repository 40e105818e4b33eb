"""CURL (Laskin, Srinivas, Abbeel 2020, "CURL: Contrastive Unsupervised Representations for Reinforcement
Learning") on top of sb3-latent's :class:`~sb3_latent.RAD`.

Besides RAD's update (SAC on augmented pixels, one encoder trained by the critic loss), each update
trains the critic's encoder with a contrastive auxiliary loss: two independent random crops of the same
observations are the anchor and the positive; the anchor goes through the online encoder (query), the
positive through the momentum key encoder (the target critic's encoder, which follows the online one
by EMA with ``encoder_tau``, without gradient); the similarity of every query with every key is the
bilinear form ``q^T W k``, and the loss is the cross-entropy of picking each query's own key among the
batch's keys.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import nn

from sb3_latent import RAD


class CURL(RAD):
    """RAD with CURL's contrastive loss; SB3's interface (``learn``, ``save``/``load``, ...).

    Parameters as :class:`~sb3_latent.RAD`, with CURL's defaults (random crop 100 -> 84; obs, next_obs and the
    contrastive pair cropped independently, as curl ``utils.ReplayBuffer.sample_cpc``), plus:

    :param curl_lr: learning rate of the contrastive loss's optimizer (encoder and ``W``; CURL: 1e-3)
    :param curl_weight: weight of the contrastive loss
    :param kwargs: every :class:`~sb3_latent.RAD` argument
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        augment: str | None = "crop",
        same_augmentation: bool = False,
        curl_lr: float = 1e-3,
        curl_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        if curl_lr <= 0 or curl_weight <= 0:
            raise ValueError(f"curl_lr and curl_weight must be > 0, got {curl_lr!r} and {curl_weight!r}")
        self.curl_lr, self.curl_weight = curl_lr, curl_weight
        super().__init__(policy, env, augment=augment, same_augmentation=same_augmentation, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        fe = self.critic.features_extractor
        if not hasattr(fe, "encode"):
            raise TypeError(f"CURL needs a pixel extractor with an encoder (CnnPolicy), got {type(fe).__name__}")
        dim = fe.features_dim
        # W lives in the policy, so save/load and .to(device) carry it like every other weight
        self.policy.curl_W = nn.Parameter(torch.rand(dim, dim, device=self.device))
        params = [self.policy.curl_W, *fe.parameters()]
        self.curl_optimizer = torch.optim.Adam(params, lr=self.curl_lr)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return [*state_dicts, "curl_optimizer"], variables

    def contrastive_loss(self, obs: torch.Tensor) -> torch.Tensor:
        """CURL's InfoNCE loss on a batch of (uint8) observations: two independent augmentations,
        online queries against momentum keys through ``W``."""
        aug: Any = self.policy.augmentation
        anchor, positive = aug(obs, obs, same=False) if aug is not None else (obs, obs)
        online: Any = self.critic.features_extractor  # a PixelExtractor (encode, head)
        target: Any = self.critic_target.features_extractor
        q = online.head(online.encode(self._preprocess(anchor)))
        with torch.no_grad():
            k = target.head(target.encode(self._preprocess(positive)))
        logits = q @ self.policy.curl_W @ k.T
        logits = logits - logits.max(dim=1, keepdim=True)[0].detach()
        return F.cross_entropy(logits, torch.arange(len(q), device=q.device))

    def update(self, batch: ReplayBufferSamples) -> dict[str, torch.Tensor]:
        """RAD's update, then one step on the contrastive loss; none once the encoder is frozen (nothing is left
        to train, and the batch may hold no images)."""
        logs = super().update(batch)
        encoder: Any = self.critic.features_extractor.encoder
        if not any(p.requires_grad for p in encoder.parameters()):
            return logs
        loss = self.curl_weight * self.contrastive_loss(batch.observations)
        self.curl_optimizer.zero_grad()
        loss.backward()
        self.curl_optimizer.step()
        logs["curl_loss"] = loss.detach()
        return logs
