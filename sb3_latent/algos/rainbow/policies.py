"""Rainbow's networks: the conv encoders of data-efficient Rainbow and of DQN, factorised noisy linear
layers (Fortunato et al. 2018), dueling heads (Wang et al. 2016) over a categorical return distribution
(C51, Bellemare et al. 2017), and the policy holding the online and target networks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

#: conv layers ``(out_channels, kernel, stride)``: data-efficient Rainbow (van Hasselt et al. 2019) and DQN (Nature)
CONV_ARCHS: dict[str, list[tuple[int, int, int]]] = {
    "der": [(32, 5, 5), (64, 5, 5)],
    "nature": [(32, 8, 4), (64, 4, 2), (64, 3, 1)],
}


class NoisyLinear(nn.Linear):
    """Factorised Gaussian noisy linear layer (Fortunato et al. 2018, §3.2):
    ``y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b`` with ``eps_w = f(eps_out) f(eps_in)^T``,
    ``eps_b = f(eps_out)``, ``f(x) = sgn(x) sqrt(|x|)``; ``mu ~ U(-1/sqrt(p), 1/sqrt(p))``,
    ``sigma = sigma0 / sqrt(p)`` (``p`` inputs). ``weight``/``bias`` are the means, so the layer is an
    ``nn.Linear`` (noise-free) when ``noise`` is off. The noise changes only in :meth:`reset_noise`.

    :param in_features: inputs
    :param out_features: outputs
    :param sigma0: initial noise scale (Rainbow 0.5, data-efficient Rainbow 0.1)
    """

    eps_in: torch.Tensor
    eps_out: torch.Tensor

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__(in_features, out_features)
        self.sigma0 = float(sigma0)
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.noise = True
        self.reset_sigma()
        self.reset_noise()

    def reset_sigma(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.uniform_(-bound, bound)
            self.weight_sigma.fill_(self.sigma0 * bound)
            self.bias_sigma.fill_(self.sigma0 * bound)

    @staticmethod
    def _f(x: torch.Tensor) -> torch.Tensor:
        return x.sign() * x.abs().sqrt()

    @torch.no_grad()
    def reset_noise(self) -> None:
        """Draw new factorised noise."""
        self.eps_in.copy_(self._f(torch.randn_like(self.eps_in)))
        self.eps_out.copy_(self._f(torch.randn_like(self.eps_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.noise:
            return F.linear(x, self.weight, self.bias)
        # the noisy weight materialised: one matmul forward and one per gradient, where the factorised form
        # (mu x + eps_out * (sigma (eps_in * x))) needs two; cheaper while the batch is below the layer's widths
        weight = self.weight + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        return F.linear(x, weight, self.bias + self.bias_sigma * self.eps_out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sigma0={self.sigma0}"


class _Passthrough(nn.Linear):
    """An identity typed as ``nn.Linear`` with no parameters: Rainbow's encoder ends at the flattened
    conv features, laid out as SB3's ``NatureCNN`` (``cnn`` then ``linear``) so that LeVER can cut it
    after the convolutions (``freeze="conv"``, the paper's Atari choice)."""

    def __init__(self, features: int) -> None:
        nn.Module.__init__(self)
        self.in_features = self.out_features = features
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"features={self.in_features} (identity)"


class RainbowCNN(NatureCNN):
    """Conv encoder with ReLUs and a flatten (no fully connected layer): ``arch="der"`` (2 layers, 32x5x5 s5
    and 64x5x5 s5: 576 features at 84x84) or ``"nature"`` (DQN's 3 layers: 3136 features).

    :param observation_space: images ``(C, H, W)``
    :param arch: a key of :data:`CONV_ARCHS`, or a list of ``(out_channels, kernel, stride)``
    :param normalized_image: the images are floats in [0, 1] already
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        arch: str | list[tuple[int, int, int]] = "der",
        normalized_image: bool = False,
    ) -> None:
        if isinstance(arch, str) and arch not in CONV_ARCHS:
            raise ValueError(
                f"Unknown Rainbow encoder {arch!r}; expected one of {sorted(CONV_ARCHS)} or a list of "
                "(out_channels, kernel, stride)"
            )
        layers: list[nn.Module] = []
        channels = observation_space.shape[0]
        for out, kernel, stride in CONV_ARCHS[arch] if isinstance(arch, str) else arch:
            layers += [nn.Conv2d(channels, out, kernel, stride), nn.ReLU()]
            channels = out
        cnn = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n = cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        if n < 1:
            raise ValueError(f"images of shape {observation_space.shape} are too small for the {arch!r} encoder")
        BaseFeaturesExtractor.__init__(self, observation_space, n)
        # channels-last convolutions: ~1.5x faster forward + backward on CPU at DER's sizes (benchmarks/rainbow_speed)
        self.cnn, self.linear = cnn.to(memory_format=torch.channels_last), nn.Sequential(_Passthrough(n))  # type: ignore[call-overload]

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations.contiguous(memory_format=torch.channels_last)))


class RainbowQNetwork(BasePolicy):
    """Features → dueling (or plain) heads → per-action return distributions over ``n_atoms`` atoms.

    ``Z(s, a) = V(s) + A(s, a) - mean_a' A(s, a')`` per atom, then a softmax over atoms (Rainbow, Eq. 4);
    ``Q(s, a) = sum_i z_i p_i(s, a)``. With ``distributional=False`` there is one "atom" holding Q itself.

    :param features_extractor: the encoder
    :param features_dim: its output size
    :param n_atoms: atoms of the support (1 when not distributional)
    :param hidden: units of each stream's hidden layer
    :param dueling: value and advantage streams
    :param noisy: noisy linear layers
    :param sigma0: their initial noise scale
    """

    action_space: spaces.Discrete

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        n_atoms: int = 51,
        hidden: int = 256,
        dueling: bool = True,
        noisy: bool = True,
        sigma0: float = 0.5,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        self.n_atoms, self.n_actions, self.dueling = n_atoms, int(action_space.n), dueling

        def linear(i: int, o: int) -> nn.Module:
            return NoisyLinear(i, o, sigma0) if noisy else nn.Linear(i, o)

        self.advantage = nn.Sequential(
            linear(features_dim, hidden), nn.ReLU(), linear(hidden, self.n_actions * n_atoms)
        )
        self.value = (
            nn.Sequential(linear(features_dim, hidden), nn.ReLU(), linear(hidden, n_atoms)) if dueling else None
        )

    def logits(self, obs: PyTorchObs) -> torch.Tensor:
        """Per-action atom logits ``(B, A, n_atoms)`` (dueling combination before the softmax)."""
        x = self.extract_features(obs, self.features_extractor)
        a = self.advantage(x).view(-1, self.n_actions, self.n_atoms)
        if self.value is None:
            return a
        return self.value(x).view(-1, 1, self.n_atoms) + a - a.mean(dim=1, keepdim=True)

    def noisy_layers(self) -> Iterator[NoisyLinear]:
        return (m for m in self.modules() if isinstance(m, NoisyLinear))

    def reset_noise(self) -> None:
        for m in self.noisy_layers():
            m.reset_noise()

    @contextmanager
    def noise(self, enabled: bool) -> Iterator[None]:
        """Noisy layers with (True) or without (False, their means) noise inside the block."""
        layers = list(self.noisy_layers())
        before = [m.noise for m in layers]
        for m in layers:
            m.noise = enabled
        try:
            yield
        finally:
            for m, b in zip(layers, before, strict=True):
                m.noise = b

    def forward(self, obs: PyTorchObs) -> torch.Tensor:
        return self.logits(obs)

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> torch.Tensor:
        # actions need the atoms' support, which the policy holds: SB3 acts through RainbowPolicy, never through this
        raise NotImplementedError("act through RainbowPolicy.predict (it holds the support of the atoms)")


class RainbowPolicy(BasePolicy):
    """Online and target Rainbow networks and the Adam optimizer (with Rainbow's epsilon).

    ``predict(obs, deterministic=True)`` acts greedily on the noise-free network (the noisy layers' means);
    ``deterministic=False`` acts greedily on the noisy network, as Rainbow explores.

    :param lr_schedule: learning rate schedule
    :param v_min: lowest atom of the support
    :param v_max: highest atom
    :param n_atoms: atoms (51 in C51)
    :param distributional: C51 heads; False: one Q value per action
    :param dueling: dueling heads
    :param noisy: noisy linear layers
    :param sigma0: noise scale (Rainbow 0.5; data-efficient Rainbow 0.1)
    :param hidden: units of each head's hidden layer (DER 256, Rainbow 512)
    :param adam_eps: Adam's epsilon (1.5e-4 in Rainbow, DER)
    :param features_extractor_class: encoder class (:class:`RainbowCNN` for images)
    :param features_extractor_kwargs: its arguments (``arch="der" | "nature"``)
    """

    q_net: RainbowQNetwork
    q_net_target: RainbowQNetwork
    action_space: spaces.Discrete
    support: torch.Tensor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        v_min: float = -10.0,
        v_max: float = 10.0,
        n_atoms: int = 51,
        distributional: bool = True,
        dueling: bool = True,
        noisy: bool = True,
        sigma0: float = 0.5,
        hidden: int = 256,
        adam_eps: float = 1.5e-4,
        features_extractor_class: type[BaseFeaturesExtractor] = RainbowCNN,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"Rainbow needs a Discrete action space, got {action_space}")
        if distributional and not (v_min < v_max and n_atoms >= 2):
            raise ValueError(
                f"need v_min < v_max and n_atoms >= 2, got v_min={v_min}, v_max={v_max}, n_atoms={n_atoms}"
            )
        optimizer_kwargs = {"eps": adam_eps, **(optimizer_kwargs or {})}
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs or {},
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
        )
        self.v_min, self.v_max, self.distributional = float(v_min), float(v_max), distributional
        self.n_atoms = n_atoms if distributional else 1
        self.dueling, self.noisy, self.sigma0, self.hidden, self.adam_eps = dueling, noisy, sigma0, hidden, adam_eps
        self.register_buffer(
            "support", torch.linspace(self.v_min, self.v_max, self.n_atoms) if distributional else torch.ones(1)
        )
        self.q_net, self.q_net_target = self.make_q_net(), self.make_q_net()
        self.q_net_target.load_state_dict(self.q_net.state_dict())
        self.q_net_target.set_training_mode(False)
        self.optimizer = self.optimizer_class(
            self.q_net.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def make_q_net(self) -> RainbowQNetwork:
        extractor = self.make_features_extractor()
        return RainbowQNetwork(
            self.observation_space,
            self.action_space,
            extractor,
            extractor.features_dim,
            n_atoms=self.n_atoms,
            hidden=self.hidden,
            dueling=self.dueling,
            noisy=self.noisy,
            sigma0=self.sigma0,
            normalize_images=self.normalize_images,
        ).to(self.device)

    def distribution(self, net: RainbowQNetwork, obs: PyTorchObs, log: bool = False) -> torch.Tensor:
        """``(B, A, n_atoms)`` probabilities (log-probabilities if ``log``) of ``net``; Q values ``(B, A, 1)`` when
        not distributional."""
        logits = net.logits(obs)
        if not self.distributional:
            return logits
        return F.log_softmax(logits, dim=-1) if log else F.softmax(logits, dim=-1)

    def q_values(self, net: RainbowQNetwork, obs: PyTorchObs) -> torch.Tensor:
        """``Q(s, a) = sum_i z_i p_i(s, a)``: ``(B, A)``."""
        return (self.distribution(net, obs) * self.support).sum(-1)

    def reset_noise(self) -> None:
        self.q_net.reset_noise()
        self.q_net_target.reset_noise()

    def forward(self, obs: PyTorchObs, deterministic: bool = True) -> torch.Tensor:
        return self._predict(obs, deterministic)

    def _predict(self, obs: PyTorchObs, deterministic: bool = True) -> torch.Tensor:
        with self.q_net.noise(not deterministic):
            return self.q_values(self.q_net, obs).argmax(dim=1).reshape(-1)

    def set_training_mode(self, mode: bool) -> None:
        self.q_net.set_training_mode(mode)
        self.training = mode

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            v_min=self.v_min,
            v_max=self.v_max,
            n_atoms=self.n_atoms if self.distributional else 51,
            distributional=self.distributional,
            dueling=self.dueling,
            noisy=self.noisy,
            sigma0=self.sigma0,
            hidden=self.hidden,
            adam_eps=self.adam_eps,
            lr_schedule=self._dummy_schedule,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
            normalize_images=self.normalize_images,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )
        return data


class CnnPolicy(RainbowPolicy):
    """Rainbow from pixels (:class:`RainbowCNN`, data-efficient Rainbow's encoder by default)."""


class MlpPolicy(RainbowPolicy):
    """Rainbow on vector observations (flattened; the heads' hidden layers do the work)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", FlattenExtractor)
        super().__init__(*args, **kwargs)
