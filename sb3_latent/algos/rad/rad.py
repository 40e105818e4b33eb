"""RAD-SAC (Laskin et al., "Reinforcement Learning with Augmented Data"), the base algorithm of Flare.

SAC on augmented pixels, with one conv encoder shared by actor and critic and trained by the
critic loss only, a target critic whose encoder copy follows by EMA with its own τ, and actor,
temperature and target updates every 2 gradient steps. Defaults are the Flare paper's
(Appendix A.4). ``RAD("CnnPolicy", env, policy_kwargs=flare_kwargs(n_frames=3))`` is Flare as
published.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from stable_baselines3.common.type_aliases import GymEnv, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN
from torch import nn

from sb3_latent.algos.rad.policies import RADMlpPolicy, RADPolicy
from sb3_latent.buffers import FrameStoreReplayBuffer
from sb3_latent.extractors.flare import PixelExtractor


class RAD(SAC):
    """RAD-SAC with SB3's interface; every :class:`~sb3_latent.extractors.flare.PixelExtractor`
    (Flare, latent stack, pixel flow) can replace the default stacked-frames encoder.

    Parameters as SB3's ``SAC`` (with the Flare paper's defaults), plus:

    :param actor_update_interval: gradient steps between actor and temperature updates (paper: 2)
    :param target_update_interval: gradient steps between target updates (paper: 2)
    :param encoder_tau: EMA rate of the target encoder (paper: 0.05); ``tau`` is the critic's (0.01)
    :param encoder_lr: learning rate of the shared encoder (paper: 1e-3)
    :param alpha_lr: learning rate of the temperature (paper: 1e-4, Adam β1 = 0.5)
    :param alpha_betas: Adam betas of the temperature optimizer
    :param augment: augmentation of sampled batches: ``"translate"`` (paper; canvas = frame + 8 px),
        ``"crop"``, ``"shift"``, a plugin's name, or None
    :param augment_kwargs: its constructor arguments (e.g. ``{"size": 108}``)
    :param same_augmentation: one transform for obs and next_obs of a sample (RAD's translate), which
        also lets the frames they share be encoded once; False draws them independently

    With ``CnnPolicy`` the replay buffer defaults to :class:`~sb3_latent.FrameStoreReplayBuffer` (each
    frame stored once; frames per stack inferred for RGB, else pass ``replay_buffer_kwargs=dict(n_frames=k)``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": RADPolicy, "MlpPolicy": RADMlpPolicy}
    policy: RADPolicy | RADMlpPolicy  # type: ignore[assignment]

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
        encoder_lr: float = 1e-3,
        alpha_lr: float = 1e-4,
        alpha_betas: tuple[float, float] = (0.5, 0.999),
        augment: str | None = "translate",
        augment_kwargs: dict[str, Any] | None = None,
        same_augmentation: bool = True,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        for name, value in [("actor_update_interval", actor_update_interval),
                            ("target_update_interval", target_update_interval)]:
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0.0 < encoder_tau <= 1.0:
            raise ValueError(f"encoder_tau must be in (0, 1], got {encoder_tau!r}")
        action_space = getattr(env, "action_space", None)
        if action_space is not None and not isinstance(action_space, spaces.Box):
            raise TypeError(f"RAD (SAC) needs continuous actions (a Box action space), got {action_space}")
        policy_kwargs = {"net_arch": [1024, 1024], **(policy_kwargs or {})}
        pixels = policy == "CnnPolicy" or (isinstance(policy, type) and issubclass(policy, RADPolicy))
        obs_space = getattr(env, "observation_space", None)
        if pixels and obs_space is not None and not is_image_space(obs_space, check_channels=False):
            raise TypeError(f"RAD's CnnPolicy needs image observations (uint8, (C, H, W)), got {obs_space}; "
                            f"use 'MlpPolicy' for vector observations")
        if pixels:
            policy_kwargs = {"augment": augment, "augment_kwargs": augment_kwargs, "encoder_lr": encoder_lr,
                             **policy_kwargs}
            replay_buffer_class = replay_buffer_class or FrameStoreReplayBuffer  # each frame stored once
        self.actor_update_interval, self.encoder_tau = int(actor_update_interval), encoder_tau
        self.alpha_lr, self.alpha_betas, self.same_augmentation = alpha_lr, alpha_betas, same_augmentation
        super().__init__(
            policy, env, learning_rate=learning_rate, buffer_size=buffer_size, learning_starts=learning_starts,
            batch_size=batch_size, tau=tau, gamma=gamma, train_freq=train_freq, gradient_steps=gradient_steps,
            action_noise=action_noise, replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs, ent_coef=ent_coef,
            target_update_interval=target_update_interval, target_entropy=target_entropy,
            stats_window_size=stats_window_size, tensorboard_log=tensorboard_log, policy_kwargs=policy_kwargs,
            verbose=verbose, seed=seed, device=device, _init_setup_model=_init_setup_model,
        )  # fmt: skip

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.log_ent_coef is not None:  # temperature: Adam(lr 1e-4, β1 0.5), Flare Table A.4
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.alpha_lr, betas=self.alpha_betas)

    # --- pieces of the update -------------------------------------------------------------------

    def _augment(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aug = self.policy.augmentation if isinstance(self.policy, RADPolicy) else None
        if aug is None:
            return obs, next_obs
        a, b = aug(obs, next_obs, same=self.same_augmentation)
        return a, b

    def _preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        space = self.policy.encoder_space if isinstance(self.policy, RADPolicy) else self.observation_space
        return preprocess_obs(obs, space, normalize_images=self.policy.normalize_images)  # type: ignore[return-value]

    def _encode(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Online encoder maps of obs (with gradient) and next_obs (without). When obs and next_obs
        share frames (frame stacking, same augmentation), each unique frame is encoded once, and
        frames that enter only detached (Flare's oldest) are encoded without gradient."""
        fe = self.critic.features_extractor
        o, n = self._preprocess(obs), self._preprocess(next_obs)
        if not isinstance(fe, PixelExtractor):
            return o, n
        fo, fn = fe.frames(o), fe.frames(n)
        if not (fe.framewise and fe.n_frames > 1 and torch.equal(fo[:, 1:], fn[:, :-1])):
            obs_maps = fe.encode(o)
            with torch.no_grad():
                return obs_maps, fe.encode(n)
        g = fe.detached_prefix
        grad_maps = fe.encode_frames(fo[:, g:])
        with torch.no_grad():
            rest = fe.encode_frames(torch.cat([fo[:, :g], fn[:, -1:]], dim=1))
        obs_maps = torch.cat([rest[:, :g], grad_maps], dim=1)
        next_maps = torch.cat([grad_maps[:, 1 - g :].detach(), rest[:, g:]], dim=1)
        return obs_maps, next_maps

    @staticmethod
    def _head(extractor: nn.Module, maps: torch.Tensor) -> torch.Tensor:
        return extractor.head(maps) if isinstance(extractor, PixelExtractor) else extractor(maps)

    def _target_features(self, next_obs: torch.Tensor) -> torch.Tensor:
        fe = self.critic_target.features_extractor
        n = self._preprocess(next_obs)
        return self._head(fe, fe.encode(n) if isinstance(fe, PixelExtractor) else n)

    def _policy(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Squashed-Gaussian action and its log-probability from actor features."""
        latent = self.actor.latent_pi(features)
        log_std = torch.clamp(self.actor.log_std(latent), LOG_STD_MIN, LOG_STD_MAX)  # type: ignore[operator]
        action, log_prob = self.actor.action_dist.log_prob_from_params(self.actor.mu(latent), log_std)  # type: ignore[call-arg]
        return action, log_prob.reshape(-1, 1)

    @staticmethod
    def _q(critic: nn.Module, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([features, actions], dim=1)
        return torch.cat([q(x) for q in critic.q_networks], dim=1)  # type: ignore[union-attr]

    # --- the update -----------------------------------------------------------------------------

    def _update(self, data: ReplayBufferSamples) -> dict[str, float]:
        obs, next_obs = self._augment(data.observations, data.next_observations)
        ent_coef = torch.exp(self.log_ent_coef.detach()) if self.log_ent_coef is not None else self.ent_coef_tensor
        actor_fe, critic_fe = self.actor.features_extractor, self.critic.features_extractor
        obs_maps, next_maps = self._encode(obs, next_obs)
        with torch.no_grad():  # soft target, eq. (1)-(2) of Flare's Appendix A.1
            next_action, next_log_prob = self._policy(self._head(actor_fe, next_maps))
            next_q = self._q(self.critic_target, self._target_features(next_obs), next_action).min(1, keepdim=True)[0]
            target_q = data.rewards + (1 - data.dones) * self.gamma * (next_q - ent_coef * next_log_prob)
        q = self._q(self.critic, self._head(critic_fe, obs_maps), data.actions)
        critic_loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(0).sum()  # sum over the Qs, as RAD
        self.critic.optimizer.zero_grad()
        critic_loss.backward()  # type: ignore[union-attr]
        self.critic.optimizer.step()
        logs = {"critic_loss": critic_loss.item(), "critic_q": q.mean().item(), "ent_coef": ent_coef.item()}

        if self._n_updates % self.actor_update_interval == 0:  # actor and temperature, eq. (3)
            maps = obs_maps.detach()  # the critic's encoding, reused (as DrQ-v2 does); no encoder gradient
            action, log_prob = self._policy(self._head(actor_fe, maps))
            q_pi = self._q(self.critic, self._head(critic_fe, maps), action).min(1, keepdim=True)[0]
            actor_loss = (ent_coef * log_prob - q_pi).mean()
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()
            logs["actor_loss"] = actor_loss.item()
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                assert isinstance(self.target_entropy, float)
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
                logs["ent_coef_loss"] = ent_coef_loss.item()

        if self._n_updates % self.target_update_interval == 0:  # critic τ 0.01, encoder τ 0.05
            enc: nn.Module | None = getattr(critic_fe, "encoder", None)
            enc_ids = {id(p) for p in enc.parameters()} if enc is not None else set()
            pairs = list(zip(self.critic.parameters(), self.critic_target.parameters(), strict=True))
            polyak_update([p for p, _ in pairs if id(p) not in enc_ids],
                          [t for p, t in pairs if id(p) not in enc_ids], self.tau)
            target_enc: nn.Module | None = getattr(self.critic_target.features_extractor, "encoder", None)
            if enc is not None and target_enc is not None:
                polyak_update(enc.parameters(), target_enc.parameters(), self.encoder_tau)
        return logs

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        lr = self.lr_schedule(self._current_progress_remaining)
        for opt in (self.actor.optimizer, self.critic.optimizer):
            for group in opt.param_groups:
                group["lr"] = getattr(self.policy, "encoder_lr", lr) if group.get("name") == "encoder" else lr
        logs: dict[str, list[float]] = defaultdict(list)
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            self._n_updates += 1
            for k, v in self._update(data).items():
                logs[k].append(v)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/learning_rate", lr)
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))
