"""Optuna tuning: study specs, the embedded SQLite default, failed and pruned trials, resuming, and
many worker processes sharing one study in PostgreSQL (one of them killed mid-trial)."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from sb3_latent import RAD
from sb3_latent.zoo import check_entry, load_zoo_config
from sb3_latent.zoo.tune import StudySpec, run_worker, wait_for

ROOT = Path(__file__).resolve().parent.parent
ENV = "sb3_latent/MovingDot-v0"
SPEC = {
    "algo": "rad",
    "fixed": {
        "policy": "CnnPolicy",
        "frame_stack": 3,
        "extractor": "flare",
        "extractor_kwargs": {"n_frames": 3, "features_dim": 8},
        "policy_kwargs": {"net_arch": [16, 16]},
        "buffer_size": 300,
        "learning_starts": 30,
    },
    "budget": {"n_timesteps": 120, "n_evaluations": 3, "n_eval_episodes": 1},
    "sampler": {"name": "random"},
    "pruner": {"name": "median", "n_startup_trials": 2},
    "search_space": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "batch_size": {"type": "categorical", "choices": [8, 16]},
        "policy_kwargs.net_arch": {"type": "categorical", "choices": {"tiny": [8], "small": [16, 16]}},
    },
}


def spec_file(tmp_path: Path, **change) -> Path:
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump({**SPEC, **change}))
    return path


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


def test_shipped_specs_load_and_fit_their_algorithms() -> None:
    from sb3_latent.zoo import shipped
    from sb3_latent.zoo.config import with_values
    from sb3_latent.zoo.manager import resolve_algo

    paths = sorted(shipped("study spec").values())
    assert {p.stem for p in paths} >= {"rad", "drqv2", "sac", "slac", "dreamer"}
    for path in paths:
        spec = StudySpec.load(path)
        assert spec.algo == path.stem and spec.search_space and spec.budget["n_timesteps"] > 0
        config = shipped("zoo config")[spec.config]
        envs = yaml.safe_load(config.read_text())
        for env_id in envs:  # every value of the space fits every base entry
            for values in (spec.first_values(), dict(zip(spec.search_space, last_values(spec), strict=True))):
                entry = with_values(load_zoo_config(config, env_id), {**spec.fixed, **values})
                check_entry(resolve_algo(spec.algo), env_id, entry, str(path))


def last_values(spec: StudySpec) -> list:
    out = []
    for p in spec.search_space.values():
        if p["type"] == "categorical":
            c = p["choices"]
            out.append(list(c.values())[-1] if isinstance(c, dict) else c[-1])
        else:
            out.append(p["high"])
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"searchspace": {}}, r"spec.yml: unknown key\(s\) 'searchspace'"),
        (
            {"search_space": {"learning_rate": {"type": "float", "low": 1.0}}},
            r"'learning_rate': needs numbers low <= high",
        ),
        ({"search_space": {"x": {"type": "choice"}}}, r"search_space 'x' needs 'type'"),
        (
            {"search_space": {"policy_kwargs.net_arch": {"type": "categorical", "choices": [[8], [16]]}}},
            "label other values with a mapping",
        ),
        ({"budget": {"n_timesteps": 0}}, r"budget 'n_timesteps' must be an integer >= 1"),
        ({"pruner": {"name": "hyperband"}}, "pruner name must be"),
        (
            {"search_space": {"learning_rat": {"type": "float", "low": 0.1, "high": 0.2}}},
            r"unknown key\(s\) 'learning_rat'",
        ),
        ({"algo": "drqv2"}, "is a spec for 'drqv2', not 'rad'"),
    ],
)
def test_bad_specs_fail_before_any_trial(tmp_path, change, message) -> None:
    with pytest.raises(ValueError, match=message):
        run_worker(StudySpec.load(spec_file(tmp_path, **change)), "rad", ENV, n_trials=1, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # no storage, no trial


def test_sqlite_default_report_failures_and_resume(tmp_path) -> None:
    spec = StudySpec.load(spec_file(tmp_path))
    out = tmp_path / "run"
    study = optuna.create_study(
        storage=f"sqlite:///{out.mkdir() or out / 'study.db'}", study_name="s", direction="maximize"
    )
    # an exception (Adam refuses a negative learning rate) and a NaN (a huge one blows the weights up)
    study.enqueue_trial({"learning_rate": -1.0, "batch_size": 8, "policy_kwargs.net_arch": "tiny"})
    study.enqueue_trial({"learning_rate": 1e30, "batch_size": 8, "policy_kwargs.net_arch": "tiny"})
    with pytest.warns(UserWarning):  # optuna: the enqueued values are outside the search space
        study = run_worker(spec, "rad", ENV, study_name="s", n_trials=4, out=out, seed=0)
    assert states(study)[:2] == ["FAIL", "FAIL"]  # recorded as failed; the worker went on
    assert all(s in ("COMPLETE", "PRUNED") for s in states(study)[2:]) and len(study.trials) == 4
    assert all(t.user_attrs["env_steps"] > 0 for t in study.trials[2:])
    # report: the best trial as a zoo entry that trains as it is, plots, a table
    best = load_zoo_config(out / "best.yml", ENV)
    entry = check_entry(RAD, ENV, best, "best.yml")
    assert entry.hyperparams["learning_rate"] == study.best_params["learning_rate"]
    assert best["policy_kwargs"]["net_arch"] in ([8], [16, 16]) and best["n_timesteps"] == 120
    assert (out / "history.png").stat().st_size > 0 and (out / "trials.csv").read_text().count("\n") == 5
    assert "optuna-dashboard sqlite:///" in (out / "report.md").read_text()

    # resume after the worker stopped: the same study, numbering goes on, up to 6 finished trials in all
    again = run_worker(spec, "rad", ENV, study_name="s", max_total_trials=4, out=out, seed=1)
    numbers = [t.number for t in again.trials]
    assert numbers == list(range(len(numbers)))
    assert sum(s in ("COMPLETE", "PRUNED") for s in states(again)) == 4


def test_pruning_stops_bad_trials_early(tmp_path) -> None:
    spec = StudySpec.load(spec_file(tmp_path, pruner={"name": "median", "n_startup_trials": 1}))
    study = optuna.create_study(direction="maximize")
    tuner_out = tmp_path / "run"
    study = run_worker(spec, "rad", ENV, study_name="p", n_trials=5, out=tuner_out, seed=3)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all(t.user_attrs["env_steps"] == 120 for t in complete)
    assert all(t.user_attrs["env_steps"] < 120 for t in pruned)


def test_a_dead_workers_trial_in_the_last_slot_is_failed_and_rerun(tmp_path) -> None:
    # the study needs 2 finished trials; one is done, the last slot is held by a worker that died
    spec = StudySpec.load(spec_file(tmp_path))
    out = tmp_path / "run"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="d", storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    with pytest.warns(UserWarning, match="Heartbeat"):  # optuna: ask() outside optimize()
        dead = study.ask()
    storage.record_heartbeat(dead._trial_id)  # its last heartbeat; the worker is gone
    study = run_worker(
        spec,
        "rad",
        ENV,
        storage=url,
        study_name="d",
        max_total_trials=2,
        out=out,
        seed=0,
        heartbeat_interval=1,
        grace_period=2,
    )
    # this worker waited for the grace period, failed the dead trial, and ran the missing one
    assert states(study)[:2] == ["COMPLETE", "FAIL"] and states(study)[2] in ("COMPLETE", "PRUNED")


def worker(url: str, out: Path, spec: Path, max_total: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sb3_latent.zoo.cli",
            "tune",
            "--algo",
            "rad",
            "--env",
            ENV,
            "--spec",
            str(spec),
            "--storage",
            url,
            "--study-name",
            "shared",
            "--max-total-trials",
            str(max_total),
            "--out",
            str(out),
            "--num-threads",
            "1",
            "--heartbeat",
            "1",
            "--grace-period",
            "3",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )


def ran(output: str) -> list[int]:
    return [int(x) for x in re.search(r"ran trials \[([\d, ]*)\]", output).group(1).split(",") if x.strip()]


def test_workers_share_a_postgresql_study_survive_a_killed_worker_and_resume(tmp_path, postgres_url) -> None:
    spec = spec_file(tmp_path, budget={"n_timesteps": 150, "n_evaluations": 3, "n_eval_episodes": 1})
    url = postgres_url
    name = f"shared-{os.getpid()}"
    spec.write_text(spec.read_text())
    a = worker(url, tmp_path / "a", spec, 6, "--seed", "1", "--study-name", name)
    b = worker(url, tmp_path / "b", spec, 6, "--seed", "2", "--study-name", name)

    def running_of(proc: subprocess.Popen) -> list[optuna.trial.FrozenTrial]:
        try:
            study = optuna.load_study(study_name=name, storage=url)
        except KeyError:
            return []
        return [
            t
            for t in study.get_trials(states=[TrialState.RUNNING])
            if t.user_attrs.get("worker", "").endswith(f":{proc.pid}")
        ]

    # kill worker a in the middle of a trial (after it finished one)
    def a_mid_second_trial() -> bool:
        study_trials = running_of(a)
        return bool(study_trials) and study_trials[0].number >= 1 and a.poll() is None

    assert wait_for(a_mid_second_trial, timeout=300), "worker a never started a second trial"
    killed = running_of(a)[0].number
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    out_b, _ = b.communicate(timeout=600)
    assert b.returncode == 0, out_b

    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))  # no duplicates, no gaps
    assert study.trials[killed].state == TrialState.FAIL  # failed by b once its heartbeat stopped
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 6 <= len(finished) <= 7  # the study completed (two workers may both take the last slot)
    workers = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials}
    assert workers == {str(a.pid), str(b.pid)}  # trials of both workers are there
    assert set(ran(out_b)) == {t.number for t in trials if t.user_attrs["worker"].endswith(f":{b.pid}")}

    # every worker stopped; a new one resumes the study and takes it to 8
    c = worker(url, tmp_path / "c", spec, 8, "--seed", "3", "--study-name", name)
    out_c, _ = c.communicate(timeout=600)
    assert c.returncode == 0, out_c
    study = optuna.load_study(study_name=name, storage=url)
    assert [t.number for t in study.trials] == list(range(len(study.trials)))
    assert 8 <= sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) <= 9
    assert min(ran(out_c)) >= len(trials)
    assert (tmp_path / "c" / "best.yml").is_file()


def test_tune_command_usage_errors(tmp_path, capsys) -> None:
    from sb3_latent.zoo.cli import main

    spec = spec_file(tmp_path)
    for extra, message in [
        ([], "give --n-trials (per worker) or --max-total-trials"),
        (["--n-trials", "1", "--storage", "not-a-url"], "is neither a database URL"),
        (["--n-trials", "1", "--spec", str(tmp_path / "none.yml")], "none.yml' does not exist"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["tune", "--algo", "rad", "--env", ENV, "--spec", str(spec), "--out", str(tmp_path / "run"), *extra])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_journal_file_storage(tmp_path) -> None:
    spec = StudySpec.load(spec_file(tmp_path, budget={"n_timesteps": 60, "n_evaluations": 1, "n_eval_episodes": 1}))
    study = run_worker(
        spec, "rad", ENV, storage=str(tmp_path / "study.log"), study_name="j", n_trials=1, out=tmp_path / "run"
    )
    assert (tmp_path / "study.log").stat().st_size > 0 and states(study) == ["COMPLETE"]


def test_a_worker_whose_trials_all_fail_exits_1_with_the_reasons(tmp_path, capsys) -> None:
    from sb3_latent.zoo.cli import main

    spec = spec_file(tmp_path, fixed={**SPEC["fixed"], "gamma": -5.0, "ent_coef": "nonsense"})
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "tune",
                "--algo",
                "rad",
                "--env",
                ENV,
                "--spec",
                str(spec),
                "--n-trials",
                "2",
                "--out",
                str(tmp_path / "run"),
                "--seed",
                "0",
            ]
        )
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "all 2 trial(s) of this worker failed (trial(s) 0, 1: ValueError:" in err
    assert "failed: trial 0: ValueError" in (tmp_path / "run" / "report.md").read_text()
    assert "fail_reason" in (tmp_path / "run" / "trials.csv").read_text()


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/optuna",
            r"--storage postgresql://postgres@127.0.0.1:1/optuna: cannot connect "
            r"\(.*\); check that the database server is running",
        ),
        ("postgresql://user:secret@127.0.0.1:1/optuna", r"--storage postgresql://user:\*\*\*@127.0.0.1:1/optuna"),
        ("postgress://u@h/db", r"unknown database scheme 'postgress'; use postgresql://"),
        ("mysql://u@127.0.0.1/db", r"the driver 'mysqldb' for 'mysql' is not installed"),
        (
            "sqlite:////no/such/folder/study.db",
            r"the folder '/no/such/folder' of the SQLite file does not exist; create "
            r"it",
        ),
        ("not a url", r"is neither a database URL"),
    ],
)
def test_storage_errors_are_one_line_naming_the_url_and_the_fix(tmp_path, capsys, storage, message) -> None:
    from sb3_latent.zoo.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "tune",
                "--algo",
                "rad",
                "--env",
                ENV,
                "--spec",
                str(spec_file(tmp_path)),
                "--n-trials",
                "1",
                "--out",
                str(tmp_path / "run"),
                "--storage",
                storage,
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
    assert "secret" not in err


def test_a_log_scale_from_zero_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'learning_rate': 'log: true' needs low > 0"):
        StudySpec(
            path="s.yml", search_space={"learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}}
        ).check()
