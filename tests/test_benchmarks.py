"""Each benchmark's --quick mode runs end to end and writes its result files (so none rots)."""

import json

import pytest

from benchmarks import envs, extractors


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
