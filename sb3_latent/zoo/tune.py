"""Optuna tuning from one machine to many: study specs, workers sharing one study, reports.

A study spec (shipped: ``tuning/<algo>.yml``) says what to tune and how::

    algo: rad
    config: rad_flare                    # base entries (a file or a shipped zoo config); optional
    fixed: {buffer_size: 50000}          # set in every trial
    budget: {n_timesteps: 100000, n_evaluations: 10, n_eval_episodes: 5}
    sampler: {name: tpe, n_startup_trials: 10}
    pruner: {name: median, n_startup_trials: 5, n_warmup_steps: 2}
    search_space:
      learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
      batch_size: {type: categorical, choices: [64, 128, 256]}
      policy_kwargs.net_arch: {type: categorical, choices: {small: [256, 256], large: [1024, 1024]}}

Search-space keys are zoo-entry keys (dots reach into mappings); every trial's entry is checked like
a zoo file. Workers anywhere run :func:`run_worker` (``sb3-latent tune``) with the same storage and
study name: each claims trials through the database, so no trial runs twice. Trials report their
evaluations to the pruner; a trial that raises or ends with a non-finite return or parameters is
recorded as failed and the worker goes on; a trial whose worker died is failed by the next worker
once its heartbeat is older than the grace period (RDB storages: SQLite, PostgreSQL, MySQL).
"""

from __future__ import annotations

import copy
import csv
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from sb3_latent.common.checks import check_int
from sb3_latent.zoo.config import find_file, load_zoo_config, read_yaml_mapping, with_values
from sb3_latent.zoo.entry import ZooEntry, check_entry


class TuningFailed(RuntimeError):
    """Every trial this worker ran failed (the message says why, grouped by reason)."""


SPEC_KEYS = {"algo", "config", "fixed", "budget", "sampler", "pruner", "search_space", "direction"}
BUDGET_KEYS = {"n_timesteps", "n_evaluations", "n_eval_episodes"}
PARAM_TYPES = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}
#: states that count towards ``max_total_trials`` (failed trials do not)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class StudySpec:
    """A tuning study spec (module docstring).

    :param path: where it was read from (for messages)
    :param algo: algorithm name, or None (any)
    :param config: zoo file with the base entries, or None
    :param fixed: entries set in every trial
    :param budget: ``n_timesteps``, ``n_evaluations`` (intermediate evaluations, the pruner's steps),
        ``n_eval_episodes``
    :param sampler: ``{name: tpe | random, ...}`` and the sampler's arguments
    :param pruner: ``{name: median | halving | none, ...}`` and the pruner's arguments
    :param search_space: ``{key: {type: float | int | categorical, ...}}``
    :param direction: ``maximize`` (mean evaluation return)
    """

    path: str
    algo: str | None = None
    config: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, int] = field(default_factory=dict)
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    search_space: dict[str, dict[str, Any]] = field(default_factory=dict)
    direction: str = "maximize"

    @classmethod
    def load(cls, path: str | Path) -> StudySpec:
        """Read and check a spec file.

        :raises ValueError: a missing file, unknown keys, a malformed parameter
        """
        path = Path(path)
        data = read_yaml_mapping(path, "study spec")
        unknown = sorted(set(data) - SPEC_KEYS)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; expected {sorted(SPEC_KEYS)}")
        spec = cls(path=str(path), **{k: v for k, v in data.items() if v is not None})
        spec.check()
        return spec

    def check(self) -> None:
        """Raise a ``ValueError`` naming the spec file for anything malformed."""
        src = self.path
        for key in ("fixed", "budget", "sampler", "pruner", "search_space"):
            if not isinstance(getattr(self, key), dict):
                raise ValueError(f"{src}: {key!r} must be a mapping")
        bad = sorted(set(self.budget) - BUDGET_KEYS)
        if bad:
            raise ValueError(
                f"{src}: unknown budget key(s) {', '.join(map(repr, bad))}; expected {sorted(BUDGET_KEYS)}"
            )
        for key, value in self.budget.items():
            check_int(f"{src}: budget {key!r}", value, 1)
        if self.sampler.get("name", "tpe") not in ("tpe", "random"):
            raise ValueError(f"{src}: sampler name must be 'tpe' or 'random', got {self.sampler.get('name')!r}")
        if self.pruner.get("name", "median") not in ("median", "halving", "none"):
            raise ValueError(
                f"{src}: pruner name must be 'median', 'halving' or 'none', got {self.pruner.get('name')!r}"
            )
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"{src}: direction must be 'maximize' or 'minimize', got {self.direction!r}")
        if not self.search_space:
            raise ValueError(f"{src}: 'search_space' is empty")
        for name, p in self.search_space.items():
            _check_param(src, name, p)

    # --- sampling --------------------------------------------------------------------------

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample one value per search-space key (keys as written, dots included)."""
        out: dict[str, Any] = {}
        for name, p in self.search_space.items():
            if p["type"] == "categorical":
                choices = p["choices"]
                if isinstance(choices, dict):
                    label = trial.suggest_categorical(name, list(choices))
                    out[name] = copy.deepcopy(choices[label])
                else:
                    out[name] = trial.suggest_categorical(name, choices)
            elif p["type"] == "float":
                out[name] = trial.suggest_float(
                    name, float(p["low"]), float(p["high"]), log=bool(p.get("log")), step=p.get("step")
                )
            else:
                out[name] = trial.suggest_int(
                    name, int(p["low"]), int(p["high"]), log=bool(p.get("log")), step=int(p.get("step", 1))
                )
        return out

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        """Optuna's stored params (labels for labelled choices) → entry values."""
        out = {}
        for name, value in params.items():
            choices = self.search_space.get(name, {}).get("choices")
            out[name] = copy.deepcopy(choices[value]) if isinstance(choices, dict) and value in choices else value
        return out

    def first_values(self) -> dict[str, Any]:
        """One value per key (the first choice, the low end), to check the spec before any work."""
        out = {}
        for name, p in self.search_space.items():
            if p["type"] == "categorical":
                c = p["choices"]
                out[name] = copy.deepcopy(next(iter(c.values()))) if isinstance(c, dict) else c[0]
            else:
                out[name] = p["low"]
        return out

    def make_sampler(self, seed: int | None = None) -> optuna.samplers.BaseSampler:
        """The spec's sampler; ``seed`` (if given) replaces the spec's."""
        kw = {k: v for k, v in self.sampler.items() if k != "name"}
        if seed is not None:
            kw["seed"] = seed
        if self.sampler.get("name", "tpe") == "random":
            return optuna.samplers.RandomSampler(**kw)
        kw.setdefault("multivariate", True)
        kw.setdefault("constant_liar", True)  # workers in parallel spread out instead of piling up
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(**kw)

    def make_pruner(self, enabled: bool = True) -> optuna.pruners.BasePruner:
        """The spec's pruner (a no-op pruner when ``enabled`` is False)."""
        name = self.pruner.get("name", "median") if enabled else "none"
        kw = {k: v for k, v in self.pruner.items() if k != "name"}
        if name == "median":
            return optuna.pruners.MedianPruner(**kw)
        if name == "halving":
            return optuna.pruners.SuccessiveHalvingPruner(**kw)
        return optuna.pruners.NopPruner()


def _check_param(src: str, name: str, p: Any) -> None:
    """One search-space entry: a known type, its fields, valid choices or bounds."""
    if not isinstance(p, dict) or p.get("type") not in PARAM_TYPES:
        raise ValueError(f"{src}: search_space {name!r} needs 'type' in {sorted(PARAM_TYPES)}, got {p!r}")
    extra = sorted(set(p) - {"type"} - PARAM_TYPES[p["type"]])
    if extra:
        raise ValueError(f"{src}: search_space {name!r}: unknown field(s) {', '.join(map(repr, extra))}")
    if p["type"] == "categorical":
        choices = p.get("choices")
        if not isinstance(choices, list | dict) or not choices:
            raise ValueError(
                f"{src}: search_space {name!r}: 'choices' must be a non-empty list, or a mapping of labels to values"
            )
        if isinstance(choices, list) and not all(c is None or isinstance(c, bool | int | float | str) for c in choices):
            raise ValueError(
                f"{src}: search_space {name!r}: list choices must be numbers, strings or "
                "booleans; label other values with a mapping {label: value}"
            )
    elif not all(isinstance(p.get(k), int | float) for k in ("low", "high")) or p["low"] > p["high"]:
        raise ValueError(f"{src}: search_space {name!r}: needs numbers low <= high, got {p!r}")
    elif p.get("log") and p["low"] <= 0:
        raise ValueError(
            f"{src}: search_space {name!r}: 'log: true' needs low > 0 (a log scale has no 0), got low={p['low']!r}"
        )


def make_storage(
    storage: str | None, out: Path, heartbeat_interval: int = 30, grace_period: int | None = None
) -> optuna.storages.BaseStorage:
    """An Optuna storage: None → ``sqlite:///<out>/study.db`` (needs nothing); an RDB URL
    (``postgresql://user@host:port/db``, ``mysql://...``, ``sqlite:///path``) with heartbeats so the
    trials of dead workers get failed; a ``*.log`` / ``*.journal`` path → Optuna's journal file.

    :param storage: URL, journal path, or None
    :param out: run folder (for the default)
    :param heartbeat_interval: seconds between a running trial's heartbeats
    :param grace_period: seconds without heartbeat after which a running trial is failed
        (default: 2 heartbeats)
    """
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(out / 'study.db').resolve()}"
    if storage.endswith((".log", ".journal")) and "://" not in storage:
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    if "://" not in storage:
        raise ValueError(
            f"--storage {storage!r} is neither a database URL (postgresql://..., sqlite:///...) nor a "
            "journal file (*.log)"
        )
    url = _check_url(storage)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 60}
    import sqlalchemy.exc

    shown = url.render_as_string(hide_password=True)
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    storage,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period or 2 * heartbeat_interval,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # workers started together on a new database race to create Optuna's tables: the loser retries
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
        except sqlalchemy.exc.OperationalError as e:
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise ValueError(
                f"--storage {shown}: cannot connect ({reason}); check that the database server is "
                "running and reachable at that host and port, and that the user and database exist"
            ) from None
    raise AssertionError("unreachable")


def _check_url(storage: str) -> Any:
    """The parsed database URL; a one-line ``ValueError`` naming the URL and the fix for a malformed URL, an
    unknown scheme, a missing driver or a SQLite file in a folder that does not exist."""
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        url = sqlalchemy.engine.make_url(storage)
        shown = url.render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        raise ValueError(
            f"--storage {storage!r} is not a database URL; expected e.g. "
            "postgresql://user@host:5432/db or sqlite:///path/study.db"
        ) from None
    try:
        dialect = url.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise ValueError(
            f"--storage {shown}: unknown database scheme {url.drivername!r}; use postgresql://, mysql:// or sqlite:///"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        raise ValueError(
            f"--storage {shown}: the driver {dialect.driver!r} for {url.drivername!r} is not installed "
            f"({e}); install it (pip install {dialect.driver}) or use postgresql:// (psycopg, "
            "installed with sb3-latent)"
        ) from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(url.database).parent
        if not folder.is_dir():
            raise ValueError(
                f"--storage {shown}: the folder {str(folder)!r} of the SQLite file does not exist; "
                f"create it (mkdir -p {folder}) or point the URL elsewhere"
            )
    return url


def _finite_model(model: Any) -> bool:
    return all(bool(p.detach().isfinite().all()) for p in model.policy.parameters())


@dataclass
class Tuner:
    """One worker's view of a study: builds, trains and evaluates trials.

    :param spec: the study spec
    :param algo: algorithm name
    :param env_id: gymnasium id
    :param base: the base entry (zoo entry with the spec's ``fixed`` applied)
    :param source: where the base came from (messages)
    :param out: run folder (trial logs go to ``<out>/trials/<number>``)
    :param device: torch device (``"auto"``: a GPU where the worker has one)
    :param verbose: verbosity of trials
    """

    spec: StudySpec
    algo: str
    env_id: str
    base: dict[str, Any]
    source: str
    out: Path
    device: str = "auto"
    verbose: int = 0

    def entry(self, values: dict[str, Any]) -> ZooEntry:
        """The checked entry of a trial with these values."""
        from sb3_latent.zoo.manager import resolve_algo

        raw = with_values(self.base, values)
        raw["n_timesteps"] = self.budget("n_timesteps")
        return check_entry(resolve_algo(self.algo), self.env_id, raw, f"{self.spec.path} + {self.source}")

    def budget(self, key: str) -> int:
        defaults = {"n_timesteps": int(self.base.get("n_timesteps", 0)), "n_evaluations": 10, "n_eval_episodes": 5}
        return int(self.spec.budget.get(key, defaults[key]))

    def objective(self, trial: optuna.Trial) -> float:
        """Train one trial, reporting evaluations to the pruner; its mean evaluation return. A trial that
        raises is recorded as failed, with the reason (``fail_reason``) for the report."""
        try:
            return self._objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as e:
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
            raise

    def _objective(self, trial: optuna.Trial) -> float:
        from rl_zoo3.callbacks import TrialEvalCallback

        from sb3_latent.zoo.manager import make_experiment

        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        entry = self.entry(self.spec.suggest(trial))
        n_timesteps = entry.n_timesteps
        manager = make_experiment(
            entry,
            self.algo,
            log_folder=str(self.out / "trials"),
            eval_freq=-1,
            seed=trial.number,
            device=self.device,
            verbose=self.verbose,
            n_timesteps=n_timesteps,
        )
        manager.save_path = str(self.out / "trials" / f"trial_{trial.number}")
        manager.params_path = manager.save_path
        result = manager.setup_experiment()
        assert result is not None
        model = result[0]
        eval_env = manager.create_envs(1, eval_env=True)
        n_evals = self.budget("n_evaluations")
        callback = TrialEvalCallback(
            eval_env,
            trial,
            n_eval_episodes=self.budget("n_eval_episodes"),
            eval_freq=max(n_timesteps // n_evals // manager.n_envs, 1),
            deterministic=True,
        )
        try:
            model.learn(n_timesteps, callback=[*manager.callbacks, callback])
        finally:
            trial.set_user_attr("env_steps", int(model.num_timesteps))
            model.env.close()
            eval_env.close()
        if callback.is_pruned:
            raise optuna.TrialPruned(f"pruned at evaluation {callback.eval_idx}")
        value = float(callback.last_mean_reward)
        if not math.isfinite(value) or not _finite_model(model):
            raise FloatingPointError(f"trial {trial.number}: non-finite evaluation return ({value}) or parameters")
        model.save(os.path.join(manager.save_path, "model"))
        return value


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state name."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def run_worker(
    spec: StudySpec,
    algo: str,
    env_id: str,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    n_trials: int | None = None,
    max_total_trials: int | None = None,
    out: str | Path = "logs/tune",
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    pruning: bool = True,
    seed: int | None = None,
    device: str = "auto",
    heartbeat_interval: int = 30,
    grace_period: int | None = None,
    verbose: int = 0,
) -> optuna.Study:
    """Run trials of one study until this worker ran ``n_trials`` or the study holds
    ``max_total_trials`` finished (complete or pruned) trials; then write the report.

    :param spec: the study spec
    :param algo: algorithm name (ours, a plugin's, or rl_zoo3's stock names)
    :param env_id: gymnasium id
    :param storage: Optuna storage (see :func:`make_storage`); None: SQLite in ``out``
    :param study_name: shared by all workers of the study (default ``<algo>-<env>``)
    :param n_trials: trials for this worker (None: until ``max_total_trials``)
    :param max_total_trials: finished trials for the whole study
    :param out: run folder: default storage, trial logs, report
    :param config: zoo file with the base entries (default: the spec's ``config``)
    :param overrides: entries replacing the base's
    :param pruning: False runs every trial to the end (a no-op pruner)
    :param seed: sampler seed (give each worker its own, or None)
    :param device: torch device for the trials
    :param heartbeat_interval: seconds between heartbeats of a running trial (RDB storages)
    :param grace_period: seconds without heartbeat before a running trial counts as dead
    :param verbose: verbosity of trials
    :raises ValueError: before any trial, when the spec and the base entry do not fit together
    """
    if n_trials is None and max_total_trials is None:
        raise ValueError("give --n-trials (per worker) or --max-total-trials (whole study), or both")
    if spec.algo is not None and spec.algo != algo:
        raise ValueError(f"{spec.path} is a spec for {spec.algo!r}, not {algo!r}")
    out = Path(out)
    base: dict[str, Any] = {}
    source = "<no zoo config>"
    if config is not None or spec.config is not None:
        path = Path(config) if config is not None else _spec_config(spec)
        base, source = load_zoo_config(path, env_id), str(path)
    base = with_values(base, {**spec.fixed, **(overrides or {})})
    tuner = Tuner(spec, algo, env_id, base, source, out, device=device, verbose=verbose)
    if tuner.budget("n_timesteps") <= 0:
        raise ValueError(f"{spec.path}: no budget 'n_timesteps' (and {source} has none for {env_id!r})")
    tuner.entry(spec.first_values())  # unknown keys / names / types: an error now, not in every trial
    optuna.logging.set_verbosity(optuna.logging.WARNING if verbose == 0 else optuna.logging.INFO)
    db = make_storage(storage, out, heartbeat_interval, grace_period)
    heartbeat = getattr(db, "get_heartbeat_interval", lambda: None)() is not None
    study = optuna.create_study(
        storage=db,
        study_name=study_name or f"{algo}-{env_id.replace('/', '-')}",
        sampler=spec.make_sampler(seed),
        pruner=spec.make_pruner(pruning),
        direction="maximize" if spec.direction == "maximize" else "minimize",
        load_if_exists=True,
    )
    if "spec" not in study.user_attrs:
        study.set_user_attr("spec", yaml.safe_dump({k: v for k, v in vars(spec).items() if k != "path"}))
        study.set_user_attr("algo", algo)
        study.set_user_attr("env_id", env_id)
    ran = 0
    numbers: list[int] = []
    while n_trials is None or ran < n_trials:
        if max_total_trials is not None and not _claim_slot(
            study, max_total_trials, heartbeat_interval if heartbeat else None
        ):
            break
        study.optimize(
            tuner.objective,
            n_trials=1,
            catch=(Exception,),
            gc_after_trial=True,
            callbacks=[lambda _, t: numbers.append(t.number)],
        )
        ran += 1
    study.set_user_attr(f"worker {socket.gethostname()}:{os.getpid()}", numbers)
    print(f"this worker ({socket.gethostname()}:{os.getpid()}) ran trials {numbers}")
    write_report(study, spec, tuner, out, storage)
    mine = [t for t in study.get_trials(deepcopy=False) if t.number in numbers]
    if mine and all(t.state == TrialState.FAIL for t in mine):
        reasons: dict[str, list[int]] = {}
        for t in mine:
            reasons.setdefault(str(t.user_attrs.get("fail_reason", "unknown")), []).append(t.number)
        why = "; ".join(f"trial(s) {', '.join(map(str, n))}: {r}" for r, n in reasons.items())
        raise TuningFailed(
            f"all {len(mine)} trial(s) of this worker failed ({why}); each trial's log is in {out / 'trials'}"
        )
    return study


def _spec_config(spec: StudySpec) -> Path:
    """The spec's base zoo file: a path (as given, or next to the spec) or a shipped zoo config name."""
    assert spec.config is not None
    beside = Path(spec.path).parent / spec.config
    return (
        beside if beside.is_file() and not Path(spec.config).is_file() else find_file(spec.config, "zoo config", "")[0]
    )


def _claim_slot(study: optuna.Study, max_total_trials: int, poll: float | None) -> bool:
    """Whether a new trial fits under ``max_total_trials`` (finished + running). While the
    finished trials are short of it but running ones fill it, wait: a running trial may belong to a
    dead worker, and is failed here once its heartbeat is older than the grace period, freeing its
    slot (``poll``: seconds between checks, None for a storage without heartbeats, where a dead
    worker's trial keeps its slot)."""
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # trials of dead workers (past the grace period)
        c = counts(study)
        finished = sum(c.get(s.name, 0) for s in COUNTED)
        if finished + c.get("RUNNING", 0) < max_total_trials:
            return True
        if finished >= max_total_trials or poll is None:
            return False
        time.sleep(poll)


def best_snippet(study: optuna.Study, spec: StudySpec, tuner: Tuner) -> str:
    """The best trial as a zoo YAML entry keyed by env id, ready for ``-c``."""
    best = study.best_trial
    entry = with_values(tuner.base, spec.values(best.params))
    entry["n_timesteps"] = int(entry.get("n_timesteps") or tuner.budget("n_timesteps"))
    head = (
        f"# best of study {study.study_name!r}: trial {best.number}, mean eval return {best.value:.4g}\n"
        f"# tuned: {', '.join(sorted(best.params))} (spec {spec.path}); the rest from {tuner.source}\n"
    )
    return head + yaml.safe_dump({tuner.env_id: entry}, sort_keys=True, default_flow_style=None)


def write_report(study: optuna.Study, spec: StudySpec, tuner: Tuner, out: Path, storage: str | None) -> dict[str, Any]:
    """Write ``trials.csv``, ``best.yml``, ``history.png``, ``importance.png`` and ``report.md`` into
    ``out``; return a summary (best value and params, trials per state)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    with open(out / "trials.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "state", "value", "env_steps", "worker", "fail_reason", *names])
        for t in trials:
            w.writerow(
                [
                    t.number,
                    t.state.name,
                    t.value,
                    t.user_attrs.get("env_steps"),
                    t.user_attrs.get("worker"),
                    t.user_attrs.get("fail_reason"),
                    *[t.params.get(n) for n in names],
                ]
            )
    summary: dict[str, Any] = {"study": study.study_name, "counts": counts(study), "plots": {}}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        (out / "best.yml").write_text(best_snippet(study, spec, tuner))
        summary.update(best_value=study.best_value, best_params=study.best_params, best_trial=study.best_trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from optuna.visualization import matplotlib as ovm

        plots = {
            "history.png": lambda: ovm.plot_optimization_history(study),
            "importance.png": lambda: ovm.plot_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
            ),
        }
        for name, make in plots.items():
            try:
                ax = make()
                fig: Any = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
                fig.tight_layout()
                fig.savefig(out / name, dpi=100)
                plt.close(fig)
                summary["plots"][name] = "written"
            except Exception as e:
                summary["plots"][name] = f"not written: {type(e).__name__}: {e}"
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    lines = [
        f"# study {study.study_name}",
        "",
        f"- algorithm: {tuner.algo}, env: {tuner.env_id}, spec: {spec.path}",
        f"- trials: {', '.join(f'{k.lower()} {v}' for k, v in sorted(summary['counts'].items()))}",
    ]
    if complete:
        lines.append(
            f"- best: trial {summary['best_trial']}, value {summary['best_value']:.4g}, "
            f"params {summary['best_params']} (zoo entry: `best.yml`)"
        )
    lines += [
        f"- failed: trial {t.number}: {t.user_attrs['fail_reason']}"
        for t in trials
        if t.state == TrialState.FAIL and "fail_reason" in t.user_attrs
    ]
    lines += [f"- {k}: {v}" for k, v in summary["plots"].items()]
    lines += ["", f"Live view: `optuna-dashboard {url}`", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return summary


def wait_for(predicate: Any, timeout: float, every: float = 0.2) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds passed (used by tests and benchmarks)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())
