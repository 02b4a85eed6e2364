"""Pictures: the mental image (PNG grid, GIF animation) and the run plots are real, readable images."""

import numpy as np
import pytest
import torch
from PIL import Image

from neuralgpu.cli import main
from neuralgpu.plot import generalisation, load_curves
from neuralgpu.show import frame_steps, mental_image, project_to_rgb
from neuralgpu.solver import load

EXPR = "3102310"  # copy: 7 columns, so 7 steps and 8 moments


def test_trace_ends_in_the_forward_pass(trained_copy):
    run_dir, _ = trained_copy
    solver = load(str(run_dir))
    tokens = torch.from_numpy(solver.task.parse(EXPR)[None])
    states, logits = solver.model.trace(tokens)
    assert states.shape == (len(EXPR) + 1, 1, solver.model.config.channels, solver.model.config.height, len(EXPR))
    torch.testing.assert_close(logits, solver.model(tokens).logits)


def test_projection_fills_the_colour_range():
    states = np.random.default_rng(0).normal(size=(5, 16, 2, 9))
    rgb = project_to_rgb(states)
    assert rgb.shape == (5, 2, 9, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert rgb.std() > 0.1


def test_frame_steps_keep_both_ends_and_never_repeat():
    assert frame_steps(7, 12) == list(range(8))
    chosen = frame_steps(400, 12)
    assert chosen[0] == 0 and chosen[-1] == 400 and len(chosen) == len(set(chosen)) == 12


def test_show_writes_a_png_grid_and_a_gif_with_a_frame_per_step(trained_copy, tmp_path, capsys):
    run_dir, _ = trained_copy
    assert mental_image(load(str(run_dir)), EXPR).answer == EXPR
    png, gif = tmp_path / "image.png", tmp_path / "image.gif"
    assert main(["show", str(run_dir), EXPR, "--out", str(png)]) == 0
    assert main(["show", str(run_dir), EXPR, "--out", str(gif)]) == 0
    assert f"{EXPR} = {EXPR}" in capsys.readouterr().out
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.width > 400
        assert np.asarray(picture.convert("RGB")).std() > 10  # not a blank canvas
    with Image.open(gif) as animation:
        assert animation.format == "GIF" and animation.n_frames == len(EXPR) + 1
        frames = []
        for index in range(animation.n_frames):
            animation.seek(index)
            frames.append(np.asarray(animation.convert("RGB"), dtype=np.float64))
    assert all(frame.std() > 10 for frame in frames)
    assert np.abs(frames[0] - frames[-1]).mean() > 1  # the state changes between the first and last step


def test_show_refuses_bad_input_in_one_line(trained_copy, tmp_path, capsys):
    run_dir, _ = trained_copy
    assert main(["show", str(run_dir), "31x2", "--out", str(tmp_path / "a.png")]) == 2
    assert main(["show", str(run_dir), EXPR, "--out", str(tmp_path / "a.jpg")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and ".png" in errors[1]
    assert not list(tmp_path.iterdir())


def test_plot_draws_runs_side_by_side(trained_copy, tmp_path, capsys):
    run_dir, _ = trained_copy
    curves = load_curves(run_dir)
    assert curves.steps and len(curves.steps) == len(curves.train_error) == len(curves.length)
    assert curves.random_error, "the release card's evaluations feed the generalisation panel"
    out = tmp_path / "curves.png"
    assert main(["plot", str(run_dir), str(run_dir), "--out", str(out), "--lengths", "20", "--samples", "8"]) == 0
    with Image.open(out) as picture:
        assert picture.format == "PNG" and np.asarray(picture.convert("RGB")).std() > 10
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "none.png")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_generalisation_takes_the_worst_structured_suite():
    records = [
        {"length": 40, "suite": "random", "sequence_error": 0.0},
        {"length": 40, "suite": "carry", "sequence_error": 0.25},
        {"length": 40, "suite": "zeros", "sequence_error": 0.5},
    ]
    assert generalisation(records) == ({40: 0.0}, {40: 0.5})


def test_show_rejects_too_wide_inputs(trained_copy):
    run_dir, _ = trained_copy
    with pytest.raises(ValueError, match="up to 512 columns"):
        mental_image(load(str(run_dir)), "1" * 600)


def test_one_row_state_draws_as_a_space_time_picture(tmp_path):
    png = tmp_path / "reverse.png"
    assert main(["show", "reverse", "0123012", "--out", str(png)]) == 0  # a shipped model: 1-D state
    with Image.open(png) as picture:
        pixels = np.asarray(picture.convert("RGB"), dtype=np.float64)
    assert picture.height > 200 and pixels.std() > 10
