"""Rainbow (Hessel et al. 2018) and data-efficient Rainbow (van Hasselt et al. 2019, "When to use parametric
models in reinforcement learning?") as an SB3 off-policy algorithm, laid out as sb3-contrib's QR-DQN.

Components, each switchable for ablations: double Q-learning (van Hasselt et al. 2016), prioritized replay
(Schaul et al. 2016; proportional, on the frame-store buffer), dueling heads (Wang et al. 2016), n-step returns,
distributional C51 (Bellemare et al. 2017) and noisy nets (Fortunato et al. 2018).

Presets (:data:`PRESETS`; an explicit argument wins over its preset):

``"der"`` -- data-efficient Rainbow (van Hasselt et al. 2019, Appendix table; the LeVER paper's Appendix H,
Table 5): encoder 32x5x5 s5 → 64x5x5 s5 (576 features at 84x84), hidden 256, n-step 20, batch 32, target
update every 2000 steps, 1,600 initial steps, one update per env step, Adam lr 1e-4 with eps 1.5e-4, noisy
sigma0 0.1, priorities alpha 0.5 with beta 0.4 → 1, 51 atoms on [-10, 10], gradient norm clipped at 10,
gamma 0.99. *The learning rate*: LeVER's Table 5 says 1e-3, but the runs behind its Table 1 used 1e-4: the
paper's code (lili-chen/SEER, ``seer_atari/scripts/run_*.sh``) launches every Atari run with
``--learning-rate 0.0001``, as DER does; 1e-3 in the table is a typo-level discrepancy. The same scripts also
show that LeVER's Rainbow runs without prioritized replay (its ``main.py`` replaces PER by a uniform buffer)
and counts ``T_f`` in env steps: preset ``"lever"`` is ``"der"`` with ``prioritized=False``.

``"rainbow"`` -- Rainbow (Hessel et al. 2018, Table 1): DQN's encoder (3 conv layers, 3136 features),
hidden 512, n-step 3, lr 6.25e-5, Adam eps 1.5e-4, noisy sigma0 0.5, target update every 8K steps (32K
frames), 20K initial steps (80K frames), one update every 4 steps, 1M transitions, alpha 0.5, beta 0.4 → 1.

The update (one gradient step, batch of n-step transitions ``(s_t, a_t, R_t^(n), gamma^n, s_{t+n})``):

- Double Q (Hessel Eq. 3 target action): ``a* = argmax_a sum_i z_i p_i(s_{t+n}, a; online)``, evaluated by the
  target network: ``p(s_{t+n}, a*; target)``.
- C51 target (Bellemare Eq. 7 / Algorithm 1): atoms moved to ``T z_i = R^(n) + gamma^n z_i`` (``R^(n)`` only
  for a window that ended in a termination), clipped to ``[v_min, v_max]`` and projected onto the support
  (:func:`project_distribution`).
- Loss: cross-entropy ``-sum_i m_i log p_i(s_t, a_t)`` (the KL up to a constant), weighted by the importance
  weights of prioritized replay; the new priorities are the per-sample losses (Hessel §"Prioritized replay").
- Without ``distributional``: Huber loss on ``Q(s_t, a_t)`` against ``R^(n) + gamma^n Q_target(s_{t+n}, a*)``.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import LinearSchedule, get_device

from sb3_latent.algos.contracts import ContractsMixin
from sb3_latent.algos.rainbow.policies import CnnPolicy, MlpPolicy, RainbowPolicy
from sb3_latent.algos.sync import finite_means, update_loop
from sb3_latent.buffers import NStepFrameStoreReplayBuffer, PrioritizedFrameStoreReplayBuffer
from sb3_latent.common.amp import AmpMixin, check_amp

_DER: dict[str, Any] = dict(
    learning_rate=1e-4,
    adam_eps=1.5e-4,
    buffer_size=100_000,
    learning_starts=1600,
    batch_size=32,
    gamma=0.99,
    train_freq=1,
    gradient_steps=1,
    target_update_interval=2000,
    n_steps=20,
    v_min=-10.0,
    v_max=10.0,
    n_atoms=51,
    noisy=True,
    sigma0=0.1,
    dueling=True,
    distributional=True,
    double=True,
    prioritized=True,
    alpha=0.5,
    beta=0.4,
    max_grad_norm=10.0,
    hidden=256,
    arch="der",
)
#: hyperparameters per preset (module docstring)
PRESETS: dict[str, dict[str, Any]] = {
    "der": _DER,
    "lever": {**_DER, "prioritized": False},
    "rainbow": {
        **_DER,
        "learning_rate": 6.25e-5,
        "buffer_size": 1_000_000,
        "learning_starts": 20_000,
        "train_freq": 4,
        "target_update_interval": 8000,
        "n_steps": 3,
        "sigma0": 0.5,
        "hidden": 512,
        "arch": "nature",
    },
}


def project_distribution(
    next_probs: torch.Tensor, rewards: torch.Tensor, dones: torch.Tensor, discounts: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """The C51 projection (Bellemare et al. 2017, Algorithm 1) of the n-step target distribution.

    Atom ``z_j`` with probability ``p_j`` moves to ``T z_j = r + (1 - done) * discount * z_j``, clipped to
    ``[v_min, v_max]``; its mass is split between the two nearest atoms in proportion to closeness.

    :param next_probs: ``(B, N)`` probabilities of the target distribution at ``s_{t+n}``
    :param rewards: ``(B, 1)`` n-step returns
    :param dones: ``(B, 1)`` 1 where the window ended in a termination
    :param discounts: ``(B, 1)`` ``gamma ** steps`` of each window
    :param support: ``(N,)`` evenly spaced atoms
    :return: ``(B, N)`` projected probabilities
    """
    n = support.numel()
    next_probs = next_probs.to(torch.promote_types(next_probs.dtype, rewards.dtype))  # float32 also under amp
    v_min, v_max = support[0], support[-1]
    tz = (rewards + (1.0 - dones) * discounts * support.view(1, -1)).clamp(v_min, v_max)
    b = (tz - v_min) / ((v_max - v_min) / (n - 1))  # fractional atom index in [0, N-1]
    # a non-finite target keeps its NaN mass (so the loss shows it) but needs valid indices
    lo = b.nan_to_num(0.0).floor().clamp(0, n - 1).long()
    hi = (lo + 1).clamp(max=n - 1)
    frac = b - lo  # 0 when b is an atom (all mass to lo) and at the top atom
    m = torch.zeros_like(next_probs)
    m.scatter_add_(1, lo, next_probs * (1.0 - frac))
    m.scatter_add_(1, hi, next_probs * frac)
    return m


class Rainbow(AmpMixin, ContractsMixin, OffPolicyAlgorithm):
    """Rainbow DQN for SB3 (module docstring for the update and the presets)::

        from sb3_latent import Rainbow, make_atari_env
        model = Rainbow("CnnPolicy", make_atari_env("Pong"), preset="der")
        model.learn(100_000)

    :param policy: ``"CnnPolicy"`` or ``"MlpPolicy"`` (or a :class:`RainbowPolicy` subclass)
    :param env: env with a Discrete action space (Atari: ``make_atari_env``)
    :param preset: ``"der"`` (default), ``"lever"`` or ``"rainbow"``; None: all values below must be given
    :param learning_rate: Adam learning rate (or schedule)
    :param adam_eps: Adam's epsilon
    :param buffer_size: replay capacity (transitions)
    :param learning_starts: env steps of random actions before learning
    :param batch_size: minibatch size
    :param gamma: discount
    :param train_freq: update every ``train_freq`` env steps
    :param gradient_steps: updates each time
    :param target_update_interval: env steps between copies of the online network into the target
    :param n_steps: n of the n-step return
    :param v_min: lowest atom
    :param v_max: highest atom
    :param n_atoms: atoms of the support
    :param noisy: noisy linear layers (else epsilon-greedy exploration)
    :param sigma0: initial noise scale
    :param dueling: dueling heads
    :param distributional: C51 (else expected Q values with a Huber loss)
    :param double: double Q-learning
    :param prioritized: prioritized replay (else uniform)
    :param alpha: priority exponent
    :param beta: initial importance-sampling exponent, annealed linearly to ``beta_final`` over training
    :param beta_final: its final value
    :param max_grad_norm: gradient norm clip
    :param hidden: units of the heads' hidden layers
    :param arch: encoder of ``CnnPolicy``: ``"der"`` or ``"nature"`` (or a list of ``(channels, kernel, stride)``)
    :param exploration_fraction: without noisy nets: fraction of training over which epsilon falls
    :param exploration_initial_eps: its first value
    :param exploration_final_eps: its last value
    :param check_finite: stop with a ``NonFiniteError`` naming the first non-finite loss or target and its update
    :param amp: bfloat16 autocast of the update's forward passes (parameters, optimizer states and logged losses
        stay float32); needs native bfloat16 (a CUDA GPU, or a CPU with AVX512-BF16), else a ``ValueError``. Saved
        with the model; loaded where bfloat16 is emulated, the model trains in float32 (with a warning)
    Other parameters as SB3's ``DQN``.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": CnnPolicy, "MlpPolicy": MlpPolicy}
    policy: RainbowPolicy
    #: inside ``train``: the new priorities of its updates, on the device, written after its loop
    _pending_priorities: list[tuple[np.ndarray, torch.Tensor]] | None = None
    #: defaults for a buffer that binds to the model and re-encodes its images (LeVER): the paper's Atari choices
    #: (Appendix E, H): the conv output is the latent, one copy, no augmentation
    rebinding_buffer_defaults: ClassVar[dict[str, Any]] = {"freeze": "conv", "K": 1, "augment": None}

    def __init__(
        self,
        policy: str | type[RainbowPolicy],
        env: GymEnv | str,
        preset: str | None = "der",
        learning_rate: float | Schedule | None = None,
        adam_eps: float | None = None,
        buffer_size: int | None = None,
        learning_starts: int | None = None,
        batch_size: int | None = None,
        gamma: float | None = None,
        train_freq: int | tuple[int, str] | None = None,
        gradient_steps: int | None = None,
        target_update_interval: int | None = None,
        n_steps: int | None = None,
        v_min: float | None = None,
        v_max: float | None = None,
        n_atoms: int | None = None,
        noisy: bool | None = None,
        sigma0: float | None = None,
        dueling: bool | None = None,
        distributional: bool | None = None,
        double: bool | None = None,
        prioritized: bool | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        beta_final: float = 1.0,
        max_grad_norm: float | None = None,
        hidden: int | None = None,
        arch: str | list[tuple[int, int, int]] | None = None,
        exploration_fraction: float = 0.1,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.01,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        check_finite: bool = True,
        amp: bool = False,
        _init_setup_model: bool = True,
    ) -> None:
        given = {k: v for k, v in locals().items() if k in _DER and v is not None}
        action_space = getattr(env, "action_space", None)
        if action_space is not None and not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"Rainbow needs discrete actions (a Discrete action space), got {action_space}")
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"Unknown Rainbow preset {preset!r}; expected one of {sorted(PRESETS)} or None")
        s = {**(PRESETS[preset] if preset is not None else {}), **given}
        missing = sorted(set(_DER) - set(s))
        if missing:
            raise ValueError(f"preset=None needs every hyperparameter; missing {missing}")
        self.preset, self.check_finite = preset, check_finite
        self.amp = check_amp(amp, get_device(device), "Rainbow")
        self.n_steps, self.v_min, self.v_max, self.n_atoms = int(s["n_steps"]), s["v_min"], s["v_max"], s["n_atoms"]
        self.noisy, self.sigma0, self.dueling = bool(s["noisy"]), float(s["sigma0"]), bool(s["dueling"])
        self.distributional, self.double, self.prioritized = (
            bool(s["distributional"]),
            bool(s["double"]),
            bool(s["prioritized"]),
        )
        self.alpha, self.beta, self.beta_final = float(s["alpha"]), float(s["beta"]), float(beta_final)
        self.adam_eps, self.max_grad_norm, self.hidden, self.arch = (
            s["adam_eps"],
            s["max_grad_norm"],
            s["hidden"],
            s["arch"],
        )
        self.target_update_interval = int(s["target_update_interval"])
        self.exploration_fraction, self.exploration_initial_eps, self.exploration_final_eps = (
            exploration_fraction,
            exploration_initial_eps,
            exploration_final_eps,
        )
        self.exploration_rate = 0.0 if self.noisy else exploration_initial_eps
        self._n_calls = 0
        super().__init__(
            policy,
            env,
            s["learning_rate"],
            buffer_size=int(s["buffer_size"]),
            learning_starts=int(s["learning_starts"]),
            batch_size=int(s["batch_size"]),
            tau=1.0,
            gamma=s["gamma"],
            train_freq=s["train_freq"],
            gradient_steps=int(s["gradient_steps"]),
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            support_multi_env=True,
            supported_action_spaces=(spaces.Discrete,),
        )
        self.n_steps = int(s["n_steps"])  # SB3's n_steps; our buffers get it through their kwargs
        if _init_setup_model:
            self._setup_model()

    # --- setup ----------------------------------------------------------------------------------

    def _default_n_frames(self) -> int:
        space = self.observation_space
        if isinstance(space, spaces.Box) and is_image_space(space, check_channels=False) and space.dtype == np.uint8:
            c = space.shape[0]
            return c // 3 if c % 3 == 0 else c  # RGB frames, else one-channel (grayscale) frames
        return 1

    def _setup_model(self) -> None:
        kwargs = dict(self.replay_buffer_kwargs or {})
        if self.replay_buffer_class is None:
            self.replay_buffer_class = (
                PrioritizedFrameStoreReplayBuffer if self.prioritized else NStepFrameStoreReplayBuffer
            )
        cls = self.replay_buffer_class
        params = {
            name
            for c in cls.__mro__
            if "__init__" in vars(c)  # a subclass passing **kwargs on takes its bases'
            for name in inspect.signature(c.__init__).parameters
        }
        if "n_steps" in params:  # the frame-store buffers with n-step returns (plain, prioritized, LeVER's)
            kwargs.setdefault("n_frames", self._default_n_frames())
            kwargs.setdefault("n_steps", self.n_steps)
            kwargs.setdefault("gamma", self.gamma)
        elif self.n_steps > 1:
            raise ValueError(
                f"n_steps={self.n_steps} needs a buffer with n-step returns; {cls.__name__} has none "
                "(use NStepFrameStoreReplayBuffer, PrioritizedFrameStoreReplayBuffer or n_steps=1)"
            )
        if hasattr(cls, "bind"):  # a buffer that binds to the model (LeVER): the paper's Atari choices
            for key, value in self.rebinding_buffer_defaults.items():
                if key in params:
                    kwargs.setdefault(key, value)
        if self.prioritized and issubclass(cls, PrioritizedFrameStoreReplayBuffer):
            kwargs.setdefault("alpha", self.alpha)
            kwargs.setdefault("beta", self.beta)
        elif self.prioritized and not hasattr(cls, "update_priorities"):
            raise ValueError(
                f"prioritized=True needs a prioritized buffer; {cls.__name__} has no update_priorities "
                "(use PrioritizedFrameStoreReplayBuffer or prioritized=False)"
            )
        self.replay_buffer_kwargs = kwargs
        pk = dict(self.policy_kwargs or {})
        for key in ("v_min", "v_max", "n_atoms", "distributional", "dueling", "noisy", "sigma0", "hidden", "adam_eps"):
            pk.setdefault(key, getattr(self, key))
        image = isinstance(self.observation_space, spaces.Box) and is_image_space(
            self.observation_space, check_channels=False
        )
        if image and "features_extractor_class" not in pk:
            pk["features_extractor_kwargs"] = {"arch": self.arch, **pk.get("features_extractor_kwargs", {})}
        self.policy_kwargs = pk
        with warnings.catch_warnings():  # the buffer is configured for n-step returns above
            warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because a custom")
            super()._setup_model()
        self.q_net, self.q_net_target = self.policy.q_net, self.policy.q_net_target
        self.exploration_schedule = LinearSchedule(
            self.exploration_initial_eps, self.exploration_final_eps, self.exploration_fraction
        )
        self._bind_buffer()

    def _bind_buffer(self) -> None:
        """A buffer that binds to its model (LeVER's: ``bind(model)`` wraps the encoders) is bound to this one."""
        bind = getattr(self.replay_buffer, "bind", None)
        if callable(bind):
            bind(self)
            self.q_net, self.q_net_target = self.policy.q_net, self.policy.q_net_target

    def load_replay_buffer(self, path: Any, truncate_last_traj: bool = True) -> None:
        super().load_replay_buffer(path, truncate_last_traj)
        self._bind_buffer()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "q_net", "q_net_target"]

    # --- acting ---------------------------------------------------------------------------------

    def _on_step(self) -> None:
        """Each env step: new noise for acting, epsilon (without noisy nets), the target copy every
        ``target_update_interval`` steps (over all envs)."""
        self._n_calls += 1
        if self.noisy:
            self.q_net.reset_noise()
        if self._n_calls % max(self.target_update_interval // self.n_envs, 1) == 0:
            self.q_net_target.load_state_dict(self.q_net.state_dict())
        if not self.noisy:
            self.exploration_rate = self.exploration_schedule(self._current_progress_remaining)
            self.logger.record("rollout/exploration_rate", self.exploration_rate)

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Greedy actions of the noise-free network when ``deterministic``; else of the noisy network (noisy
        nets) or epsilon-greedy (without)."""
        if not deterministic and not self.noisy and np.random.rand() < self.exploration_rate:
            if self.policy.is_vectorized_observation(observation):
                n = (next(iter(observation.values())) if isinstance(observation, dict) else observation).shape[0]
                return np.array([self.action_space.sample() for _ in range(n)]), state
            return np.array(self.action_space.sample()), state
        return self.policy.predict(observation, state, episode_start, deterministic)

    # --- learning -------------------------------------------------------------------------------

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if self.prioritized and not hasattr(self.replay_buffer, "update_priorities"):
            raise ValueError(
                f"prioritized=True needs a prioritized buffer; {type(self.replay_buffer).__name__} has "
                "none (attach_lever puts a uniform LeVERReplayBuffer: use preset='lever' or "
                "prioritized=False with it, or replay_buffer_class=PrioritizedLeVERReplayBuffer)"
            )
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        # beta annealed linearly from its initial value to beta_final over training (Schaul et al. 2016, §3.4)
        beta = self.beta + (self.beta_final - self.beta) * (1.0 - self._current_progress_remaining)
        if self.prioritized:
            self.replay_buffer.beta = beta
        updates: list[dict[str, torch.Tensor]] = []
        first = self._n_updates + 1
        # new priorities are kept on the device and written once, after the loop (one transfer with the logs)
        self._pending_priorities = [] if self.prioritized else None
        try:
            with update_loop(self, updates, first):
                for _ in range(gradient_steps):
                    data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                    with self._autocast():  # amp: bfloat16 forward passes
                        updates.append(self.update(data))
                    self._n_updates += 1
            pending, self._pending_priorities = self._pending_priorities, None
            extra = torch.cat([p for _, p in pending]) if pending else None
            means, host = finite_means(self, updates, first, extra)
        finally:
            self._pending_priorities = None
        if pending and host is not None:
            self._write_priorities(pending, host)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, value in means.items():
            self.logger.record(f"train/{key}", value)
        if self.prioritized:
            self.logger.record("train/beta", beta)

    def update(self, data: Any) -> dict[str, torch.Tensor]:
        """One gradient update on a sampled batch (the public hook of every sb3-latent algorithm): the n-step
        distributional double-Q loss, weighted by the importance weights, and new priorities; returns ``loss`` and
        ``q_mean`` as detached scalars."""
        self.policy.reset_noise()  # new noise for the online and target networks at each update
        actions = data.actions.long().view(-1)
        discounts = data.discounts if data.discounts is not None else torch.full_like(data.rewards, self.gamma)
        batch = torch.arange(len(actions), device=actions.device)
        with torch.no_grad():
            target_probs = self.policy.distribution(self.q_net_target, data.next_observations)  # (B, A, N)
            support = self.policy.support
            # double Q (van Hasselt et al. 2016): the online network picks a*, the target network evaluates it
            chooser = (
                self.policy.q_values(self.q_net, data.next_observations)
                if self.double
                else (target_probs * support).sum(-1)
            )
            next_p = target_probs[batch, chooser.argmax(dim=1)]  # (B, N)
            if self.distributional:
                target = project_distribution(next_p, data.rewards, data.dones, discounts, support)
            else:
                target = data.rewards + (1.0 - data.dones) * discounts * next_p  # next_p is Q(s', a*): (B, 1)
        if self.distributional:
            log_p = self.policy.distribution(self.q_net, data.observations, log=True)[batch, actions]
            per_sample = -(target * log_p).sum(-1)  # cross-entropy = KL(target || p) + const
            q_mean = (log_p.exp() * support).sum(-1).mean().detach()
        else:
            q = self.policy.distribution(self.q_net, data.observations)[batch, actions]  # (B, 1)
            per_sample = F.smooth_l1_loss(q, target, reduction="none").view(-1)
            q_mean = q.mean().detach()
        weights = data.weights.view(-1) if self.prioritized else torch.ones_like(per_sample)
        loss = (weights * per_sample).mean()
        self.policy.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.q_net.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        if self.prioritized:  # new priorities: the per-sample loss (Hessel et al. 2018)
            pending = self._pending_priorities
            if pending is not None:  # in train(): written after its loop
                pending.append((data.leaves, per_sample.detach()))
            else:
                self._write_priorities([(data.leaves, None)], per_sample.detach().cpu().numpy())
        return {"loss": loss.detach(), "q_mean": q_mean}

    def _write_priorities(self, pending: list[tuple[np.ndarray, Any]], priorities: np.ndarray) -> None:
        """Write the new priorities of several updates (``pending``: their leaves, in order; ``priorities``: theirs,
        concatenated, on the host); an update whose priorities are not all finite keeps the old ones."""
        start = 0
        for leaves, _ in pending:
            p = priorities[start : start + len(leaves)]
            start += len(leaves)
            if np.isfinite(p).all():
                self.replay_buffer.update_priorities(leaves, p)
