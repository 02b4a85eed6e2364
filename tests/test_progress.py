"""Progress off a terminal: a line a part and at most one an interval, none when asked for none."""

import contextlib
import io
from dataclasses import replace

import torch
from tqdm import tqdm

from neuralgpu.checkpoint import RELEASE_NAME
from neuralgpu.checks import describe_scores
from neuralgpu.evaluate import evaluate_suites
from neuralgpu.model import ModelConfig, NeuralGPU
from neuralgpu.progress import Progress, duration
from neuralgpu.tasks import get_task
from neuralgpu.train import Trainer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0.4, 59.6, 61, 3599, 7380)] == ["0 s", "1 min 0 s", "1 min 1 s", "59 min 59 s", "2 h 3 min"]


def test_off_a_terminal_a_part_writes_a_line_an_interval_and_one_when_it_ends():
    clock, log = Clock(), io.StringIO()
    with contextlib.closing(Progress(150, "card", stream=log, interval=60, clock=clock)) as shown:
        shown.start("length 2001 random", 100)
        for _ in range(10):  # ten batches of 10, 25 s apart: lines at 75 s and 150 s, not at each batch
            clock.now += 25
            shown.update(10)
        shown.finish("none of 100 wrong")
        shown.start("length 2001 carry", 50)
        clock.now += 5
        shown.update(50)
        shown.finish("1 of 50 wrong, the first wrong column 813")
    assert log.getvalue().splitlines() == [
        "card: length 2001 random: 30 of 100 examples, 1 min 15 s; 30 of 150 in all",
        "card: length 2001 random: 60 of 100 examples, 2 min 30 s; 60 of 150 in all",
        "card: length 2001 random: 90 of 100 examples, 3 min 45 s; 90 of 150 in all",
        "card: length 2001 random: none of 100 wrong, 4 min 10 s; 100 of 150 in all",
        "card: length 2001 carry: 1 of 50 wrong, the first wrong column 813, 5 s; 150 of 150 in all",
    ]


def test_on_a_terminal_the_bar_shows_instead_and_asked_for_nothing_it_writes_nothing():
    for stream, show in ((Terminal(), True), (io.StringIO(), False)):
        with contextlib.closing(Progress(10, "", show=show, stream=stream, interval=0, clock=Clock())) as shown:
            shown.start("length 21 random", 10)
            shown.update(5)
            shown.update(5)
            shown.finish("none of 10 wrong")
        assert "examples" not in stream.getvalue() and "wrong" not in stream.getvalue()
        assert ("it/s" in stream.getvalue() or "example/s" in stream.getvalue()) == show  # tqdm's bar, or nothing


def test_evaluating_off_a_terminal_logs_each_parts_outcome(capsys):
    torch.manual_seed(0)
    model, task = NeuralGPU(ModelConfig(channels=8, height=2, copies=1)), get_task("badd")
    results = evaluate_suites(model, task, [21], ["random", "ones"], 12, progress=True)
    lines = capsys.readouterr().err.splitlines()  # captured: not a terminal
    assert len(lines) == len(results) == 2
    for line, result in zip(lines, results):
        assert result.sequence_errors > 0  # an untrained model: the line must carry the count and column
        assert line.startswith(
            f"length 21 {result.suite}: {result.sequence_errors} of 12 wrong, "
            f"the first wrong column {result.first_wrong_column}, "
        )


def test_off_a_terminal_training_writes_a_line_for_each_check(trained_copy, capsys):
    run_dir, solved = trained_copy
    for progress in (None, False):  # None: as `neuralgpu train` runs (capsys's stderr is no terminal); False: quiet
        fresh = Trainer(replace(solved.config, init_from=str(run_dir / RELEASE_NAME)), None, progress=progress)
        fresh.curriculum.load_state_dict(solved.curriculum.state_dict())  # at its full length: a check is due
        record = fresh._summary([], fresh.check_solved())  # the line `neuralgpu train` logs for this step
        capsys.readouterr()
        with tqdm(disable=True) as bar:
            fresh.log(record, bar)
        lines = capsys.readouterr().err.splitlines()
        if progress is False:
            assert lines == []
            continue
        short = solved.eval_lengths[0]
        assert lines == [
            f"step 0 (0 s): length {short}, loss 0.0000, train error 0.0%; 2 sets clean; the furthest check so far; solved"
        ]


def test_training_events_go_to_stderr_beside_the_lines_and_stdout_keeps_the_verdict(trained_copy, capsys):
    _, solved = trained_copy
    for progress in (None, False):
        trainer = Trainer(solved.config, None, progress=progress)
        capsys.readouterr()
        with tqdm(disable=True) as bar:
            trainer.log({"step": 7, **trainer.rollback()}, bar)
        written = capsys.readouterr()
        assert written.out == ""
        expected = [f"step 7: rollback (learning rate now {trainer.lr:.2e})"] if progress is None else []
        assert written.err.splitlines() == expected


def test_a_failed_checks_line_says_where_its_wrong_answer_went_wrong(trained_copy):
    _, solved = trained_copy
    untrained = Trainer(solved.config, None)
    record = untrained.checks(untrained.judged, step=1)  # wrong at 10x: the check stops there
    short, long = solved.eval_lengths
    column = record[f"eval_first_wrong_column_{long}"]
    assert describe_scores(record) == f"{long} random wrong from column {column}"
    # The training length's set is scored whole, so its line gives the share wrong instead.
    both = {**record, f"eval_seq_error_{short}": 0.25}
    assert describe_scores(both) == f"{long} random wrong from column {column}; {short} random 25.0% wrong"
