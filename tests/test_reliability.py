"""Runs survive SIGKILL, and no input a person types makes `solve` crash."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralgpu.checkpoint import save_release
from neuralgpu.cli import main
from neuralgpu.model import ModelConfig, NeuralGPU
from neuralgpu.rundir import read_metrics
from neuralgpu.solver import Solver, load

TRAIN = [sys.executable, "-m", "neuralgpu", "train", "--task", "copy", "--recipe", "tiny", "--seed", "0", "--device", "cpu"]


def last_step(run_dir) -> int:
    records = read_metrics(run_dir) if (run_dir / "metrics.jsonl").exists() else []
    return max((int(record["step"]) for record in records), default=0)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_training_killed_resumes_and_matches_an_unkilled_run(tmp_path, stop):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    process = subprocess.Popen([*TRAIN, "--run-dir", str(killed)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while last_step(killed) < 150 and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed: make it longer"
    logged = last_step(killed)
    os.kill(process.pid, stop)
    output, _ = process.communicate(timeout=120)
    snapshot_step = torch.load(killed / "snapshot.pt", weights_only=True)["step"]
    if stop == signal.SIGKILL:  # no warning: the last periodic snapshot (every 100 steps) is what is left
        assert 100 <= snapshot_step < last_step(killed) + 1
    else:  # SIGTERM (kill, a scheduler, torchrun) stops it as Ctrl-C does: a snapshot of where it stopped
        assert process.returncode == 130 and "saving a resume snapshot" in output, output
        assert snapshot_step >= logged

    subprocess.run([*TRAIN, "--run-dir", str(killed), "--resume"], check=True, capture_output=True, timeout=600)
    subprocess.run([*TRAIN, "--run-dir", str(whole)], check=True, capture_output=True, timeout=600)

    lines = {run: [record for record in read_metrics(run) if "loss" in record] for run in (killed, whole)}
    steps = [int(record["step"]) for record in lines[killed]]
    assert steps == sorted(set(steps)), "metrics.jsonl repeats or reorders steps after the resume"
    assert steps == [int(record["step"]) for record in lines[whole]]
    # The same training figures too: the steps since the last line before the stop are in the snapshot.
    for figure in ("loss", "train_seq_error", "grad_norm"):
        assert [record[figure] for record in lines[killed]] == [record[figure] for record in lines[whole]], figure
    cards = [json.loads((run / "model.json").read_text()) for run in (killed, whole)]
    assert cards[0]["solved"] and cards[1]["solved"] and cards[0]["steps"] == cards[1]["steps"]
    assert [row["sequence_errors"] for row in cards[0]["evaluation"]] == [
        row["sequence_errors"] for row in cards[1]["evaluation"]
    ]
    config = json.loads((killed / "config.json").read_text())
    assert len(config["resumes"]) == 1


@pytest.fixture(scope="module")
def badd_release(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("untrained") / "badd.safetensors"
    save_release(path, NeuralGPU(ModelConfig(channels=4, height=2, copies=1)), {"task": "badd"})
    return path


def is_valid_badd(text: str) -> bool:
    parts = text.strip().split("+")
    return len(parts) == 2 and all(part.strip() and set(part.strip()) <= {"0", "1"} for part in parts)


lines = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="01+ *2", max_size=12),
    st.builds(lambda a, b: f"{a}+{b}", st.text("01", min_size=1, max_size=8), st.text("01", min_size=1, max_size=8)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(lines, min_size=1, max_size=6))
def test_solver_answers_every_valid_line_and_names_every_bad_one(badd_release, texts):
    solver = load(str(badd_release))
    answers = solver.answer(texts)
    assert [answer.text for answer in answers] == texts
    for text, answer in zip(texts, answers):
        if is_valid_badd(text):
            assert answer.error is None and answer.answer is not None and set(answer.answer) <= {"0", "1", "?"}
        else:
            assert answer.answer is None and answer.error and "\n" not in answer.error


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(lines, min_size=1, max_size=4))
def test_solve_command_never_shows_a_traceback(badd_release, texts, capsys):
    status = main(["solve", str(badd_release), "--json", "--", *texts]) if texts else 0
    out, err = capsys.readouterr()
    objects = [json.loads(line) for line in out.splitlines()]
    assert [obj["input"] for obj in objects] == texts
    assert "Traceback" not in err
    bad = sum(not is_valid_badd(text) for text in texts)
    assert status == (1 if bad else 0) and len(err.strip().splitlines()) == bad


def test_an_input_too_wide_for_memory_gets_its_own_error_and_others_are_answered(badd_release):
    solver = load(str(badd_release))
    solver.memory_budget = 2**20
    answers = solver.answer(["1" * 5000 + "+1", "1+1"])
    assert "widest that fits" in answers[0].error and answers[1].answer is not None


def test_solve_raises_naming_the_bad_input(badd_release):
    with pytest.raises(ValueError, match=r"input 2 \('1\+2'\)"):
        load(str(badd_release)).solve(["1+1", "1+2"])
    assert isinstance(load(str(badd_release)), Solver)
    np.testing.assert_array_equal(load(str(badd_release)).task.parse("1+1"), [2, 11, 2])
