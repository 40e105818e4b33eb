"""The `sb3-latent` launcher: rl-zoo style runs from YAML, their folders, evaluation, plots, and errors
that name the key and the file before any work is done."""

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3 import SAC

from sb3_latent import RAD, SLAC, Dreamer, DrQv2, LeVERReplayBuffer, Rainbow
from sb3_latent.lever import PrioritizedLeVERReplayBuffer
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
    return main(
        [
            "train",
            "--algo",
            "rad",
            "--env",
            ENV,
            "-c",
            str(conf),
            "-f",
            str(tmp_path / "logs"),
            "--eval-freq",
            "60",
            "--eval-episodes",
            "2",
            "--seed",
            str(seed),
            "-v",
            "0",
            *extra,
        ]
    )


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
    result = main(
        [
            "enjoy",
            "--algo",
            "rad",
            "--env",
            ENV,
            "-f",
            str(tmp_path / "logs"),
            "--exp-id",
            "1",
            "-n",
            "2",
            "--video",
            str(tmp_path / "play.gif"),
        ]
    )
    assert len(result["returns"]) == 2 and np.isfinite(result["mean"])
    assert "2 episodes, return" in capsys.readouterr().out and (tmp_path / "play.gif").stat().st_size > 0

    summary = main(["plot", str(tmp_path / "logs" / "rad"), "-o", str(tmp_path / "curves.png")])
    assert summary == {
        f"rad/{name}": pytest.approx(
            {
                "runs": 2,
                "steps": 120,
                "final_mean": summary[f"rad/{name}"]["final_mean"],
                "final_std": summary[f"rad/{name}"]["final_std"],
            }
        )
    }
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_hyperparams_override_and_n_timesteps(tmp_path) -> None:
    conf = write_conf(tmp_path, TINY)
    run = train(tmp_path, conf, "-n", "60", "--hyperparams", "policy_kwargs.net_arch:[8]", "batch_size:4")
    used = load_zoo_config(run / "sb3_latent-MovingDot-v0" / "zoo_config.yml", ENV)
    assert used["n_timesteps"] == 60 and used["batch_size"] == 4 and used["policy_kwargs"] == {"net_arch": [8]}
    model = RAD.load(run / "sb3_latent-MovingDot-v0.zip")
    assert model.num_timesteps == 60 and model.batch_size == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learning_rat": 0.1}, r"bad.yml: unknown key\(s\) 'learning_rat' for RAD"),
        (
            {"extractor": "flair"},
            r"bad.yml \[sb3_latent/MovingDot-v0\]: 'extractor': Unknown extractor 'flair'. "
            r"Did you mean 'flare'",
        ),
        ({"batch_size": "big"}, r"bad.yml \[sb3_latent/MovingDot-v0\]: 'batch_size' must be of type int, got 'big'"),
        ({"replay_buffer_class": "no.such.Buffer"}, r"'replay_buffer_class': cannot import module 'no.such'"),
        ({"policy_kwargs": "dict(net_arch=[8])"}, r"'policy_kwargs' must be a mapping \(strings are never evaluated\)"),
        ({"normalize": "dict(norm_obs=True)"}, r"'normalize' must be true/false or a mapping"),
        ({"policy": "TransformerPolicy"}, r"'policy': RAD has no policy 'TransformerPolicy'"),
        ({"env_wrapper": "gymnasium.wrappers.NoSuchWrapper"}, r"'env_wrapper': module 'gymnasium.wrappers' has no"),
        ({"lever": {"T_f": 10, "Kay": 2}}, r"'lever': unknown LeVER setting\(s\) 'Kay'"),
    ],
)
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
    with pytest.raises(SystemExit):  # sb3-latent ships no zoo config for td3, and no --n-timesteps
        main(["train", "--algo", "td3", "--env", ENV, "-f", str(tmp_path / "logs")])
    assert "no 'n_timesteps'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the shipped rad.yml's default entry is for DMC: named in the error
        main(["train", "--algo", "rad", "--env", ENV, "-f", str(tmp_path / "logs")])
    err = capsys.readouterr().err
    assert "zoo_configs/rad.yml [sb3_latent/MovingDot-v0]: 'env_kwargs': unknown argument(s)" in err
    assert not (tmp_path / "logs").exists()


SHIPPED = {
    "rad.yml": RAD,
    "rad_flare.yml": RAD,
    "rad_lever.yml": RAD,
    "drqv2.yml": DrQv2,
    "drqv2_lever.yml": DrQv2,
    "sac_flare.yml": SAC,
    "slac.yml": SLAC,
    "dreamer.yml": Dreamer,
    "rainbow.yml": Rainbow,
    "rainbow_lever.yml": Rainbow,
}


def test_every_zoo_file_is_checked_below() -> None:
    assert {p.name for p in ZOO.glob("*.yml")} == set(SHIPPED)


@pytest.mark.parametrize(("name", "algo"), SHIPPED.items())
def test_every_shipped_zoo_entry_checks(name, algo) -> None:
    data = yaml.safe_load((ZOO / name).read_text())
    assert data
    for env_id, entry in data.items():
        checked = check_entry(algo, env_id, entry, name)
        assert checked.n_timesteps > 0
        if "lever" in name and algo is Rainbow:  # LeVER with priorities; K = 1, the paper's Atari choice (default)
            assert checked.hyperparams["replay_buffer_class"] is PrioritizedLeVERReplayBuffer
        elif "lever" in name:  # our algorithms wire LeVER themselves
            assert checked.hyperparams["replay_buffer_class"] is LeVERReplayBuffer
            assert checked.hyperparams["replay_buffer_kwargs"]["K"] == 4


def test_lever_key_on_a_stock_algorithm_attaches_it(tmp_path) -> None:
    entry = {k: v for k, v in TINY.items() if k != "learning_starts"}
    checked = check_entry(SAC, ENV, {**entry, "lever": {"T_f": 5, "K": 2}}, "x.yml")
    assert checked.lever == {"T_f": 5, "K": 2} and "replay_buffer_class" not in checked.hyperparams
    conf = write_conf(tmp_path, {**entry, "learning_starts": 20, "lever": {"T_f": 5, "K": 2}})
    run = main(
        [
            "train",
            "--algo",
            "sac",
            "--env",
            ENV,
            "-c",
            str(conf),
            "-f",
            str(tmp_path / "logs"),
            "--eval-freq",
            "-1",
            "--seed",
            "0",
            "-v",
            "0",
            "--save-replay-buffer",
        ]
    )
    model = SAC.load(run / "sb3_latent-MovingDot-v0.zip")
    assert model.replay_buffer_class is LeVERReplayBuffer
    assert {"T_f": 5, "K": 2, "frozen": True}.items() <= model.replay_buffer_kwargs.items()  # froze after 5 updates


def test_list_shows_every_part_and_where_it_comes_from(capsys) -> None:
    rows = main(["list"])
    assert {("algorithms", "rad"), ("extractors", "flare"), ("buffers", "lever"), ("augmentations", "crop")} <= {
        (r["kind"], r["name"]) for r in rows
    }
    out = capsys.readouterr().out
    assert "sb3_latent.algos:RAD" in out and "stock algorithms" in out and "sac" in out


def test_rl_zoo3_train_script_runs_our_files(tmp_path, monkeypatch) -> None:
    """`python -m sb3_latent.zoo_train` is rl_zoo3's own train() with our algorithms registered."""
    from sb3_latent.zoo_train import main as zoo_train

    conf = write_conf(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    zoo_train(
        [
            "--algo",
            "rad",
            "--env",
            ENV,
            "-conf",
            str(conf),
            "-f",
            "zlogs",
            "--eval-freq",
            "60",
            "--eval-episodes",
            "1",
            "--seed",
            "0",
            "--verbose",
            "0",
        ]
    )
    run = tmp_path / "zlogs" / "rad" / "sb3_latent-MovingDot-v0_1"
    assert (run / "sb3_latent-MovingDot-v0.zip").is_file() and (run / "evaluations.npz").is_file()


def test_rl_zoo3_optimize_samples_from_our_study_spec(tmp_path, monkeypatch) -> None:
    """rl_zoo3's `-optimize` tunes our algorithms with the sampler built from tuning/ALGO.yml."""
    from sb3_latent.zoo_train import main as zoo_train

    conf = write_conf(tmp_path, TINY)
    (tmp_path / "tuning").mkdir()
    (tmp_path / "tuning" / "rad.yml").write_text(
        yaml.safe_dump(
            {
                "algo": "rad",
                "budget": {"n_timesteps": 60},
                "search_space": {
                    "batch_size": {"type": "categorical", "choices": [4, 8]},
                    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
                },
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    storage = tmp_path / "study.log"
    zoo_train(
        [
            "--algo",
            "rad",
            "--env",
            ENV,
            "-conf",
            str(conf),
            "--spec",
            "tuning/rad.yml",
            "-optimize",
            "--n-trials",
            "2",
            "-n",
            "60",
            "--n-evaluations",
            "1",
            "--eval-episodes",
            "1",
            "-f",
            "zlogs",
            "--no-optim-plots",
            "--storage",
            str(storage),
            "--study-name",
            "z",
            "--verbose",
            "0",
        ]
    )
    import optuna
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="z", storage=optuna.storages.JournalStorage(JournalFileBackend(str(storage))))
    assert len(study.trials) == 2 and all(set(t.params) == {"batch_size", "learning_rate"} for t in study.trials)


def test_dotted_hyperparams_reach_into_mappings_and_args_yml_holds_mappings(tmp_path) -> None:
    conf = write_conf(tmp_path, TINY)
    run = train(
        tmp_path,
        conf,
        "-n",
        "60",
        "--eval-freq",
        "-1",
        "--hyperparams",
        "extractor_kwargs.features_dim:16",
        "--env-kwargs",
        "size:24",
    )
    used = load_zoo_config(run / "sb3_latent-MovingDot-v0" / "zoo_config.yml", ENV)
    assert used["extractor_kwargs"] == {"n_frames": 3, "features_dim": 16}  # n_frames kept
    model = RAD.load(run / "sb3_latent-MovingDot-v0.zip")
    assert model.critic.features_extractor.n_frames == 3 and model.observation_space.shape == (9, 24, 24)
    args = (run / "sb3_latent-MovingDot-v0" / "args.yml").read_text()
    saved = yaml.load(args.replace("!!python/object/apply:collections.OrderedDict", ""), Loader=yaml.SafeLoader)
    flat = dict(saved[0]) if isinstance(saved, list) else saved
    assert flat["env_kwargs"] == {"size": 24}  # a mapping rl_zoo3's enjoy can use, not "size:24" strings
    assert flat["hyperparams"] == {"extractor_kwargs.features_dim": 16, "env_kwargs.size": 24}


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (
            {"policy_kwargs": {"net_arc": [8]}},
            [],
            r"'policy_kwargs': unknown argument\(s\) 'net_arc' for RADPolicy "
            r"\(did you mean 'net_arch'\?\)",
        ),
        (
            {"env_kwargs": {"szie": 24}},
            [],
            r"'env_kwargs': unknown argument\(s\) 'szie' for the env "
            r"'sb3_latent/MovingDot-v0' \(did you mean 'size'\?\)",
        ),
        ({}, ["--env-kwargs", "szie:24"], r"'env_kwargs': unknown argument\(s\) 'szie'"),
        (
            {"extractor_kwargs": {"n_frame": 3}},
            [],
            r"'extractor_kwargs': unknown argument\(s\) 'n_frame' for "
            r"FlareExtractor",
        ),
        ({"augment_kwargs": {"sise": 40}}, [], r"'augment_kwargs': unknown argument\(s\) 'sise' for RandomTranslate"),
        (
            {"replay_buffer_class": "frame_store", "replay_buffer_kwargs": {"n_frame": 3}},
            [],
            r"'replay_buffer_kwargs': unknown argument\(s\) 'n_frame' for FrameStoreReplayBuffer",
        ),
        # RAD picks its buffer class inside its constructor: caught when the model is built, the new folder removed
        (
            {"replay_buffer_kwargs": {"n_frame": 3}},
            [],
            r"bad.yml \[sb3_latent/MovingDot-v0\]: FrameStoreReplayBuffer"
            r".__init__\(\) got an unexpected keyword argument 'n_frame'",
        ),
        ({"env_kwargs": {"size": "big"}}, [], r"'env_kwargs.size' must be of type int, got 'big'"),
        # passes every check, fails when the model is built (9 channels, 2 frames): the new run folder is removed
        (
            {"extractor_kwargs": {"n_frames": 2, "features_dim": 8}},
            [],
            r"bad.yml \[sb3_latent/MovingDot-v0\]: .*n_frames",
        ),
    ],
)
def test_typos_inside_mappings_fail_before_a_run_folder_exists(tmp_path, capsys, change, extra, message) -> None:
    conf = write_conf(tmp_path, {**TINY, **change}, "bad.yml")
    with pytest.raises(SystemExit) as exit_:
        train(tmp_path, conf, *extra)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "logs").glob("rad/*"))  # no run folder, not even a half-made one


def test_yaml_syntax_errors_name_the_file_and_the_line(tmp_path, capsys) -> None:
    bad = tmp_path / "broken.yml"
    bad.write_text("default:\n  n_timesteps: 10\n  policy_kwargs: {net_arch: [8, 8}\n")
    with pytest.raises(SystemExit):
        train(tmp_path, bad)
    err = capsys.readouterr().err
    assert "broken.yml' is not valid YAML (line 3, column" in err and len(err.strip().splitlines()) == 1


@pytest.mark.dmc
def test_train_without_conf_outside_the_checkout_uses_the_shipped_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the example: cartpole swingup had no entry and no default before
    run = main(
        [
            "train",
            "--algo",
            "rad",
            "--env",
            "sb3_latent/cartpole-swingup-pixels-v0",
            "-n",
            "4",
            "--eval-freq",
            "4",
            "--eval-episodes",
            "1",
            "-v",
            "0",
            "--hyperparams",
            "buffer_size:100",
            "learning_starts:2",
            "batch_size:2",
            "policy_kwargs.net_arch:[8]",
            "augment_kwargs.size:28",
            "--env-kwargs",
            "size:32",
            "max_episode_steps:2",
        ]
    )
    assert "zoo config: " in capsys.readouterr().out
    used = (run / "sb3_latent-cartpole-swingup-pixels-v0" / "zoo_config.yml").read_text()
    assert "sb3_latent/zoo/zoo_configs/rad.yml" in used and "action_repeat: 8" in used


@pytest.mark.dmc
def test_rl_zoo3_optimize_with_the_shipped_drqv2_spec_outside_the_checkout(tmp_path, monkeypatch) -> None:
    """Was `DrQv2.__init__() got an unexpected keyword argument 'extractor_kwargs'` (and a bare KeyError outside
    the checkout): each trial is now a checked entry handed to rl_zoo3 as constructor arguments."""
    from sb3_latent.zoo_train import main as zoo_train

    monkeypatch.chdir(tmp_path)
    zoo_train(
        [
            "--algo",
            "drqv2",
            "--env",
            "sb3_latent/cartpole-swingup-pixels-v0",
            "-optimize",
            "--n-trials",
            "1",
            "-n",
            "4",
            "--n-evaluations",
            "1",
            "--eval-episodes",
            "1",
            "-f",
            "zlogs",
            "--no-optim-plots",
            "--verbose",
            "0",
            "--env-kwargs",
            "size:32",
            "max_episode_steps:2",
            "--hyperparams",
            "buffer_size:100",
            "learning_starts:2",
        ]
    )
    (report,) = (tmp_path / "zlogs" / "drqv2").glob("report_*.csv")
    assert report.read_text().count(",COMPLETE") == 1


def test_ctrl_c_saves_and_resume_continues_the_same_run(tmp_path) -> None:
    """Ctrl-C (SIGINT) during `train` saves the model and the replay buffer; `train --resume RUN` continues that run in
    its folder: step count, buffer, evaluations.npz and the TensorBoard run go on."""
    import signal
    import subprocess
    import sys
    import time

    conf = write_conf(tmp_path, TINY)
    cmd = [
        sys.executable,
        "-m",
        "sb3_latent.zoo.cli",
        "train",
        "--algo",
        "rad",
        "--env",
        ENV,
        "-c",
        str(conf),
        "-f",
        "logs",
        "-n",
        "100000",
        "--eval-freq",
        "40",
        "--eval-episodes",
        "1",
        "--seed",
        "0",
        "--save-replay-buffer",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "logs" / "rad" / "sb3_latent-MovingDot-v0_1"
    deadline = time.monotonic() + 300
    while not (run / "evaluations.npz").is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    interrupted = RAD.load(run / "sb3_latent-MovingDot-v0.zip").num_timesteps
    assert 40 <= interrupted < 100000 and (run / "replay_buffer.pkl").is_file()

    total = interrupted + 50
    resumed = main(["train", "--resume", str(run), "-n", str(total), "-f", str(tmp_path / "logs"), "-v", "0"])
    assert resumed == run and not (tmp_path / "logs" / "rad" / "sb3_latent-MovingDot-v0_2").exists()
    model = RAD.load(run / "sb3_latent-MovingDot-v0.zip")
    assert model.num_timesteps == total
    steps = np.load(run / "evaluations.npz")["timesteps"].tolist()
    assert steps == sorted(steps) and steps[0] == 40 and steps[-1] > interrupted  # appended to the old ones
    assert [p.name for p in (run / "tb").iterdir()] == ["RAD_1"]
