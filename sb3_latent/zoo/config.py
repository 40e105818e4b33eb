"""Files and names of the launcher: YAML mappings, the zoo files and study specs shipped with the package,
``key:value`` overrides with dotted keys, and classes named by registry name or dotted path.

The shipped files live in this package (``sb3_latent/zoo/zoo_configs/*.yml``, ``sb3_latent/zoo/tuning/*.yml``)
and are read through :mod:`importlib.resources`, as rl_zoo3 ships its ``hyperparams/``; in a checkout the
top-level ``zoo_configs/`` and ``tuning/`` point at the same files.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sb3_latent import registry

#: folders of shipped files, by kind
SHIPPED_KINDS = {"zoo config": "zoo_configs", "study spec": "tuning"}


def read_yaml_mapping(path: str | Path, what: str, expectation: str = "must be a mapping") -> dict[str, Any]:
    """The YAML mapping in ``path``; a ``ValueError`` naming ``what`` and the file when the file is missing,
    is not valid YAML (with the line and column) or holds something else.

    :param path: the file
    :param what: what the file is (``"zoo config"``, ``"study spec"``), for messages
    :param expectation: what the message says the file must be
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{what} {str(path)!r} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {str(path)!r} {expectation}, got {type(data).__name__}")
    return data


def shipped(kind: str) -> dict[str, Path]:
    """The files of ``kind`` (``"zoo config"`` or ``"study spec"``) shipped with sb3-latent, by name
    (``rad_flare`` → ``.../sb3_latent/zoo/zoo_configs/rad_flare.yml``)."""
    folder = resources.files("sb3_latent.zoo") / SHIPPED_KINDS[kind]
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yml")}


def find_file(value: str | Path | None, kind: str, default: str) -> tuple[Path, bool]:
    """The file a user means by ``-c``/``--spec``: an existing path, else the shipped file of that name
    (``rad_flare``, ``rad_flare.yml`` or ``zoo_configs/rad_flare.yml``); None means the shipped ``default``.
    Returns the path and whether it is a shipped file.

    :param value: what the user gave, or None
    :param kind: ``"zoo config"`` or ``"study spec"``
    :param default: the shipped name used for None (the algorithm's name)
    :raises ValueError: when neither exists, listing the shipped names
    """
    files = shipped(kind)
    if value is not None and Path(value).is_file():
        return Path(value), False
    path = Path(value) if value is not None else Path(default)
    name = path.stem if path.suffix in (".yml", ".yaml") else path.name
    if path.parent in (Path("."), Path(SHIPPED_KINDS[kind])) and name in files:
        return files[name], True
    given = f"{str(value)!r} does not exist" if value is not None else f"sb3-latent ships no {kind} for {default!r}"
    flag = "-c/--conf" if kind == "zoo config" else "--spec"
    raise ValueError(f"{kind} {given}; give a file ({flag} FILE) or a shipped name: {', '.join(sorted(files))}")


def load_zoo_config(path: str | Path, env_id: str) -> dict[str, Any]:
    """The entry for ``env_id`` in the YAML file ``path`` (or its ``default`` entry).

    :param path: the YAML file
    :param env_id: gymnasium id
    :raises ValueError: for a missing or malformed file, or an env id it lacks
    """
    data = read_yaml_mapping(path, "zoo config", "must map env ids to hyperparameters")
    entry = data.get(env_id, data.get("default"))
    if entry is None:
        raise ValueError(
            f"{env_id!r} is not in {str(path)!r} (and it has no 'default' entry); it has: "
            f"{', '.join(sorted(map(str, data)))}"
        )
    if not isinstance(entry, dict):
        raise ValueError(
            f"{str(path)!r}: the entry for {env_id!r} must be a mapping of hyperparameters, got {type(entry).__name__}"
        )
    return copy.deepcopy(entry)


def set_nested(entry: dict[str, Any], key: str, value: Any) -> None:
    """``entry["a"]["b"] = value`` for ``key = "a.b"``: dots reach into mappings (created as needed), the
    other keys of each mapping stay.

    :raises ValueError: when a dotted key runs into something that is not a mapping
    """
    *parents, last = key.split(".")
    node = entry
    for i, p in enumerate(parents):
        child = node.get(p)
        if child is not None and not isinstance(child, dict):
            raise ValueError(f"{key!r}: {'.'.join(parents[: i + 1])!r} is {child!r}, not a mapping to reach into")
        node[p] = dict(child or {})
        node = node[p]
    node[last] = value


def with_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``values`` set (dotted keys reach into mappings, others replace)."""
    entry = copy.deepcopy(base)
    for key, value in values.items():
        set_nested(entry, key, value)
    return entry


def parse_key_values(items: Sequence[str] | None, what: str, prefix: str = "") -> dict[str, Any]:
    """``key:value`` pairs from the command line, values parsed as YAML (never evaluated), keys kept
    dotted (apply them with :func:`with_values`).

    :param items: the pairs
    :param what: the option, for messages (``"--hyperparams"``)
    :param prefix: put before every key (``"env_kwargs."`` for ``--env-kwargs``)
    :raises ValueError: for a pair without ``:`` or a value that is not YAML
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ValueError(f"{what}: expected key:value, got {item!r}")
        try:
            out[prefix + key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"{what}: cannot parse the value of {key!r} ({value!r}): {e}") from None
    return out


def import_object(path: str, what: str = "object") -> Any:
    """Import ``package.module:Name`` or ``package.module.Name`` (no ``eval``).

    :param path: dotted path
    :param what: what it should be, for the error message
    :raises ValueError: when it cannot be imported
    """
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a dotted path to a {what} (expected 'package.module.Name')")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r} for {what} {path!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {module_name!r} has no {attr!r} ({what} {path!r})")
        obj = getattr(obj, part)
    return obj


def resolve_name(value: str, kind: str | None, what: str) -> Any:
    """A registry name of ``kind`` or a dotted path → the object.

    :param value: ``"flare"`` or ``"my_pkg.module:MyExtractor"``
    :param kind: registry kind (``"extractors"``, ``"buffers"``, ...) or None for dotted paths only
    :param what: what it is, for error messages
    """
    if kind is not None and "." not in value and ":" not in value:
        return registry.load(kind, value)
    return import_object(value, what)
