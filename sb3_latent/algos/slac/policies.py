"""SLAC's networks (Lee, Nagabandi, Abbeel, Levine 2020, Appendix A): the sequential latent variable
model, the actor on a history of features and actions, and twin soft Q critics on the latent state.

Names follow the paper: ``x`` frames, ``a`` actions, ``z1`` (32) and ``z2`` (256) the two stochastic
layers, ``f = encoder(x)`` the 256-d features. Every distribution is a diagonal Gaussian whose mean is
linear and whose std is ``softplus(.) + 1e-5``; hidden layers are 2 x 256 with leaky ReLU (0.2).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from torch.nn import functional as F

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def _init(m: nn.Module) -> None:
    """Xavier-uniform weights, zero biases (the reference port's initialisation)."""
    if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def mlp(inp: int, out: int, hidden: tuple[int, ...], act: type[nn.Module] = nn.LeakyReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(inp, h), act(0.2) if act is nn.LeakyReLU else act()]
        inp = h
    return nn.Sequential(*layers, nn.Linear(inp, out))


class Gaussian(nn.Module):
    """``N(mean(x), diag(std(x)^2))`` with a 2 x 256 leaky-ReLU MLP (Appendix A)."""

    def __init__(self, inp: int, out: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.net = mlp(inp, 2 * out, hidden)

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self.net(torch.cat(xs, dim=-1)).chunk(2, dim=-1)
        return mean, F.softplus(std) + 1e-5


def gaussian_kl(mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor, std_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean_q, std_q^2) || N(mean_p, std_p^2))`` per dimension."""
    ratio = (std_q / std_p).pow(2)
    return 0.5 * (ratio + ((mean_q - mean_p) / std_p).pow(2) - 1.0 - ratio.log())


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float) -> torch.Tensor:
    """``-log N(x; mean, std^2)`` per element."""
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    return 0.5 * ((x - mean) / std_t).pow(2) + std_t.log() + 0.5 * math.log(2 * math.pi)


class FullConv2d(nn.Conv2d):
    """A convolution whose kernel covers its whole input (the encoder's last layer: 4x4 → 1x1): computed
    as the dense layer it is, one matrix product instead of the convolution kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.kernel_size:
            return super().forward(x)
        return F.linear(x.reshape(len(x), -1), self.weight.reshape(self.out_channels, -1), self.bias)[..., None, None]


class FullConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution from a 1x1 input (the decoder's first layer: z → 4x4 maps): computed as
    the dense layer it is, one matrix product (forward and backward)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.shape[-2:] != (1, 1) or output_size is not None:
            return super().forward(x, output_size)
        out = x.reshape(len(x), -1) @ self.weight.reshape(self.in_channels, -1)
        out = out.reshape(len(x), self.out_channels, *self.kernel_size)
        return out + self.bias[:, None, None] if self.bias is not None else out


def conv_encoder(channels: int, features: int = 256, width: int = 32, size: int = 64) -> nn.Sequential:
    """5 convs (32 5x5, 64 3x3, 128 3x3, 256 3x3 stride 2; 256 4x4 at ``width`` 32 and ``size`` 64):
    (C, size, size) → (features,); the last kernel is ``size / 16`` (4 for the paper's 64x64 frames)."""
    w = width
    return nn.Sequential(
        nn.Conv2d(channels, w, 5, 2, 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(w, 2 * w, 3, 2, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(2 * w, 4 * w, 3, 2, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(4 * w, 8 * w, 3, 2, 1),
        nn.LeakyReLU(0.2, inplace=True),
        FullConv2d(8 * w, features, size // 16),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Flatten(),
    )


def conv_decoder(latent: int, channels: int, width: int = 32, size: int = 64) -> nn.Sequential:
    """5 transposed convs (256 4x4; 128, 64, 32 3x3 and C 5x5 stride 2 at ``width`` 32 and ``size`` 64):
    z → (C, size, size) pixel means. No activation on the output layer (Appendix A; the reference port
    adds a leaky ReLU there)."""
    w = width
    return nn.Sequential(
        nn.Unflatten(1, (latent, 1, 1)),
        FullConvTranspose2d(latent, 8 * w, size // 16),
        nn.LeakyReLU(0.2, inplace=True),
        nn.ConvTranspose2d(8 * w, 4 * w, 3, 2, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.ConvTranspose2d(2 * w, w, 3, 2, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.ConvTranspose2d(w, channels, 5, 2, 2, 1),
    )


class LatentModel(nn.Module):
    """The model of §6: ``p(z1_1) = N(0, I)``, ``p(z2_1 | z1_1)``, ``p(z1_t+1 | z2_t, a_t)``,
    ``p(z2_t+1 | z1_t+1, z2_t, a_t)``; posteriors ``q(z1_1 | x_1)``, ``q(z1_t+1 | x_t+1, z2_t, a_t)``
    with ``q(z2 | .)`` = ``p(z2 | .)`` (so the KL is over z1 only); decoder ``p(x_t | z_t)`` with fixed
    std ``√0.1``; reward ``p(r_t | z_t, a_t, z_t+1)``.

    :param channels: image channels
    :param action_dim: action size
    :param z1_dim: size of z1 (paper: 32)
    :param z2_dim: size of z2 (paper: 256)
    :param feature_dim: encoder output (paper: 256)
    :param hidden: hidden layers of every Gaussian (paper: 256, 256)
    :param pixel_std: std of the decoder's pixel Gaussian (paper: √0.1)
    :param conv_width: channels of the first conv (paper: 32; the others are 2x, 4x, 8x)
    :param size: frame side, a multiple of 16 (paper: 64)
    """

    optimizer: torch.optim.Optimizer

    def __init__(
        self,
        channels: int,
        action_dim: int,
        z1_dim: int = 32,
        z2_dim: int = 256,
        feature_dim: int = 256,
        hidden: tuple[int, ...] = (256, 256),
        pixel_std: float = math.sqrt(0.1),
        conv_width: int = 32,
        size: int = 64,
    ) -> None:
        super().__init__()
        if size < 16 or size % 16:
            raise ValueError(f"SLAC's conv stack needs square frames whose side is a multiple of 16, got {size}")
        self.z1_dim, self.z2_dim, self.pixel_std = z1_dim, z2_dim, pixel_std
        self.encoder = conv_encoder(channels, feature_dim, conv_width, size)
        self.decoder = conv_decoder(z1_dim + z2_dim, channels, conv_width, size)
        self.z2_init = Gaussian(z1_dim, z2_dim, hidden)  # p(z2_1 | z1_1) = q(z2_1 | z1_1)
        self.z1_prior = Gaussian(z2_dim + action_dim, z1_dim, hidden)  # p(z1_t+1 | z2_t, a_t)
        self.z2_step = Gaussian(z1_dim + z2_dim + action_dim, z2_dim, hidden)  # p(z2_t+1 | z1_t+1, z2_t, a_t) = q(.)
        self.z1_post_init = Gaussian(feature_dim, z1_dim, hidden)  # q(z1_1 | x_1)
        self.z1_post = Gaussian(feature_dim + z2_dim + action_dim, z1_dim, hidden)  # q(z1_t+1 | x_t+1, z2_t, a_t)
        self.reward = Gaussian(2 * (z1_dim + z2_dim) + action_dim, 1, hidden)  # p(r_t | z_t, a_t, z_t+1)
        self.apply(_init)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, T, C, 64, 64)`` in [0, 1] → features ``(B, T, feature_dim)``."""
        b, t = x.shape[:2]
        x = x.reshape(b * t, *x.shape[2:]).contiguous(memory_format=torch.channels_last)
        return self.encoder(x).reshape(b, t, -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, T, z1 + z2)`` → pixel means ``(B, T, C, 64, 64)``."""
        b, t = z.shape[:2]
        out = self.decoder(z.reshape(b * t, -1))
        return out.reshape(b, t, *out.shape[1:])

    @staticmethod
    def _sample(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return mean + std * torch.randn_like(std)

    def posterior(self, f: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Filter ``z_1..z_T`` from features ``(B, T, F)`` and actions ``(B, T-1, A)`` by reparameterised
        sampling; return z1 means, z1 stds, z1 and z2 samples, each ``(B, T, .)``."""
        mean, std = self.z1_post_init(f[:, 0])
        z1 = self._sample(mean, std)
        z2 = self._sample(*self.z2_init(z1))
        out = [(mean, std, z1, z2)]
        for t in range(a.shape[1]):
            mean, std = self.z1_post(f[:, t + 1], z2, a[:, t])
            z1 = self._sample(mean, std)
            z2 = self._sample(*self.z2_step(z1, z2, a[:, t]))
            out.append((mean, std, z1, z2))
        return tuple(torch.stack(x, dim=1) for x in zip(*out, strict=True))

    def imagine(self, z1: torch.Tensor, z2: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Roll the prior ``p(z_t+1 | z_t, a_t)`` from ``(z1, z2)`` ``(B, .)`` through actions ``(B, T-1, A)``;
        return ``z_1..z_T`` ``(B, T, z1 + z2)`` (no frames after the first are seen)."""
        out = [torch.cat([z1, z2], dim=-1)]
        for t in range(a.shape[1]):
            z1 = self._sample(*self.z1_prior(z2, a[:, t]))
            z2 = self._sample(*self.z2_step(z1, z2, a[:, t]))
            out.append(torch.cat([z1, z2], dim=-1))
        return torch.stack(out, dim=1)

    def prior_of(self, z2: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior of z1 along a posterior path: ``N(0, I)`` at t = 1, ``p(z1_t+1 | z2_t, a_t)`` after."""
        mean, std = self.z1_prior(z2[:, :-1], a)
        zero = torch.zeros_like(mean[:, :1])
        return torch.cat([zero, mean], dim=1), torch.cat([torch.ones_like(zero), std], dim=1)

    def loss(self, x: torch.Tensor, a: torch.Tensor, r: torch.Tensor, done: torch.Tensor) -> dict[str, torch.Tensor]:
        """Negative ELBO of eq. (9) plus the reward term, for frames ``(B, T, C, H, W)`` in [0, 1],
        actions ``(B, T-1, A)``, rewards and terminations ``(B, T-1, 1)``: summed over time and
        dimensions, averaged over the batch (the reference port's scaling)."""
        f = self.encode(x)
        mean_q, std_q, z1, z2 = self.posterior(f, a)
        mean_p, std_p = self.prior_of(z2, a)
        kl = gaussian_kl(mean_q, std_q, mean_p, std_p).sum(dim=(1, 2)).mean()
        z = torch.cat([z1, z2], dim=-1)
        recon = gaussian_nll(x, self.decode(z), self.pixel_std).sum(dim=(1, 2, 3, 4)).mean()
        r_mean, r_std = self.reward(z[:, :-1], a, z[:, 1:])
        reward_nll = (gaussian_nll(r, r_mean, r_std) * (1.0 - done)).sum(dim=(1, 2)).mean()
        return {"kl": kl, "recon": recon, "reward_nll": reward_nll, "loss": kl + recon + reward_nll}


class SquashedGaussianActor(nn.Module):
    """``π(a | x_1:τ, a_1:τ-1)``: MLP (2 x 256, ReLU) on τ features and τ - 1 actions → mean and log std,
    then ``tanh`` (Appendix A)."""

    optimizer: torch.optim.Optimizer

    def __init__(self, inp: int, action_dim: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.net = mlp(inp, 2 * action_dim, hidden, act=nn.ReLU)
        self.apply(_init)

    def forward(self, h: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Action in (-1, 1) and its log-probability ``(B, 1)``."""
        mean, log_std = self.net(h).float().chunk(2, dim=-1)  # the distribution in float32 (also under amp)
        std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        u = mean if deterministic else mean + std * torch.randn_like(mean)
        a = torch.tanh(u)
        log_prob = (-0.5 * ((u - mean) / std).pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
        return a, log_prob - torch.log1p(-a.pow(2) + 1e-6).sum(-1, keepdim=True)


class TwinQ(nn.Module):
    """Two soft Q networks on ``(z1, z2, a)``, 2 x 256 ReLU each."""

    optimizer: torch.optim.Optimizer

    def __init__(self, inp: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.q1, self.q2 = mlp(inp, 1, hidden, act=nn.ReLU), mlp(inp, 1, hidden, act=nn.ReLU)
        self.apply(_init)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([z, a], dim=-1)
        return self.q1(x), self.q2(x)


class SLACPolicy(BasePolicy):
    """SLAC's networks in one SB3 policy: ``latent`` (model, whose encoder the actor reads without
    training it), ``actor``, ``critic`` and ``critic_target``. It acts from a history (see
    :meth:`act`); :meth:`sb3_latent.SLAC.predict` keeps that history per env.

    :param observation_space: single frames ``(C, S, S)``, uint8, ``S`` a multiple of 16 (paper: 64)
    :param action_space: ``Box`` actions
    :param lr_schedule: SAC learning rate (paper: 3e-4)
    :param sequence_length: τ, frames in the actor's history (paper: 8)
    :param z1_dim: size of z1 (paper: 32)
    :param z2_dim: size of z2 (paper: 256)
    :param feature_dim: encoder features (paper: 256)
    :param hidden: hidden layers of every MLP (paper: 256, 256)
    :param model_lr: learning rate of the latent model (paper: 1e-4)
    :param conv_width: channels of the first conv of encoder and decoder (paper: 32)
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Box,
        lr_schedule: Schedule,
        sequence_length: int = 8,
        z1_dim: int = 32,
        z2_dim: int = 256,
        feature_dim: int = 256,
        hidden: tuple[int, ...] | list[int] = (256, 256),
        model_lr: float = 1e-4,
        conv_width: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **kwargs)
        assert observation_space.shape is not None and action_space.shape is not None
        channels, a_dim = observation_space.shape[0], int(np.prod(action_space.shape))
        self.sequence_length, self.z1_dim, self.z2_dim = int(sequence_length), z1_dim, z2_dim
        if self.sequence_length < 2:
            raise ValueError(f"sequence_length (τ) must be >= 2, got {sequence_length!r}")
        self.feature_dim, self.hidden, self.model_lr, self.conv_width = feature_dim, tuple(hidden), model_lr, conv_width
        self.latent = LatentModel(
            channels,
            a_dim,
            z1_dim,
            z2_dim,
            feature_dim,
            self.hidden,
            conv_width=conv_width,
            size=observation_space.shape[-1],
        )
        self.latent.encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.latent.decoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        tau = self.sequence_length
        self.actor = SquashedGaussianActor(tau * feature_dim + (tau - 1) * a_dim, a_dim, self.hidden)
        self.critic = TwinQ(z1_dim + z2_dim + a_dim, self.hidden)
        self.critic_target = TwinQ(z1_dim + z2_dim + a_dim, self.hidden)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        lr, opt = lr_schedule(1), self.optimizer_class
        self.actor.optimizer = opt(self.actor.parameters(), lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]
        self.critic.optimizer = opt(self.critic.parameters(), lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]
        self.latent.optimizer = opt(self.latent.parameters(), lr=model_lr, **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            sequence_length=self.sequence_length,
            z1_dim=self.z1_dim,
            z2_dim=self.z2_dim,
            feature_dim=self.feature_dim,
            hidden=list(self.hidden),
            model_lr=self.model_lr,
            conv_width=self.conv_width,
        )
        return data

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(N, feature_dim)`` of uint8 frames ``(N, C, H, W)``; no gradient."""
        with torch.no_grad():
            return self.latent.encode(obs.float().div(255.0)[:, None])[:, 0]

    def history_input(self, f: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The actor's input from features ``(B, τ, F)`` and actions ``(B, τ-1, A)``."""
        return torch.cat([f.flatten(1), a.flatten(1)], dim=1)

    def act(self, f: torch.Tensor, a: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        with torch.no_grad():
            return self.actor(self.history_input(f, a), deterministic)[0]

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        raise RuntimeError(
            "SLAC acts from a history of frames and actions: use SLAC.predict(obs, state, "
            "episode_start), which keeps it per env"
        )

    def set_training_mode(self, mode: bool) -> None:
        self.latent.train(mode)
        self.actor.train(mode)
        self.critic.train(mode)
        self.training = mode
