"""rl-zoo style YAML entries build our algorithms; bad files get errors naming the key and the file."""

from pathlib import Path

import pytest

from sb3_latent import RAD, FlareExtractor
from sb3_latent.zoo import build_from_config, load_zoo_config

ZOO = Path(__file__).resolve().parent.parent / "zoo_configs"
PAPER_TASKS = ["quadruped-walk", "pendulum-swingup", "hopper-hop", "finger-turn_hard", "walker-run"]


@pytest.mark.parametrize("name", ["rad.yml", "rad_flare.yml"])
def test_paper_configs_hold_table_a4_settings(name) -> None:
    for task in PAPER_TASKS:
        cfg = load_zoo_config(ZOO / name, f"sb3_latent/{task}-pixels-v0")
        env = cfg["env_kwargs"]
        assert env["size"] == 100 and cfg["augment_kwargs"] == {"size": 108} and cfg["batch_size"] == 128
        assert env["frame_stack"] == (2 if task == "pendulum-swingup" else 3)
        assert env["action_repeat"] == (2 if task in ("hopper-hop", "walker-run") else 4)
        assert env["camera_id"] == (2 if task == "quadruped-walk" else 0)


@pytest.mark.dmc
def test_a_config_entry_builds_flare_rad(tmp_path) -> None:
    cfg = load_zoo_config(ZOO / "rad_flare.yml", "sb3_latent/pendulum-swingup-pixels-v0")
    model, n_timesteps = build_from_config(
        RAD,
        "sb3_latent/pendulum-swingup-pixels-v0",
        cfg,
        seed=0,
        env_kwargs={"size": 40},
        augment_kwargs={"size": 48},
        buffer_size=100,
    )
    assert n_timesteps == 375_000
    assert isinstance(model.critic.features_extractor, FlareExtractor)
    assert model.critic.features_extractor.n_frames == 2
    assert model.observation_space.shape == (6, 40, 40) and model.policy.encoder_space.shape == (6, 48, 48)


def test_bad_files_and_keys(tmp_path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("default:\n  n_timesteps: 10\n  policy: CnnPolicy\n  learning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yml: unknown key\(s\) 'learning_rat' for RAD"):
        build_from_config(RAD, "sb3_latent/MovingDot-v0", load_zoo_config(bad, "anything"), source="bad.yml")
    with pytest.raises(ValueError, match="does not exist"):
        load_zoo_config(tmp_path / "missing.yml", "x")
    (tmp_path / "one.yml").write_text("sb3_latent/walker-walk-pixels-v0: {n_timesteps: 10}\n")
    with pytest.raises(
        ValueError,
        match=r"'sb3_latent/cartpole-swingup-pixels-v0' is not in .*one.yml' \(and it has "
        "no 'default' entry\\); it has: sb3_latent/walker-walk-pixels-v0",
    ):
        load_zoo_config(tmp_path / "one.yml", "sb3_latent/cartpole-swingup-pixels-v0")
    (tmp_path / "list.yml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must map env ids"):
        load_zoo_config(tmp_path / "list.yml", "x")
