"""DreamerV3 (Hafner, Pasukonis, Ba, Lillicrap 2023, "Mastering Diverse Domains through World Models") with SB3's
interface.

A world model (RSSM with discrete latents) is learned from replayed sequences (eq. 4-5); the actor and critic
learn from trajectories imagined by the model, ``horizon`` steps from every replayed posterior state (eq. 6-8).
Defaults are the paper's (Appendix, Table of hyperparameters): batch 16 x 64, world model lr 1e-4, actor and
critic lr 3e-5, horizon 15, γ 0.997 (horizon 333), λ 0.95, entropy 3e-4, slow critic EMA 0.02, KL scales
0.5 / 0.1 with free bits 1, return scale from the 5-95 percentiles (limit 1). The actor gradient is REINFORCE for
both action types, as the current official code does (the 2023 paper backpropagated through the dynamics for
continuous actions); the replay-value loss of the newer code is not used.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import get_device
from torch.nn import functional as F

from sb3_latent.algos.contracts import ContractsMixin, check_observation
from sb3_latent.algos.dreamer.distributions import TwoHotSymexp, kl_balance, lambda_return
from sb3_latent.algos.dreamer.networks import State, check_obs_space, feat
from sb3_latent.algos.dreamer.policies import (
    DreamerCnnPolicy,
    DreamerMlpPolicy,
    DreamerMultiInputPolicy,
    DreamerPolicy,
    resolve_size,
)
from sb3_latent.algos.sync import finite_means, update_loop
from sb3_latent.buffers.sequence import SequenceReplayBuffer, SequenceSamples
from sb3_latent.common.amp import amp_after_load, autocast, check_amp
from sb3_latent.common.checks import check_int
from sb3_latent.common.torch_utils import ema_


def check_action_space(space: Any) -> None:
    if space is not None and not isinstance(space, (spaces.Box, spaces.Discrete)):
        raise TypeError(f"Dreamer needs a Box (continuous) or Discrete action space, got {space}")
    if isinstance(space, spaces.Box) and len(space.shape) != 1:
        raise TypeError(f"Dreamer's continuous actions must be a 1-D Box, got shape {space.shape}")
    if isinstance(space, spaces.Box) and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(
            f"Dreamer's continuous actions must be bounded (its actor acts in [-1, 1], rescaled to the "
            f"bounds), got low={space.low}, high={space.high}: clip or rescale the actions, e.g. with "
            "gymnasium's RescaleAction or ClipAction"
        )


class Dreamer(ContractsMixin, OffPolicyAlgorithm):
    """DreamerV3. ``Dreamer("CnnPolicy", env).learn(...)``.

    :param policy: ``"CnnPolicy"`` (images ``(C, H, W)`` uint8, side 4 * 2^k, e.g. 64), ``"MlpPolicy"`` (vectors)
        or ``"MultiInputPolicy"`` (a Dict of both)
    :param env: the environment; ``Box`` or ``Discrete`` actions
    :param learning_rate: world-model learning rate (1e-4)
    :param buffer_size: observations kept (over all envs)
    :param learning_starts: uniform random env steps before learning
    :param batch_size: sequences per update ``B`` (16)
    :param batch_length: steps per sequence ``T`` (64)
    :param train_ratio: replayed steps per env step (the official code's knob; 512 for DMC): one update replays
        ``B * T`` steps, so an update follows every ``B * T / train_ratio`` env steps (over all envs)
    :param gamma: discount (0.997)
    :param lam: λ of the returns (0.95)
    :param horizon: imagination horizon (15)
    :param ent_coef: actor entropy scale η (3e-4)
    :param slow_critic_tau: EMA rate of the slow critic (0.02 per update)
    :param slow_reg: scale of the critic's regulariser towards the slow critic (1.0)
    :param kl_dyn: scale of the dynamics loss (0.5)
    :param kl_rep: scale of the representation loss (0.1)
    :param free_bits: free nats of each KL term (1.0)
    :param model_grad_clip: gradient-norm clip of the world model (1000)
    :param ac_grad_clip: gradient-norm clip of actor and critic (100)
    :param amp: bfloat16 autocast of the training forward passes (the official code's ``compute_dtype``); parameters,
        optimizer states, distributions and losses stay float32. Needs native bfloat16: a CUDA GPU that supports it or
        a CPU with AVX512-BF16 (checked at construction; the speed-up is measured in ``benchmarks/results/dreamer.md``)
    :param replay_buffer_kwargs: for :class:`~sb3_latent.SequenceReplayBuffer`
    :param check_finite: stop with a ``NonFiniteError`` naming the first non-finite loss or target and its update
        (True); False trains on regardless
    Other parameters as SB3's ``OffPolicyAlgorithm``; ``policy_kwargs`` go to
    :class:`~sb3_latent.algos.dreamer.DreamerPolicy` (``size="xs" | "s" | "m" | "l" | "xl"``, ``actor_lr``,
    ``critic_lr``).

    Acting: the policy filters each observation into a recurrent state per env (reset at episode starts) and
    samples from the actor (exploration as in the paper). :meth:`predict` keeps the state in ``state``; pass it and
    ``episode_start`` back, as SB3's ``evaluate_policy`` does.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "CnnPolicy": DreamerCnnPolicy,
        "MlpPolicy": DreamerMlpPolicy,
        "MultiInputPolicy": DreamerMultiInputPolicy,
    }
    policy: DreamerPolicy
    replay_buffer: SequenceReplayBuffer

    def __init__(
        self,
        policy: str | type[DreamerPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1024,
        batch_size: int = 16,
        batch_length: int = 64,
        train_ratio: float = 512.0,
        gamma: float = 0.997,
        lam: float = 0.95,
        horizon: int = 15,
        ent_coef: float = 3e-4,
        slow_critic_tau: float = 0.02,
        slow_reg: float = 1.0,
        kl_dyn: float = 0.5,
        kl_rep: float = 0.1,
        free_bits: float = 1.0,
        model_grad_clip: float = 1000.0,
        ac_grad_clip: float = 100.0,
        amp: bool = False,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        check_finite: bool = True,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if isinstance(train_ratio, bool) or not isinstance(train_ratio, (int, float)) or not train_ratio > 0:
            raise ValueError(f"train_ratio (replayed steps per env step) must be > 0, got {train_ratio!r}")
        for name, value in (("batch_size", batch_size), ("batch_length", batch_length), ("horizon", horizon)):
            check_int(name, value, 1, whole_floats=True)
        check_action_space(getattr(env, "action_space", None))
        if getattr(env, "observation_space", None) is not None:
            check_obs_space(env.observation_space)  # type: ignore[union-attr]
        resolve_size((policy_kwargs or {}).get("size", "xs"))
        check_amp(amp, get_device(device), "Dreamer")
        self.batch_length, self.train_ratio, self.lam, self.horizon = (
            int(batch_length),
            float(train_ratio),
            lam,
            int(horizon),
        )
        self.ent_coef, self.slow_critic_tau, self.slow_reg = ent_coef, slow_critic_tau, slow_reg
        self.kl_dyn, self.kl_rep, self.free_bits = kl_dyn, kl_rep, free_bits
        self.model_grad_clip, self.ac_grad_clip, self.amp = model_grad_clip, ac_grad_clip, amp
        self.check_finite = check_finite
        self._credit, self._counted_steps = 0.0, -1
        self._recurrent: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._is_first: np.ndarray | None = None
        rb_kwargs = {"sequence_length": self.batch_length + 1, "mode": "window", **(replay_buffer_kwargs or {})}
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=1.0,
            gamma=gamma,
            train_freq=1,
            gradient_steps=1,
            replay_buffer_class=SequenceReplayBuffer,
            replay_buffer_kwargs=rb_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete),
            support_multi_env=True,
        )
        if _init_setup_model:
            self._setup_model()

    # --- acting: a recurrent state (h, z, previous action) per env ----------------------------------------

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Actions for a batch of observations (one per env) given the recurrent state.

        :param observation: observations ``(n, ...)`` (or a dict of them)
        :param state: the state returned by the previous call (None: every env starts an episode)
        :param episode_start: envs whose observation is an episode's first (None: all when ``state`` is None, else
            none, as in sb3-contrib's recurrent policies)
        :param deterministic: act from the modes of the posterior latent and of the actor (reproducible: the same
            observations and state give the same actions); False samples both (the paper's exploration)
        :return: actions in the env's format, and the new state ``(h, z, previous action)``
        :raises ValueError: for observations of another shape (SB3's check)
        """
        self.policy.set_training_mode(False)
        obs = observation if isinstance(observation, dict) else np.asarray(observation)
        single = not check_observation(obs, self.observation_space)
        if single:
            obs = {k: np.asarray(v)[None] for k, v in obs.items()} if isinstance(obs, dict) else obs[None]
        n = len(next(iter(obs.values())) if isinstance(obs, dict) else obs)
        if state is None:
            state, starts = self.policy.initial_state(n), np.ones(n, dtype=bool)
        else:
            starts = np.zeros(n, dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
        a, new_state = self.policy.step(obs, state, starts.reshape(n), deterministic)  # type: ignore[arg-type]
        actions = self.policy.unscale_action(a) if isinstance(self.action_space, spaces.Box) else a
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
        if was_reset or self._recurrent is None or self._is_first is None:  # envs were reset: states restart
            self._recurrent, self._is_first = self.policy.initial_state(self.n_envs), np.ones(self.n_envs, bool)
        return out

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform random actions before ``learning_starts``, then actor samples; the recurrent state is filtered
        every step (so it is ready when the actor takes over)."""
        assert self._recurrent is not None and self._is_first is not None and self._last_obs is not None
        a, self._recurrent = self.policy.step(self._last_obs, self._recurrent, self._is_first)
        if self.num_timesteps < learning_starts:
            env_action, buffer_action = super()._sample_action(learning_starts, None, n_envs)
            model_a = self.policy.to_model_action(torch.as_tensor(buffer_action).reshape(n_envs, -1))
            self._recurrent = (*self._recurrent[:2], model_a.cpu().numpy())
            return env_action, buffer_action
        if isinstance(self.action_space, spaces.Box):
            return self.policy.unscale_action(a), a
        return a, a

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
        self._is_first = np.asarray(dones, dtype=bool).copy()  # a done env's next observation is a reset's

    # --- learning ------------------------------------------------------------------------------------

    def _setup_model(self) -> None:
        super()._setup_model()
        self.amp = amp_after_load(self.amp, self.device)  # load(): a model saved with amp, where bf16 is emulated

    def _autocast(self) -> Any:
        return autocast(self.device, self.amp)

    def _batch(
        self, s: SequenceSamples
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A window of ``T + 1`` observations as ``T`` Dreamer steps ``(x_t, a_{t-1}, r_t, is_first_t, c_t)``: the
        window's first observation is dropped because the step into it is not in the window."""
        obs = s.observations if isinstance(s.observations, dict) else {"obs": s.observations}
        return (
            {k: v[:, 1:] for k, v in obs.items()},
            self.policy.to_model_action(s.actions),
            s.rewards,
            s.is_first[:, 1:],
            1.0 - s.terminated[:, 1:],
        )

    def world_model_loss(
        self, batch: SequenceSamples
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], State, torch.Tensor]:
        """Eq. (4-5): ``L_pred + 0.5 L_dyn + 0.1 L_rep``, averaged over batch and time. Returns the loss, its parts,
        the posterior states ``(B, T)`` and the continue targets."""
        wm = self.policy.world_model
        obs, prev_a, rew, first, cont = self._batch(batch)
        post, post_logits, prior_logits = wm.rssm.observe(wm.encoder(obs), prev_a, first)
        f = feat(post)
        dec = wm.decoder.loss(f, obs)  # -log p(x | s) up to a constant
        rew_nll = -wm.reward_dist(f).log_prob(rew)
        cont_nll = F.binary_cross_entropy_with_logits(wm.cont(f).squeeze(-1).float(), cont, reduction="none")
        dyn, rep = kl_balance(post_logits, prior_logits, self.free_bits)
        loss = (dec + rew_nll + cont_nll + self.kl_dyn * dyn + self.kl_rep * rep).mean()
        parts = {
            "model_loss": loss,
            "dec_loss": dec.mean(),
            "reward_loss": rew_nll.mean(),
            "cont_loss": cont_nll.mean(),
            "kl_dyn": dyn.mean(),
            "kl_rep": rep.mean(),
        }
        return loss, parts, post, cont

    def imagine(self, start: State, horizon: int) -> tuple[State, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Roll the prior forward ``horizon`` steps from ``start`` (``(N, ...)``) with actor samples. Returns the
        states ``(H + 1, N, ...)`` (``s_0`` = start), the actions ``(H, N, A)`` taken at ``s_0..s_{H-1}`` and their
        log-probabilities and the policy's entropies ``(H, N)``, with gradient for the actor only."""
        p = self.policy
        states, actions, logps, ents, s = [start], [], [], [], start
        for _ in range(horizon):
            d = p.actor.dist(feat(s))
            a = p.actor.sample(d)
            logps.append(p.actor.log_prob(d, a))  # of the raw sample
            ents.append(d.entropy())
            if not p.actor.discrete:
                a = a.clamp(-1.0, 1.0)  # the env's bounds, as in the replayed data
            with torch.no_grad():
                s, _ = p.world_model.rssm.img_step(s, a)
            states.append(s)
            actions.append(a)
        return (
            State(*(torch.stack(x) for x in zip(*states, strict=True))),
            torch.stack(actions),
            torch.stack(logps),
            torch.stack(ents),
        )

    def actor_critic_loss(
        self, post: State, cont: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. (6-8) on imagined trajectories from every posterior state: the critic learns λ-returns (two-hot) with a
        regulariser towards the slow critic; the actor maximises normalised advantages (REINFORCE) plus entropy."""
        p, wm = self.policy, self.policy.world_model
        start = State(post.deter.detach().flatten(0, 1), post.stoch.detach().flatten(0, 1))
        states, _, logp, entropy = self.imagine(start, self.horizon)
        f = feat(states)  # (H + 1, N, F)
        critic = p.critic_dist(f)
        with torch.no_grad():
            reward = wm.reward_dist(f[1:]).mean()
            conts = torch.cat([cont.flatten()[None], (wm.cont(f[1:]).squeeze(-1) > 0).float()])  # c_0 from data
            values = critic.mean()
            returns = lambda_return(reward, values, conts[1:], self.gamma, self.lam)
            weight = torch.cumprod(self.gamma * conts, 0)[:-1] / self.gamma  # reach probability of s_0..s_{H-1}
            scale = p.retnorm.update(returns)
            adv = (returns - values[:-1]) / scale
            slow = p.critic_dist(f[:-1], slow=True).mean()
        actor_loss = -(weight * (logp * adv + self.ent_coef * entropy)).mean()
        critic = TwoHotSymexp(critic.logits[:-1], critic.bins)
        critic_loss = (weight * -(critic.log_prob(returns) + self.slow_reg * critic.log_prob(slow))).mean()
        logs = {
            "actor_loss": actor_loss,
            "critic_loss": critic_loss,
            "return_scale": scale,
            "entropy": entropy.mean(),
            "imag_return": returns.mean(),
            "imag_reward": reward.mean(),
        }
        return actor_loss, critic_loss, logs

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, params: Any, clip: float) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()

    def update(self, batch: SequenceSamples) -> dict[str, torch.Tensor]:
        """One training step: the world model on ``batch``, then actor and critic in imagination, then the slow
        critic's EMA. The extension point for subclasses and plugins (call ``super().update(batch)`` and add entries).

        :param batch: ``batch_size`` windows of ``batch_length`` steps (``replay_buffer.sample``)
        :return: values to log as ``train/<key>``, as detached scalar tensors (averaged over a ``train`` call)
        """
        p = self.policy
        with self._autocast():
            model_loss, logs, post, cont = self.world_model_loss(batch)
        self._step(p.model_optimizer, model_loss, p.world_model.parameters(), self.model_grad_clip)
        with self._autocast():
            actor_loss, critic_loss, ac_logs = self.actor_critic_loss(post, cont)
        self._step(p.actor_optimizer, actor_loss, p.actor.parameters(), self.ac_grad_clip)
        self._step(p.critic_optimizer, critic_loss, p.critic.parameters(), self.ac_grad_clip)
        ema_(list(p.slow_critic.parameters()), list(p.critic.parameters()), self.slow_critic_tau)
        return {k: v.detach() for k, v in {**logs, **ac_logs}.items()}

    def train(self, gradient_steps: int, batch_size: int = 16) -> None:
        """Updates owed by ``train_ratio`` for the env steps since the last call (``gradient_steps`` is ignored)."""
        if self._counted_steps < 0:
            self._counted_steps = self.learning_starts
        self._credit += (self.num_timesteps - self._counted_steps) * self.train_ratio / (batch_size * self.batch_length)
        self._counted_steps = self.num_timesteps
        n = int(self._credit)
        if n == 0 or self.replay_buffer.n_sequences(self.batch_length + 1, "window") == 0:
            return
        self._credit -= n
        self.policy.set_training_mode(True)
        updates: list[dict[str, torch.Tensor]] = []
        first = self._n_updates + 1
        # no host sync inside (imagination's sampling would refuse NaN: reported as the NonFiniteError it is)
        with update_loop(self, updates, first):
            for _ in range(n):
                updates.append(self.update(self.replay_buffer.sample(batch_size, self._vec_normalize_env)))
                self._n_updates += 1
        for k, x in finite_means(self, updates, first)[0].items():
            self.logger.record(f"train/{k}", x)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.model_optimizer", "policy.actor_optimizer", "policy.critic_optimizer"], []

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        check_action_space(env.action_space)
        check_obs_space(env.observation_space)
        super().set_env(env, force_reset)
        if force_reset:
            self._recurrent = None
