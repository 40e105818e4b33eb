"""The import direction of DESIGN.md: envs → extractors → buffers → algos → launcher; a lower layer never imports a
higher one (at module level or inside a function). ``common`` and ``registry`` (which imports plugins by name, at run
time) sit below everything; LeVER sits between the buffers and the algorithms, and no algorithm imports it (LeVER
binds to algorithms through its extractor adapter, never the other way round)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sb3_latent"

#: first component under ``sb3_latent`` → layer; a module may import its own layer and the ones below
LAYERS: dict[str, int] = {
    "common": 0,
    "registry": 0,
    "envs": 1,
    "augment": 2,
    "extractors": 2,
    "buffers": 3,
    "lever": 4,
    "algos": 5,
    "zoo": 6,
    "zoo_train": 6,
    "zoo_enjoy": 6,
    "demo": 6,
    "__init__": 7,  # the public facade: re-exports every layer
}


def component(module: str) -> str:
    """``sb3_latent.buffers.frame_store`` → ``buffers``; ``sb3_latent`` itself → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported(source: str, module: str) -> list[str]:
    """Every ``sb3_latent`` module that ``source`` (the text of ``module``) imports, wherever the import is."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "sb3_latent"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                base = ".".join([*module.split(".")[: -node.level], *([base] if base else [])])
            if base.split(".")[0] != "sb3_latent":
                continue
            # `from sb3_latent import registry` imports a submodule, `from sb3_latent import RAD` the facade
            out += [f"{base}.{a.name}" if base == "sb3_latent" and a.name in LAYERS else base for a in node.names]
    return out


def violations(source: str, module: str) -> list[str]:
    """``"importer -> imported"`` for each import of ``module`` that goes up the layers."""
    layer = LAYERS[component(module)]
    return [f"{module} -> {name}" for name in imported(source, module) if LAYERS[component(name)] > layer]


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def test_every_module_has_a_layer() -> None:
    assert {component(m) for m, _ in modules()} <= set(LAYERS), "add the new top-level module to LAYERS"


def test_no_lower_layer_imports_a_higher_one() -> None:
    bad = [v for module, path in modules() for v in violations(path.read_text(), module)]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_algorithm_imports_lever() -> None:
    bad = [
        f"{m} -> {name}"
        for m, path in modules()
        if component(m) == "algos"
        for name in imported(path.read_text(), m)
        if component(name) == "lever"
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from sb3_latent.algos import RAD", "sb3_latent.envs.dmc", ["sb3_latent.envs.dmc -> sb3_latent.algos"]),
        (
            "def f():\n    import sb3_latent.zoo.entry",
            "sb3_latent.buffers.frame_store",
            ["sb3_latent.buffers.frame_store -> sb3_latent.zoo.entry"],
        ),
        ("from sb3_latent import RAD", "sb3_latent.extractors.flare", ["sb3_latent.extractors.flare -> sb3_latent"]),
        (
            "from ..lever import attach_lever",
            "sb3_latent.buffers.frame_store",
            ["sb3_latent.buffers.frame_store -> sb3_latent.lever"],
        ),
        ("from sb3_latent import registry\nfrom sb3_latent.common import check_int", "sb3_latent.augment", []),
        ("from sb3_latent.buffers import FrameStoreReplayBuffer", "sb3_latent.algos.rad.rad", []),
    ],
)
def test_the_check_finds_imports_that_go_up(source: str, module: str, expected: list[str]) -> None:
    assert violations(source, module) == expected
