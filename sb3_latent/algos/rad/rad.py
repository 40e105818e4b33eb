"""RAD-SAC (Laskin et al., "Reinforcement Learning with Augmented Data"), the base algorithm of Flare.

SAC on augmented pixels, with one conv encoder shared by actor and critic and trained by the
critic loss only, a target critic whose encoder copy follows by EMA with its own τ, and actor,
temperature and target updates every 2 gradient steps. Defaults are the Flare paper's
(Appendix A.4). ``RAD("CnnPolicy", env, policy_kwargs=flare_kwargs(n_frames=3))`` is Flare as
published.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import get_device
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN

from sb3_latent.algos.contracts import ContractsMixin, check_spaces
from sb3_latent.algos.rad.policies import RADMlpPolicy, RADPolicy
from sb3_latent.algos.shared_encoder import SharedEncoderMixin
from sb3_latent.algos.sync import finite_means, update_loop
from sb3_latent.buffers import FrameStoreReplayBuffer
from sb3_latent.common.amp import AmpMixin, check_amp
from sb3_latent.common.checks import check_int


class RAD(AmpMixin, SharedEncoderMixin, ContractsMixin, SAC):
    """RAD-SAC with SB3's interface; every :class:`~sb3_latent.extractors.flare.PixelExtractor`
    (Flare, latent stack, pixel flow) can replace the default stacked-frames encoder.

    Parameters as SB3's ``SAC`` (with the Flare paper's defaults), plus:

    :param actor_update_interval: gradient steps between actor and temperature updates (paper: 2)
    :param target_update_interval: gradient steps between target updates (paper: 2)
    :param encoder_tau: EMA rate of the target encoder (paper: 0.05); ``tau`` is the critic's (0.01)
    :param encoder_lr: learning rate of the shared encoder; None (default): the critic's ``learning_rate``, as the
        official flare/rad code, which trains the encoder inside the critic's optimizer (this made the published
        curves; Flare's Table A.4 states 1e-3, pass ``encoder_lr=1e-3`` for that)
    :param alpha_loss: the temperature loss: ``"alpha"`` (default; the official curl_sac.py / rad / flare,
        ``(α · (-log π - H̄)).mean()``, whose gradient in log α is scaled by α) or ``"log_alpha"`` (SB3's
        ``-(log α · (log π + H̄)).mean()``)
    :param alpha_lr: learning rate of the temperature (paper: 1e-4, Adam β1 = 0.5)
    :param alpha_betas: Adam betas of the temperature optimizer
    :param augment: augmentation of sampled batches: ``"translate"`` (paper; canvas = frame + 8 px),
        ``"crop"``, ``"shift"``, a plugin's name, or None
    :param augment_kwargs: its constructor arguments (e.g. ``{"size": 108}``)
    :param same_augmentation: one transform for obs and next_obs of a sample (RAD's translate), which
        also lets the frames they share be encoded once; False draws them independently
    :param check_finite: stop with a ``NonFiniteError`` naming the first non-finite loss or target and its update
        (True); False trains on regardless
    :param amp: bfloat16 autocast of the update's forward passes (parameters, optimizer states and logged losses
        stay float32); needs native bfloat16 (a CUDA GPU, or a CPU with AVX512-BF16), else a ``ValueError``. Saved
        with the model; loaded where bfloat16 is emulated, the model trains in float32 (with a warning)

    With ``CnnPolicy`` the replay buffer defaults to :class:`~sb3_latent.FrameStoreReplayBuffer` (each
    frame stored once; frames per stack inferred for RGB, else pass ``replay_buffer_kwargs=dict(n_frames=k)``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": RADPolicy, "MlpPolicy": RADMlpPolicy}
    policy: RADPolicy | RADMlpPolicy

    def __init__(
        self,
        policy: str | type[RADPolicy] | type[RADMlpPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 2e-4,
        buffer_size: int = 100_000,
        learning_starts: int = 10_000,
        batch_size: int = 128,
        tau: float = 0.01,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        ent_coef: str | float = "auto_0.1",
        actor_update_interval: int = 2,
        target_update_interval: int = 2,
        target_entropy: str | float = "auto",
        encoder_tau: float = 0.05,
        encoder_lr: float | None = None,
        alpha_lr: float = 1e-4,
        alpha_betas: tuple[float, float] = (0.5, 0.999),
        augment: str | None = "translate",
        augment_kwargs: dict[str, Any] | None = None,
        same_augmentation: bool = True,
        check_finite: bool = True,
        alpha_loss: str = "alpha",
        amp: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        for name, value in [
            ("actor_update_interval", actor_update_interval),
            ("target_update_interval", target_update_interval),
        ]:
            check_int(name, value, 1, whole_floats=True)
        if alpha_loss not in ("alpha", "log_alpha"):
            raise ValueError(
                f"alpha_loss must be 'alpha' (the official code's) or 'log_alpha' (SB3's), got {alpha_loss!r}"
            )
        if not 0.0 < encoder_tau <= 1.0:
            raise ValueError(f"encoder_tau must be in (0, 1], got {encoder_tau!r}")
        policy_kwargs = {"net_arch": [1024, 1024], **(policy_kwargs or {})}
        pixels = policy == "CnnPolicy" or (isinstance(policy, type) and issubclass(policy, RADPolicy))
        check_spaces("RAD (SAC)", env, pixels)
        if pixels:
            policy_kwargs = {
                "augment": augment,
                "augment_kwargs": augment_kwargs,
                "encoder_lr": encoder_lr,
                **policy_kwargs,
            }
            replay_buffer_class = replay_buffer_class or FrameStoreReplayBuffer  # each frame stored once
        self.actor_update_interval, self.encoder_tau = int(actor_update_interval), encoder_tau
        self.alpha_lr, self.alpha_betas, self.same_augmentation = alpha_lr, alpha_betas, same_augmentation
        self.check_finite, self.alpha_loss = check_finite, alpha_loss
        self.amp = check_amp(amp, get_device(device), "RAD")
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=_init_setup_model,
        )

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.log_ent_coef is not None:  # temperature: Adam(lr 1e-4, β1 0.5), Flare Table A.4
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.alpha_lr, betas=self.alpha_betas)
        self._bind_replay_buffer()

    # --- pieces of the update (the rest are SharedEncoderMixin's) ------------------------------

    def _policy(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Squashed-Gaussian action and its log-probability from actor features."""
        latent = self.actor.latent_pi(features)
        squash = getattr(self.actor, "squash_log_std", None)  # RADActor: tanh-rescaled into [-10, 2] (official)
        raw = self.actor.log_std(latent)
        log_std = squash(raw) if squash is not None else torch.clamp(raw, LOG_STD_MIN, LOG_STD_MAX)
        action, log_prob = self.actor.action_dist.log_prob_from_params(self.actor.mu(latent), log_std)
        return action, log_prob.reshape(-1, 1)

    # --- the update -----------------------------------------------------------------------------

    def update(self, batch: ReplayBufferSamples) -> dict[str, torch.Tensor]:
        """One RAD update on a sampled batch: critic (and the encoder); every ``actor_update_interval`` updates the
        actor and temperature; every ``target_update_interval`` the target EMA. The extension point for subclasses
        and plugins (call ``super().update(batch)`` and add entries).

        :param batch: a batch of the replay buffer (``replay_buffer.sample``)
        :return: values to log as ``train/<key>``, as detached scalar tensors (averaged over a ``train`` call)
        """
        data = batch
        obs, next_obs = self._augment(data.observations, data.next_observations)
        ent_coef = torch.exp(self.log_ent_coef.detach()) if self.log_ent_coef is not None else self.ent_coef_tensor
        actor_fe, critic_fe = self.actor.features_extractor, self.critic.features_extractor
        obs_maps, next_maps = self._encode(obs, next_obs)
        with torch.no_grad():  # soft target, eq. (1)-(2) of Flare's Appendix A.1
            next_action, next_log_prob = self._policy(self._head(actor_fe, next_maps))
            next_features = self._target_features(next_obs, next_maps)
            next_q = self._q(self.critic_target, next_features, next_action).min(1, keepdim=True)[0]
            target_q = data.rewards + (1 - data.dones) * self.gamma * (next_q - ent_coef * next_log_prob)
        q = self._q(self.critic, self._head(critic_fe, obs_maps), data.actions)
        critic_loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(0).sum()  # sum over the Qs, as RAD
        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        self.critic.optimizer.step()
        logs = {
            "target_q": target_q.mean(),
            "critic_loss": critic_loss.detach(),
            "critic_q": q.detach().mean(),
            "ent_coef": ent_coef.mean(),
        }

        if self._n_updates % self.actor_update_interval == 0:  # actor and temperature, eq. (3)
            maps = obs_maps.detach()  # the critic's encoding, reused (as DrQ-v2 does); no encoder gradient
            action, log_prob = self._policy(self._head(actor_fe, maps))
            q_pi = self._q(self.critic, self._head(critic_fe, maps), action).min(1, keepdim=True)[0]
            actor_loss = (ent_coef * log_prob - q_pi).mean()
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()
            logs["actor_loss"] = actor_loss.detach()
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                assert isinstance(self.target_entropy, float)
                if self.alpha_loss == "alpha":  # curl_sac.py: (α (-log π - H̄)).mean(), gradient scaled by α
                    ent_coef_loss = (self.log_ent_coef.exp() * (-log_prob - self.target_entropy).detach()).mean()
                else:  # SB3's
                    ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
                logs["ent_coef_loss"] = ent_coef_loss.detach()

        if self._n_updates % self.target_update_interval == 0:  # critic τ 0.01, encoder τ 0.05
            self._soft_update_critic(self.tau, self.encoder_tau)
        return logs

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        lr = self._set_learning_rates()
        updates: list[dict[str, torch.Tensor]] = []
        first = self._n_updates + 1
        with update_loop(self, updates, first):  # no host sync inside; one check and one read at the end
            for _ in range(gradient_steps):
                data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                self._n_updates += 1
                with self._autocast():  # amp: bfloat16 forward passes
                    updates.append(self.update(data))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/learning_rate", lr)
        for key, value in finite_means(self, updates, first)[0].items():
            self.logger.record(f"train/{key}", value)
