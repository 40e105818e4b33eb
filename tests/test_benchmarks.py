"""Each benchmark's --quick mode runs end to end and writes its result files (so none rots)."""

import json

import pytest

from benchmarks import envs, extractors, replay_memory


@pytest.mark.dmc
def test_envs_benchmark_quick(tmp_path) -> None:
    out = envs.main(["--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "envs.quick.json").read_text())
    assert data["quick"] and data["machine"]["cpu_count"] >= 1
    r = out["tasks"]["cartpole-swingup"]
    assert r["straightforward"]["median_per_s"] > 0 and r["ours"]["median_per_s"] > 0
    assert "ours / straightforward" in (tmp_path / "envs.quick.md").read_text()


def test_extractors_benchmark_quick(tmp_path) -> None:
    out = extractors.main(["--quick", "--out", str(tmp_path)])
    assert set(out["results"]) == {"NatureCNN (SB3 default)", "Flare", "LatentStack", "PixelFlow"}
    assert all(r["median_per_s"] > 0 for r in out["results"].values())
    assert (tmp_path / "extractors.quick.md").exists()


def test_update_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import update_speed

    out = update_speed.main(["--quick", "--out", str(tmp_path)])
    assert set(out["results"]) == {"textbook RAD", "RAD (stacked frames)", "RAD + Flare",
                                   "SB3 SAC CnnPolicy (NatureCNN)"}
    assert out["ratios"]["flare_vs_rad"] > 0 and (tmp_path / "update_speed.quick.md").exists()


@pytest.mark.dmc
def test_flare_state_benchmark_quick(tmp_path) -> None:
    from benchmarks import flare_state

    summary = flare_state.main(["--quick", "--out", str(tmp_path)])
    assert set(summary) == {f"cartpole-swingup/{v}" for v in flare_state.VARIANTS}
    assert (tmp_path / "flare_state.quick.png").stat().st_size > 0


@pytest.mark.dmc
def test_flare_pixels_benchmark_runs_end_to_end_on_cpu(tmp_path) -> None:
    from benchmarks import flare_pixels

    out = flare_pixels.main(["--quick", "--out", str(tmp_path)])
    assert {r["algo"] for r in out["runs"]} == {"Flare", "RAD"}
    assert all(len(r["returns"]) == 2 for r in out["runs"])
    assert "Flare (paper)" in (tmp_path / "flare_pixels.quick.md").read_text()


def test_replay_memory_benchmark_quick(tmp_path) -> None:
    out = replay_memory.main(["--quick", "--out", str(tmp_path)])
    assert set(out["runs"]) == {"sb3", "sb3_optimize_memory", "frame_store", "frame_store_full"}
    assert out["goals"]["memory_ratio"] <= 0.2 and out["goals"]["memory_met"]
    assert out["runs"]["sb3"]["nbytes_per_transition"] > 2 * 9 * 84 * 84
    assert all(r["sample"]["median_per_s"] > 0 and r["rss_growth"] > 0 for r in out["runs"].values())
    assert "FrameStoreReplayBuffer (ours)" in (tmp_path / "replay_memory.quick.md").read_text()


def test_drqv2_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import drqv2_speed

    out = drqv2_speed.main(["--quick", "--out", str(tmp_path)])
    for rows in out["results"].values():
        assert set(rows) == {"textbook DrQ-v2", "textbook DrQ-v2, channels-last", "DrQv2 (ours)",
                             "SB3 SAC CnnPolicy (NatureCNN)"}
        assert all(r["median_per_s"] > 0 for r in rows.values())
    assert out["same_maths_max_abs_diff"] < 1e-4  # one update of ours = one textbook update, up to rounding
    assert "DrQv2 / textbook at batch 16" in (tmp_path / "drqv2_speed.quick.md").read_text()


@pytest.mark.dmc
def test_drqv2_dmc_benchmark_quick(tmp_path) -> None:
    from benchmarks import drqv2_dmc

    out = drqv2_dmc.main(["--quick", "--out", str(tmp_path)])
    (run,) = out["runs"]
    assert run["frames"] == 1_000 and run["updates"] > 0 and len(run["curve"]) >= 2
    assert drqv2_dmc.published_at("walker-walk", 10_000) == pytest.approx((34.0, 20.5))
    assert "DrQ-v2 published" in (tmp_path / "drqv2_dmc.quick.md").read_text()
    assert (tmp_path / "drqv2_dmc.quick.png").stat().st_size > 0


def test_lever_benchmark_quick(tmp_path) -> None:
    from benchmarks import lever

    out = lever.main(["--quick", "--out", str(tmp_path)])
    for r in out["results"].values():
        assert r["after"]["median_per_s"] > r["before"]["median_per_s"] > 0
        assert r["capacity_after"] > r["capacity_before"] and r["reencode_seconds"] > 0
    assert "B/transition LeVER" in (tmp_path / "lever.quick.md").read_text()


def test_sequence_buffer_benchmark_quick(tmp_path) -> None:
    from benchmarks import sequence_buffer

    out = sequence_buffer.main(["--quick", "--out", str(tmp_path)])
    memory, frame = out["bytes_per_env_step"], 3 * 64 * 64
    assert frame < memory["SequenceReplayBuffer (ours)"] < 1.05 * frame  # one frame per step, little else
    assert out["ratios"]["sequence_rows_L9_vs_ours"] > 8 and out["ratios"]["sb3_default_vs_ours"] > 1.9
    assert len(out["sampling"]) == 5 and all(r["median_per_s"] > 0 for r in out["sampling"].values())
    assert "Dreamer windows/s" in (tmp_path / "sequence_buffer.quick.md").read_text()


def test_slac_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import slac

    out = slac.main(["--quick", "--out", str(tmp_path)])
    assert out["same_maths_rel_diff"] < 1e-4  # one model update of ours = one textbook update, up to rounding
    assert all(r[k]["median_per_s"] > 0 for r in out["results"].values() for k in ("textbook", "ours"))
    assert "ours / textbook" in (tmp_path / "slac.quick.md").read_text()


@pytest.mark.dmc
def test_slac_dmc_benchmark_quick(tmp_path) -> None:
    from benchmarks import slac_dmc

    out = slac_dmc.main(["--quick", "--out", str(tmp_path)])
    assert out["curve"][-1][0] == 2_400 and len(out["random_returns"]) == 1
    assert (tmp_path / "slac_rollouts.quick.png").stat().st_size > 0 and (tmp_path / "slac_dmc.quick.png").exists()


def test_tuning_benchmark_quick(tmp_path, postgres_url, monkeypatch) -> None:
    from benchmarks import tuning

    monkeypatch.setenv("SB3_LATENT_POSTGRES_URL", postgres_url)
    out = tuning.main(["--quick", "--out", str(tmp_path)])
    one, two = out["throughput"]["1 worker"], out["throughput"]["2 workers"]
    assert one["trials"] == 2 and two["trials"] >= 2 and len(two["workers"]) == 2
    assert out["speedup_2_workers"] > 0
    pruned, unpruned = out["pruning"]["median pruner"], out["pruning"]["no pruning"]
    assert unpruned["trials"] == pruned["trials"] == 4 and unpruned["pruned"] == 0
    assert unpruned["env_steps"] == 4 * 100 and pruned["env_steps"] <= unpruned["env_steps"]
    assert "2 workers / 1 worker" in (tmp_path / "tuning.quick.md").read_text()


def test_dreamer_benchmark_quick(tmp_path) -> None:
    from benchmarks import dreamer

    out = dreamer.main(["--quick", "--out", str(tmp_path)])
    assert out["results"]["xs/2x8"]["median_per_s"] > 0 and out["results"]["xs/2x8"]["parameters"] == 3_308_238
    assert "dreamerv3-torch anchor" in (tmp_path / "dreamer.quick.md").read_text()


@pytest.mark.dmc
def test_dreamer_dmc_benchmark_quick(tmp_path) -> None:
    from benchmarks import dreamer_dmc

    out = dreamer_dmc.main(["--quick", "--out", str(tmp_path)])
    assert out["curve"][-1][0] == 1_600 and len(out["random_returns"]) == 1
    assert (tmp_path / "dreamer_openloop.quick.png").stat().st_size > 0
    assert (tmp_path / "dreamer_openloop.quick.gif").exists() and (tmp_path / "dreamer_dmc.quick.png").exists()


@pytest.mark.atari
def test_rainbow_speed_benchmark_quick(tmp_path) -> None:
    from benchmarks import rainbow_speed

    out = rainbow_speed.main(["--quick", "--out", str(tmp_path)])
    assert set(out["results"]) >= {"textbook DER", "Rainbow (ours)"}
    assert all(r["median_per_s"] > 0 for r in out["results"].values())
    assert out["same_maths_max_abs_diff"] < 1e-4  # one update of ours = one textbook DER update, up to rounding
    assert "Rainbow / textbook" in (tmp_path / "rainbow_speed.quick.md").read_text()


@pytest.mark.atari
def test_lever_atari_benchmark_quick(tmp_path) -> None:
    from benchmarks import lever_atari

    out = lever_atari.main(["--quick", "--out", str(tmp_path)])
    plain, lever = out["runs"]
    # E: conv 32x5x5 s5 on 4x84x84 (16x16 outputs) + conv 64x5x5 s5 (3x3 outputs), multiply-adds per sample
    assert plain["sizes"]["E"] == 16 * 16 * 32 * 4 * 25 + 3 * 3 * 64 * 32 * 25
    assert plain["sizes"]["latent"] == 576
    assert lever["frozen_at"] is not None and plain["frozen_at"] is None
    # equal FLOP budgets: LeVER's cheaper updates after the freeze buy more env steps
    assert lever["steps"] > plain["steps"] and min(plain["flops"], lever["flops"]) >= 6e10
    assert "Rainbow + LeVER (paper)" in (tmp_path / "lever_atari.quick.md").read_text()
    assert (tmp_path / "lever_atari.quick.png").stat().st_size > 0
