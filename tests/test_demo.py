"""The demo (the main job of `make demo`) runs end to end and leaves everything it promises."""

import json

import imageio.v2 as imageio
import pytest
from stable_baselines3 import SAC

from sb3_latent import demo


@pytest.mark.dmc
def test_demo_writes_model_plot_video_and_summary(tmp_path, capsys) -> None:
    summary = demo.main(
        [
            "--out",
            str(tmp_path),
            "--timesteps",
            "1200",
            "--eval-freq",
            "600",
            "--eval-episodes",
            "1",
            "--no-progress-bar",
        ]
    )
    for name in ("model.zip", "learning_curve.png", "rollout.gif", "evaluations.npz", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert SAC.load(tmp_path / "model.zip").observation_space.shape == (12,)
    assert len(imageio.mimread(tmp_path / "rollout.gif")) > 10
    out = capsys.readouterr().out
    assert "random policy" in out and "trained policy" in out


def test_demo_rejects_bad_arguments(tmp_path) -> None:
    with pytest.raises(SystemExit):
        demo.main(["--out", str(tmp_path), "--timesteps", "0"])
