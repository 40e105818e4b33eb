"""Name → class lookup for every part of sb3-latent, built on Python entry points.

Built-in parts and third-party plugins register the same way, in their ``pyproject.toml``::

    [project.entry-points."sb3_latent.extractors"]
    my_encoder = "my_package.module:MyExtractor"

after which ``load("extractors", "my_encoder")`` (or ``extractor: my_encoder`` in a zoo config)
finds it. Nothing is imported until it is asked for.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

#: The entry-point groups, by short kind name.
GROUPS: dict[str, str] = {
    "algorithms": "sb3_latent.algorithms",
    "extractors": "sb3_latent.extractors",
    "buffers": "sb3_latent.buffers",
    "augmentations": "sb3_latent.augmentations",
}


@dataclass(frozen=True)
class Entry:
    """One registered part.

    :param kind: the short group name (``"extractors"``, ...)
    :param name: the name it is registered under
    :param target: ``"module:attribute"`` it points to
    :param distribution: the installed distribution that declared it (``"sb3-latent"`` for built-ins)
    """

    kind: str
    name: str
    target: str
    distribution: str


def _group(kind: str) -> str:
    if kind not in GROUPS:
        raise ValueError(f"Unknown registry kind {kind!r}; expected one of {sorted(GROUPS)}")
    return GROUPS[kind]


def _entry_points(kind: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=_group(kind))}


def list_entries(kind: str | None = None) -> list[Entry]:
    """Every registered part, optionally of one kind, sorted by kind and name.

    :param kind: one of ``GROUPS`` or None for all kinds
    """
    kinds = [kind] if kind is not None else list(GROUPS)
    out = []
    for k in kinds:
        for name, ep in sorted(_entry_points(k).items()):
            dist = ep.dist.name if ep.dist is not None else "?"
            out.append(Entry(kind=k, name=name, target=ep.value, distribution=dist))
    return out


def names(kind: str) -> list[str]:
    """The registered names of one kind, sorted."""
    return sorted(_entry_points(kind))


def load(kind: str, name: str) -> Any:
    """Import and return the object registered as ``name`` in ``kind``.

    :param kind: one of ``GROUPS`` (``"algorithms"``, ``"extractors"``, ``"buffers"``, ``"augmentations"``)
    :param name: the registered name, e.g. ``"flare"``
    :raises ValueError: for an unknown name, listing the known ones and close matches
    """
    eps = _entry_points(kind)
    if name not in eps:
        known = sorted(eps)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown {kind[:-1]} {name!r}.{hint} Known {kind}: {', '.join(known) or '(none installed)'}. "
            f"Plugins register under the entry-point group {GROUPS[kind]!r}."
        )
    ep = eps[name]
    try:
        return ep.load()
    except Exception as e:  # a broken plugin: say which one and why; other entries are unaffected
        dist = ep.dist.name if ep.dist is not None else "?"
        raise ImportError(f"{kind[:-1]} {name!r} from the distribution {dist!r} ({ep.value}) failed to load: "
                          f"{type(e).__name__}: {e}") from e


def check(kind: str | None = None) -> list[tuple[Entry, str | None]]:
    """Load every registered part; return each entry with None, or the error that a broken one raises
    (broken plugins are reported, never fatal for the others).

    :param kind: one of ``GROUPS`` or None for all kinds
    """
    out: list[tuple[Entry, str | None]] = []
    for entry in list_entries(kind):
        try:
            load(entry.kind, entry.name)
            out.append((entry, None))
        except Exception as e:  # noqa: BLE001
            out.append((entry, str(e) if isinstance(e, ImportError) else f"{type(e).__name__}: {e}"))
    return out
