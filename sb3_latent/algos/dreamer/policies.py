"""Dreamer's policy: the world model (RSSM, encoder, decoder, reward and continue heads), the actor, the critic
and its slow EMA copy, the return normaliser, their optimizers, and acting with a recurrent state.

Sizes (``size=``) follow the DreamerV3 paper's model-size table (Appendix, "XS" to "XL": GRU units, CNN multiplier,
dense units, MLP layers; 32 categoricals of 32 classes) from ``"s"`` up; ``"xs"`` is ours, small enough to learn on
2 CPU cores (the paper's XS is ``PAPER_XS``). Parameter counts (all trainable parameters: world model, actor and
critic; the slow critic is a copy and not counted) for 64x64x3 images and 6 continuous actions (``PARAMS``,
checked by a test):

========  ====  =======  =====  ======  =====  ===========  =========================
size      GRU   stoch    units  layers  depth  parameters   the paper's table
========  ====  =======  =====  ======  =====  ===========  =========================
xs        256   16 x 16  256    1       16     3,308,238    (ours, for CPUs)
PAPER_XS  256   32 x 32  256    1       24     8,263,982    XS: 8M
s         512   32 x 32  512    2       32     17,926,030   S: 18M
m         1024  32 x 32  640    3       48     36,900,302   M: 37M
l         2048  32 x 32  768    4       64     76,753,422   L: 77M
xl        4096  32 x 32  1024   5       96     200,727,182  XL: 200M
========  ====  =======  =====  ======  =====  ===========  =========================

The dreamerv3-torch port's default configuration has the layer sizes of the paper's S; its 19.1M parameters (the
anchor of ``benchmarks/dreamer.py``) equal this S count plus a slow critic (17.93M + 1.18M).
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from torch.nn import functional as F

from sb3_latent.algos.dreamer.distributions import ReturnNormalizer, TwoHotSymexp
from sb3_latent.algos.dreamer.networks import (
    RSSM,
    Actor,
    ObsDecoder,
    ObsEncoder,
    State,
    TwoHotHead,
    action_dim,
    check_obs_space,
    feat,
    is_image,
    mlp,
)
from sb3_latent.common.torch_utils import channels_last

#: model sizes: GRU units (deter), categoricals (stoch) x classes, dense units (also the RSSM's hidden layers),
#: MLP layers of the heads, CNN multiplier (depth)
SIZES: dict[str, dict[str, int]] = {
    "xs": dict(deter=256, stoch=16, classes=16, units=256, layers=1, depth=16),
    "s": dict(deter=512, stoch=32, classes=32, units=512, layers=2, depth=32),
    "m": dict(deter=1024, stoch=32, classes=32, units=640, layers=3, depth=48),
    "l": dict(deter=2048, stoch=32, classes=32, units=768, layers=4, depth=64),
    "xl": dict(deter=4096, stoch=32, classes=32, units=1024, layers=5, depth=96),
}
#: the paper's XS (its table: 8M parameters); pass ``size=PAPER_XS``
PAPER_XS: dict[str, int] = dict(deter=256, stoch=32, classes=32, units=256, layers=1, depth=24)
#: trainable parameters per size for 64x64x3 images and 6 continuous actions (``tests/test_dreamer.py`` checks them)
PARAMS: dict[str, int] = {
    "xs": 3_308_238,
    "paper_xs": 8_263_982,
    "s": 17_926_030,
    "m": 36_900_302,
    "l": 76_753_422,
    "xl": 200_727_182,
}


def resolve_size(size: str | dict[str, int]) -> dict[str, int]:
    """A size name or a dict of its fields, checked."""
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(
                f"unknown Dreamer size {size!r}; known sizes: {sorted(SIZES)} (or a dict with keys "
                f"{sorted(SIZES['xs'])})"
            )
        return dict(SIZES[size])
    if not isinstance(size, dict) or set(size) != set(SIZES["xs"]):
        raise ValueError(
            f"size must be one of {sorted(SIZES)} or a dict with exactly the keys {sorted(SIZES['xs'])}, got {size!r}"
        )
    bad = {
        k: v
        for k, v in size.items()
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "layers" else 1)
    }
    if bad:
        raise ValueError(f"size values must be positive integers (layers >= 0), got {bad}")
    return dict(size)


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder, reward head (two-hot symexp) and continue head (Bernoulli logits)."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.Space, size: dict[str, int], unimix: float = 0.01
    ) -> None:
        super().__init__()
        s = size
        self.encoder = ObsEncoder(observation_space, s["depth"], s["units"], s["layers"])
        self.rssm = RSSM(
            self.encoder.out_dim, action_dim(action_space), s["deter"], s["stoch"], s["classes"], s["units"], unimix
        )
        self.feat_dim = s["deter"] + s["stoch"] * s["classes"]
        self.decoder = ObsDecoder(observation_space, self.feat_dim, s["depth"], s["units"], s["layers"])
        self.reward = TwoHotHead(self.feat_dim, s["units"], s["layers"])
        self.cont = nn.Sequential(
            mlp(self.feat_dim, s["units"], s["layers"]), nn.Linear(s["units"] if s["layers"] else self.feat_dim, 1)
        )

    def reward_dist(self, f: torch.Tensor) -> TwoHotSymexp:
        return TwoHotSymexp(self.reward(f), self.reward.bins)


class DreamerPolicy(BasePolicy):
    """World model, actor and critic of DreamerV3, and acting with a recurrent state (the posterior ``s_t``).

    :param observation_space: images ``(C, H, W)`` uint8 (side 4 * 2^k), 1-D vectors, or a Dict of them
    :param action_space: ``Box`` or ``Discrete``
    :param lr_schedule: the world model's learning rate (DreamerV3: 1e-4)
    :param size: a name of :data:`SIZES` or a dict of the same fields
    :param actor_lr: actor learning rate (3e-5)
    :param critic_lr: critic learning rate (3e-5)
    :param unimix: uniform mixture of the latent and discrete-action categoricals (0.01)
    :param model_eps: Adam epsilon of the world model (1e-8)
    :param ac_eps: Adam epsilon of actor and critic (1e-5)
    """

    actor: Actor

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        lr_schedule: Schedule,
        size: str | dict[str, int] = "xs",
        actor_lr: float = 3e-5,
        critic_lr: float = 3e-5,
        unimix: float = 0.01,
        model_eps: float = 1e-8,
        ac_eps: float = 1e-5,
    ) -> None:
        super().__init__(observation_space, action_space, squash_output=isinstance(action_space, spaces.Box))
        self.size, self.sizes = size, resolve_size(size)
        self.actor_lr, self.critic_lr, self.unimix, self.model_eps, self.ac_eps = (
            actor_lr,
            critic_lr,
            unimix,
            model_eps,
            ac_eps,
        )
        s = self.sizes
        self.world_model = WorldModel(observation_space, action_space, s, unimix)
        channels_last(self.world_model)  # faster convolutions on CPU (oneDNN) and GPU, same maths
        f = self.world_model.feat_dim
        self.actor = Actor(f, action_space, s["units"], s["layers"], unimix=unimix)
        self.critic = TwoHotHead(f, s["units"], s["layers"])
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.retnorm = ReturnNormalizer()
        self.model_optimizer = torch.optim.Adam(self.world_model.parameters(), lr=lr_schedule(1), eps=model_eps)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=actor_lr, eps=ac_eps)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=critic_lr, eps=ac_eps)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            size=self.size,
            actor_lr=self.actor_lr,
            critic_lr=self.critic_lr,
            unimix=self.unimix,
            model_eps=self.model_eps,
            ac_eps=self.ac_eps,
            lr_schedule=self._dummy_schedule,
        )
        return data

    def n_parameters(self) -> int:
        """Trainable parameters (world model, actor, critic)."""
        return sum(p.numel() for m in (self.world_model, self.actor, self.critic) for p in m.parameters())

    def critic_dist(self, f: torch.Tensor, slow: bool = False) -> TwoHotSymexp:
        net = self.slow_critic if slow else self.critic
        return TwoHotSymexp(net(f), net.bins)

    # --- acting -----------------------------------------------------------------------------------------

    def obs_as_tensors(self, obs: Any) -> dict[str, torch.Tensor]:
        """Observations (numpy or tensors, an array or a dict) as a dict of tensors on the device; images stay uint8."""
        d = obs if isinstance(obs, dict) else {"obs": obs}
        return {
            k: torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v, device=self.device)
            for k, v in d.items()
        }

    def to_model_action(self, a: torch.Tensor) -> torch.Tensor:
        """Buffer actions (scaled to [-1, 1], or a Discrete index) in the model's format (one-hot if discrete)."""
        if isinstance(self.action_space, spaces.Discrete):
            return F.one_hot(
                a.long().reshape(a.shape[:-1] if a.dim() > 1 and a.shape[-1] == 1 else a.shape),
                int(self.action_space.n),
            ).float()
        return a.float()

    def initial_state(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Recurrent state of ``n`` envs before their first step: ``(h, z, previous action)``, all zeros (the first
        observation resets ``h, z`` to the learned initial state anyway)."""
        s = self.sizes
        return (
            np.zeros((n, s["deter"]), np.float32),
            np.zeros((n, s["stoch"], s["classes"]), np.float32),
            np.zeros((n, action_dim(self.action_space)), np.float32),
        )

    @torch.no_grad()
    def step(
        self,
        obs: Any,
        state: tuple[np.ndarray, np.ndarray, np.ndarray],
        is_first: np.ndarray,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Filter one observation per env into the recurrent state and act from it.

        :param obs: observations ``(n, ...)`` (or a dict of them)
        :param state: ``(h, z, previous action)`` per env, from :meth:`initial_state` or the previous call
        :param is_first: ``(n,)`` envs whose ``obs`` starts an episode (their state is reset)
        :param deterministic: the modes of the posterior latent and of the actor instead of samples
        :return: actions in the buffer's format (scaled to [-1, 1], or Discrete indices) and the new state
        """
        wm = self.world_model
        t = self.obs_as_tensors(obs)
        deter, stoch, prev = (torch.as_tensor(x, device=self.device) for x in state)
        first = torch.as_tensor(np.asarray(is_first, dtype=np.float32).reshape(-1), device=self.device)
        s, _ = wm.rssm.obs_step(State(deter, stoch), prev, wm.encoder(t), first, sample=not deterministic)
        a = self.actor.act(feat(s), deterministic)
        out = a.argmax(-1) if self.actor.discrete else a
        return out.cpu().numpy(), (s.deter.cpu().numpy(), s.stoch.cpu().numpy(), a.cpu().numpy())

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        """Stateless action: every observation taken as an episode's first (use ``Dreamer.predict`` with state)."""
        n = len(next(iter(self.obs_as_tensors(observation).values())))
        a, _ = self.step(observation, self.initial_state(n), np.ones(n, dtype=bool), deterministic)
        return torch.as_tensor(a, device=self.device)


class DreamerCnnPolicy(DreamerPolicy):
    """:class:`DreamerPolicy` for image observations ``(C, H, W)`` uint8."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        if not is_image(observation_space):
            raise TypeError(
                f"Dreamer's CnnPolicy needs image observations (C, H, W) uint8, got {observation_space}; "
                "use 'MlpPolicy' for vectors or 'MultiInputPolicy' for a Dict"
            )
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class DreamerMlpPolicy(DreamerPolicy):
    """:class:`DreamerPolicy` for 1-D vector observations (symlog inputs and targets)."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1):
            raise TypeError(
                f"Dreamer's MlpPolicy needs 1-D vector observations (a Box of shape (n,)), got "
                f"{observation_space}; use 'CnnPolicy' for images or 'MultiInputPolicy' for a Dict"
            )
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class DreamerMultiInputPolicy(DreamerPolicy):
    """:class:`DreamerPolicy` for Dict observations of images and vectors."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise TypeError(f"Dreamer's MultiInputPolicy needs a Dict observation space, got {observation_space}")
        check_obs_space(observation_space)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
