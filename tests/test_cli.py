"""The command line, as a person uses it: in a subprocess, reading stdout, stderr and the status."""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from neuralgpu.cli import main
from neuralgpu.solver import PRETRAINED_DIR

# The module, not the function `neuralgpu.evaluate` that the package exports under its name.
evaluation = importlib.import_module("neuralgpu.evaluate")


def run(*args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "neuralgpu", *args], input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


def test_tasks_lists_every_task_and_shows_examples(capsys):
    assert main(["tasks"]) == 0
    listing = capsys.readouterr().out
    for name in ("badd", "bmul", "qadd", "qmul", "add", "mul", "copy", "reverse", "duplicate", "sort", "kvsort", "rev2", "incr"):
        assert f"\n{name} " in listing
    assert main(["tasks", "--show", "badd", "--length", "9", "--count", "3", "--suite", "carry"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("+" in line and "->" in line for line in lines)


def test_solve_answers_valid_lines_and_names_bad_ones(trained_copy):
    run_dir, _ = trained_copy
    result = run("solve", str(run_dir), stdin="0123\n\n01x\n3210321\n")
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["0123", "3210321"]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "line 2" in errors[0] and "line 3" in errors[1] and "Traceback" not in result.stderr


def test_solve_json_and_arguments(trained_copy, capsys):
    run_dir, _ = trained_copy
    assert main(["solve", str(run_dir), "--json", "0312", "0000"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert objects == [{"input": "0312", "answer": "0312", "error": None}, {"input": "0000", "answer": "0000", "error": None}]


def test_eval_prints_a_table_and_json(trained_copy, capsys):
    run_dir, _ = trained_copy
    assert main(["eval", str(run_dir), "--lengths", "6,12", "--suite", "random,constant", "--samples", "16", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["length"], row["suite"]) for row in rows] == [(6, "random"), (6, "constant"), (12, "random"), (12, "constant")]
    assert all(row["sequence_error"] == 0 for row in rows)


def test_eval_by_column_says_where_the_wrong_symbols_were(trained_copy, capsys):
    run_dir, _ = trained_copy
    # 6 is within the tiny model's training lengths; at 64 (8x its 8) it may be right or wrong.
    args = ["eval", str(run_dir), "--lengths", "6,64", "--suite", "random", "--samples", "16", "--by-column"]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:  # every wrong symbol counted once, in its column
        assert len(row["wrong_by_column"]) == row["length"] and sum(row["wrong_by_column"]) == row["digit_errors"]
    assert main(args) == 0
    profile = capsys.readouterr().out.split("which output columns were wrong")[1]
    assert "copy 6 random (16 examples): columns 0-5 right" in profile
    wrong = [column for column, count in enumerate(rows[1]["wrong_by_column"]) if count]
    assert ("copy 64 random (16 examples): columns 0-63 right" in profile) == (not wrong)


def test_a_run_without_a_release_yet_is_read_from_its_last_snapshot(trained_copy, tmp_path, capsys):
    import torch

    from neuralgpu.checkpoint import RELEASE_NAME, SNAPSHOT_NAME, load_snapshot, save_snapshot
    from neuralgpu.model import ModelConfig, NeuralGPU
    from neuralgpu.solver import load

    run_dir = tmp_path / "running"
    shutil.copytree(trained_copy[0], run_dir)
    (run_dir / RELEASE_NAME).unlink()  # as a run still training, or stopped before its end, has none
    state = load_snapshot(run_dir / SNAPSHOT_NAME)
    solver = load(str(run_dir))
    assert solver.card["task"] == "copy" and solver.card["snapshot_step"] == state["step"]
    assert solver.solve(["0123", "3210321"]) == ["0123", "3210321"]  # the trained weights: copies are right
    assert main(["eval", str(run_dir), "--lengths", "6", "--samples", "16", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["sequence_error"] == 0 and f"last snapshot, step {state['step']}" in captured.err
    # The run's solving check went furthest: the message says where its weights are.
    assert f"furthest check so far, step {state['step']}, is in {run_dir / 'best.safetensors'}" in captured.err
    assert main(["eval", str(run_dir), "--lengths", "6", "--samples", "16", "--record"]) == 2
    assert "a snapshot has no card to record on" in capsys.readouterr().err and not (run_dir / RELEASE_NAME).exists()
    # A run keeping a moving average is judged by the average: the snapshot's, not its weights.
    torch.manual_seed(0)
    other = NeuralGPU(ModelConfig(**state["model_config"]))
    averaged = {f"module.{name}": tensor for name, tensor in other.state_dict().items()} | {"n_averaged": torch.tensor(5)}
    save_snapshot(run_dir / SNAPSHOT_NAME, {**state, "averaged": averaged})
    reloaded = load(str(run_dir)).model
    assert all(torch.equal(reloaded.state_dict()[name], tensor) for name, tensor in other.state_dict().items())
    (run_dir / "config.json").write_text("{")
    assert main(["eval", str(run_dir), "--lengths", "6"]) != 0
    assert "cannot be read as a run's" in capsys.readouterr().err
    (run_dir / SNAPSHOT_NAME).unlink()
    assert main(["eval", str(run_dir)]) != 0
    assert "neither a model.safetensors nor a snapshot.pt" in capsys.readouterr().err


def test_compiled_eval_scores_like_the_eager_model_and_records_that_it_compiled(trained_copy, tmp_path, capsys):
    run_dir, _ = trained_copy
    release = tmp_path / "copy.safetensors"
    shutil.copy(run_dir / "model.safetensors", release)
    shutil.copy(run_dir / "model.json", release.with_suffix(".json"))
    args = ["eval", str(release), "--lengths", "6,24", "--suite", "random,ascending", "--samples", "16", "--device", "cpu"]
    assert main([*args, "--json"]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert main([*args, "--json", "--compile", "--record"]) == 0
    compiled = json.loads(capsys.readouterr().out)
    # The same frozen inputs, so the same wrong sequences (float rounding moves no answer here).
    assert [(row["suite"], row["length"], row["sequence_errors"], row["digit_errors"]) for row in compiled] == [
        (row["suite"], row["length"], row["sequence_errors"], row["digit_errors"]) for row in eager
    ]
    card = json.loads(release.with_suffix(".json").read_text())
    assert card["verifications"][-1]["command"].endswith("--samples 16 --compile")


@pytest.mark.parametrize("stop", ["sigterm", "gpu out of memory"])
def test_a_stopped_recorded_eval_keeps_its_prefix_and_extend_finishes_it(trained_copy, tmp_path, monkeypatch, capsys, stop):
    import torch

    run_dir, _ = trained_copy
    release = tmp_path / "copy.safetensors"
    shutil.copy(run_dir / "model.safetensors", release)
    shutil.copy(run_dir / "model.json", release.with_suffix(".json"))
    scored_in = evaluation.predictions

    def stopped_after_two_batches(model, inputs, mask, memory_budget, batch_size=None):
        for number, predicted in enumerate(scored_in(model, inputs, mask, memory_budget, 8), start=1):
            yield predicted
            if number == 2 and stop == "sigterm":  # as `kill` would, while the third batch is due
                os.kill(os.getpid(), signal.SIGTERM)
            if number == 2 and stop == "gpu out of memory":  # as a GPU shared with other work can
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    args = ["eval", str(release), "--lengths", "29", "--suite", "random", "--samples", "40", "--device", "cpu", "--json"]
    monkeypatch.setattr(evaluation, "predictions", stopped_after_two_batches)
    assert main([*args, "--record"]) == (130 if stop == "sigterm" else 2)
    output = capsys.readouterr()
    assert [row["samples"] for row in json.loads(output.out)] == [16]
    assert "--extend" in output.err and "Traceback" not in output.err and output.err.count("\n") == 1
    assert ("stopped" if stop == "sigterm" else "the GPU ran out of memory (CUDA out of memory.") in output.err
    stopped = json.loads(release.with_suffix(".json").read_text())["verifications"][-1]
    assert stopped["stopped"] and [(result["samples"], result["set_size"]) for result in stopped["results"]] == [(16, 40)]

    monkeypatch.undo()
    assert main([*args, "--extend"]) == 0
    extended = json.loads(capsys.readouterr().out)
    finished = json.loads(release.with_suffix(".json").read_text())["verifications"][-1]
    assert finished["continued_from_card"] == [{"length": 29, "suite": "random", "examples_already_recorded": 16}]
    assert "stopped" not in finished and finished["command"].endswith("--samples 40 --extend")
    assert main(args) == 0
    assert extended == json.loads(capsys.readouterr().out)  # the same as scoring all 40 at once
    assert main([*args, "--extend"]) == 0  # nothing left to score: the recorded result, recorded once
    assert json.loads(capsys.readouterr().out) == extended
    assert json.loads(release.with_suffix(".json").read_text())["verifications"][-1] == finished


def test_extend_scores_afresh_a_set_drawn_a_column_at_a_time_and_says_so(tmp_path, capsys):
    release = tmp_path / "badd.safetensors"
    shutil.copy(PRETRAINED_DIR / "badd.safetensors", release)
    args = ["eval", str(release), "--lengths", "9", "--suite", "random", "--device", "cpu", "--json"]
    assert main([*args, "--samples", "8", "--record"]) == 0
    capsys.readouterr()
    assert main([*args, "--samples", "16", "--extend"]) == 0
    output = capsys.readouterr()
    assert "random at 9 is scored afresh" in output.err and json.loads(output.out)[0]["samples"] == 16
    last = json.loads(release.with_suffix(".json").read_text())["verifications"][-1]
    assert "continued_from_card" not in last and last["results"][0]["samples"] == 16


def test_extend_goes_on_from_a_stopped_part_of_the_asked_set_beside_a_larger_whole_smaller_set(tmp_path, monkeypatch, capsys):
    release = tmp_path / "badd.safetensors"
    shutil.copy(PRETRAINED_DIR / "badd.safetensors", release)
    scored_in = evaluation.predictions

    def terminated_after_one_batch(model, inputs, mask, memory_budget, batch_size=None):
        yield next(scored_in(model, inputs, mask, memory_budget, 4))
        os.kill(os.getpid(), signal.SIGTERM)

    args = ["eval", str(release), "--lengths", "9", "--suite", "random", "--device", "cpu", "--json"]
    monkeypatch.setattr(evaluation, "predictions", terminated_after_one_batch)
    assert main([*args, "--samples", "24", "--record"]) == 130  # the first 4 of the set of 24
    monkeypatch.undo()
    assert main([*args, "--samples", "12", "--record"]) == 0  # a whole set of 12, not a prefix of 24's
    capsys.readouterr()
    assert main([*args, "--samples", "24", "--extend"]) == 0
    output = capsys.readouterr()
    assert "afresh" not in output.err
    last = json.loads(release.with_suffix(".json").read_text())["verifications"][-1]
    assert last["continued_from_card"] == [{"length": 9, "suite": "random", "examples_already_recorded": 4}]
    assert main([*args, "--samples", "24"]) == 0
    assert json.loads(output.out) == json.loads(capsys.readouterr().out)  # as if all 24 were scored at once


@pytest.mark.parametrize(
    "args,message",
    [
        (["solve", "no-such-model", "1+1"], "no model called 'no-such-model'"),
        (["eval", "no-such-model"], "no model called"),
        (["solve", "kvsort", "3102"], "no shipped model for the task 'kvsort' yet"),
        (["train", "--task", "badd", "--max-steps", "0"], "expected a number >= 1"),
        (["train", "--task", "division"], "invalid choice"),
        (["train", "--task", "badd", "--time-budget", "soon"], "expected a number of seconds"),
        (["train", "--task", "copy", "--recipe", "paper", "--reach-samples", "32"], "has no reach check"),
        (["train", "--task", "copy", "--reach-samples", "0"], "expected a number >= 1"),
        (["eval", "x", "--lengths", "4,-1"], "expected a number >= 1"),
        (["eval", "reverse", "--extend", "--by-column"], "--by-column sees only the examples scored now"),
        (["eval", "reverse", "--extra-steps", "5", "--record"], "--extra-steps is a diagnostic"),
        (["eval", "reverse", "--extra-steps", "-5"], "expected a number >= 0"),
        (["eval", "reverse", "--examples", "3", "--extend"], "--examples scores a choice of each set"),
        (["eval", "reverse", "--samples", "8", "--examples", "2,8"], "--examples 8 is not in a set of --samples 8"),
        (["eval", "reverse", "--examples", "1,x"], "expected a whole number, got 'x'"),
    ],
)
def test_bad_arguments_get_one_line_and_no_traceback(args, message):
    result = run(*args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_corrupt_model_file_is_one_line(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00" * 64)
    result = run("solve", str(path), "1+1")
    assert result.returncode == 2 and "broken.safetensors" in result.stderr and "Traceback" not in result.stderr


def test_absurd_lengths_say_what_fits(trained_copy):
    run_dir, _ = trained_copy
    result = run("eval", str(run_dir), "--lengths", "100000000", "--suite", "random", "--samples", "1")
    assert result.returncode == 2 and "widest that fits" in result.stderr and "Traceback" not in result.stderr
    result = run("tasks", "--show", "copy", "--length", "100000000", "--count", "1000")
    assert result.returncode == 2 and "show at most" in result.stderr


def test_reach_samples_reaches_the_trainer(train_configs, tmp_path, capsys):
    assert main(["train", "--task", "copy", "--recipe", "fast", "--reach-samples", "32", "--run-dir", str(tmp_path / "run")]) == 0
    assert train_configs[-1].reach_samples == 32 and train_configs[-1].reach_factor == 100
    assert "not solved after 0 steps" in capsys.readouterr().out
    train = [
        "train",
        "--task",
        "copy",
        "--reach-confirm-samples",
        "1024",
        "--check-gap",
        "500",
        "--ema",
        "0.999",
        "--run-dir",
        str(tmp_path / "more"),
    ]
    assert main(train) == 0
    config = train_configs[-1]
    assert config.reach_confirm_samples == 1024 and config.check_gap == 500 and config.ema_decay == 0.999
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # argparse's own one-line error
        main(["train", "--task", "copy", "--ema", "1", "--run-dir", str(tmp_path / "bad")])
    assert exit_info.value.code == 2 and "expected a decay in [0, 1)" in capsys.readouterr().err
    paper = [
        "train",
        "--task",
        "copy",
        "--recipe",
        "paper",
        "--reach-confirm-samples",
        "1024",
        "--run-dir",
        str(tmp_path / "paper"),
    ]
    assert main(paper) == 2
    assert "--reach-confirm-samples need one" in capsys.readouterr().err


def test_sweep_passes_reach_samples_to_every_run(monkeypatch, tmp_path, capsys):
    import neuralgpu.sweep

    seen = {}

    def record(task, recipe, seeds, out, parallel, train_args, gpus, threads):
        seen["train_args"] = train_args
        return 0  # no run failed; none were started either, so the report is empty

    monkeypatch.setattr(neuralgpu.sweep, "run_sweep", record)
    main(["sweep", "--task", "copy", "--seeds", "0-1", "--reach-samples", "24", "--device", "cpu", "--out", str(tmp_path)])
    args = seen["train_args"]
    assert args[args.index("--reach-samples") + 1] == "24" and "--check-gap" not in args
    main(
        [
            "sweep",
            "--task",
            "copy",
            "--seeds",
            "0",
            "--reach-confirm-samples",
            "256",
            "--check-gap",
            "400",
            "--ema",
            "0.99",
            "--out",
            str(tmp_path / "gap"),
        ]
    )
    args = seen["train_args"]
    assert args[args.index("--reach-confirm-samples") + 1] == "256" and args[args.index("--check-gap") + 1] == "400"
    assert args[args.index("--ema") + 1] == "0.99"
    assert "--compile" not in args
    main(["sweep", "--task", "copy", "--seeds", "0", "--compile", "--device", "cpu", "--out", str(tmp_path / "compiled")])
    assert "--compile" in seen["train_args"]
    # A recipe without a reach check is refused once, before any run starts.
    seen.clear()
    capsys.readouterr()
    paper = [
        "sweep",
        "--task",
        "copy",
        "--recipe",
        "paper",
        "--seeds",
        "0-1",
        "--reach-samples",
        "24",
        "--out",
        str(tmp_path / "paper"),
    ]
    assert main(paper) == 2
    assert "has no reach check" in capsys.readouterr().err and not seen


def test_compile_without_a_cpu_compiler_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("shutil.which", lambda name: None)
    for argv in (
        ["train", "--task", "copy", "--recipe", "tiny", "--device", "cpu", "--compile", "--run-dir", str(tmp_path / "run")],
        ["bench", "--recipe", "tiny", "--device", "cpu", "--compile"],
        ["eval", "copy", "--device", "cpu", "--compile"],
    ):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert "needs a C++ compiler" in error and "drop --compile" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_solve_and_eval_run_with_bf16_convolutions(capsys):
    assert main(["solve", "badd", "1011+110", "--bf16"]) == 0
    assert capsys.readouterr().out.split() == ["10001"]
    assert main(["eval", "reverse", "--lengths", "20", "--suite", "random", "--samples", "8", "--bf16", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert (result["samples"], result["sequence_errors"]) == (8, 0)


def test_a_gpu_out_of_memory_is_one_line_not_a_traceback(monkeypatch, capsys):
    """A GPU shared with other work can run out of memory below the evaluation's own budget."""
    import torch

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(evaluation, "predictions", out_of_memory)
    assert main(["eval", "copy", "--lengths", "20", "--samples", "2", "--device", "cpu"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "Traceback" not in message
    assert "the GPU ran out of memory (CUDA out of memory. Tried to allocate 2.00 GiB)" in message and "--device cpu" in message


def test_other_runtime_errors_are_not_taken_for_memory(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(evaluation, "predictions", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["eval", "copy", "--lengths", "20", "--samples", "2", "--device", "cpu"])
