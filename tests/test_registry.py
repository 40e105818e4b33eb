"""The registry finds every built-in part by name (no installation needed), plugins through entry points, and
explains unknown names and plugin names that collide with a built-in."""

import subprocess
import sys
from pathlib import Path

import pytest

from sb3_latent import FlareExtractor, RandomTranslate, registry


def test_builtins_are_in_the_static_table() -> None:
    entries = {(e.kind, e.name): e for e in registry.list_entries()}
    for kind, name in [
        ("algorithms", "rad"),
        ("extractors", "flare"),
        ("extractors", "latent_stack"),
        ("extractors", "pixel_flow"),
        ("extractors", "state_flare"),
        ("augmentations", "shift"),
        ("augmentations", "translate"),
        ("augmentations", "crop"),
        ("buffers", "frame_store"),
    ]:
        assert (kind, name) in entries
        assert entries[kind, name].distribution == "sb3-latent"


def test_load_by_name_returns_the_class() -> None:
    assert registry.load("extractors", "flare") is FlareExtractor
    assert registry.load("augmentations", "translate") is RandomTranslate


def test_unknown_name_lists_known_names_and_close_matches() -> None:
    with pytest.raises(ValueError) as err:
        registry.load("extractors", "flair")
    msg = str(err.value)
    assert "'flair'" in msg and "Did you mean 'flare'" in msg
    assert "latent_stack" in msg and "pixel_flow" in msg and "sb3_latent.extractors" in msg


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="Unknown registry kind 'policies'"):
        registry.list_entries("policies")
    assert registry.names("augmentations") == ["crop", "shift", "translate"]


def test_a_checkout_on_pythonpath_works_without_entry_points(tmp_path) -> None:
    """Was `Unknown augmentation 'translate' ... (none installed)` when sb3-latent was not pip-installed."""
    checkout = Path(__file__).resolve().parent.parent
    code = (
        "import importlib.metadata as md\n"
        "real = md.entry_points  # as if sb3-latent were not installed: none of its groups has an entry\n"
        "md.entry_points = lambda **kw: md.EntryPoints([]) if 'sb3_latent' in kw.get('group', '') else real(**kw)\n"
        "from sb3_latent import RAD, make_moving_dot_env, flare_kwargs, registry\n"
        "env = make_moving_dot_env(frame_stack=3, size=24)\n"
        "model = RAD('CnnPolicy', env, policy_kwargs=flare_kwargs(n_frames=3, features_dim=8, net_arch=[8]),\n"
        "            buffer_size=50, learning_starts=5, batch_size=4).learn(10)\n"
        "assert registry.names('augmentations') == ['crop', 'shift', 'translate']\n"
        "print('ok', model.num_timesteps)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0 and "ok 10" in proc.stdout, proc.stderr[-2000:]


def test_a_plugin_cannot_shadow_a_built_in(tmp_path, monkeypatch) -> None:
    dist = tmp_path / "shadow_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[sb3_latent.extractors]\nflare = sb3_latent.extractors:PixelFlowExtractor\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="the name 'flare' belongs to a built-in extractor"):
        assert registry.load("extractors", "flare") is FlareExtractor  # the built-in, never the plugin's
    ((_entry, error),) = [(e, err) for e, err in registry.check("extractors") if e.distribution == "shadow-plugin"]
    assert error is not None and error.startswith("CONFLICT: the name 'flare' belongs to a built-in")


BLOCK = """
import sys
for name in {BLOCKED}:  # as if the optional dependencies were not installed: `import name` fails
    sys.modules[name] = None
"""


def run_without(modules: set[str], code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK.replace("{BLOCKED}", repr(modules)) + code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )


def test_the_core_needs_no_extra(tmp_path) -> None:
    """`pip install sb3-latent` without extras: the library works; the launcher and DMC say which extra to install."""
    extras = {
        "dm_control",
        "shimmy",
        "mujoco",
        "rl_zoo3",
        "yaml",
        "pandas",
        "optuna",
        "optuna_dashboard",
        "psycopg",
        "psycopg2",
        "sqlalchemy",
    }
    proc = run_without(
        extras,
        (
            "from sb3_latent import DrQv2, make_moving_dot_env, registry\n"
            "model = DrQv2('CnnPolicy', make_moving_dot_env(frame_stack=3, size=24), buffer_size=50,\n"
            "              learning_starts=5, batch_size=4, policy_kwargs={'net_arch': [8]}).learn(10)\n"
            "assert registry.load('augmentations', 'crop')\n"
            "print('ok', model.num_timesteps)\n"
        ),
        tmp_path,
    )
    assert proc.returncode == 0 and "ok 10" in proc.stdout, proc.stderr[-2000:]

    proc = run_without(
        extras,
        "from sb3_latent.zoo.cli import main\nmain(['train', '--algo', 'rad', '--env', 'sb3_latent/MovingDot-v0'])\n",
        tmp_path,
    )
    assert proc.returncode == 2 and "an optional dependency: pip install 'sb3-latent[zoo]'" in proc.stderr, proc.stderr
    proc = run_without(
        {"dm_control"}, "from sb3_latent import make_dmc_env\nmake_dmc_env('cartpole', 'swingup')\n", tmp_path
    )
    assert "pip install 'sb3-latent[dmc]'" in proc.stderr
