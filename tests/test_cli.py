"""The `sb3-latent` launcher: rl-zoo style runs from YAML, their folders, evaluation, plots, and errors
that name the key and the file before any work is done."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3 import SAC

from sb3_latent import RAD, SLAC, Dreamer, DrQv2, LeVERReplayBuffer
from sb3_latent.zoo import check_entry, load_zoo_config
from sb3_latent.zoo.cli import main

ZOO = Path(__file__).resolve().parent.parent / "zoo_configs"
ENV = "sb3_latent/MovingDot-v0"
TINY = {
    "n_timesteps": 120,
    "policy": "CnnPolicy",
    "frame_stack": 3,
    "extractor": "flare",
    "extractor_kwargs": {"n_frames": 3, "features_dim": 8},
    "policy_kwargs": {"net_arch": [16, 16]},
    "buffer_size": 300,
    "learning_starts": 40,
    "batch_size": 8,
}


def write_conf(tmp_path: Path, entry: dict, name: str = "tiny.yml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"default": entry}))
    return path


def train(tmp_path: Path, conf: Path, *extra: str, seed: int = 0) -> Path:
    return main(["train", "--algo", "rad", "--env", ENV, "-c", str(conf), "-f", str(tmp_path / "logs"),
                 "--eval-freq", "60", "--eval-episodes", "2", "--seed", str(seed), "-v", "0", *extra])


def test_train_writes_the_zoo_layout_and_enjoy_and_plot_read_it(tmp_path, capsys) -> None:
    conf = write_conf(tmp_path, TINY)
    run = train(tmp_path, conf)
    name = "sb3_latent-MovingDot-v0"
    assert run == tmp_path / "logs" / "rad" / f"{name}_1"
    assert (run / f"{name}.zip").is_file() and (run / "best_model.zip").is_file()
    assert np.load(run / "evaluations.npz")["timesteps"].tolist() == [60, 120]
    assert list((run / "tb").rglob("events.out.tfevents.*"))
    # the config actually used, as written and as a zoo file keyed by the env id
    assert yaml.safe_load((run / name / "config.yml").read_text())["extractor"] == "flare"
    assert load_zoo_config(run / name / "zoo_config.yml", ENV) == TINY
    assert (run / name / "command.txt").is_file()

    second = train(tmp_path, conf, seed=1)
    assert second.name == f"{name}_2"  # a new run never overwrites an old one

    capsys.readouterr()
    result = main(["enjoy", "--algo", "rad", "--env", ENV, "-f", str(tmp_path / "logs"), "--exp-id", "1", "-n", "2",
                   "--video", str(tmp_path / "play.gif")])
    assert len(result["returns"]) == 2 and np.isfinite(result["mean"])
    assert "2 episodes, return" in capsys.readouterr().out and (tmp_path / "play.gif").stat().st_size > 0

    summary = main(["plot", str(tmp_path / "logs" / "rad"), "-o", str(tmp_path / "curves.png")])
    assert summary == {f"rad/{name}": pytest.approx({"runs": 2, "steps": 120, "final_mean": summary[f"rad/{name}"][
        "final_mean"], "final_std": summary[f"rad/{name}"]["final_std"]})}
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_hyperparams_override_and_n_timesteps(tmp_path) -> None:
    conf = write_conf(tmp_path, TINY)
    run = train(tmp_path, conf, "-n", "60", "--hyperparams", "policy_kwargs.net_arch:[8]", "batch_size:4")
    used = load_zoo_config(run / "sb3_latent-MovingDot-v0" / "zoo_config.yml", ENV)
    assert used["n_timesteps"] == 60 and used["batch_size"] == 4 and used["policy_kwargs"] == {"net_arch": [8]}
    model = RAD.load(run / "sb3_latent-MovingDot-v0.zip")
    assert model.num_timesteps == 60 and model.batch_size == 4


@pytest.mark.parametrize(("change", "message"), [
    ({"learning_rat": 0.1}, r"bad.yml: unknown key\(s\) 'learning_rat' for RAD"),
    ({"extractor": "flair"}, r"bad.yml \[sb3_latent/MovingDot-v0\]: 'extractor': Unknown extractor 'flair'. "
                             r"Did you mean 'flare'"),
    ({"batch_size": "big"}, r"bad.yml \[sb3_latent/MovingDot-v0\]: 'batch_size' must be of type int, got 'big'"),
    ({"replay_buffer_class": "no.such.Buffer"}, r"'replay_buffer_class': cannot import module 'no.such'"),
    ({"policy_kwargs": "dict(net_arch=[8])"}, r"'policy_kwargs' must be a mapping \(strings are never evaluated\)"),
    ({"normalize": "dict(norm_obs=True)"}, r"'normalize' must be true/false or a mapping"),
    ({"policy": "TransformerPolicy"}, r"'policy': RAD has no policy 'TransformerPolicy'"),
    ({"env_wrapper": "gymnasium.wrappers.NoSuchWrapper"}, r"'env_wrapper': module 'gymnasium.wrappers' has no"),
    ({"lever": {"T_f": 10, "Kay": 2}}, r"'lever': unknown LeVER setting\(s\) 'Kay'"),
])
def test_bad_entries_fail_before_any_work(tmp_path, capsys, change, message) -> None:
    conf = write_conf(tmp_path, {**TINY, **change}, "bad.yml")
    with pytest.raises(SystemExit) as exit_:
        train(tmp_path, conf)
    assert exit_.value.code == 2
    import re

    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "logs").exists()  # nothing was created


def test_bad_algo_env_and_missing_budget(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for argv, message in [
        (["--algo", "radd", "--env", ENV], "Unknown algorithm 'radd'"),
        (["--algo", "rad", "--env", "sb3_latent/MovingDott-v0"], "did you mean 'sb3_latent/MovingDot-v0'"),
        (["--algo", "rad", "--env", ENV, "-c", str(tmp_path / "none.yml")], "none.yml' does not exist"),
        (["--algo", "rad", "--env", ENV, "--hyperparams", "batch_size"], "expected key:value"),
    ]:
        with pytest.raises(SystemExit):
            main(["train", *argv, "-f", str(tmp_path / "logs")])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no zoo_configs/rad.yml in this folder and no --n-timesteps
        main(["train", "--algo", "rad", "--env", ENV, "-f", str(tmp_path / "logs")])
    assert "no 'n_timesteps'" in capsys.readouterr().err


SHIPPED = {"rad.yml": RAD, "rad_flare.yml": RAD, "rad_lever.yml": RAD, "drqv2.yml": DrQv2, "drqv2_lever.yml": DrQv2,
           "sac_flare.yml": SAC, "slac.yml": SLAC, "dreamer.yml": Dreamer}


def test_every_zoo_file_is_checked_below() -> None:
    assert {p.name for p in ZOO.glob("*.yml")} == set(SHIPPED)


@pytest.mark.parametrize(("name", "algo"), SHIPPED.items())
def test_every_shipped_zoo_entry_checks(name, algo) -> None:
    data = yaml.safe_load((ZOO / name).read_text())
    assert data
    for env_id, entry in data.items():
        checked = check_entry(algo, env_id, entry, name)
        assert checked.n_timesteps > 0
        if "lever" in name:  # our algorithms wire LeVER themselves
            assert checked.hyperparams["replay_buffer_class"] is LeVERReplayBuffer
            assert checked.hyperparams["replay_buffer_kwargs"]["K"] == 4


def test_lever_key_on_a_stock_algorithm_attaches_it(tmp_path) -> None:
    entry = {k: v for k, v in TINY.items() if k != "learning_starts"}
    checked = check_entry(SAC, ENV, {**entry, "lever": {"T_f": 5, "K": 2}}, "x.yml")
    assert checked.lever == {"T_f": 5, "K": 2} and "replay_buffer_class" not in checked.hyperparams
    conf = write_conf(tmp_path, {**entry, "learning_starts": 20, "lever": {"T_f": 5, "K": 2}})
    run = main(["train", "--algo", "sac", "--env", ENV, "-c", str(conf), "-f", str(tmp_path / "logs"),
                "--eval-freq", "-1", "--seed", "0", "-v", "0", "--save-replay-buffer"])
    model = SAC.load(run / "sb3_latent-MovingDot-v0.zip")
    assert model.replay_buffer_class is LeVERReplayBuffer
    assert {"T_f": 5, "K": 2, "frozen": True}.items() <= model.replay_buffer_kwargs.items()  # froze after 5 updates


def test_list_shows_every_part_and_where_it_comes_from(capsys) -> None:
    rows = main(["list"])
    assert {("algorithms", "rad"), ("extractors", "flare"), ("buffers", "lever"), ("augmentations", "crop")} <= {
        (r["kind"], r["name"]) for r in rows}
    out = capsys.readouterr().out
    assert "sb3_latent.algos:RAD" in out and "stock algorithms" in out and "sac" in out


def test_rl_zoo3_train_script_runs_our_files(tmp_path, monkeypatch) -> None:
    """`python -m sb3_latent.zoo_train` is rl_zoo3's own train() with our algorithms registered."""
    from sb3_latent.zoo_train import main as zoo_train

    conf = write_conf(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    zoo_train(["--algo", "rad", "--env", ENV, "-conf", str(conf), "-f", "zlogs", "--eval-freq", "60",
               "--eval-episodes", "1", "--seed", "0", "--verbose", "0"])
    run = tmp_path / "zlogs" / "rad" / "sb3_latent-MovingDot-v0_1"
    assert (run / "sb3_latent-MovingDot-v0.zip").is_file() and (run / "evaluations.npz").is_file()


def test_rl_zoo3_optimize_samples_from_our_study_spec(tmp_path, monkeypatch) -> None:
    """rl_zoo3's `-optimize` tunes our algorithms with the sampler built from tuning/ALGO.yml."""
    from sb3_latent.zoo_train import main as zoo_train

    conf = write_conf(tmp_path, TINY)
    (tmp_path / "tuning").mkdir()
    (tmp_path / "tuning" / "rad.yml").write_text(yaml.safe_dump({
        "algo": "rad", "budget": {"n_timesteps": 60},
        "search_space": {"batch_size": {"type": "categorical", "choices": [4, 8]},
                         "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}}}))
    monkeypatch.chdir(tmp_path)
    storage = tmp_path / "study.log"
    zoo_train(["--algo", "rad", "--env", ENV, "-conf", str(conf), "--spec", "tuning/rad.yml", "-optimize",
               "--n-trials", "2", "-n", "60",
               "--n-evaluations", "1", "--eval-episodes", "1", "-f", "zlogs", "--no-optim-plots",
               "--storage", str(storage), "--study-name", "z", "--verbose", "0"])
    import optuna
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="z", storage=optuna.storages.JournalStorage(JournalFileBackend(str(storage))))
    assert len(study.trials) == 2 and all(set(t.params) == {"batch_size", "learning_rate"} for t in study.trials)
