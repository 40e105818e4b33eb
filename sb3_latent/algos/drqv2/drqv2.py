"""DrQ-v2 (Yarats, Fergus, Lazaric, Pinto 2021, "Mastering Visual Continuous Control: Improved
Data-Augmented Reinforcement Learning") with SB3's interface.

DDPG with clipped double Q-learning, n-step returns, scheduled exploration noise and random-shift
augmentation of sampled pixels; one conv encoder trained by the critic loss only, whose encoding the
actor reuses (detached); a target critic (trunk + Q networks, EMA τ = 0.01) on the online encoder.
Defaults and presets are the official code's (facebookresearch/drqv2, ``cfgs/config.yaml`` and
``cfgs/task/*.yaml``).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import get_device

from sb3_latent.algos.contracts import ContractsMixin, check_spaces
from sb3_latent.algos.drqv2.policies import DrQv2MlpPolicy, DrQv2Policy
from sb3_latent.algos.shared_encoder import SharedEncoderMixin
from sb3_latent.algos.sync import finite_means, update_loop
from sb3_latent.buffers import NStepFrameStoreReplayBuffer
from sb3_latent.common.amp import AmpMixin, check_amp
from sb3_latent.common.checks import check_int

_NUM = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
_FORMS = {"constant": 1, "linear": 3, "step_linear": 5}
SCHEDULE_FORMS = (
    "a float",
    "'constant(x)'",
    "'linear(init, final, duration)'",
    "'step_linear(init, final1, duration1, final2, duration2)'",
)


@dataclass(frozen=True)
class StddevSchedule:
    """Exploration standard deviation σ as a function of the agent step, as the official code's
    ``utils.schedule``: ``constant`` (x), ``linear`` (init → final over ``duration`` steps, then final),
    ``step_linear`` (init → final1 over duration1, then → final2 over duration2).

    :param kind: ``"constant"``, ``"linear"`` or ``"step_linear"``
    :param args: its numbers, in the order of the string form
    """

    kind: str
    args: tuple[float, ...]

    def __call__(self, step: float) -> float:
        a = self.args
        if self.kind == "constant":
            return a[0]
        if self.kind == "linear" or step <= a[2]:
            mix = float(np.clip(step / a[2], 0.0, 1.0))
            return (1.0 - mix) * a[0] + mix * a[1]
        mix = float(np.clip((step - a[2]) / a[4], 0.0, 1.0))  # step_linear, second phase
        return (1.0 - mix) * a[1] + mix * a[3]


def parse_stddev_schedule(spec: str | float) -> StddevSchedule:
    """Parse a DrQ-v2 exploration schedule: a float (or its string), ``'constant(x)'``,
    ``'linear(init, final, duration)'`` or ``'step_linear(init, final1, duration1, final2, duration2)'``
    (durations in agent steps, > 0; standard deviations >= 0).

    :raises ValueError: for anything else, naming the accepted forms
    """

    def bad(why: str) -> ValueError:
        return ValueError(
            f"invalid stddev_schedule {spec!r} ({why}); expected {', '.join(SCHEDULE_FORMS[:-1])} "
            f"or {SCHEDULE_FORMS[-1]}, e.g. 'linear(1.0, 0.1, 500000)'"
        )

    if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
        raise bad(f"a {type(spec).__name__}")
    args: tuple[float, ...]
    if isinstance(spec, str):
        text = spec.strip()
        match = re.fullmatch(r"(\w+)\((.*)\)", text)
        if match is None:
            if re.fullmatch(_NUM, text) is None:
                raise bad("not a number or a known form")
            kind, args = "constant", (float(text),)
        else:
            kind, inner = match.groups()
            if kind not in _FORMS:
                raise bad(f"unknown form {kind!r}")
            parts = inner.split(",")
            if len(parts) != _FORMS[kind] or any(re.fullmatch(_NUM, p) is None for p in parts):
                raise bad(f"{kind} takes {_FORMS[kind]} number(s)")
            args = tuple(float(p) for p in parts)
    else:
        kind, args = "constant", (float(spec),)
    stds, durations = (args[0::2], args[2::2]) if kind == "step_linear" else (args[:2], args[2:])
    if any(not np.isfinite(s) or s < 0 for s in stds):
        raise bad("standard deviations must be finite and >= 0")
    if any(not np.isfinite(d) or d <= 0 for d in durations):
        raise bad("durations must be > 0")
    return StddevSchedule(kind, args)


def clipped_noise_action(mean: torch.Tensor, stddev: float, clip: float | None) -> torch.Tensor:
    """``mean + clip(ε σ, -c, c)``, ε ~ N(0, 1), clamped to the action bounds [-1, 1] with a
    straight-through gradient (the official code's ``TruncatedNormal.sample``): the value is
    clamped, the gradient with respect to ``mean`` is the identity.

    :param mean: actor means in [-1, 1]
    :param stddev: σ
    :param clip: c (``stddev_clip``); None: no clipping of the noise
    """
    noise = torch.randn_like(mean) * stddev
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    x = mean + noise
    return x + (x.clamp(-1.0, 1.0) - x).detach()


#: The official task groups (facebookresearch/drqv2 ``cfgs/task/{easy,medium,hard}.yaml`` and
#: ``humanoid_*.yaml``): exploration schedule, training frames (env steps) and, for humanoid, lr and
#: feature dim. ``n_timesteps`` counts agent steps at the paper's action repeat 2.
PRESETS: dict[str, dict[str, Any]] = {
    # easy.yaml: num_train_frames 1100000, stddev_schedule 'linear(1.0,0.1,100000)'
    "easy": {"stddev_schedule": "linear(1.0,0.1,100000)", "num_train_frames": 1_100_000},
    # medium.yaml: num_train_frames 3100000, stddev_schedule 'linear(1.0,0.1,500000)'
    "medium": {"stddev_schedule": "linear(1.0,0.1,500000)", "num_train_frames": 3_100_000},
    # hard.yaml: num_train_frames 30100000, stddev_schedule 'linear(1.0,0.1,2000000)'
    "hard": {"stddev_schedule": "linear(1.0,0.1,2000000)", "num_train_frames": 30_100_000},
    # humanoid_{stand,walk,run}.yaml: hard, plus lr 8e-5 and feature_dim 100
    "humanoid": {
        "stddev_schedule": "linear(1.0,0.1,2000000)",
        "num_train_frames": 30_100_000,
        "learning_rate": 8e-5,
        "features_dim": 100,
    },
}
for _preset in PRESETS.values():
    _preset["n_timesteps"] = _preset["num_train_frames"] // 2


class DrQv2(AmpMixin, SharedEncoderMixin, ContractsMixin, OffPolicyAlgorithm):
    """DrQ-v2 with SB3's interface; every :class:`~sb3_latent.extractors.flare.PixelExtractor`
    (Flare, latent stack, pixel flow) can replace the default encoder:
    ``DrQv2("CnnPolicy", env, policy_kwargs=flare_kwargs(n_frames=3))``.

    ``CnnPolicy``: pixels ``(3 * frames, H, W)``; the default extractor is DrQ-v2's encoder (4 x Conv(32,
    3x3), first stride 2) and trunk (Linear → LayerNorm(50) → tanh); MLPs 1024 x 2. ``MlpPolicy``: vector
    observations, no encoder, no augmentation (DDPG-style n-step learning with the scheduled noise).

    Defaults are the official code's (``cfgs/config.yaml``), counted in **agent steps**: the paper's
    4000 seed frames at action repeat 2 are ``learning_starts=2000`` (uniform random actions, no
    updates; the official ``num_expl_steps=2000``), one update every 2 agent steps, and the std
    schedule runs over agent steps (``num_timesteps``). Presets of the task groups: :meth:`from_preset`.

    Parameters as SB3's ``TD3`` where they exist, plus:

    :param n_steps: steps of the n-step return (paper: 3)
    :param stddev_schedule: exploration σ over agent steps: a float, ``'constant(x)'``,
        ``'linear(init, final, duration)'`` or ``'step_linear(init, final1, duration1, final2, duration2)'``
        (default: the medium group's ``'linear(1.0,0.1,500000)'``)
    :param stddev_clip: clip c of the noise in the target and actor updates (paper: 0.3)
    :param augment: augmentation of sampled batches (``"shift"``: random shift, pad 4, bilinear, drawn
        independently for obs and next_obs), another registry name, or None; pixels only
    :param augment_kwargs: its constructor arguments (e.g. ``{"pad": 4}``)
    :param check_finite: stop with a ``NonFiniteError`` naming the first non-finite loss or target and its update
        (True); False trains on regardless
    :param amp: bfloat16 autocast of the update's forward passes (parameters, optimizer states and logged losses
        stay float32); needs native bfloat16 (a CUDA GPU, or a CPU with AVX512-BF16), else a ``ValueError``. Saved
        with the model; loaded where bfloat16 is emulated, the model trains in float32 (with a warning)

    Several envs (``n_envs > 1``): the schedule stays per agent step, as the paper counts it. ``train_freq`` counts
    steps of the VecEnv as in SB3, and each training call makes ``gradient_steps * n_envs`` updates, so there is one
    update per ``train_freq`` agent steps (``train_freq=2``: every 2 agent steps, whatever ``n_envs``; with
    ``gradient_steps=-1`` one update per agent step, as in SB3);
    ``learning_starts`` and the σ schedule count agent steps (``num_timesteps``).

    While collecting, the action is the actor's mean plus N(0, σ²) noise, clipped to the action bounds
    (the noise itself is not clipped, as in the official code); ``predict`` returns the mean.
    The replay buffer defaults to :class:`~sb3_latent.NStepFrameStoreReplayBuffer` for pixels (each frame
    stored once; frames per stack inferred for RGB, else pass ``replay_buffer_kwargs=dict(n_frames=k)``) and
    SB3's ``NStepReplayBuffer`` for vectors, both given ``n_steps`` and ``gamma``; a buffer without
    ``discounts`` in its samples gives 1-step targets with ``gamma``.
    Differences from the official code: pixels are scaled to [0, 1] (SB3), not [-0.5, 0.5] (the same up to
    the first conv's bias); actions are clamped to [-1, 1], not [-1 + 1e-6, 1 - 1e-6].
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": DrQv2Policy, "MlpPolicy": DrQv2MlpPolicy}
    policy: DrQv2Policy | DrQv2MlpPolicy

    def __init__(
        self,
        policy: str | type[DrQv2Policy] | type[DrQv2MlpPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 2000,
        batch_size: int = 256,
        tau: float = 0.01,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 2,
        gradient_steps: int = 1,
        n_steps: int = 3,
        stddev_schedule: str | float = "linear(1.0,0.1,500000)",
        stddev_clip: float | None = 0.3,
        augment: str | None = "shift",
        augment_kwargs: dict[str, Any] | None = None,
        check_finite: bool = True,
        amp: bool = False,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        pixels = policy == "CnnPolicy" or (isinstance(policy, type) and issubclass(policy, DrQv2Policy))
        check_spaces("DrQ-v2", env, pixels)
        self._stddev = parse_stddev_schedule(stddev_schedule)
        check_int("n_steps", n_steps, 1, whole_floats=True)
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau!r}")
        if stddev_clip is not None and stddev_clip < 0:
            raise ValueError(f"stddev_clip must be >= 0 or None, got {stddev_clip!r}")
        policy_kwargs = {"net_arch": [1024, 1024], **(policy_kwargs or {})}
        if pixels:
            policy_kwargs = {"augment": augment, "augment_kwargs": augment_kwargs, **policy_kwargs}
        replay_buffer_class = replay_buffer_class or (NStepFrameStoreReplayBuffer if pixels else NStepReplayBuffer)
        replay_buffer_kwargs = dict(replay_buffer_kwargs or {})
        if "n_steps" in inspect.signature(replay_buffer_class).parameters:  # an n-step buffer
            replay_buffer_kwargs = {"n_steps": int(n_steps), "gamma": gamma, **replay_buffer_kwargs}
        self.stddev_schedule, self.stddev_clip, self.check_finite = stddev_schedule, stddev_clip, check_finite
        self.amp = check_amp(amp, get_device(device), "DrQ-v2")
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            n_steps=int(n_steps),
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            support_multi_env=True,
        )
        if _init_setup_model:
            self._setup_model()

    @classmethod
    def from_preset(cls, preset: str, policy: str | type[BasePolicy], env: GymEnv | str, **kwargs: Any) -> DrQv2:
        """DrQ-v2 with the settings of an official task group (:data:`PRESETS`): ``"easy"``,
        ``"medium"``, ``"hard"`` or ``"humanoid"``; ``kwargs`` override them. Train for
        ``PRESETS[preset]["n_timesteps"]`` agent steps (action repeat 2)::

            model = DrQv2.from_preset("easy", "CnnPolicy", env)
            model.learn(PRESETS["easy"]["n_timesteps"])
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown DrQ-v2 preset {preset!r}; expected one of {sorted(PRESETS)}")
        settings = PRESETS[preset]
        kwargs = {"stddev_schedule": settings["stddev_schedule"], **kwargs}
        if "learning_rate" in settings:
            kwargs.setdefault("learning_rate", settings["learning_rate"])
        if "features_dim" in settings:
            policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
            fe_kwargs = policy_kwargs.get("features_extractor_kwargs") or {}
            policy_kwargs["features_extractor_kwargs"] = {"features_dim": settings["features_dim"], **fe_kwargs}
            kwargs["policy_kwargs"] = policy_kwargs
        return cls(policy, env, **kwargs)  # type: ignore[arg-type]

    def _setup_model(self) -> None:
        check_spaces("DrQ-v2", self, isinstance(self.policy_class, type) and issubclass(self.policy_class, DrQv2Policy))
        # the n-step buffer is configured in __init__ (SB3 would warn that it ignores n_steps for it)
        n_steps, self.n_steps = self.n_steps, 1
        try:
            super()._setup_model()
        finally:
            self.n_steps = n_steps
        self.actor, self.critic, self.critic_target = self.policy.actor, self.policy.critic, self.policy.critic_target
        self._stddev = parse_stddev_schedule(self.stddev_schedule)
        self._bind_replay_buffer()

    def stddev(self) -> float:
        """Exploration σ at the current agent step (``num_timesteps``)."""
        return self._stddev(self.num_timesteps)

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform random actions before ``learning_starts``; then the actor's mean plus N(0, σ²)
        noise, clipped to the action bounds (scaled space [-1, 1])."""
        if self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, None, n_envs)
        assert self._last_obs is not None, "self._last_obs was not set"
        mean, _ = self.predict(self._last_obs, deterministic=True)
        scaled = self.policy.scale_action(mean)
        scaled = np.clip(scaled + self.stddev() * np.random.standard_normal(scaled.shape), -1.0, 1.0)
        scaled = scaled.astype(np.float32)
        return self.policy.unscale_action(scaled), scaled

    # --- the update ---------------------------------------------------------------------------

    def _target_q(
        self, data: ReplayBufferSamples, next_obs: torch.Tensor, next_maps: torch.Tensor, stddev: float
    ) -> torch.Tensor:
        """The critic's target (paper §3, actor-critic algorithm):
        ``y = r_n + γ^n (1 - done) min_k Q̄_k(h', a')``, ``a' = clip(μ(h') + clip(ε σ, -c, c))``, where
        ``r_n`` is the n-step return, ``γ^n`` the sample's ``discounts`` (γ to the steps taken, shorter at
        episode ends), ``done`` a termination (not a truncation) inside the window, and ``h'`` the online
        encoding of the augmented ``next_obs`` (the target critic has its own trunk and Qs, no encoder).
        """
        with torch.no_grad():
            next_action = clipped_noise_action(
                self.actor.mu(self._head(self.actor.features_extractor, next_maps)), stddev, self.stddev_clip
            )
            next_q = self._q(self.critic_target, self._target_features(next_obs, next_maps), next_action)
            discounts = data.discounts if data.discounts is not None else self.gamma
            return data.rewards + discounts * (1 - data.dones) * next_q.min(dim=1, keepdim=True)[0]

    def update(self, batch: ReplayBufferSamples) -> dict[str, torch.Tensor]:
        """One DrQ-v2 update on a sampled batch: critic (with the encoder), actor, target EMA, with the exploration
        σ of the current agent step. The extension point for subclasses and plugins (call ``super().update(batch)``
        and add entries).

        :param batch: a batch of the replay buffer (``replay_buffer.sample``; n-step ``discounts`` when it has them)
        :return: values to log as ``train/<key>``, as detached scalar tensors (averaged over a ``train`` call)
        """
        data, stddev = batch, self.stddev()
        actor_fe, critic_fe = self.actor.features_extractor, self.critic.features_extractor
        # augmentation: random shift of obs and next_obs, drawn independently
        obs, next_obs = self._augment(data.observations, data.next_observations)
        # encoder: h = f_ξ(aug(x_t)) with gradient, h' = f_ξ(aug(x_t+n)) without; one pass each, reused below
        obs_maps, next_maps = self._encode(obs, next_obs)
        # critic: L(θ, ξ) = Σ_k MSE(Q_k(h, a_t), y); one step for the encoder, trunk and both Qs
        target_q = self._target_q(data, next_obs, next_maps, stddev)
        q = self._q(self.critic, self._head(critic_fe, obs_maps), data.actions)
        critic_loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(0).sum()
        self.critic.optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic.optimizer.step()
        # actor: L(φ) = -min_k Q_k(h, a), a = clip(μ(h) + clip(ε σ, -c, c)), on the critic's detached h
        # (the actor's trunk sees the detached maps; the critic's trunk, just updated, gets no gradient)
        maps = obs_maps.detach()
        action = clipped_noise_action(self.actor.mu(self._head(actor_fe, maps)), stddev, self.stddev_clip)
        with torch.no_grad():
            critic_features = self._head(critic_fe, maps)
        actor_loss = -self._q(self.critic, critic_features, action).min(dim=1)[0].mean()
        self.actor.optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor.optimizer.step()
        # target critic: EMA with τ of the trunk and Qs (no target encoder: the target reads the online one)
        self._soft_update_critic(self.tau)
        return {
            "critic_target_q": target_q.mean(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "critic_q": q.detach().mean(),
        }

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps * n_envs`` updates: the update schedule is per agent step (see the class)."""
        self.policy.set_training_mode(True)
        lr = self._set_learning_rates()
        stddev = self.stddev()
        updates: list[dict[str, torch.Tensor]] = []  # gradient_steps=-1: SB3 passes the agent steps collected already
        first = self._n_updates + 1
        with update_loop(self, updates, first):  # no host sync inside; one check and one read at the end
            for _ in range(gradient_steps * self.n_envs if self.gradient_steps >= 0 else gradient_steps):
                data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                self._n_updates += 1
                with self._autocast():  # amp: bfloat16 forward passes
                    updates.append(self.update(data))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/learning_rate", lr)
        self.logger.record("train/stddev", stddev)
        for key, value in finite_means(self, updates, first)[0].items():
            self.logger.record(f"train/{key}", value)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor", "critic", "critic_target"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "actor.optimizer", "critic.optimizer"], []
