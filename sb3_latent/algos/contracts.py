"""What SB3's users expect of every sb3-latent algorithm (RAD, DrQ-v2, SLAC, Dreamer), kept in one place: spaces
checked before any work, SB3's check of ``predict`` inputs, ``load`` and ``load_replay_buffer`` that refuse files of
another algorithm, and a stop at the first non-finite loss (:class:`ContractsMixin`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space

from sb3_latent.buffers.frame_store import FORMAT_VERSION


def check_spaces(algo: str, env: Any, pixels: bool) -> None:
    """Raise before any work for a non-Box action space, or non-image observations with a pixel policy.

    :param algo: the algorithm's name, for messages (e.g. ``"DrQ-v2"``)
    :param env: an env (or anything with ``action_space`` / ``observation_space``); a string is skipped
    :param pixels: whether the policy is the pixel (Cnn) policy
    """
    action_space = getattr(env, "action_space", None)
    if action_space is not None and not isinstance(action_space, spaces.Box):
        raise TypeError(
            f"{algo} is for continuous control: it needs continuous actions (a Box action space), got {action_space}"
        )
    obs_space = getattr(env, "observation_space", None)
    if pixels and obs_space is not None:
        check_image_space(obs_space, algo)


def check_image_space(space: gym.Space, algo: str) -> None:
    """Raise a ``TypeError`` unless ``space`` holds images ``(C, H, W)`` (uint8 or normalized floats)."""
    if not is_image_space(space, check_channels=False):
        raise TypeError(
            f"{algo}'s CnnPolicy needs image observations (uint8, (C, H, W)), got {space}; "
            f"use 'MlpPolicy' for vector observations"
        )


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
            return json.loads(archive.read("data").decode())
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
    except Exception:
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
        raise ValueError(
            f"{where} was written by a newer sb3-latent (format {version}; this one reads up to "
            f"{FORMAT_VERSION}): upgrade sb3-latent to load it"
        )
    saved = data.get("sb3_latent_algorithm")
    if isinstance(saved, str):
        if saved != cls.__name__:
            raise ValueError(f"{where} holds a {saved} model, not a {cls.__name__}: load it with {saved}.load")
        return
    ours = tuple(set(getattr(cls, "policy_aliases", {}).values()))
    policy_class = _saved_policy_class(data)
    if policy_class is not None and ours and not issubclass(policy_class, ours):
        raise ValueError(
            f"{where} was saved by another algorithm (its policy is {policy_class.__module__}."
            f"{policy_class.__qualname__}); {cls.__name__} loads files saved by {cls.__name__} (policies "
            f"{', '.join(sorted(p.__name__ for p in ours))}): load it with the class that saved it"
        )


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

    Each algorithm's ``train`` samples batches and calls ``update(batch) -> dict[str, torch.Tensor]`` once per
    gradient update: the one public extension point for subclasses and plugins. It returns the values to log as
    detached scalar tensors; ``train`` checks them with :meth:`_check_finite`, averages them over its updates
    and records them as ``train/<key>``. An override calls ``super().update(batch)`` and adds its own entries.
    What a batch is: RAD and DrQ-v2, ``replay_buffer.sample(batch_size)``; SLAC, ``SLACBatch`` from its
    ``sample_batch()``; Dreamer, ``replay_buffer.sample(batch_size)`` windows.
    """

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 4,
        tb_log_name: str = "",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Any:
        """SB3's ``learn``; TensorBoard runs are named after the class (``RAD_1``, ``DrQv2_1``, a plugin's own name)
        unless ``tb_log_name`` is given."""
        return super().learn(  # type: ignore[misc]
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name or type(self).__name__,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    #: stop training at the first non-finite loss or target (one device sync per ``train`` call)
    check_finite: bool = True
    replay_buffer: Any
    replay_buffer_class: Any

    def save(self, path: Any, exclude: Any = None, include: Any = None) -> None:
        self.sb3_latent_algorithm, self.sb3_latent_format = type(self).__name__, FORMAT_VERSION
        super().save(path, exclude, include)  # type: ignore[misc]

    @classmethod
    def load(
        cls,
        path: Any,
        env: Any = None,
        device: torch.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> Any:
        check_saved_algorithm(cls, path)
        return super().load(  # type: ignore[misc]
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )

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
                        "check_finite=False to train on regardless"
                    )
