"""``show --settle``: the answer read after every step, and when each column stops changing."""

import numpy as np
import pytest
import torch
from PIL import Image

from neuralgpu.cli import main
from neuralgpu.evaluate import predict
from neuralgpu.model import ModelConfig, NeuralGPU
from neuralgpu.settle import Settling, settling
from neuralgpu.solver import Solver, load

SUM = "1011011101+110111011"  # badd: operands padded to 10 bits, 21 columns


def test_settled_at_is_the_first_step_of_the_final_symbol():
    readings = np.array(
        [
            [1, 2, 3, 4],  # before the first step
            [1, 1, 3, 4],
            [1, 2, 2, 4],
            [1, 2, 3, 4],  # after step 3, the last
        ],
        dtype=np.uint8,
    )
    record = Settling(readings, list("abcd"), answer_width=4, answer="", right=True)
    # Column 0 never changed; column 1 went back to its first symbol at step 2; column 2 at step 3.
    assert record.settled_at().tolist() == [0, 2, 3, 0]
    assert "final from step 3 of 3 (0 to spare)" in record.summary() and "column 2" in record.summary()
    # Only the answer's columns count: without column 2 the answer was final at step 2.
    narrower = Settling(readings, list("abcd"), answer_width=2, answer="", right=True)
    assert narrower.settled_at().tolist() == [0, 2] and "final from step 2 of 3 (1 to spare)" in narrower.summary()


def test_the_last_reading_is_the_models_answer():
    solver = load("badd")
    record = settling(solver, SUM)
    tokens = solver.task.parse(SUM)[None]
    answer_tokens = predict(solver.model, tokens, np.ones_like(tokens, dtype=bool))[0]
    assert record.readings.shape == (tokens.shape[1] + 1, tokens.shape[1]) == (22, 21)
    assert record.readings[-1].tolist() == answer_tokens.tolist()
    assert record.answer == solver.solve([SUM])[0] == solver.task.oracle(SUM)
    assert record.right and record.summary().startswith("answer right")
    assert record.answer_width == 11 and 0 < record.settled_at().max() <= tokens.shape[1]


def test_a_wrong_answer_is_called_wrong():
    torch.manual_seed(0)
    untrained = Solver(
        NeuralGPU(ModelConfig(channels=8, height=1, kernel_height=1, layers_per_step=1, copies=1)), {"task": "badd"}
    )
    record = settling(untrained, SUM)
    assert record.answer != untrained.task.oracle(SUM)
    assert not record.right and record.summary().startswith("answer wrong")


def test_show_settle_draws_a_png_and_says_when_the_answer_was_final(tmp_path, capsys):
    picture = tmp_path / "settle.png"
    assert main(["show", "badd", SUM, "--settle", "--out", str(picture)]) == 0
    assert "answer right; every column final from step" in capsys.readouterr().out
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width > 300
        assert np.asarray(image.convert("RGB")).std() > 10  # not a blank canvas


@pytest.mark.parametrize(
    ("expr", "out", "message"),
    [
        (SUM, "settle.gif", "--settle draws a .png"),
        ("1011+1x1", "settle.png", "not a base-2 digit"),
    ],
)
def test_show_settle_refuses_in_one_line(tmp_path, capsys, expr, out, message):
    assert main(["show", "badd", expr, "--settle", "--out", str(tmp_path / out)]) != 0
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and not (tmp_path / out).exists()


def test_show_settle_refuses_inputs_too_wide_to_record(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("neuralgpu.settle.MAX_SETTLE_WIDTH", 11)
    assert main(["show", "badd", SUM, "--settle", "--out", str(tmp_path / "wide.png")]) != 0
    assert "21 columns wide" in capsys.readouterr().err
