"""Name → class lookup for every part of sb3-latent: a static table of the built-ins, plus plugins found
through Python entry points.

A third-party package registers its parts in its ``pyproject.toml``::

    [project.entry-points."sb3_latent.extractors"]
    my_encoder = "my_package.module:MyExtractor"

after which ``load("extractors", "my_encoder")`` (or ``extractor: my_encoder`` in a zoo config)
finds it. Built-ins need no installation (a checkout on ``PYTHONPATH`` works) and keep their names: a
plugin entry under a built-in's name is reported as a conflict (``check``, ``sb3-latent list``) and never
replaces the built-in. Nothing is imported until it is asked for.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

#: The entry-point groups of plugins, by short kind name.
GROUPS: dict[str, str] = {
    "algorithms": "sb3_latent.algorithms",
    "extractors": "sb3_latent.extractors",
    "buffers": "sb3_latent.buffers",
    "augmentations": "sb3_latent.augmentations",
}
#: The built-in parts: ``{kind: {name: "module:attribute"}}``.
BUILTINS: dict[str, dict[str, str]] = {
    "algorithms": {
        "rad": "sb3_latent.algos:RAD",
        "drqv2": "sb3_latent.algos:DrQv2",
        "slac": "sb3_latent.algos:SLAC",
        "dreamer": "sb3_latent.algos:Dreamer",
        "rainbow": "sb3_latent.algos:Rainbow",
    },
    "extractors": {
        "flare": "sb3_latent.extractors:FlareExtractor",
        "latent_stack": "sb3_latent.extractors:LatentStackExtractor",
        "pixel_flow": "sb3_latent.extractors:PixelFlowExtractor",
        "state_flare": "sb3_latent.extractors:StateFlareExtractor",
    },
    "buffers": {
        "frame_store": "sb3_latent.buffers:FrameStoreReplayBuffer",
        "nstep_frame_store": "sb3_latent.buffers:NStepFrameStoreReplayBuffer",
        "prioritized_frame_store": "sb3_latent.buffers:PrioritizedFrameStoreReplayBuffer",
        "prioritized_lever": "sb3_latent.lever:PrioritizedLeVERReplayBuffer",
        "lever": "sb3_latent.lever:LeVERReplayBuffer",
        "sequence": "sb3_latent.buffers:SequenceReplayBuffer",
    },
    "augmentations": {
        "shift": "sb3_latent.augment:RandomShift",
        "translate": "sb3_latent.augment:RandomTranslate",
        "crop": "sb3_latent.augment:RandomCrop",
    },
}
BUILTIN = "sb3-latent"


@dataclass(frozen=True)
class Entry:
    """One registered part.

    :param kind: the short group name (``"extractors"``, ...)
    :param name: the name it is registered under
    :param target: ``"module:attribute"`` it points to
    :param distribution: the distribution that declared it (``"sb3-latent"`` for built-ins)
    :param conflict: for a plugin entry under a built-in's name: why it is ignored
    """

    kind: str
    name: str
    target: str
    distribution: str
    conflict: str | None = None


def _check_kind(kind: str) -> str:
    if kind not in GROUPS:
        raise ValueError(f"Unknown registry kind {kind!r}; expected one of {sorted(GROUPS)}")
    return kind


def _plugins(kind: str) -> list[EntryPoint]:
    """The entry points of ``kind`` declared by other distributions (sb3-latent's own, from an older
    install, are the built-ins and skipped)."""
    return [
        ep
        for ep in entry_points(group=GROUPS[_check_kind(kind)])
        if ep.dist is None or ep.dist.name.replace("_", "-") != BUILTIN
    ]


def list_entries(kind: str | None = None) -> list[Entry]:
    """Every registered part, optionally of one kind: built-ins first, then plugins, sorted by name.

    :param kind: one of ``GROUPS`` or None for all kinds
    """
    out = []
    for k in [_check_kind(kind)] if kind is not None else list(GROUPS):
        out += [Entry(k, name, target, BUILTIN) for name, target in sorted(BUILTINS[k].items())]
        for ep in sorted(_plugins(k), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "?"
            conflict = (
                (
                    f"the name {ep.name!r} belongs to a built-in {k[:-1]} ({BUILTINS[k][ep.name]}); this plugin "
                    "entry is ignored: register it under another name"
                )
                if ep.name in BUILTINS[k]
                else None
            )
            out.append(Entry(k, ep.name, ep.value, dist, conflict))
    return out


def names(kind: str) -> list[str]:
    """The registered names of one kind, sorted."""
    return sorted({e.name for e in list_entries(kind)})


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load(kind: str, name: str) -> Any:
    """Import and return the object registered as ``name`` in ``kind``.

    :param kind: one of ``GROUPS`` (``"algorithms"``, ``"extractors"``, ``"buffers"``, ``"augmentations"``)
    :param name: the registered name, e.g. ``"flare"``
    :raises ValueError: for an unknown name, listing the known ones and close matches
    :raises ImportError: for a plugin that fails to import (naming it and its distribution)
    """
    entries = [e for e in list_entries(kind) if e.name == name]
    if not entries:
        known = names(kind)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown {kind[:-1]} {name!r}.{hint} Known {kind}: {', '.join(known) or '(none installed)'}. "
            f"Plugins register under the entry-point group {GROUPS[kind]!r}."
        )
    for e in entries:
        if e.conflict is not None:
            warnings.warn(f"{kind[:-1]} {name!r} of the distribution {e.distribution!r}: {e.conflict}", stacklevel=2)
    return _load(entries[0])  # the built-in when there is one


def _load(entry: Entry) -> Any:
    try:
        return _import(entry.target)
    except Exception as e:  # a broken plugin: say which one and why; other entries are unaffected
        raise ImportError(
            f"{entry.kind[:-1]} {entry.name!r} from the distribution {entry.distribution!r} "
            f"({entry.target}) failed to load: {type(e).__name__}: {e}"
        ) from e


def check(kind: str | None = None) -> list[tuple[Entry, str | None]]:
    """Load every registered part; return each entry with None, or why it is unusable: the error a broken
    plugin raises, or the conflict of a plugin entry under a built-in's name (reported, never fatal for the
    others).

    :param kind: one of ``GROUPS`` or None for all kinds
    """
    out: list[tuple[Entry, str | None]] = []
    for entry in list_entries(kind):
        if entry.conflict is not None:
            out.append((entry, f"CONFLICT: {entry.conflict}"))
            continue
        try:
            _load(entry)
            out.append((entry, None))
        except ImportError as e:
            out.append((entry, f"BROKEN: {e}"))
    return out
