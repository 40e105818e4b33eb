"""Every shipped zoo entry trains and evaluates: each file × each env id in it is launched with `sb3-latent train`
as a user would (the shipped file by name, tiny sizes through --hyperparams/--env-kwargs), with evaluation on,
so no shipped entry can crash at its first evaluation again."""

import numpy as np
import pytest
import yaml

from sb3_latent.zoo import shipped
from sb3_latent.zoo.cli import main

pytestmark = pytest.mark.dmc

#: the algorithm of each shipped file (a new file without a row here fails below)
ALGO = {
    "rad": "rad",
    "rad_flare": "rad",
    "rad_lever": "rad",
    "drqv2": "drqv2",
    "drqv2_lever": "drqv2",
    "sac_flare": "sac",
    "slac": "slac",
    "dreamer": "dreamer",
    "rainbow": "rainbow",
    "rainbow_lever": "rainbow",
}
#: tiny sizes per algorithm: (n_timesteps, --hyperparams, --env-kwargs)
_SMALL = ["buffer_size:200", "batch_size:4", "policy_kwargs.net_arch:[8]"]
TINY = {
    "rad": (6, [*_SMALL, "learning_starts:3", "extractor_kwargs.features_dim:8"], ["size:32", "max_episode_steps:3"]),
    "drqv2": (6, [*_SMALL, "learning_starts:3", "extractor_kwargs.features_dim:8"], ["size:32", "max_episode_steps:3"]),
    "sac": (6, [*_SMALL, "learning_starts:3", "extractor_kwargs.features_dim:8"], ["size:32", "max_episode_steps:3"]),
    "slac": (
        12,
        [
            "buffer_size:200",
            "batch_size:4",
            "model_batch_size:2",
            "learning_starts:10",
            "initial_model_updates:2",
            "policy_kwargs.hidden:[8,8]",
            "policy_kwargs.feature_dim:8",
            "policy_kwargs.z1_dim:4",
            "policy_kwargs.z2_dim:8",
        ],
        ["max_episode_steps:10"],
    ),
    "dreamer": (
        8,
        [
            "buffer_size:200",
            "batch_size:2",
            "batch_length:4",
            "learning_starts:4",
            "train_ratio:8",
            "policy_kwargs.size:{deter: 16, stoch: 4, classes: 4, units: 16, layers: 1, depth: 4}",
        ],
        ["size:32", "max_episode_steps:4"],
    ),
    "rainbow": (
        6,
        ["buffer_size:200", "batch_size:4", "learning_starts:3", "target_update_interval:4", "n_steps:2", "hidden:8"],
        ["max_frames:200"],
    ),
}
CASES = [
    (name, env_id)
    for name, path in sorted(shipped("zoo config").items())
    for env_id in yaml.safe_load(path.read_text())
    if env_id != "default"
]


def test_every_shipped_file_has_an_algorithm_and_a_default_entry() -> None:
    assert set(shipped("zoo config")) == set(ALGO)
    for name, path in shipped("zoo config").items():
        assert "default" in yaml.safe_load(path.read_text()), name


def tiny_args(name: str, env_id: str) -> list[str]:
    n, hyper, env = TINY[ALGO[name]]
    entry = yaml.safe_load(shipped("zoo config")[name].read_text())[env_id]
    if entry.get("augment") == "translate":
        hyper = [*hyper, "augment_kwargs.size:40"]
    elif entry.get("augment") == "crop":
        hyper = [*hyper, "augment_kwargs.size:28"]
    if "lever" in entry:
        hyper = [*hyper, "lever.T_f:2"]  # the freeze happens inside the run
    if "T_f" in entry.get("replay_buffer_kwargs", {}):
        hyper = [*hyper, "replay_buffer_kwargs.T_f:4"]
    return ["-n", str(n), "--hyperparams", *hyper, "--env-kwargs", *env]


@pytest.mark.parametrize(("name", "env_id"), CASES, ids=[f"{n}:{e.split('/')[-1]}" for n, e in CASES])
def test_a_shipped_entry_trains_and_evaluates(tmp_path, monkeypatch, name, env_id) -> None:
    monkeypatch.chdir(tmp_path)  # outside the checkout: the file is found by its shipped name
    n = TINY[ALGO[name]][0]
    run = main(
        [
            "train",
            "--algo",
            ALGO[name],
            "--env",
            env_id,
            "-c",
            name,
            "--eval-freq",
            str(n),
            "--eval-episodes",
            "1",
            "--seed",
            "0",
            "-v",
            "0",
            "--no-tensorboard",
            *tiny_args(name, env_id),
        ]
    )
    evaluations = np.load(run / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [n] and np.isfinite(evaluations["results"]).all()
    assert (run / f"{env_id.replace('/', '-')}.zip").is_file()
