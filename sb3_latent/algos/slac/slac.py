"""SLAC, Stochastic Latent Actor-Critic (Lee, Nagabandi, Abbeel, Levine 2020), with SB3's interface.

A sequential latent variable model is learned from sequences of frames, actions and rewards (eq. 9);
a SAC critic is trained on latent states sampled from its filtering posterior (eq. 10), and the actor
acts from the last τ frames' encoder features and τ - 1 actions (eq. 11), its conv encoder shared
with the model but not trained by the actor loss. Defaults are the paper's (Appendix B) and the
schedule is the reference code's: ``learning_starts`` random steps, ``initial_model_updates``
model-only updates, then one model update and one SAC update per env step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecEnv

from sb3_latent.algos.contracts import ContractsMixin, check_observation, check_spaces
from sb3_latent.algos.slac.policies import SLACPolicy
from sb3_latent.algos.sync import finite_means, update_loop
from sb3_latent.buffers.sequence import SequenceReplayBuffer
from sb3_latent.common.amp import AmpMixin, check_amp
from sb3_latent.common.checks import check_int
from sb3_latent.common.torch_utils import ema_

#: sequences of τ + 1 frames: frames in [0, 1] ``(B, τ+1, C, H, W)``, actions ``(B, τ, A)``, rewards and terminations
#: ``(B, τ, 1)``
Sequences = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class SLACBatch(NamedTuple):
    """What one :meth:`SLAC.update` reads: sequences for the latent model and, except in the model-only
    pre-training, sequences for critic and actor (SLAC samples the two at their own batch sizes)."""

    model: Sequences
    sac: Sequences | None = None


def check_frames(space: spaces.Space) -> None:
    """Raise unless ``space`` holds single uint8 frames ``(C, S, S)``, ``S`` a multiple of 16.

    The paper's 5-conv encoder maps 64x64 frames to a 1x1 feature (four stride-2 convs, then a 4x4 one) and
    the decoder mirrors it; with the last (first) kernel ``S / 16`` the same stack serves any multiple of 16.
    """
    if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3):
        raise TypeError(f"SLAC's CnnPolicy needs uint8 image frames (C, 64, 64), got {space}")
    c, h, w = space.shape
    if h != w or h < 16 or h % 16:
        raise ValueError(
            f"SLAC's conv encoder and decoder (Appendix A) need square frames whose side is a multiple "
            f"of 16 (the paper's: 64x64), got {h}x{w}; render at size=64 (make_dmc_env(..., size=64))"
        )
    if c not in (1, 3):
        raise ValueError(
            f"SLAC takes single frames (1 or 3 channels) and keeps its own history of τ frames; got {c} "
            "channels: remove frame stacking (frame_stack=1)"
        )


class SLAC(AmpMixin, ContractsMixin, OffPolicyAlgorithm):
    """SLAC. ``SLAC("CnnPolicy", env).learn(...)`` with ``env`` giving single 64x64 frames.

    :param policy: ``"CnnPolicy"`` (:class:`~sb3_latent.algos.slac.policies.SLACPolicy`)
    :param env: the environment (single uint8 frames ``(C, 64, 64)``, ``Box`` actions)
    :param learning_rate: actor, critic and temperature learning rate (paper: 3e-4)
    :param buffer_size: env steps kept (paper: 100k)
    :param learning_starts: uniform random steps before learning (reference code: 10k)
    :param batch_size: SAC batch, in sequences (paper: 256)
    :param model_batch_size: latent model batch, in sequences (paper: 32)
    :param tau: EMA rate of the target critic (paper: 0.005)
    :param gamma: discount (paper: 0.99)
    :param train_freq: env steps between updates (paper: 1)
    :param gradient_steps: model + SAC updates per update (paper: 1)
    :param initial_model_updates: model-only updates before the first SAC update (reference code: 100k)
    :param ent_coef: ``"auto"`` (learned, initial 1.0 as the reference code; ``"auto_0.1"`` sets it) or a float
    :param target_entropy: ``"auto"`` (``-|A|``) or a float
    :param replay_buffer_class: default :class:`~sb3_latent.SequenceReplayBuffer`
    :param replay_buffer_kwargs: its arguments
    :param check_finite: stop with a ``NonFiniteError`` naming the first non-finite loss or target and its update
        (True); False trains on regardless
    Other parameters as SB3's ``OffPolicyAlgorithm``; ``policy_kwargs`` go to ``SLACPolicy``
    (``sequence_length`` τ = 8, ``z1_dim`` 32, ``z2_dim`` 256, ``feature_dim`` 256, ``model_lr`` 1e-4).
    :param amp: bfloat16 autocast of the update's forward passes (parameters, optimizer states and logged losses
        stay float32); needs native bfloat16 (a CUDA GPU, or a CPU with AVX512-BF16), else a ``ValueError``. Saved
        with the model; loaded where bfloat16 is emulated, the model trains in float32 (with a warning)

    Acting: the policy reads the last τ frames and τ - 1 actions of each env; at an episode's start the
    history is padded with zero frames and zero actions (as the reference code). :meth:`predict` keeps
    it in ``state`` (pass ``state`` and ``episode_start`` back, as SB3's ``evaluate_policy`` does). The
    paper evaluates with the stochastic policy (``deterministic=False``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": SLACPolicy}
    policy: SLACPolicy
    replay_buffer: SequenceReplayBuffer

    def __init__(
        self,
        policy: str | type[SLACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 100_000,
        learning_starts: int = 10_000,
        batch_size: int = 256,
        model_batch_size: int = 32,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        initial_model_updates: int = 100_000,
        ent_coef: str | float = "auto",
        target_entropy: str | float = "auto",
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        check_finite: bool = True,
        amp: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        check_spaces("SLAC", env, pixels=False)
        if getattr(env, "observation_space", None) is not None:
            check_frames(env.observation_space)  # type: ignore[union-attr]
        for name, value in (("model_batch_size", model_batch_size), ("batch_size", batch_size)):
            check_int(name, value, 1, whole_floats=True)
        check_int("initial_model_updates", initial_model_updates, 0, whole_floats=True)
        self.model_batch_size, self.initial_model_updates = int(model_batch_size), int(initial_model_updates)
        self.ent_coef, self.target_entropy, self.check_finite = ent_coef, target_entropy, check_finite
        self.amp = check_amp(amp, get_device(device), "SLAC")
        self.model_updates_done = 0
        self._history: tuple[np.ndarray, np.ndarray] | None = None
        n_seq = int((policy_kwargs or {}).get("sequence_length", 8))
        if replay_buffer_class is None:  # sequences of τ + 1 frames inside episodes (the reference code's)
            replay_buffer_kwargs = {"sequence_length": n_seq + 1, "mode": "episode", **(replay_buffer_kwargs or {})}
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
            replay_buffer_class=replay_buffer_class or SequenceReplayBuffer,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        check_frames(self.observation_space)
        super()._setup_model()
        a_dim = int(np.prod(self.action_space.shape))  # type: ignore[arg-type]
        self.target_entropy_value = -float(a_dim) if self.target_entropy == "auto" else float(self.target_entropy)
        self.log_ent_coef: torch.Tensor | None = None
        if isinstance(self.ent_coef, str) and self.ent_coef.startswith("auto"):
            init = float(self.ent_coef.split("_")[1]) if "_" in self.ent_coef else 1.0
            if init <= 0:
                raise ValueError(f"the initial ent_coef must be > 0, got {init}")
            self.log_ent_coef = torch.log(torch.ones(1, device=self.device) * init).requires_grad_(True)
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.ent_coef_tensor = torch.tensor(float(self.ent_coef), device=self.device)

    # --- acting: a history of τ features and τ - 1 actions per env -------------------------------------

    def _fresh_history(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Histories of envs at their episode's first frame (features ``f``, ``(n, F)``): τ - 1 zero frames
        (their features) and zero actions before it."""
        tau, a_dim = self.policy.sequence_length, int(np.prod(self.action_space.shape))  # type: ignore[arg-type]
        zero = self.policy.features(torch.zeros((1, *self.observation_space.shape), device=self.device))  # type: ignore[misc]
        hist = torch.cat([zero.expand(len(f), tau - 1, -1), f[:, None]], dim=1)
        return hist, torch.zeros((len(f), tau - 1, a_dim), device=self.device)

    def _push(
        self, f_hist: torch.Tensor, a_hist: torch.Tensor, f: torch.Tensor, a: torch.Tensor, new_episode: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append a frame's features and the action that led to it; restart the envs in ``new_episode``."""
        f_hist = torch.cat([f_hist[:, 1:], f[:, None]], dim=1)
        a_hist = torch.cat([a_hist[:, 1:], a[:, None]], dim=1) if a_hist.shape[1] else a_hist
        idx = np.flatnonzero(new_episode)
        if len(idx):
            fresh_f, fresh_a = self._fresh_history(f[idx])
            f_hist[idx], a_hist[idx] = fresh_f, fresh_a
        return f_hist, a_hist

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Actions for ``observation`` (``(n, C, 64, 64)`` or one frame) given the history in ``state``.

        :param observation: current frames
        :param state: the history returned by the previous call (None: every env starts an episode)
        :param episode_start: envs whose ``observation`` is an episode's first frame (None: none, as in
            sb3-contrib's recurrent policies)
        :param deterministic: the mean action (the paper evaluates with the stochastic one)
        :return: actions in the env's bounds, and the new state (features, actions, last action)
        :raises ValueError: for observations of another shape (SB3's check)
        """
        obs = np.asarray(observation)
        single = not check_observation(obs, self.observation_space)
        obs = obs[None] if single else obs
        self.policy.set_training_mode(False)
        f = self.policy.features(torch.as_tensor(obs, device=self.device))
        n = len(obs)
        if state is None:
            f_hist, a_hist = self._fresh_history(f)
        else:
            f_prev, a_prev, last = (torch.as_tensor(s, device=self.device) for s in state)
            starts = np.zeros(n, dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
            f_hist, a_hist = self._push(f_prev, a_prev, f, last, starts.reshape(n))
        a = self.policy.act(f_hist, a_hist, deterministic)
        actions = self.policy.unscale_action(a.cpu().numpy())
        new_state = (f_hist.cpu().numpy(), a_hist.cpu().numpy(), a.cpu().numpy())
        return (actions[0] if single else actions), new_state

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, Any]:
        was_reset = reset_num_timesteps or self._last_obs is None
        out = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if was_reset or self._history is None:  # the envs were reset: every history restarts
            assert self._last_obs is not None
            f = self.policy.features(torch.as_tensor(self._last_obs, device=self.device))
            self._history = tuple(h.cpu().numpy() for h in self._fresh_history(f))  # type: ignore[assignment]
        return out

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform random actions before ``learning_starts``; then the stochastic policy on the history."""
        if self.num_timesteps < learning_starts or self._history is None:
            return super()._sample_action(learning_starts, None, n_envs)
        f_hist, a_hist = (torch.as_tensor(h, device=self.device) for h in self._history)
        scaled = self.policy.act(f_hist, a_hist, deterministic=False).cpu().numpy()
        return self.policy.unscale_action(scaled), scaled

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: Any,
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        assert self._history is not None
        f_hist, a_hist = (torch.as_tensor(h, device=self.device) for h in self._history)
        f = self.policy.features(torch.as_tensor(np.asarray(new_obs), device=self.device))
        a = torch.as_tensor(buffer_action, dtype=torch.float32, device=self.device)
        self._history = tuple(h.cpu().numpy() for h in self._push(f_hist, a_hist, f, a, np.asarray(dones)))  # type: ignore[assignment]

    # --- learning ------------------------------------------------------------------------------------

    def _sequences(self, batch_size: int) -> Sequences:
        """``batch_size`` sequences of τ + 1 frames inside episodes: frames in [0, 1] ``(B, τ+1, C, H, W)``,
        actions ``(B, τ, A)``, rewards and terminations ``(B, τ, 1)``."""
        s = self.replay_buffer.sample(batch_size, sequence_length=self.policy.sequence_length + 1, mode="episode")
        assert isinstance(s.observations, torch.Tensor)
        # the step t -> t+1 terminates the episode when o_t+1 is terminal (truncations bootstrap)
        return (
            s.observations.float().div_(255.0),
            s.actions.float(),
            s.rewards.float()[..., None],
            s.terminated[:, 1:].float()[..., None],
        )

    def sample_batch(self, sac: bool = True) -> SLACBatch:
        """What one :meth:`update` reads: ``model_batch_size`` sequences for the model and, if ``sac``,
        ``batch_size`` sequences for critic and actor."""
        return SLACBatch(self._sequences(self.model_batch_size), self._sequences(self.batch_size) if sac else None)

    def update(self, batch: SLACBatch) -> dict[str, torch.Tensor]:
        """One SLAC update: a step on the model loss with ``batch.model``, then (unless ``batch.sac`` is None, as
        in the model pre-training) one SAC step with ``batch.sac``. The extension point for subclasses and plugins
        (call ``super().update(batch)`` and add entries).

        :param batch: sequences from :meth:`sample_batch`
        :return: values to log as ``train/<key>``, as detached scalar tensors (averaged over a ``train`` call)
        """
        logs = self._model_update(batch.model)
        if batch.sac is not None:
            logs.update(self._sac_update(batch.sac))
        return logs

    def _model_update(self, sequences: Sequences) -> dict[str, torch.Tensor]:
        """One step on the model loss, eq. (9) with the reward term."""
        losses = self.policy.latent.loss(*sequences)
        opt = self.policy.latent.optimizer
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        return {k: v.detach() for k, v in losses.items()}

    def _sac_update(self, sequences: Sequences) -> dict[str, torch.Tensor]:
        """One SAC step on latents from the filtering posterior (eqs. 10-11)."""
        p = self.policy
        x, a, r, done = sequences
        with torch.no_grad():
            f = p.latent.encode(x)  # f_1..f_τ+1
            _, _, z1, z2 = p.latent.posterior(f, a)
        z = torch.cat([z1, z2], dim=-1)
        z_t, z_next, a_t = z[:, -2], z[:, -1], a[:, -1]
        h, h_next = p.history_input(f[:, :-1], a[:, :-1]), p.history_input(f[:, 1:], a[:, 1:])
        alpha = self.log_ent_coef.exp().detach() if self.log_ent_coef is not None else self.ent_coef_tensor
        # critic, eq. (10): y = r_τ + γ (1 - done) [min Q̄(z_τ+1, a') - α log π(a' | x_2:τ+1, a_2:τ)]
        with torch.no_grad():
            a_next, logp_next = p.actor(h_next)
            q_next = torch.min(*p.critic_target(z_next, a_next)) - alpha * logp_next
            y = r[:, -1] + (1.0 - done[:, -1]) * self.gamma * q_next
        q1, q2 = p.critic(z_t, a_t)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        p.critic.optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        p.critic.optimizer.step()
        # actor, eq. (11): E[α log π(a | x_1:τ, a_1:τ-1) - min Q(z_τ, a)]
        a_pi, logp = p.actor(h)
        actor_loss = (alpha * logp - torch.min(*p.critic(z_t, a_pi))).mean()
        p.actor.optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        p.actor.optimizer.step()
        logs = {
            "critic_target": y.mean(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "ent_coef": alpha.reshape(()),
        }
        if self.log_ent_coef is not None:  # temperature: E[-log α (log π + target entropy)]
            ent_loss = -(self.log_ent_coef * (logp.detach() + self.target_entropy_value)).mean()
            self.ent_coef_optimizer.zero_grad(set_to_none=True)
            ent_loss.backward()
            self.ent_coef_optimizer.step()
            logs["ent_coef_loss"] = ent_loss.detach()
        ema_(list(p.critic_target.parameters()), list(p.critic.parameters()), self.tau)
        return logs

    def _record_model(self, means: dict[str, float]) -> None:
        for k in ("kl", "recon", "reward_nll"):
            if k in means:
                self.logger.record(f"train/{k}", means[k])
        if "loss" in means:
            self.logger.record("train/elbo", -means["loss"])

    def pretrain_model(self, n_updates: int) -> None:
        """``n_updates`` model-only updates (the reference code's 100k after the random steps)."""
        self.policy.set_training_mode(True)
        logs: dict[str, list[float]] = defaultdict(list)
        start = time.perf_counter()
        updates: list[dict[str, torch.Tensor]] = []
        for i in range(n_updates):
            with update_loop(self, updates, self.model_updates_done - len(updates) + 1), self._autocast():
                updates.append(self.update(self.sample_batch(sac=False)))  # amp: bfloat16 forward passes
            self.model_updates_done += 1
            if len(updates) == 1000 or i == n_updates - 1:  # one check (and read) per 1000 updates
                means = finite_means(self, updates, self.model_updates_done - len(updates) + 1)[0]
                for k, v in means.items():
                    logs[k].append(v * len(updates))
                logs["n"].append(len(updates))
                updates = []
        n = sum(logs.pop("n", [1]))
        self._record_model({k: sum(v) / n for k, v in logs.items()})
        self.logger.record("train/model_pretrain_seconds", time.perf_counter() - start)

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """Model and SAC updates; none while the buffer holds no sequence of τ + 1 frames inside an episode yet
        (a model loaded without its buffer, or given a new env, collects until it does)."""
        if self.replay_buffer.n_sequences(self.policy.sequence_length + 1, "episode") == 0:
            return
        pending = self.initial_model_updates - self.model_updates_done
        if pending > 0 and self._n_updates == 0:
            self.pretrain_model(pending)
        self.policy.set_training_mode(True)
        updates: list[dict[str, torch.Tensor]] = []
        first = self._n_updates + 1
        with update_loop(self, updates, first):  # no host sync inside; one check and one read at the end
            for _ in range(gradient_steps):
                with self._autocast():  # amp: bfloat16 forward passes
                    updates.append(self.update(self.sample_batch()))
                self.model_updates_done += 1
                self._n_updates += 1
        means = finite_means(self, updates, first)[0]
        self._record_model(means)
        for key in ("critic_loss", "actor_loss", "ent_coef", "ent_coef_loss"):
            if key in means:
                self.logger.record(f"train/{key}", means[key])
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state = ["policy", "policy.actor.optimizer", "policy.critic.optimizer", "policy.latent.optimizer"]
        if self.log_ent_coef is not None:
            return [*state, "ent_coef_optimizer"], ["log_ent_coef"]
        return state, ["ent_coef_tensor"]

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        if isinstance(env, VecEnv) or hasattr(env, "observation_space"):
            check_frames(env.observation_space)
        super().set_env(env, force_reset)
        if force_reset:
            self._history = None


@torch.no_grad()
def write_rollouts(model: SLAC, path: str | Path, n_sequences: int = 3) -> Path:
    """Write the paper's Figure 9 for sequences from the replay buffer as a PNG: per sequence, rows of
    true frames, posterior samples (frames encoded and filtered), conditional-prior samples (only the
    first frame encoded, then the prior through the true actions) and prior samples (no frame seen).

    :param model: a SLAC model whose buffer holds at least one episode of τ + 1 steps
    :param path: PNG file to write
    :param n_sequences: sequences shown
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latent = model.policy.latent
    latent.eval()
    x, a, _, _ = model._sequences(n_sequences)
    _, _, z1, z2 = latent.posterior(latent.encode(x), a)
    z1_prior = torch.randn_like(z1[:, 0])
    rows = {
        "true": x,
        "posterior": latent.decode(torch.cat([z1, z2], dim=-1)),
        "conditional prior": latent.decode(latent.imagine(z1[:, 0], z2[:, 0], a)),
        "prior": latent.decode(latent.imagine(z1_prior, latent._sample(*latent.z2_init(z1_prior)), a)),
    }
    n, t = x.shape[:2]
    fig, axes = plt.subplots(n * len(rows), t, figsize=(1.1 * t, 1.15 * n * len(rows)), squeeze=False)
    for i in range(n):
        for j, (name, frames) in enumerate(rows.items()):
            for k in range(t):
                ax = axes[i * len(rows) + j][k]
                img = frames[i, k].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
                ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
                ax.set_xticks([])
                ax.set_yticks([])
                if k == 0:
                    ax.set_ylabel(name, fontsize=6)
    fig.suptitle(f"SLAC model samples (paper Fig. 9), {model.model_updates_done} model updates", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    latent.train(model.policy.training)
    return path
