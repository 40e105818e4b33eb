"""What RAD and DrQ-v2 share: one conv encoder trained by the critic and read (detached) by the actor,
augmentation of sampled batches, each unique frame encoded once per update, EMA targets that leave
the encoder out.

Policy side: :class:`PixelPolicyMixin` (augmentation, the frame size the extractors are built for,
the evaluation view) and :func:`build_shared_encoder` (actor, critic, target and optimizers).
Algorithm side: :class:`SharedEncoderMixin` (preprocessing, augmentation, encoding, heads, Q values,
EMA, learning rates).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_latent.augment import Augmentation, make_augmentation
from sb3_latent.buffers.frame_store import FORMAT_VERSION
from sb3_latent.extractors.flare import PixelExtractor


def check_spaces(algo: str, env: Any, pixels: bool) -> None:
    """Raise before any work for a non-Box action space, or non-image observations with a pixel policy.

    :param algo: the algorithm's name, for messages (e.g. ``"DrQ-v2"``)
    :param env: an env (or anything with ``action_space`` / ``observation_space``); a string is skipped
    :param pixels: whether the policy is the pixel (Cnn) policy
    """
    action_space = getattr(env, "action_space", None)
    if action_space is not None and not isinstance(action_space, spaces.Box):
        raise TypeError(f"{algo} is for continuous control: it needs continuous actions (a Box action space), "
                        f"got {action_space}")
    obs_space = getattr(env, "observation_space", None)
    if pixels and obs_space is not None:
        check_image_space(obs_space, algo)


def check_image_space(space: gym.Space, algo: str) -> None:
    """Raise a ``TypeError`` unless ``space`` holds images ``(C, H, W)`` (uint8 or normalized floats)."""
    if not is_image_space(space, check_channels=False):
        raise TypeError(f"{algo}'s CnnPolicy needs image observations (uint8, (C, H, W)), got {space}; "
                        f"use 'MlpPolicy' for vector observations")


def build_augmentation(
    space: gym.Space, augment: str | None, augment_kwargs: dict[str, Any] | None
) -> Augmentation | None:
    """The training augmentation; ``"translate"`` defaults to a canvas 8 pixels larger than the
    frames (Flare Table A.4: 100 → 108)."""
    kwargs = dict(augment_kwargs or {})
    if augment == "translate" and "size" not in kwargs and isinstance(space, gym.spaces.Box):
        kwargs["size"] = int(space.shape[-1]) + 8
    return make_augmentation(augment, **kwargs)


class PixelPolicyMixin:
    """Policy side of a shared-encoder algorithm: the augmentation, and the frame size the extractors
    are built for (the augmented one; ``eval_view`` maps env frames to it outside training).
    Put it before SB3's policy class in the bases and call :meth:`_setup_augmentation` before its
    ``__init__``."""

    features_extractor_class: type[BaseFeaturesExtractor]
    features_extractor_kwargs: dict[str, Any]
    augmentation: Augmentation | None
    encoder_space: gym.Space
    augment: str | None
    augment_kwargs: dict[str, Any] | None
    #: learning rate of the encoder's param group; None: the critic's
    encoder_lr: float | None = None

    def _setup_augmentation(self, space: gym.Space, augment: str | None, augment_kwargs: dict[str, Any] | None) -> None:
        self.augment, self.augment_kwargs = augment, augment_kwargs
        self.augmentation = build_augmentation(space, augment, augment_kwargs)
        self.encoder_space = space
        if self.augmentation is not None and isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
            c, h, w = space.shape
            oh, ow = self.augmentation.output_size(h, w)
            self.encoder_space = gym.spaces.Box(0, 255, (c, oh, ow), np.uint8)

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        """Extractors are built for the augmented frame size."""
        return self.features_extractor_class(self.encoder_space, **self.features_extractor_kwargs)

    def eval_view(self, obs: torch.Tensor) -> torch.Tensor:
        """Frames as the encoder expects them outside training: the augmentation's centred version
        when it changes the frame size (translate: centred on the canvas; crop: centre crop)."""
        if self.augmentation is not None and obs.dim() == 4 and obs.shape[1:] != self.encoder_space.shape:
            return self.augmentation.center(obs)
        return obs


def channels_last(module: nn.Module) -> nn.Module:
    """Store the 4-D weights of ``module`` channels-last (NHWC): on CPU (oneDNN) and GPU (cuDNN) the
    convolutions then run in that format, typically faster; the maths is unchanged."""
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def build_shared_encoder(policy: Any, lr_schedule: Schedule, target_shares_encoder: bool) -> None:
    """Build ``policy.actor``, ``policy.critic``, ``policy.critic_target`` and the two optimizers
    with one conv encoder owned by the critic (RAD/CURL/DrQ-v2).

    The actor's extractor holds the *same* encoder with ``detach_encoder=True``: it trains its own
    head, never the encoder, and its optimizer leaves the encoder out. The critic's optimizer holds
    the encoder as a param group named ``"encoder"`` (learning rate ``policy.encoder_lr`` if set).
    Encoders use the channels-last memory format (faster convolutions, same maths).

    :param policy: an SB3 ``SACPolicy`` / ``TD3Policy`` (with :class:`PixelPolicyMixin` for pixels)
    :param lr_schedule: learning-rate schedule
    :param target_shares_encoder: True: the target critic reads the online encoder (DrQ-v2, no target
        encoder); False: it gets its own copy, to be followed by EMA (RAD)
    """
    policy.critic = policy.make_critic(features_extractor=None)
    policy.actor = policy.make_actor()
    critic_fe = policy.critic.features_extractor
    encoder_params: list[nn.Parameter] = []
    if isinstance(critic_fe, PixelExtractor):
        actor_fe = policy.actor.features_extractor
        assert isinstance(actor_fe, PixelExtractor)
        channels_last(critic_fe.encoder)
        actor_fe.encoder = critic_fe.encoder  # one encoder, trained by the critic only
        actor_fe.detach_encoder = True
        encoder_params = list(critic_fe.encoder.parameters())
    shared = {id(p) for p in encoder_params}
    lr = lr_schedule(1)
    policy.actor.optimizer = policy.optimizer_class(
        [p for p in policy.actor.parameters() if id(p) not in shared], lr=lr, **policy.optimizer_kwargs
    )
    groups: list[dict[str, Any]] = [{"params": [p for p in policy.critic.parameters() if id(p) not in shared],
                                     "name": "critic"}]
    if encoder_params:
        groups.append({"params": encoder_params, "name": "encoder", "lr": getattr(policy, "encoder_lr", None) or lr})
    policy.critic.optimizer = policy.optimizer_class(groups, lr=lr, **policy.optimizer_kwargs)
    policy.critic_target = policy.make_critic(features_extractor=None)
    target_fe = policy.critic_target.features_extractor
    if isinstance(target_fe, PixelExtractor):
        if target_shares_encoder:
            target_fe.encoder = critic_fe.encoder
        channels_last(target_fe.encoder)
    policy.critic_target.load_state_dict(policy.critic.state_dict())
    policy.critic_target.set_training_mode(False)


@torch.no_grad()
def ema_(targets: list[torch.Tensor], sources: list[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source`` for each pair, in one fused op."""
    if targets:
        torch._foreach_lerp_(targets, sources, tau)


class SharedEncoderMixin:
    """Algorithm side of a shared-encoder algorithm (RAD, DrQ-v2); put it before SB3's class in the bases.

    ``_encode`` runs the critic's encoder once per update for obs (with gradient) and once for
    next_obs (without); with frame-wise extractors and stacks that share frames (frame stacking, the
    same augmentation for obs and next_obs) each unique frame is encoded once. The maps are reused by
    the actor (detached) and, when the target critic shares the encoder, by the target.
    """

    policy: Any
    actor: Any
    critic: ContinuousCritic
    critic_target: ContinuousCritic
    observation_space: spaces.Space
    lr_schedule: Schedule
    _current_progress_remaining: float
    replay_buffer: Any
    #: one augmentation draw for obs and next_obs of a sample (RAD's translate); False: independent
    same_augmentation: bool = False
    #: a LeVER buffer given as ``replay_buffer_class`` is bound here, no :func:`sb3_latent.attach_lever` needed
    lever_native: bool = True

    def _bind_lever(self) -> None:
        """Bind a LeVER replay buffer to this model's encoders (sampled batches become latents ``(B, N, L)``
        after its freeze; every step below passes them through)."""
        if hasattr(self.replay_buffer, "bind"):
            self.replay_buffer.bind(self)

    def load_replay_buffer(self, path: Any, truncate_last_traj: bool = True) -> None:
        super().load_replay_buffer(path, truncate_last_traj)  # type: ignore[misc]
        self._bind_lever()

    @staticmethod
    def _latent(x: torch.Tensor) -> bool:
        """Whether a sampled batch holds LeVER latents ``(B, N, L)`` rather than images or vectors."""
        return x.dim() == 3

    def _augment(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aug = getattr(self.policy, "augmentation", None)
        if aug is None or self._latent(obs):
            return obs, next_obs
        a, b = aug(obs, next_obs, same=self.same_augmentation)
        return a, b

    def _preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        space = getattr(self.policy, "encoder_space", self.observation_space)
        return preprocess_obs(obs, space, normalize_images=self.policy.normalize_images)  # type: ignore[return-value]

    def _encode(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Online encoder maps of obs (with gradient) and next_obs (without); for vector observations,
        the preprocessed observations. When obs and next_obs share frames (frame-wise extractor, frame
        stacking, same augmentation), each unique frame is encoded once, and frames that enter only
        detached (Flare's oldest) are encoded without gradient."""
        fe = self.critic.features_extractor
        if self._latent(obs):  # LeVER after the freeze: the encoders' work is in the buffer already
            return obs, next_obs
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

    def _head(self, extractor: nn.Module, maps: torch.Tensor) -> torch.Tensor:
        """Features from maps of :meth:`_encode` (for vector observations: the extractor itself; for
        LeVER latents: the layers after the frozen ones, on this extractor's latent slot)."""
        if self._latent(maps):
            return self.replay_buffer.latent_features(extractor, maps)  # type: ignore[no-any-return]
        return extractor.head(maps) if isinstance(extractor, PixelExtractor) else extractor(maps)

    def _target_features(self, next_obs: torch.Tensor, next_maps: torch.Tensor) -> torch.Tensor:
        """Target critic features of next_obs: from ``next_maps`` when the target reads the online
        encoder (DrQ-v2) or has none, else through its own encoder copy (RAD)."""
        fe = self.critic_target.features_extractor
        online = getattr(self.critic.features_extractor, "encoder", None)
        if not isinstance(fe, PixelExtractor) or fe.encoder is online or self._latent(next_maps):
            return self._head(fe, next_maps)
        return fe.head(fe.encode(self._preprocess(next_obs)))

    @staticmethod
    def _q(critic: nn.Module, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """All Q values ``(B, n_critics)`` of ``critic`` from its features."""
        x = torch.cat([features, actions], dim=1)
        return torch.cat([q(x) for q in critic.q_networks], dim=1)  # type: ignore[union-attr]

    def _soft_update_critic(self, tau: float, encoder_tau: float | None = None) -> None:
        """EMA of the target critic with ``tau``, the encoder left out; a target encoder copy, if any,
        follows the online encoder with ``encoder_tau`` (None: it is not updated)."""
        enc: nn.Module | None = getattr(self.critic.features_extractor, "encoder", None)
        enc_ids = {id(p) for p in enc.parameters()} if enc is not None else set()
        pairs = [(p, t) for p, t in zip(self.critic.parameters(), self.critic_target.parameters(), strict=True)
                 if id(p) not in enc_ids]
        ema_([t for _, t in pairs], [p for p, _ in pairs], tau)
        target_enc: nn.Module | None = getattr(self.critic_target.features_extractor, "encoder", None)
        if enc is not None and target_enc is not None and target_enc is not enc and encoder_tau is not None:
            ema_(list(target_enc.parameters()), list(enc.parameters()), encoder_tau)

    def _set_learning_rates(self) -> float:
        """Set the actor's and critic's learning rates from the schedule (the encoder group: the
        policy's ``encoder_lr`` if set); return the scheduled rate."""
        lr = self.lr_schedule(self._current_progress_remaining)
        encoder_lr = getattr(self.policy, "encoder_lr", None) or lr
        for opt in (self.actor.optimizer, self.critic.optimizer):
            for group in opt.param_groups:
                group["lr"] = encoder_lr if group.get("name") == "encoder" else lr
        return lr


# --- SB3's contracts, kept by every sb3-latent algorithm ------------------------------------------------------------



def check_observation(observation: Any, space: spaces.Space) -> bool:
    """SB3's check of an observation passed to ``predict``: raise its ``ValueError`` for a wrong shape, and return
    whether ``observation`` is a batch (``(n, *shape)``) rather than one observation."""
    from stable_baselines3.common.utils import is_vectorized_observation

    if isinstance(space, spaces.Dict) and not isinstance(observation, dict):
        raise ValueError(f"this model's observation space is a Dict {space}; got a {type(observation).__name__}")
    obs = observation if isinstance(observation, dict) else np.asarray(observation)
    return bool(is_vectorized_observation(obs, space))  # type: ignore[arg-type]  # (dicts too, despite its hint)


def _saved_data(path: Any) -> dict[str, Any] | None:
    """The JSON ``data`` entry of a model file written by SB3's ``save`` (None when it cannot be read: SB3's own
    ``load`` then raises its error)."""
    import json
    import zipfile

    from stable_baselines3.common.save_util import open_path

    try:
        file = open_path(path, "r", verbose=0, suffix="zip")
    except (OSError, ValueError):
        return None
    try:
        with zipfile.ZipFile(file) as archive:
            return json.loads(archive.read("data").decode())  # type: ignore[no-any-return]
    except (KeyError, ValueError, zipfile.BadZipFile):
        return None
    finally:
        if file is path:
            file.seek(0)
        else:
            file.close()


def _saved_policy_class(data: dict[str, Any]) -> type | None:
    from stable_baselines3.common.save_util import json_to_data

    entry = data.get("policy_class")
    if not isinstance(entry, dict):
        return None
    try:
        import json

        value = json_to_data(json.dumps({"policy_class": entry})).get("policy_class")
    except Exception:  # noqa: BLE001 (an unpicklable class: reported below by its module)
        return None
    return value if isinstance(value, type) else None


def check_saved_algorithm(cls: type, path: Any) -> None:
    """Raise a ``ValueError`` when the model file at ``path`` was not written by ``cls`` (another algorithm, or a
    newer sb3-latent), before SB3's ``load`` builds anything from it.

    Files written by sb3-latent name their algorithm and format version; older ones and stock SB3 files are
    recognised by their policy class, which must be one of ``cls.policy_aliases`` (or a subclass).
    """
    data = _saved_data(path)
    if data is None:
        return
    where = f"{path}" if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__") else "the model file"
    version = data.get("sb3_latent_format")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ValueError(f"{where} was written by a newer sb3-latent (format {version}; this one reads up to "
                         f"{FORMAT_VERSION}): upgrade sb3-latent to load it")
    saved = data.get("sb3_latent_algorithm")
    if isinstance(saved, str):
        if saved != cls.__name__:
            raise ValueError(f"{where} holds a {saved} model, not a {cls.__name__}: load it with {saved}.load")
        return
    ours = tuple(set(getattr(cls, "policy_aliases", {}).values()))
    policy_class = _saved_policy_class(data)
    if policy_class is not None and ours and not issubclass(policy_class, ours):
        raise ValueError(f"{where} was saved by another algorithm (its policy is {policy_class.__module__}."
                         f"{policy_class.__qualname__}); {cls.__name__} loads files saved by {cls.__name__} (policies "
                         f"{', '.join(sorted(p.__name__ for p in ours))}): load it with the class that saved it")


def buffer_mismatch(buffer: Any, model: Any, expected_class: type | None) -> str | None:
    """What makes a loaded replay buffer unfit for ``model`` (None if nothing): its class, observation and action
    spaces, number of envs and sb3-latent format version."""
    if expected_class is not None and type(buffer) is not expected_class:
        return f"it is a {type(buffer).__name__}, this model uses a {expected_class.__name__}"
    for what in ("observation_space", "action_space"):
        if getattr(buffer, what, None) != getattr(model, what):
            return f"its {what.replace('_', ' ')} is {getattr(buffer, what, None)}, the model's {getattr(model, what)}"
    if getattr(buffer, "n_envs", model.n_envs) != model.n_envs:
        return f"it was filled by {buffer.n_envs} envs, the model runs {model.n_envs}"
    version = getattr(buffer, "format_version", None)
    if version is not None and version > FORMAT_VERSION:
        return f"it was written by a newer sb3-latent (format {version}, this one reads up to {FORMAT_VERSION})"
    return None


class NonFiniteError(FloatingPointError):
    """A loss or target of an update is NaN or infinite: training stopped (``check_finite=False`` goes on)."""


class ContractsMixin:
    """What SB3's users expect of every algorithm, kept in one place for ours (RAD, DrQ-v2, SLAC, Dreamer); put it
    before SB3's class in the bases.

    - ``load`` refuses a file written by another algorithm or a newer sb3-latent, naming what it holds;
      ``save`` writes the algorithm's name and :data:`FORMAT_VERSION` for that.
    - ``load_replay_buffer`` refuses a buffer of another class, spaces or number of envs (the model keeps its own).
    - :meth:`_check_finite`: training stops with a :class:`NonFiniteError` naming the first non-finite loss or
      target and its update, unless ``check_finite`` is False.
    """

    #: stop training at the first non-finite loss or target (one device sync per ``train`` call)
    check_finite: bool = True
    replay_buffer: Any
    replay_buffer_class: Any

    def save(self, path: Any, exclude: Any = None, include: Any = None) -> None:
        self.sb3_latent_algorithm, self.sb3_latent_format = type(self).__name__, FORMAT_VERSION
        super().save(path, exclude, include)  # type: ignore[misc]

    @classmethod
    def load(cls, path: Any, env: Any = None, device: torch.device | str = "auto",  # type: ignore[override]
             custom_objects: dict[str, Any] | None = None, print_system_info: bool = False, force_reset: bool = True,
             **kwargs: Any) -> Any:
        check_saved_algorithm(cls, path)
        return super().load(path, env=env, device=device, custom_objects=custom_objects,  # type: ignore[misc]
                            print_system_info=print_system_info, force_reset=force_reset, **kwargs)

    def load_replay_buffer(self, path: Any, truncate_last_traj: bool = True) -> None:
        previous = self.replay_buffer
        super().load_replay_buffer(path, truncate_last_traj)  # type: ignore[misc]
        expected = type(previous) if previous is not None else self.replay_buffer_class
        problem = buffer_mismatch(self.replay_buffer, self, expected)
        if problem is not None:
            self.replay_buffer = previous
            raise ValueError(f"the replay buffer in {path} does not fit this {type(self).__name__}: {problem}")

    def _check_finite(self, updates: list[dict[str, Any]], first_update: int) -> None:
        """Raise a :class:`NonFiniteError` naming the first non-finite value of ``updates`` (one dict of losses and
        targets per update, the first being update number ``first_update``); one check for them all."""
        if not self.check_finite or not updates:
            return
        tensors = [v for u in updates for v in u.values() if isinstance(v, torch.Tensor)]
        device = tensors[0].device if tensors else None
        values = [torch.as_tensor(v, device=device).detach().float().reshape(-1) for u in updates for v in u.values()]
        if bool(torch.isfinite(torch.cat(values)).all()):
            return
        for i, update in enumerate(updates):
            for key, value in update.items():
                v = torch.as_tensor(value, dtype=torch.float32)
                if not bool(torch.isfinite(v).all()):
                    raise NonFiniteError(
                        f"{type(self).__name__}: train/{key} is {v.reshape(-1)[0].item()} at update "
                        f"{first_update + i}; the networks are no longer usable. Look for NaN/inf in the rewards or "
                        "observations (SB3's VecCheckNan finds them) or lower the learning rates; pass "
                        "check_finite=False to train on regardless")
