"""Benchmarks are named ``<subject>_<question>``, write one results schema, have their results committed, and
each one's --quick mode runs end to end and writes its result files (so none rots)."""

import ast
import json
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RESULTS = BENCHMARKS / "results"
#: what a benchmark's name says after its subject (``rad_speed``: how fast is RAD's update?)
QUESTIONS = {
    "speed": "updates, steps, samples or trials per second",
    "memory": "bytes per transition or env step (and sampling rate)",
    "savings": "compute and memory saved (LeVER's freeze)",
    "dmc": "learning from pixels on DeepMind Control, next to a paper where there is one",
    "state": "learning from state (the Flare paper's state experiment)",
    "learning": "learning on a small task (does a method hurt or help?)",
    "atari": "learning from pixels on Atari, next to a paper",
}
#: benchmarks whose full run has not been made yet (no committed results), and why; their --quick test runs on CPU
NOT_RUN = {
    "flare_dmc": "needs a GPU: Flare Table 1's 500k/1M env-step budget on five tasks",
    "lever_atari": "about 18 CPU hours (3 games x 3 seeds x 2 arms at 4.5e13 FLOPs each)",
    "train_speed": "its full run (84x84, batch 256/128, median of 3) did not finish within the session's CPU time",
}
TOP_LEVEL = ["name", "question", "command", "quick", "machine", "results", "goals"]


def scripts() -> list[str]:
    return sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem not in ("__init__", "common"))


def check_schema(data: dict, name: str) -> None:
    """The common results schema (benchmarks.common.write), with each goal's ``met`` equal to its comparison."""
    assert list(data) == TOP_LEVEL and data["name"] == name
    assert data["question"] and data["command"] and isinstance(data["results"], dict)
    m = data["machine"]
    assert m["cpu_count"] >= 1 and "gpu" in m and m["torch"] and m["stable_baselines3"] and m["date"]
    for g in data["goals"].values():
        assert set(g) == {"target", "value", "met", "direction"}
        assert g["met"] is (g["value"] >= g["target"] if g["direction"] == ">=" else g["value"] <= g["target"])
        assert g["direction"] in (">=", "<=")


def test_every_benchmark_is_named_subject_question() -> None:
    pattern = re.compile(rf"^[a-z][a-z0-9]*(_[a-z0-9]+)*_({'|'.join(QUESTIONS)})$")
    assert scripts() and [n for n in scripts() if not pattern.match(n)] == []
    for name in scripts():  # each writes its results under its own name
        calls = [
            c
            for c in ast.walk(ast.parse((BENCHMARKS / f"{name}.py").read_text()))
            if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "write"
        ]
        assert [ast.literal_eval(c.args[0]) for c in calls] == [name], name


def test_every_benchmark_has_results_committed_or_says_why_not() -> None:
    missing = [n for n in scripts() if not (RESULTS / f"{n}.json").exists() or not (RESULTS / f"{n}.md").exists()]
    assert sorted(missing) == sorted(NOT_RUN)
    committed = {p.name.split(".")[0] for p in RESULTS.iterdir() if "quick" not in p.name}
    assert committed <= set(scripts())  # every results file is <name>.<ext> or <name>.<what>.<ext>


def test_every_benchmark_has_a_quick_test() -> None:
    text = Path(__file__).read_text()
    assert [n for n in scripts() if f"def test_{n}_benchmark_quick" not in text] == []


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_committed_results_have_the_schema(path: Path) -> None:
    data = json.loads(path.read_text())
    name = path.name.split(".")[0]
    check_schema(data, name)
    assert data["quick"] is False and data["command"].startswith(f"python -m benchmarks.{name}")


@pytest.mark.dmc
def test_envs_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import envs_speed

    out = envs_speed.main(["--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "envs_speed.quick.json").read_text())
    check_schema(data, "envs_speed")
    assert data == json.loads(json.dumps(out)) and data["quick"]
    assert set(data["goals"]) == {"ours_vs_straightforward_repeat8", "fast_vs_default_render"}
    r = out["results"]["tasks"]["cartpole-swingup"]
    assert r["straightforward"]["median_per_s"] > 0 and r["ours"]["median_per_s"] > 0
    assert "ours / straightforward" in (tmp_path / "envs_speed.quick.md").read_text()


def test_extractors_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import extractors_speed

    out = extractors_speed.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "extractors_speed.quick.json").read_text()), "extractors_speed")
    assert set(out["results"]["results"]) == {"NatureCNN (SB3 default)", "Flare", "LatentStack", "PixelFlow"}
    assert all(r["median_per_s"] > 0 for r in out["results"]["results"].values()) and out["goals"] == {}
    assert (tmp_path / "extractors_speed.quick.md").exists()


def test_rad_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import rad_speed

    out = rad_speed.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "rad_speed.quick.json").read_text()), "rad_speed")
    assert set(out["results"]["results"]) == {
        "textbook RAD",
        "RAD (stacked frames)",
        "RAD + Flare",
        "SB3 SAC CnnPolicy (NatureCNN)",
    }
    assert out["goals"]["flare_vs_rad"]["value"] == out["results"]["ratios"]["flare_vs_rad"] > 0
    assert out["goals"]["flare_vs_rad"]["target"] == 0.5 and out["goals"]["rad_vs_textbook"]["target"] == 1.0
    assert "Goals:" in (tmp_path / "rad_speed.quick.md").read_text()


@pytest.mark.dmc
def test_flare_state_benchmark_quick(tmp_path) -> None:
    from benchmarks import flare_state

    out = flare_state.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "flare_state.quick.json").read_text()), "flare_state")
    assert set(out["results"]["summary"]) == {f"cartpole-swingup/{v}" for v in flare_state.VARIANTS}
    assert (tmp_path / "flare_state.quick.png").stat().st_size > 0


@pytest.mark.dmc
def test_flare_dmc_benchmark_quick(tmp_path) -> None:  # the full run needs a GPU; --quick runs on CPU
    from benchmarks import flare_dmc

    out = flare_dmc.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "flare_dmc.quick.json").read_text()), "flare_dmc")
    assert {r["algo"] for r in out["results"]["runs"]} == {"Flare", "RAD"}
    assert all(len(r["returns"]) == 2 for r in out["results"]["runs"])
    assert "Flare (paper)" in (tmp_path / "flare_dmc.quick.md").read_text()


def test_replay_memory_benchmark_quick(tmp_path) -> None:
    from benchmarks import replay_memory

    out = replay_memory.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "replay_memory.quick.json").read_text()), "replay_memory")
    runs = out["results"]["runs"]
    assert set(runs) == {"sb3", "sb3_optimize_memory", "frame_store", "frame_store_full"}
    memory = out["goals"]["memory_vs_sb3"]
    assert memory["value"] <= 0.2 and memory["met"] and memory["direction"] == "<="
    assert runs["sb3"]["nbytes_per_transition"] > 2 * 9 * 84 * 84
    assert all(r["sample"]["median_per_s"] > 0 and r["rss_growth"] > 0 for r in runs.values())
    assert "FrameStoreReplayBuffer (ours)" in (tmp_path / "replay_memory.quick.md").read_text()


def test_drqv2_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import drqv2_speed

    out = drqv2_speed.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "drqv2_speed.quick.json").read_text()), "drqv2_speed")
    assert set(out["goals"]) == {"ours_vs_textbook_batch16"}
    for rows in out["results"]["results"].values():
        assert set(rows) == {
            "textbook DrQ-v2",
            "textbook DrQ-v2, channels-last",
            "DrQv2 (ours)",
            "SB3 SAC CnnPolicy (NatureCNN)",
        }
        assert all(r["median_per_s"] > 0 for r in rows.values())
    assert out["results"]["same_maths_max_abs_diff"] < 1e-4  # one update of ours = one textbook update, up to rounding
    assert "DrQv2 / textbook at batch 16" in (tmp_path / "drqv2_speed.quick.md").read_text()


@pytest.mark.dmc
def test_drqv2_dmc_benchmark_quick(tmp_path) -> None:
    from benchmarks import drqv2_dmc

    out = drqv2_dmc.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "drqv2_dmc.quick.json").read_text()), "drqv2_dmc")
    (run,) = out["results"]["runs"]
    assert run["frames"] == 1_000 and run["updates"] > 0 and len(run["curve"]) >= 2
    assert drqv2_dmc.published_at("walker-walk", 10_000) == pytest.approx((34.0, 20.5))
    assert "DrQ-v2 published" in (tmp_path / "drqv2_dmc.quick.md").read_text()
    assert (tmp_path / "drqv2_dmc.quick.png").stat().st_size > 0


def test_lever_savings_benchmark_quick(tmp_path) -> None:
    from benchmarks import lever_savings

    out = lever_savings.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "lever_savings.quick.json").read_text()), "lever_savings")
    for algo, r in out["results"]["results"].items():
        assert r["after"]["median_per_s"] > r["before"]["median_per_s"] > 0
        assert r["capacity_after"] > r["capacity_before"] and r["reencode_seconds"] > 0
        assert out["goals"][f"{algo}: speed-up"]["value"] == r["speedup"]
    assert len(out["goals"]) == 3 * len(out["results"]["results"])
    assert "B/transition LeVER" in (tmp_path / "lever_savings.quick.md").read_text()


def test_lever_learning_benchmark_quick(tmp_path) -> None:
    from benchmarks import lever_learning

    out = lever_learning.main(["--quick", "--workers", "1", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "lever_learning.quick.json").read_text()), "lever_learning")
    assert set(out["results"]["summary"]) == set(lever_learning.VARIANTS) and out["goals"] == {}
    assert (tmp_path / "lever_learning.quick.png").stat().st_size > 0


def test_sequence_buffer_memory_benchmark_quick(tmp_path) -> None:
    from benchmarks import sequence_buffer_memory

    out = sequence_buffer_memory.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "sequence_buffer_memory.quick.json").read_text()), "sequence_buffer_memory")
    res = out["results"]
    memory, frame = res["bytes_per_env_step"], 3 * 64 * 64
    assert frame < memory["SequenceReplayBuffer (ours)"] < 1.05 * frame  # one frame per step, little else
    assert res["ratios"]["sequence_rows_L9_vs_ours"] > 8 and res["ratios"]["sb3_default_vs_ours"] > 1.9
    assert len(res["sampling"]) == 5 and all(r["median_per_s"] > 0 for r in res["sampling"].values())
    assert "Dreamer windows/s" in (tmp_path / "sequence_buffer_memory.quick.md").read_text()


def test_slac_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import slac_speed

    out = slac_speed.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "slac_speed.quick.json").read_text()), "slac_speed")
    res = out["results"]
    assert res["same_maths_rel_diff"] < 1e-4  # one model update of ours = one textbook update, up to rounding
    assert all(r[k]["median_per_s"] > 0 for r in res["results"].values() for k in ("textbook", "ours"))
    assert set(out["goals"]) == {"model_ours_vs_textbook", "sac_ours_vs_textbook"}
    assert "ours / textbook" in (tmp_path / "slac_speed.quick.md").read_text()


@pytest.mark.dmc
def test_slac_dmc_benchmark_quick(tmp_path) -> None:
    from benchmarks import slac_dmc

    out = slac_dmc.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "slac_dmc.quick.json").read_text()), "slac_dmc")
    assert out["results"]["curve"][-1][0] == 2_400 and len(out["results"]["random_returns"]) == 1
    assert (tmp_path / "slac_dmc.quick.rollouts.png").stat().st_size > 0 and (tmp_path / "slac_dmc.quick.png").exists()


def test_tuning_speed_benchmark_quick(tmp_path, postgres_url, monkeypatch) -> None:
    from benchmarks import tuning_speed

    monkeypatch.setenv("SB3_LATENT_POSTGRES_URL", postgres_url)
    data = tuning_speed.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "tuning_speed.quick.json").read_text()), "tuning_speed")
    out = data["results"]
    assert data["goals"]["two_workers_vs_one"]["value"] == out["speedup_2_workers"]
    one, two = out["throughput"]["1 worker"], out["throughput"]["2 workers"]
    assert one["trials"] == 2 and two["trials"] >= 2 and len(two["workers"]) == 2
    assert out["speedup_2_workers"] > 0
    pruned, unpruned = out["pruning"]["median pruner"], out["pruning"]["no pruning"]
    assert unpruned["trials"] == pruned["trials"] == 4 and unpruned["pruned"] == 0
    assert unpruned["env_steps"] == 4 * 100 and pruned["env_steps"] <= unpruned["env_steps"]
    assert "2 workers / 1 worker" in (tmp_path / "tuning_speed.quick.md").read_text()


def test_dreamer_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import dreamer_speed

    out = dreamer_speed.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "dreamer_speed.quick.json").read_text()), "dreamer_speed")
    r = out["results"]["results"]["xs/2x8"]
    assert r["median_per_s"] > 0 and r["parameters"] == 3_308_238
    assert out["goals"] == {}  # xs has no dreamerv3-torch anchor to compare with
    assert "dreamerv3-torch anchor" in (tmp_path / "dreamer_speed.quick.md").read_text()


@pytest.mark.dmc
def test_dreamer_dmc_benchmark_quick(tmp_path) -> None:
    from benchmarks import dreamer_dmc

    out = dreamer_dmc.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "dreamer_dmc.quick.json").read_text()), "dreamer_dmc")
    assert out["results"]["curve"][-1][0] == 1_600 and len(out["results"]["random_returns"]) == 1
    assert (tmp_path / "dreamer_dmc.quick.openloop.png").stat().st_size > 0
    assert (tmp_path / "dreamer_dmc.quick.openloop.gif").exists() and (tmp_path / "dreamer_dmc.quick.png").exists()


@pytest.mark.atari
def test_rainbow_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import rainbow_speed

    out = rainbow_speed.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "rainbow_speed.quick.json").read_text()), "rainbow_speed")
    assert set(out["results"]["rates"]) >= {"textbook DER", "Rainbow (ours)"}
    assert all(r["median_per_s"] > 0 for r in out["results"]["rates"].values())
    assert out["results"]["same_maths_max_abs_diff"] < 1e-4  # one update of ours = one textbook DER update
    assert "Rainbow / textbook" in (tmp_path / "rainbow_speed.quick.md").read_text()


@pytest.mark.atari
def test_lever_atari_benchmark_quick(tmp_path) -> None:
    from benchmarks import lever_atari

    out = lever_atari.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "lever_atari.quick.json").read_text()), "lever_atari")
    plain, lever = out["results"]["runs"]
    # E: conv 32x5x5 s5 on 4x84x84 (16x16 outputs) + conv 64x5x5 s5 (3x3 outputs), multiply-adds per sample
    assert plain["sizes"]["E"] == 16 * 16 * 32 * 4 * 25 + 3 * 3 * 64 * 32 * 25
    assert plain["sizes"]["latent"] == 576
    assert lever["frozen_at"] is not None and plain["frozen_at"] is None
    # equal FLOP budgets: LeVER's cheaper updates after the freeze buy more env steps
    assert lever["steps"] > plain["steps"] and min(plain["flops"], lever["flops"]) >= 6e10
    assert "Rainbow + LeVER (paper)" in (tmp_path / "lever_atari.quick.md").read_text()
    assert (tmp_path / "lever_atari.quick.png").stat().st_size > 0


def test_train_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import train_speed

    out = train_speed.main(["--quick", "--out", str(tmp_path)])
    check_schema(json.loads((tmp_path / "train_speed.quick.json").read_text()), "train_speed")
    assert {"DrQ-v2 float32", "RAD (stacked) float32", "RAD + Flare float32"} <= set(out["results"]["results"])
