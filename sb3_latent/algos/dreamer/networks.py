"""DreamerV3's networks (Hafner et al. 2023, §2 and Appendix): the RSSM with a GRU state and discrete latents,
the observation encoder and decoder (conv for images, symlog MLP for vectors), reward / continue heads, and the
actor and critic that read the model state ``s = (h, z)``.

Shapes: ``h`` (deter) ``(..., D)``; ``z`` (stoch) ``(..., G, K)`` one-hot samples of ``G`` categoricals with ``K``
classes; features ``feat(s) = [h, flatten(z)]``. Hidden layers are Linear → LayerNorm → SiLU throughout.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from sb3_latent.algos.dreamer.distributions import make_bins, onehot_straight_through, symlog, unimix_logits

#: side of the smallest conv feature map (the official code's ``minres``)
MIN_RES = 4


class State(NamedTuple):
    """An RSSM state: deterministic ``deter`` ``(..., D)`` and stochastic one-hot ``stoch`` ``(..., G, K)``."""

    deter: torch.Tensor
    stoch: torch.Tensor


def feat(s: State) -> torch.Tensor:
    """``[h, flatten(z)]``, the input of every head."""
    return torch.cat([s.deter, s.stoch.flatten(-2)], -1)


def mlp(inp: int, units: int, layers: int) -> nn.Sequential:
    """``layers`` × (Linear (no bias) → LayerNorm → SiLU)."""
    out: list[nn.Module] = []
    for _ in range(layers):
        out += [nn.Linear(inp, units, bias=False), nn.LayerNorm(units, eps=1e-3), nn.SiLU()]
        inp = units
    return nn.Sequential(*out)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of ``(N, C, H, W)`` maps (a view, no copy, for channels-last maps)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def image_stages(side: int) -> int:
    """Stride-2 conv stages from ``side`` down to 4x4; raise unless ``side`` is 4 times a power of two ≥ 8."""
    n = round(np.log2(side / MIN_RES)) if side >= 2 * MIN_RES else 0
    if n < 1 or MIN_RES * 2**n != side:
        raise ValueError(
            f"Dreamer's conv encoder halves square images down to {MIN_RES}x{MIN_RES}: the side must be "
            f"4 * 2^k (8, 16, 32, 64, 128, ...), got {side}"
        )
    return n


def action_dim(space: gym.Space) -> int:
    """Width of an action in the model's format (one-hot for ``Discrete``)."""
    return int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape or ()))


def is_image(space: gym.Space) -> bool:
    return isinstance(space, spaces.Box) and len(space.shape) == 3


def check_obs_space(space: gym.Space) -> dict[str, spaces.Box]:
    """The observation space as a dict of images ``(C, H, W)`` uint8 and 1-D vectors; raise a clear error
    for anything else."""
    subs = dict(space.spaces) if isinstance(space, spaces.Dict) else {"obs": space}
    for key, sub in subs.items():
        if not isinstance(sub, spaces.Box) or len(sub.shape) not in (1, 3):
            raise TypeError(
                f"Dreamer takes Box observations, images (C, H, W) or 1-D vectors, or a Dict of them; "
                f"got {sub} for {key!r}"
            )
        if len(sub.shape) == 3:
            if sub.dtype != np.uint8:
                raise TypeError(f"Dreamer's images must be uint8 (C, H, W), got dtype {sub.dtype} for {key!r}")
            if sub.shape[1] != sub.shape[2]:
                raise ValueError(f"Dreamer's images must be square, got {sub.shape} for {key!r}")
            image_stages(sub.shape[1])
    return subs  # type: ignore[return-value]


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convs with ``depth * 2^i`` channels down to 4x4 maps, flattened; input ``x / 255 - 0.5``."""

    def __init__(self, channels: int, side: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(image_stages(side)):
            out = depth * 2**i
            layers += [nn.Conv2d(channels, out, 4, 2, 1, bias=False), ChannelNorm(out, eps=1e-3), nn.SiLU()]
            channels = out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_dim = channels * MIN_RES**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x.float() / 255.0 - 0.5).contiguous(memory_format=torch.channels_last))


class ConvDecoder(nn.Module):
    """The mirror of :class:`ConvEncoder`: Linear to 4x4 maps, stride-2 transposed convs up to the image;
    predicts ``x / 255 - 0.5`` (loss: squared error summed over pixels, a unit-variance Gaussian)."""

    def __init__(self, inp: int, channels: int, side: int, depth: int) -> None:
        super().__init__()
        n = image_stages(side)
        self.top = depth * 2 ** (n - 1)
        self.linear = nn.Linear(inp, self.top * MIN_RES**2)
        layers: list[nn.Module] = []
        c = self.top
        for i in reversed(range(n)):
            out = depth * 2 ** (i - 1) if i else channels
            layers.append(nn.ConvTranspose2d(c, out, 4, 2, 1, bias=i == 0))
            if i:
                layers += [ChannelNorm(out, eps=1e-3), nn.SiLU()]
            c = out
        self.net = nn.Sequential(*layers)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        lead = f.shape[:-1]
        x = self.linear(f).reshape(-1, self.top, MIN_RES, MIN_RES)
        x = self.net(x.contiguous(memory_format=torch.channels_last))
        return x.reshape(*lead, *x.shape[1:])


class ObsEncoder(nn.Module):
    """Every key of a (Dict) observation space to one embedding: images through a :class:`ConvEncoder` each,
    the vectors, symlog-squashed (eq. 9) and concatenated, through one MLP."""

    def __init__(self, space: gym.Space, depth: int, units: int, layers: int) -> None:
        super().__init__()
        subs = check_obs_space(space)
        self.images = [k for k, s in subs.items() if is_image(s)]
        self.vectors = [k for k, s in subs.items() if not is_image(s)]
        convs = {k: ConvEncoder(subs[k].shape[0], subs[k].shape[1], depth) for k in self.images}
        self.convs = nn.ModuleDict(convs)
        vec_dim = sum(int(subs[k].shape[0]) for k in self.vectors)
        self.mlp = mlp(vec_dim, units, max(layers, 1)) if self.vectors else None
        self.out_dim = sum(c.out_dim for c in convs.values()) + (units if self.vectors else 0)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """:param obs: ``(*lead, ...)`` tensors per key (images uint8)"""
        outs = []
        for k in self.images:
            x = obs[k]
            outs.append(self.convs[k](x.reshape(-1, *x.shape[-3:])).reshape(*x.shape[:-3], -1))
        if self.mlp is not None:
            outs.append(self.mlp(symlog(torch.cat([obs[k].float() for k in self.vectors], -1))))
        return torch.cat(outs, -1)


class ObsDecoder(nn.Module):
    """Model features to every key of the observation: images by :class:`ConvDecoder`, vectors (in symlog
    space) by one MLP. :meth:`loss` is the sum of squared errors per step (the decoder's ``-log p`` up to a
    constant)."""

    def __init__(self, space: gym.Space, inp: int, depth: int, units: int, layers: int) -> None:
        super().__init__()
        subs = check_obs_space(space)
        self.images = [k for k, s in subs.items() if is_image(s)]
        self.vectors = {k: int(subs[k].shape[0]) for k, s in subs.items() if not is_image(s)}
        self.convs = nn.ModuleDict(
            {k: ConvDecoder(inp, subs[k].shape[0], subs[k].shape[1], depth) for k in self.images}
        )
        self.mlp = (
            nn.Sequential(mlp(inp, units, max(layers, 1)), nn.Linear(units, sum(self.vectors.values())))
            if self.vectors
            else None
        )

    def forward(self, f: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predictions in target space: ``x / 255 - 0.5`` for images, ``symlog(x)`` for vectors."""
        out = {k: self.convs[k](f) for k in self.images}
        if self.mlp is not None:
            out.update(zip(self.vectors, self.mlp(f).split(list(self.vectors.values()), -1), strict=True))
        return out

    @staticmethod
    def target(obs: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        x = obs[key]
        return x.float() / 255.0 - 0.5 if x.dtype == torch.uint8 else symlog(x.float())

    def loss(self, f: torch.Tensor, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_keys ||pred - target||²`` per step ``(*lead,)``."""
        pred = self(f)
        return sum((pred[k].float() - self.target(obs, k)).pow(2).flatten(f.dim() - 1).sum(-1) for k in pred)


class GRUCell(nn.Module):
    """The LayerNorm GRU of DreamerV3's RSSM: one Linear for the three gates, normalised, update bias -1."""

    def __init__(self, inp: int, size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(inp + size, 3 * size, bias=False)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, cand, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        reset, update = torch.sigmoid(reset), torch.sigmoid(update - 1.0)
        return update * torch.tanh(reset * cand) + (1.0 - update) * h


class RSSM(nn.Module):
    """Recurrent state-space model (DreamerV3 eq. 1): sequence model ``h_t = f(h_{t-1}, z_{t-1}, a_{t-1})``,
    posterior ``z_t ~ q(z_t | h_t, e_t)`` (``e_t`` the observation embedding) and prior ``ẑ_t ~ p(ẑ_t | h_t)``,
    both ``G`` categoricals of ``K`` classes with 1% unimix, sampled with straight-through gradients.

    :param embed_dim: observation embedding size
    :param action_dim: action size (one-hot for discrete actions)
    :param deter: GRU size ``D``
    :param stoch: number of categoricals ``G``
    :param classes: classes per categorical ``K``
    :param hidden: hidden units of the input and output layers
    :param unimix: uniform mixture of the categoricals
    """

    def __init__(
        self, embed_dim: int, action_dim: int, deter: int, stoch: int, classes: int, hidden: int, unimix: float = 0.01
    ) -> None:
        super().__init__()
        self.deter, self.stoch, self.classes, self.unimix = deter, stoch, classes, unimix
        self.img_in = mlp(stoch * classes + action_dim, hidden, 1)
        self.gru = GRUCell(hidden, deter)
        self.prior_net = nn.Sequential(mlp(deter, hidden, 1), nn.Linear(hidden, stoch * classes))
        # q(z | h, e): Linear([h, e]) → LayerNorm → SiLU → Linear, its first Linear split in an ``h`` part and an ``e``
        # part (the same map) so that the ``e`` part runs once for a whole sequence
        self.post_h, self.post_e = nn.Linear(deter, hidden, bias=False), nn.Linear(embed_dim, hidden, bias=False)
        self.post_net = nn.Sequential(nn.LayerNorm(hidden, eps=1e-3), nn.SiLU(), nn.Linear(hidden, stoch * classes))
        self.init_deter = nn.Parameter(torch.zeros(deter))  # learned initial state, h_0 = tanh(w)

    def _logits(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return unimix_logits(net(x).reshape(*x.shape[:-1], self.stoch, self.classes), self.unimix)

    def prior_logits(self, deter: torch.Tensor) -> torch.Tensor:
        """Normalised log-probs of ``p(ẑ | h)``, ``(..., G, K)``."""
        return self._logits(self.prior_net, deter)

    def initial(self, n: int) -> State:
        """The state before an episode's first observation: ``h_0 = tanh(w)``, ``z_0`` the prior's mode."""
        deter = torch.tanh(self.init_deter).expand(n, -1)
        return State(deter, onehot_straight_through(self.prior_logits(deter), sample=False))

    def img_step(self, s: State, action: torch.Tensor, sample: bool = True) -> tuple[State, torch.Tensor]:
        """One step of the prior: ``h' = f(h, z, a)``, ``ẑ' ~ p(ẑ' | h')``. Returns the state and prior log-probs."""
        deter = self.gru(self.img_in(torch.cat([s.stoch.flatten(-2), action], -1)), s.deter)
        logits = self.prior_logits(deter)
        return State(deter, onehot_straight_through(logits, sample)), logits

    def obs_step(
        self,
        s: State,
        prev_action: torch.Tensor,
        embed: torch.Tensor,
        is_first: torch.Tensor | None,
        sample: bool = True,
        projected: bool = False,
        init: State | None = None,
    ) -> tuple[State, torch.Tensor]:
        """One filtering step: reset to :meth:`initial` where ``is_first``, advance ``h`` with the previous action,
        then ``z ~ q(z | h, e)``. Returns the posterior state and its log-probs. ``is_first`` None: no env starts an
        episode here; ``projected``: ``embed`` is ``post_e(e)`` already; ``init``: :meth:`initial`, if computed."""
        if is_first is not None:
            first = is_first.float()[:, None]
            init = self.initial(len(embed)) if init is None else init
            s = State(
                first * init.deter + (1 - first) * s.deter,
                first[..., None] * init.stoch + (1 - first[..., None]) * s.stoch,
            )
            prev_action = (1 - first) * prev_action
        deter = self.gru(self.img_in(torch.cat([s.stoch.flatten(-2), prev_action], -1)), s.deter)
        logits = self._logits(self.post_net, self.post_h(deter) + (embed if projected else self.post_e(embed)))
        return State(deter, onehot_straight_through(logits, sample)), logits

    def observe(
        self, embed: torch.Tensor, prev_actions: torch.Tensor, is_first: torch.Tensor, s: State | None = None
    ) -> tuple[State, torch.Tensor, torch.Tensor]:
        """Filter a batch of sequences ``(B, T, ...)`` (time second); ``s`` the state before them (None: initial;
        every sequence starts there). Returns posterior states, posterior and prior log-probs, all ``(B, T, ...)``."""
        init = self.initial(len(embed))  # once, not per step
        if s is None:
            s = init
            is_first = is_first.clone()
            is_first[:, 0] = 1.0
        deters, stochs, logits = [], [], []
        e = self.post_e(embed)  # for all steps at once
        for t in range(embed.shape[1]):
            s, lg = self.obs_step(s, prev_actions[:, t], e[:, t], is_first[:, t], projected=True, init=init)
            deters.append(s.deter)
            stochs.append(s.stoch)
            logits.append(lg)
        post = State(torch.stack(deters, 1), torch.stack(stochs, 1))
        return post, torch.stack(logits, 1), self.prior_logits(post.deter)


class TwoHotHead(nn.Module):
    """MLP → logits over the symlog bins (reward and critic, eq. 11-12); zero-initialised output layer, so the
    first predictions are 0 (DreamerV3 §3, "the output weights are initialised to zero")."""

    bins: torch.Tensor

    def __init__(self, inp: int, units: int, layers: int, n_bins: int = 255) -> None:
        super().__init__()
        self.net = mlp(inp, units, layers)
        self.out = nn.Linear(units if layers else inp, n_bins)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("bins", make_bins(n_bins), persistent=False)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(f))


class Actor(nn.Module):
    """The policy ``π(a | s)``. Continuous: ``N(tanh(μ), σ)`` per dimension with ``σ ∈ [0.1, 1]``
    (``σ = 0.9 sigmoid(x + 2) + 0.1``, the official code's bounded std); actions are clipped to [-1, 1] when
    acting. Discrete: a categorical with 1% unimix.

    :param inp: feature size
    :param action_space: ``Box`` (scaled to [-1, 1]) or ``Discrete``
    :param units: hidden units
    :param layers: hidden layers
    :param min_std: smallest std
    :param max_std: largest std
    :param unimix: uniform mixture (discrete)
    """

    def __init__(
        self,
        inp: int,
        action_space: gym.Space,
        units: int,
        layers: int,
        min_std: float = 0.1,
        max_std: float = 1.0,
        unimix: float = 0.01,
    ) -> None:
        super().__init__()
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.n = action_dim(action_space)
        self.min_std, self.max_std, self.unimix = min_std, max_std, unimix
        self.net = mlp(inp, units, layers)
        self.out = nn.Linear(units if layers else inp, self.n if self.discrete else 2 * self.n)

    def dist(self, f: torch.Tensor) -> torch.distributions.Distribution:
        """``π(· | s)``: an ``Independent(Normal)`` over the action vector, or a ``Categorical``."""
        x = self.out(self.net(f)).float()
        # no argument validation (a check per call): non-finite values reach the losses, where training stops naming
        # the first one (Dreamer's check_finite)
        if self.discrete:
            return torch.distributions.Categorical(logits=unimix_logits(x, self.unimix), validate_args=False)
        mean, std = x.chunk(2, -1)
        std = (self.max_std - self.min_std) * torch.sigmoid(std + 2.0) + self.min_std
        normal = torch.distributions.Normal(torch.tanh(mean), std, validate_args=False)
        return torch.distributions.Independent(normal, 1, validate_args=False)

    def act(self, f: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """An action in the model's format: a vector clipped to [-1, 1], or a one-hot vector."""
        a = self.sample(self.dist(f), deterministic)
        return a if self.discrete else a.clamp(-1.0, 1.0)

    def sample(self, d: torch.distributions.Distribution, deterministic: bool = False) -> torch.Tensor:
        """A sample (or the mode) of ``d`` without gradient: one-hot, or a raw (unclipped) vector. Learning uses
        the raw sample's log-probability: that of a clipped one would pull the mean onto the bounds."""
        if self.discrete:
            assert isinstance(d, torch.distributions.Categorical)
            idx = d.probs.argmax(-1) if deterministic else d.sample()
            return F.one_hot(idx, self.n).float()
        return (d.mean if deterministic else d.sample()).detach()

    def log_prob(self, d: torch.distributions.Distribution, a: torch.Tensor) -> torch.Tensor:
        """``log π(a | s)`` for an action in the model's format."""
        return d.log_prob(a.argmax(-1)) if self.discrete else d.log_prob(a)
