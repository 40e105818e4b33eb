"""The README's launcher and tuning commands, run as written (one shell each) from a folder outside the
checkout, with tiny budgets appended (later options win in argparse), and what the README says appears.

Every command line of those sections must have a row in ``TINY`` below: a command added to the README without
a test fails here."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.dmc

README = Path(__file__).resolve().parent.parent / "README.md"
ENV_NAME = "sb3_latent-pendulum-swingup-pixels-v0"
_ENV = "--env-kwargs size:32 max_episode_steps:3"
_RAD = "--hyperparams buffer_size:200 batch_size:4 learning_starts:3 augment_kwargs.size:40"
_RAD_TRAIN = f"{_RAD} policy_kwargs.net_arch:[8] extractor_kwargs.features_dim:8 {_ENV}"
_ZOO = f"{_ENV} --hyperparams buffer_size:200 batch_size:4 learning_starts:3 'augment_kwargs:dict(size=40)'"
#: README line (comments stripped) -> what is appended to it
TINY = {
    "sb3-latent train --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 -c rad_flare -P --seed 0": (
        f"-n 6 --eval-freq 3 --eval-episodes 1 --save-replay-buffer {_RAD_TRAIN}"
    ),
    "sb3-latent enjoy --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 -n 10 --video pendulum.gif": "",
    "sb3-latent plot logs/rad -o curves.png": "",
    "sb3-latent train --resume logs/rad/sb3_latent-pendulum-swingup-pixels-v0_1 -n 400000": "-n 9",
    "sb3-latent list": "",
    "python -m sb3_latent.zoo_train --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 -conf rad_flare -f logs": (
        f"-n 6 --eval-freq 6 --eval-episodes 1 {_ZOO}"
    ),
    "python -m sb3_latent.zoo_train --algo rad --env sb3_latent/cartpole-swingup-pixels-v0 -conf rad_flare -optimize "
    "--n-trials 20": f"--n-trials 1 -n 6 --n-evaluations 1 --eval-episodes 1 --no-optim-plots {_ZOO}",
    "python -m sb3_latent.zoo_enjoy --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 -f logs -n 1000 "
    "--no-render": "-n 5",
    "sb3-latent tune --algo rad --env sb3_latent/walker-run-pixels-v0 --n-trials 50": (
        f"--n-trials 2 -n 6 {_RAD} {_ENV}"
    ),
    "sb3-latent tune --algo rad --env sb3_latent/walker-run-pixels-v0 --storage postgresql://user@db-host:5432/optuna "
    "--study-name rad-walker --max-total-trials 200 --seed $RANDOM": f"--max-total-trials 3 -n 6 {_RAD} {_ENV}",
}


def readme_commands(*sections: str) -> list[str]:
    """The command lines of the ```bash blocks in these README sections (continuations joined, comments cut)."""
    text = README.read_text()
    out = []
    for title in sections:
        body = text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]
        for block in re.findall(r"```bash\n(.*?)```", body, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith("#"):
                    out.append(re.sub(r"\s+", " ", line))
    return out


def run(command: str, cwd: Path, extra: str = "", check: bool = True) -> subprocess.CompletedProcess:
    """One README command in bash, as a user types it, with the test's venv first on PATH."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "MUJOCO_GL": "egl",
        "HOME": str(cwd),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        ["bash", "-c", f"{command} {TINY[command]} {extra}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def scalars(tb_run: Path) -> dict[str, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_run))
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_every_readme_command_has_a_tiny_budget_here() -> None:
    commands = readme_commands("Launching runs", "Tuning")
    assert commands and set(commands) == set(TINY), set(commands) ^ set(TINY)


def test_the_launcher_section_as_a_user_runs_it(tmp_path) -> None:
    launcher = [c for c in readme_commands("Launching runs") if c.startswith("sb3-latent")]
    train, enjoy, plot, resume, list_ = launcher
    run(train, tmp_path)
    folder = tmp_path / "logs" / "rad" / f"{ENV_NAME}_1"
    for name in (
        f"{ENV_NAME}.zip",
        "best_model.zip",
        "evaluations.npz",
        "replay_buffer.pkl",
        f"{ENV_NAME}/config.yml",
        f"{ENV_NAME}/zoo_config.yml",
        f"{ENV_NAME}/args.yml",
        f"{ENV_NAME}/command.txt",
    ):
        assert (folder / name).is_file(), name
    assert np.load(folder / "evaluations.npz")["timesteps"].tolist() == [3, 6]
    args = yaml.safe_load(
        (folder / ENV_NAME / "args.yml").read_text().replace("!!python/object/apply:collections.OrderedDict", "")
    )
    assert args is not None
    assert (tb := list((folder / "tb").iterdir())) and [p.name for p in tb] == ["RAD_1"]
    assert {"eval/mean_reward", "train/critic_loss", "train/actor_loss"} <= set(scalars(tb[0]))

    out = run(enjoy, tmp_path).stdout
    assert "10 episodes, return" in out and (tmp_path / "pendulum.gif").stat().st_size > 0
    run(plot, tmp_path)
    assert (tmp_path / "curves.png").stat().st_size > 0

    out = run(resume, tmp_path).stdout
    assert "Resuming at step 6: 3 steps to go" in out and "Loading the replay buffer" in out
    from sb3_latent import RAD

    assert RAD.load(folder / f"{ENV_NAME}.zip").num_timesteps == 9
    assert np.load(folder / "evaluations.npz")["timesteps"].tolist() == [3, 6, 9]  # appended, not replaced
    assert [p.name for p in (folder / "tb").iterdir()] == ["RAD_1"]  # the same TensorBoard run, continued
    assert max(e.step for e in scalars(folder / "tb" / "RAD_1")["eval/mean_reward"]) == 9
    assert not (tmp_path / "logs" / "rad" / f"{ENV_NAME}_2").exists()

    out = run(list_, tmp_path).stdout
    assert "sb3_latent.algos:RAD" in out and "stock algorithms" in out


def test_the_rl_zoo3_scripts_as_a_user_runs_them(tmp_path) -> None:
    train, optimize, enjoy = [c for c in readme_commands("Launching runs") if c.startswith("python")]
    run(train, tmp_path)
    folder = tmp_path / "logs" / "rad" / f"{ENV_NAME}_1"
    assert (folder / f"{ENV_NAME}.zip").is_file()
    assert np.load(folder / "evaluations.npz")["timesteps"].tolist() == [6]  # evaluated on the entry's env
    run(optimize, tmp_path)
    (report,) = (tmp_path / "logs" / "rad").glob("report_sb3_latent-cartpole-swingup-pixels-v0_*.csv")
    assert report.read_text().count(",COMPLETE") == 1  # one trial, sampled from the shipped study spec
    out = run(enjoy, tmp_path).stdout + run(enjoy, tmp_path, check=False).stderr
    assert "Loading" in out and "Error" not in out


def test_the_tuning_section_as_users_run_it_two_workers_on_postgresql(tmp_path, postgres_url) -> None:
    one, many = readme_commands("Tuning")
    out = run(one, tmp_path).stdout
    assert "best:" in out
    assert (tmp_path / "logs" / "tune" / "rad-sb3_latent-walker-run-pixels-v0" / "best.yml").is_file()

    url = re.sub(r"^postgresql\+\w+://", "postgresql://", postgres_url)  # the README's URL form
    command = many.replace("postgresql://user@db-host:5432/optuna", url)
    TINY[command] = TINY[many]
    workers = [
        subprocess.Popen(
            ["bash", "-c", f"{command} {TINY[command]}"],
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={
                "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                "MUJOCO_GL": "egl",
                "HOME": str(tmp_path),
                "OMP_NUM_THREADS": "1",
            },
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    import optuna

    study = optuna.load_study(study_name="rad-walker", storage=url)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and len({t.user_attrs["worker"] for t in study.trials}) >= 1
