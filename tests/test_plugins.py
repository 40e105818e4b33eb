"""Third-party plugins: found through the entry points like the built-in parts, a broken one reported
with its name and error without breaking the others, and the CURL plugin (plugins/sb3-latent-curl)
installed as a separate distribution and launched with `sb3-latent`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sb3_latent import FlareExtractor, registry
from sb3_latent.zoo.cli import main

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugins" / "sb3-latent-curl"


def fake_distribution(site: Path, name: str, entry_points: str) -> None:
    """An installed distribution as Python sees one: a ``*.dist-info`` folder on ``sys.path``."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_a_broken_plugin_is_reported_and_the_others_still_work(tmp_path, monkeypatch, capsys) -> None:
    fake_distribution(tmp_path, "broken-plugin", "[sb3_latent.extractors]\nbroken = no_such_module:Nothing\n")
    fake_distribution(
        tmp_path, "good-plugin", "[sb3_latent.extractors]\nflare_again = sb3_latent.extractors:FlareExtractor\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    entries = {e.name: e for e in registry.list_entries("extractors")}
    assert entries["broken"].distribution == "broken-plugin" and entries["flare_again"].distribution == "good-plugin"
    with pytest.raises(
        ImportError,
        match=r"extractor 'broken' from the distribution 'broken-plugin' "
        r"\(no_such_module:Nothing\) failed to load: ModuleNotFoundError",
    ):
        registry.load("extractors", "broken")
    assert registry.load("extractors", "flare_again") is FlareExtractor
    assert registry.load("extractors", "flare") is FlareExtractor

    errors = {e.name: err for e, err in registry.check()}
    assert "no_such_module" in errors["broken"] and errors["flare_again"] is None and errors["flare"] is None
    main(["list", "--kind", "extractors"])
    out = capsys.readouterr().out
    assert "BROKEN: extractor 'broken'" in out and "plugins: broken-plugin, good-plugin" in out

    # a zoo entry naming the broken plugin fails before any work, naming it
    conf = tmp_path / "c.yml"
    conf.write_text(yaml.safe_dump({"default": {"n_timesteps": 10, "extractor": "broken"}}))
    with pytest.raises(SystemExit):
        main(["train", "--algo", "rad", "--env", "sb3_latent/MovingDot-v0", "-c", str(conf), "-f", str(tmp_path / "l")])
    assert "'extractor': extractor 'broken' from the distribution 'broken-plugin'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def curl_installed(tmp_path_factory) -> Path:
    """plugins/sb3-latent-curl pip-installed (as a user would, from its own pyproject) into a folder
    that goes on PYTHONPATH, so the shared environment is left as it was."""
    import importlib.util

    target = tmp_path_factory.mktemp("site")
    # build with the environment's setuptools when it is recent enough (no download), else in pip's isolated
    # build environment (a fresh Python 3.11 venv has setuptools 65)
    isolation = []
    if importlib.util.find_spec("setuptools"):
        import setuptools

        if int(setuptools.__version__.split(".")[0]) >= 68:
            isolation = ["--no-build-isolation"]
    import shutil

    source = tmp_path_factory.mktemp("src") / PLUGIN.name  # a copy: building leaves build/ and egg-info behind
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            *isolation,
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("sb3_latent_curl-0.1.0.dist-info"))
    return target


def sb3_latent(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "sb3_latent.zoo.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_installed_curl_plugin_is_listed_and_trains_with_no_change_to_sb3_latent(curl_installed, tmp_path) -> None:
    listed = sb3_latent(curl_installed, "list", "--kind", "algorithms", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.split()[1:2] == ["curl"])
    assert "sb3-latent-curl" in line and "sb3_latent_curl:CURL" in line and line.endswith("ok")

    trained = sb3_latent(
        curl_installed,
        "train",
        "--algo",
        "curl",
        "--env",
        "sb3_latent/MovingDot-v0",
        "-n",
        "60",
        "--hyperparams",
        "frame_stack:3",
        "augment_kwargs:{size: 28}",
        "buffer_size:200",
        "learning_starts:20",
        "batch_size:8",
        "policy_kwargs:{net_arch: [16]}",
        "--eval-freq",
        "30",
        "--eval-episodes",
        "1",
        "--seed",
        "0",
        "-f",
        "logs",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    run = tmp_path / "logs" / "curl" / "sb3_latent-MovingDot-v0_1"
    assert (run / "sb3_latent-MovingDot-v0.zip").is_file() and (run / "evaluations.npz").is_file()

    enjoyed = sb3_latent(
        curl_installed, "enjoy", "--algo", "curl", "--env", "sb3_latent/MovingDot-v0", "-n", "1", cwd=tmp_path
    )
    assert enjoyed.returncode == 0 and "1 episodes, return" in enjoyed.stdout, enjoyed.stderr


def test_the_plugin_ships_a_zoo_file_that_checks(curl_installed, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(curl_installed))
    from sb3_latent.zoo import check_entry

    CURL = registry.load("algorithms", "curl")
    for env_id, entry in yaml.safe_load((PLUGIN / "zoo_configs" / "curl.yml").read_text()).items():
        assert check_entry(CURL, env_id, entry, "curl.yml").hyperparams["augment"] == "crop"
