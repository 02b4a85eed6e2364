"""The models that ship inside the package: they load without pickle, their cards are complete, and
they make zero errors at 10x their training length on random inputs and on every structured suite."""

import json

import numpy as np
import pytest
from safetensors import safe_open

from neuralgpu.cli import main
from neuralgpu.evaluate import evaluate
from neuralgpu.models import shipped_models
from neuralgpu.solver import PRETRAINED_DIR, load, pretrained_names
from neuralgpu.tasks import get_task, structured_suites

SHIPPED = pretrained_names()
CARD_FIELDS = ("task", "recipe", "seed", "steps", "wall_clock_s", "hardware", "train_lengths", "command", "evaluation")


def test_models_ship_with_the_package():
    assert {"copy", "reverse", "badd"} <= set(SHIPPED), SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_is_plain_safetensors_with_a_complete_card(name):
    path = PRETRAINED_DIR / f"{name}.safetensors"
    with safe_open(str(path), framework="pt") as handle:  # tensors and text only: nothing to execute
        card = json.loads(handle.metadata()["card"])
    assert all(field in card for field in CARD_FIELDS)
    assert card["task"] == name and card["solved"] is True
    assert card["command"].startswith(f"neuralgpu train --task {name} ")
    assert json.loads((PRETRAINED_DIR / f"{name}.json").read_text()) == card  # the copy beside it agrees
    assert path.stat().st_size < 2_000_000


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_error_free_at_ten_times_its_training_length(name):
    solver = load(name)
    length = solver.task.scaled_length(solver.card["train_lengths"][1], 10)
    results = [evaluate(solver.model, solver.task, length, "random", 64)]
    results += [evaluate(solver.model, solver.task, length, suite, 16) for suite in structured_suites(solver.task)]
    failures = {result.suite: result.sequence_errors for result in results if result.sequence_errors}
    assert not failures, f"{name} at length {length}: sequence errors per suite {failures}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_answers_fresh_problems_like_the_oracle(name):
    solver = load(name)
    task = solver.task
    batch = task.sample(4, task.scaled_length(solver.card["train_lengths"][1], 3), np.random.default_rng(12345))
    texts = [task.input_text(row) for row in batch.inputs]
    assert solver.solve(texts) == [task.oracle(text) for text in texts]


def test_models_command_lists_every_shipped_model(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    for model in shipped_models():
        assert f"\n{model.name} " in listing
        longest, _, _ = model.error_free_up_to()
        assert longest >= get_task(model.card["task"]).scaled_length(model.train_length, 10)


def test_demo_answers_long_problems_correctly(capsys):
    assert main(["demo", "--problems", "2", "--factor", "5"]) == 0
    out = capsys.readouterr().out
    assert "every answer above matches the oracle" in out and "WRONG" not in out
