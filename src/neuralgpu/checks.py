"""Is a run solved? The checks beyond the training length that decide it, and what they cost.

A run whose curriculum is error-free at its maximum length is checked at ``generalization_factor``
times it (10x) and, when the recipe sets a ``reach_factor``, at that many times it: on random
inputs and on every judged structured suite, then on more examples to confirm. Each check runs
its cheapest verdicts first and stops at its first wrong answer. What it scores is counted in
column-steps (``run_work``), the same currency as training, so that ``long_check_share`` (the
most of a run that checks may take) defers the same checks on any machine.

The trainer owns one ``SolvedCheck`` and carries its ``state_dict`` in the resume snapshot.
"""

from __future__ import annotations

import re
import time
from typing import Any

from neuralgpu.evaluate import EvalResult, EvaluationStopped, evaluate
from neuralgpu.model import NeuralGPU
from neuralgpu.tasks import Task, structured_suites
from neuralgpu.train_config import TrainConfig

# A training example costs its forward pass and a backward pass of about twice that.
TRAINING_COST = 3


def run_work(examples: int, width: int) -> float:
    """Column-steps to run ``examples`` inputs of ``width`` columns: the model takes ``width`` steps,
    each over every column. The unit of long_check_share: training and checks in one currency
    that does not depend on how fast the machine is."""
    return float(examples) * width * width


def wrong_column_key(error_key: str) -> str:
    """The metric beside a failed part's sequence error (``eval_seq_error_401``) that names the
    leftmost column a wrong answer got wrong (``eval_first_wrong_column_401``): errors that begin
    at the same column at every length show a model tied to its training lengths, during training."""
    return error_key.replace("_seq_error", "_first_wrong_column")


# A scored set's metric: ``{kind}_seq_error_{length}`` (random inputs) or ``..._{length}_{suite}``.
SCORED_SET = re.compile(r"^(reach_confirm|confirm|eval|reach)_seq_error_(\d+)(?:_(\w+))?$")


def ran_a_check(record: dict[str, Any]) -> bool:
    """Did this log line's evaluation go past the training length (it scored more than one set)?"""
    return sum(SCORED_SET.match(key) is not None for key in record) > 1


def describe_scores(record: dict[str, Any]) -> str:
    """The sets a log line scored, in words ('3 sets clean; 2001 symmetric wrong from column 813'),
    for a person reading a log; '' when it scored none. A check stops at its first wrong set."""
    clean, wrong = 0, []
    for key, error in record.items():
        scored = SCORED_SET.match(key)
        if scored is None:
            continue
        kind, length, suite = scored.groups()
        if not error:
            clean += 1
            continue
        name = f"{length} {suite or 'random'}" + (" (confirming)" if "confirm" in kind else "")
        # A check's set stops at its first wrong batch, so its error rate says little; where it went wrong says more.
        column = record.get(wrong_column_key(key))
        wrong.append(f"{name} {error:.1%} wrong" if column is None else f"{name} wrong from column {column}")
    words = [f"{clean} set{'s' * (clean != 1)} clean"] if clean else []
    if record.get("long_check") == "deferred":
        words.append("the check at 10x deferred (checks have had their share of the run)")
    if record.get("best_check"):
        words.append("the furthest check so far")
    return "; ".join(words + wrong)


class SolvedCheck:
    """The checks at 10x and at the reach length of one run, with what they have cost so far."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.work = 0.0  # column-steps the checks have scored, over the whole run
        self.last_step = 0  # the step of the last check that ran: config.check_gap counts from it
        # Which structured suite failed the last check; tried first at the next one. It never
        # changes a check's verdict, but it changes how much of the check runs, and so the work
        # counted toward long_check_share: it is in the snapshot, or a resumed run could stop elsewhere.
        self.failing_suite: str | None = None
        # The last check's error-free parts, by (length, suite, samples): when that check solves
        # the run, the card's final evaluation reuses them rather than score the same frozen
        # inputs with the same weights again (at the reach length, minutes of CPU time).
        self.clean: dict[tuple[int, str, int], EvalResult] = {}
        # What the check in progress has scored, by (length, suite, samples): every finished part
        # and the stopped one's start. A run stopped during a check keeps it in its snapshot;
        # resumed, the same weights' check takes those parts as they stand (``carried``) and
        # scores only the rest: hours, when the stop came late in a 1,024-input confirmation.
        self.progress: dict[tuple[int, str, int], EvalResult] = {}
        self.carried: dict[tuple[int, str, int], EvalResult] = {}
        # How far the furthest check so far got, in error-free parts: a check stops at its first
        # error, so the count of its clean parts says how far it went. The trainer keeps the
        # weights of the latest check to get this far (``best.safetensors``).
        self.best_parts = 0
        # When the run's time budget ends (a time.perf_counter() reading; None: no budget). A check
        # at 50x can take longer than the rest of a short run on a CPU (badd: seven minutes past a
        # 15-minute budget), so a check still going then stops after its current batch; the
        # trainer keeps it as a stopped one, to finish first on --resume.
        self.deadline: float | None = None
        self.out_of_time = False
        self.task: Task | None = None
        self.long = 0
        self.reach: int | None = None

    def enter(self, task: Task) -> None:
        """Check ``task`` from now on (a new stage): its lengths, and no suite failed yet."""
        top = self.config.curriculum.max_length
        self.task = task
        self.long = task.scaled_length(top, self.config.generalization_factor)
        self.reach = task.scaled_length(top, self.config.reach_factor) if self.config.reach_factor else None
        self.failing_suite = None

    def judged_suites(self) -> list[str]:
        """Random inputs, and every structured suite when the run is judged on them."""
        assert self.task is not None, "enter(task) first"
        return ["random"] + (list(structured_suites(self.task)) if self.config.final_suites == "all" else [])

    def affordable(self, train_work: float) -> bool:
        """Have the checks so far taken no more than their share of the run's work?"""
        return self.work <= self.config.long_check_share * (train_work + self.work)

    def due(self, step: int, train_work: float) -> bool:
        """Should a check run at ``step``? While the checks are within their share, yes; beyond it,
        once ``check_gap`` steps (when set) have passed since the last one that ran."""
        gap = self.config.check_gap
        return self.affordable(train_work) or bool(gap and step - self.last_step >= gap)

    def __call__(self, model: NeuralGPU, step: int = 0) -> dict[str, Any]:
        """Is ``model`` error-free at 10x, and at the reach length when there is one? Random inputs
        at 10x, random at the reach length, every structured suite at 10x, then at the reach
        length, then the confirmations on more examples (at 10x, then on random inputs at the reach
        length): the cheapest verdicts first, and the whole check stops at its first error.

        Past the ``deadline`` it stops after the batch in hand: not solved, ``out_of_time`` in the
        record, and what it scored in ``progress``, for the check that resumes it."""
        self.out_of_time = False
        try:
            return self._check(model, step)
        except EvaluationStopped:
            if not self.out_of_time:
                raise
            return {"solved": False, "out_of_time": True}
        finally:
            self.carried = {}  # a stopped check's parts serve the one check that resumes it, no later one

    def _check(self, model: NeuralGPU, step: int) -> dict[str, Any]:
        config, long, reach = self.config, self.long, self.reach
        self.clean, self.progress = {}, dict(self.carried)  # carried parts stay kept until scored past
        self.last_step = step
        record: dict[str, Any] = {}
        long_result = self._part(model, long, "random", config.long_eval_samples)
        record[f"eval_seq_error_{long}"] = long_result.sequence_error
        record[f"eval_digit_error_{long}"] = long_result.digit_error
        record["solved"] = long_result.sequence_errors == 0
        if not record["solved"]:
            record[wrong_column_key(f"eval_seq_error_{long}")] = long_result.first_wrong_column
            return record
        # Random inputs almost never hold the hard cases (long carries, runs, sorted input): a
        # model that only passes those is not done. One failing suite settles the check, so the
        # suite that failed last time goes first: on badd, running all seven suites at 401 every
        # time cost three times the training between two checks.
        structured = sorted(self.judged_suites()[1:], key=lambda suite: suite != self.failing_suite)
        parts = [
            (reach, ["random"], config.reach_samples, "reach_seq_error"),
            (long, structured, config.long_eval_samples, "eval_seq_error"),
            (reach, structured, config.reach_samples, "reach_seq_error"),
        ]
        if config.confirm_samples > config.long_eval_samples:
            parts.append((long, self.judged_suites(), config.confirm_samples, "confirm_seq_error"))
        if config.reach_confirm_samples > config.reach_samples:
            parts.append((reach, ["random"], config.reach_confirm_samples, "reach_confirm_seq_error"))
        for length, suites, samples, key in parts:
            if length is None or not suites:
                continue
            errors, failed = self.until_first_failure(model, length, suites, samples, key)
            record.update(errors)
            if failed is not None:
                if key in ("eval_seq_error", "reach_seq_error") and failed != "random":
                    self.failing_suite = failed
                record["solved"] = False
                return record
        return record

    def beat_best(self) -> bool:
        """Did the last check get at least as far as every one before it, past its first part?

        A run that is not solved can drift away from its best weights: bmul runs clean on random
        inputs at 50x at one check failed all of them at a later one. At equal progress the later
        check wins: its weights have trained longer on the same footing.
        """
        reached = len(self.clean)
        if reached == 0 or reached < self.best_parts:
            return False
        self.best_parts = reached
        return True

    def until_first_failure(
        self, model: NeuralGPU, length: int, suites: list[str], samples: int, key: str
    ) -> tuple[dict[str, float], str | None]:
        """Sequence error of each suite in turn at ``length``, stopping at the first error.

        One wrong answer settles a check; the rest would only cost time. Returns the errors (keyed
        ``{key}_{length}_{suite}``, over the examples scored, and for the failing suite the leftmost
        column its wrong answer got wrong) and the failing suite, or None when every one was clean.
        """
        errors = {}
        for suite in suites:
            result = self._part(model, length, suite, samples)
            errors[f"{key}_{length}_{suite}"] = result.sequence_error
            if result.sequence_errors:
                errors[wrong_column_key(f"{key}_{length}_{suite}")] = result.first_wrong_column
                return errors, suite
        return errors, None

    def _part(self, model: NeuralGPU, length: int, suite: str, samples: int) -> EvalResult:
        """One suite of a check, scored up to its first wrong answer: the one place that counts a check's work."""
        assert self.task is not None, "enter(task) first"
        key = (length, suite, samples)
        try:
            after = self.carried.pop(key, None)
            result = evaluate(
                model, self.task, length, suite, samples, stop_at_error=True, after=after, on_scored=self._watch_clock
            )
        except EvaluationStopped as stop:
            self.progress[key] = stop.results[-1]
            raise
        # Carried parts count again: the work an unstopped run would have counted, so that
        # long_check_share defers the same checks after a resume.
        self.work += run_work(result.samples, length)
        self.progress[key] = result
        if not result.sequence_errors:  # clean: every one of the samples was scored
            self.clean[length, suite, samples] = result
        return result

    def _watch_clock(self, scored: int) -> None:
        """After every batch a check scores: past the deadline, stop it as Ctrl-C would (the batch is kept)."""
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.out_of_time = True
            raise KeyboardInterrupt

    def progress_state(self) -> list[dict[str, Any]]:
        """The check in progress's scored parts, for the snapshot of a run stopped during it."""
        return [result.to_json() for result in self.progress.values() if result.samples]

    def carry(self, parts: list[dict[str, Any]]) -> None:
        """Take a stopped check's parts (``progress_state``) for the next check, of the same weights."""
        self.carried = {}
        for result in map(EvalResult.from_json, parts):
            self.carried[result.length, result.suite, result.set_size or result.samples] = result

    def state_dict(self) -> dict[str, Any]:
        return {
            "work": self.work,
            "failing_suite": self.failing_suite,
            "last_step": self.last_step,
            "best_parts": self.best_parts,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.work = float(state["work"])
        self.failing_suite = state.get("failing_suite")
        self.last_step = int(state.get("last_step", 0))
        self.best_parts = int(state.get("best_parts", 0))
        self.clean = {}  # restored weights: the last check's parts judged others
