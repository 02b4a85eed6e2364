"""Sequence and digit error of a model on frozen evaluation sets, per length and per suite.

Every (task, length, suite) has its own fixed seed, so numbers from different runs and versions
are comparable. Long inputs are batched to fit a memory budget.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from neuralgpu.batches import padded_to
from neuralgpu.model import NeuralGPU
from neuralgpu.precision import exact_float32
from neuralgpu.progress import Progress
from neuralgpu.tasks import Batch, Task, stable_seed

EVAL_SEED = 20151125  # the paper's arXiv date: the frozen evaluation sets hang off this seed
FLOAT_BYTES = 4
LIVE_STATE_COPIES = 10  # state-sized tensors alive at once in one inference step (measured roughly)
# On a CPU, a batch whose state outgrows the caches runs slower per example, however much memory
# there is: the shipped badd model at width 401 (state 154 KB an example) took ~100 ms an example
# in batches of 4-16, 122 in 32 and 267 in 64 (2 threads, 32 MiB L3; benchmarks/eval_batch.py).
CPU_STATE_BYTES = 2 * 2**20
# A check that only asks "is anything wrong?" runs this many examples at a time and stops at the
# first batch with an error: a model that fails 30% of inputs is caught after 8, not 32 or 128.
EARLY_EXIT_BATCH = 8
# How many wrong examples a result names: enough to look at the failures without rerunning an
# hour of evaluation, few enough to keep a card small when a model fails most of a set.
NAMED_WRONG_EXAMPLES = 16


@dataclass(frozen=True)
class EvalResult:
    task: str
    length: int
    suite: str
    samples: int
    sequence_errors: int
    digit_errors: int
    digits: int
    # Indices into the frozen set (``eval_batch(task, length, suite, samples)``) of the first
    # NAMED_WRONG_EXAMPLES wrong sequences: which inputs to look at, without scoring them all again.
    wrong_examples: tuple[int, ...] = ()
    # 0 when the examples are the whole frozen set of ``samples``. Otherwise they are the first
    # ``samples`` of the set of ``set_size`` (an early exit, or a stop), whose indices
    # ``wrong_examples`` gives: a set drawn a column at a time begins differently at each size.
    set_size: int = 0
    # The leftmost output column any scored example got wrong (None: none wrong, or a result
    # recorded before this was kept). Where errors begin says what kind of failure it is: a model
    # tied to its training lengths goes wrong from the same column at every longer length.
    first_wrong_column: int | None = None
    # Masked padding columns added to every example, so the model ran this many more steps than
    # the example has columns (``evaluate``'s ``extra_steps``): does it hold its answer once done?
    extra_steps: int = 0
    # Not empty: only these examples of the frozen set of ``set_size`` were scored (``evaluate``'s
    # ``examples``), and ``wrong_examples`` names them by their index in that set.
    examples: tuple[int, ...] = ()

    @property
    def sequence_error(self) -> float:
        return self.sequence_errors / self.samples if self.samples else 0.0

    @property
    def digit_error(self) -> float:
        return self.digit_errors / self.digits if self.digits else 0.0

    def to_json(self) -> dict:
        # Left out at these, as results before them were.
        defaults = {"set_size": 0, "first_wrong_column": None, "extra_steps": 0, "examples": ()}
        fields = {name: value for name, value in asdict(self).items() if name not in defaults or value != defaults[name]}
        return {**fields, "sequence_error": self.sequence_error, "digit_error": self.digit_error}

    @classmethod
    def from_json(cls, record: dict) -> EvalResult:
        """The result ``to_json`` wrote (a card's or a snapshot's), its derived rates left out."""
        fields = {name: record[name] for name in cls.__dataclass_fields__ if name in record}
        return cls(
            **{**fields, "wrong_examples": tuple(fields.get("wrong_examples", ())), "examples": tuple(fields.get("examples", ()))}
        )


def eval_batch(task: Task, length: int, suite: str, samples: int) -> Batch:
    """The frozen evaluation set for (task, length, suite)."""
    rng = np.random.default_rng(stable_seed(EVAL_SEED, task.name, length, suite))
    return task.sample(samples, length, rng, suite)


def continues(task: Task, length: int, suite: str, earlier: EvalResult, samples: int) -> bool:
    """Whether ``earlier``'s examples are the first ones of the frozen set of ``samples``, so that
    scoring only the rest finishes that set. True within one set (a stopped or early-exited
    evaluation) and across sizes where sets grow by appending, as the sequence tasks' random sets
    do, drawn an example at a time; not across sizes of sets drawn a column at a time (arithmetic,
    search, alternating), whose first examples change with the set's size."""
    drawn_from = earlier.set_size or earlier.samples
    if drawn_from == samples or earlier.samples >= samples:
        return True
    count = earlier.samples
    head, whole = eval_batch(task, length, suite, drawn_from), eval_batch(task, length, suite, samples)
    return np.array_equal(head.inputs[:count], whole.inputs[:count]) and np.array_equal(
        head.targets[:count], whole.targets[:count]
    )


def one_state_bytes(model: NeuralGPU, width: int) -> int:
    """One example's state: a single (m, h, width) float tensor."""
    config = model.config
    return config.channels * config.height * width * FLOAT_BYTES


def state_bytes_per_example(model: NeuralGPU, width: int) -> int:
    """What one example holds during an inference step: all its state-sized tensors alive at once."""
    return one_state_bytes(model, width) * LIVE_STATE_COPIES


def inference_batch_size(model: NeuralGPU, width: int, memory_budget: int, device: torch.device | None = None) -> int:
    """How many examples of this width one forward pass takes: as many as fit ``memory_budget``
    bytes, and on a CPU no more than keep one state within ``CPU_STATE_BYTES``."""
    size = max(1, memory_budget // state_bytes_per_example(model, width))
    if device is not None and device.type == "cpu":
        size = min(size, max(1, CPU_STATE_BYTES // one_state_bytes(model, width)))
    return size


def check_fits(model: NeuralGPU, width: int, memory_budget: int) -> None:
    """A clear error when even one example of this width exceeds the memory budget."""
    need = state_bytes_per_example(model, width)
    if need > memory_budget:
        widest = memory_budget // state_bytes_per_example(model, 1)
        raise MemoryError(
            f"an input of width {width} needs about {need / 2**30:.1f} GiB, more than the "
            f"{memory_budget / 2**30:.1f} GiB budget: the widest that fits is {widest} columns"
        )


@torch.no_grad()
def predictions(
    model: NeuralGPU, inputs: np.ndarray, mask: np.ndarray, memory_budget: int = 2**30, batch_size: int | None = None
) -> Iterator[np.ndarray]:
    """Argmax tokens for consecutive batches of token rows of one width, one array a batch, computed
    in full float32 (``precision.exact_float32``: no TF32 on a GPU).

    Batches fit ``memory_budget`` (and the CPU's caches); ``batch_size`` caps them further.
    """
    check_fits(model, inputs.shape[1], memory_budget)
    device = next(model.parameters()).device
    step = inference_batch_size(model, inputs.shape[1], memory_budget, device)
    if batch_size is not None:
        step = min(step, batch_size)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(inputs), step):
            tokens = torch.from_numpy(inputs[start : start + step]).to(device)
            columns = torch.from_numpy(mask[start : start + step]).to(device)
            with exact_float32():  # an answer must not depend on a GPU's TF32 default
                predicted = model(tokens, columns).logits.argmax(-1).cpu().numpy()
            yield predicted
    finally:
        model.train(was_training)


def predict(model: NeuralGPU, inputs: np.ndarray, mask: np.ndarray, memory_budget: int = 2**30) -> np.ndarray:
    """Argmax tokens (B, n) for token rows of one width, in batches that fit ``memory_budget``."""
    outputs = list(predictions(model, inputs, mask, memory_budget))
    return np.concatenate(outputs) if outputs else np.zeros_like(inputs)


def score(batch: Batch, predicted: np.ndarray) -> tuple[int, int, int]:
    """(sequence errors, digit errors, digits scored): every column in the mask is scored."""
    return tally(wrong_symbols(batch, predicted), batch.mask)


def tally(wrong: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    """(sequence errors, digit errors, digits scored) from the (B, n) wrong symbols and mask."""
    return int(wrong.any(axis=1).sum()), int(wrong.sum()), int(mask.sum())


def wrong_symbols(batch: Batch, predicted: np.ndarray) -> np.ndarray:
    """(B, n) True where a scored column's prediction differs from the target."""
    return (predicted != batch.targets) & batch.mask


def evaluate(
    model: NeuralGPU,
    task: Task,
    length: int,
    suite: str = "random",
    samples: int = 128,
    memory_budget: int = 2**30,
    stop_at_error: bool = False,
    on_scored: Callable[[int], object] | None = None,
    after: EvalResult | None = None,
    on_wrong: Callable[[np.ndarray], object] | None = None,
    extra_steps: int = 0,
    examples: Sequence[int] = (),
) -> EvalResult:
    """Errors on the frozen set of ``samples`` examples; with ``stop_at_error``, on its first
    ``EARLY_EXIT_BATCH``-sized batches up to and including the first one with an error (the
    result's ``samples`` says how many were scored, and ``set_size`` of which set).
    ``on_scored(count)`` hears of every batch scored (a progress bar's ``update``), and
    ``on_wrong(wrong)`` sees its (B, n) wrong symbols (``columns.ColumnErrors.add``).

    ``after``, an earlier result of the same model whose examples ``continues`` the set, is taken as it
    stands: only the examples past it are scored, and the result counts both. A stop (Ctrl-C,
    SIGTERM) raises ``EvaluationStopped`` carrying the prefix scored so far, so hours of scoring
    can be recorded and continued rather than lost; so does the GPU running out of memory (a GPU
    shared with other work can, below ``memory_budget``), as ``OutOfMemoryMidEvaluation``.

    ``extra_steps`` pads every example with that many masked columns: the model runs that many more
    steps than the example has columns, and is scored on the example's own. A model whose answer
    is a fixed point keeps it; one that reads its answer off at step n does not (a diagnostic:
    the checks, the cards and ``continues`` know nothing of it).

    ``examples``, indices into the frozen set of ``samples``, scores only those (say the ones a card
    names wrong, to see whether other weights get them right in seconds instead of hours); the
    result's ``samples`` counts them and its ``wrong_examples`` names them by their index in the set.
    """
    if extra_steps < 0:
        raise ValueError(f"extra_steps must be >= 0, got {extra_steps}")
    outside = [index for index in examples if not 0 <= index < samples]
    if outside:
        raise ValueError(f"example {outside[0]} is not in a set of {samples}: give indices from 0 to {samples - 1}")
    if examples and (after is not None or stop_at_error):
        raise ValueError("a choice of examples is scored whole and afresh: not continued, not stopped at an error")
    if extra_steps and after is not None:
        raise ValueError("a result with extra steps cannot be continued; evaluate afresh")
    check_fits(model, task.width(length) + extra_steps, memory_budget)  # before generating anything big
    if after is not None and (after.task, after.length, after.suite) != (task.name, length, suite):
        raise ValueError(f"cannot continue {after.task} {after.suite} at {after.length} with {task.name} {suite} at {length}")
    if after is not None and not continues(task, length, suite, after, samples):
        raise ValueError(
            f"cannot continue {task.name} {suite} at {length}: its frozen set is drawn a column at a time, so the first "
            f"{after.samples} of {after.set_size or after.samples} examples are not the first of {samples}; evaluate afresh"
        )
    if after is not None and after.samples >= samples:
        return after  # nothing left to score
    # The result so far, replaced whole after each batch: a stop landing anywhere in a batch
    # leaves it as it was after the last one, never with half a batch counted.
    # (A result with extra steps is never continued: ``after`` and ``extra_steps`` are refused together above.)
    scored = (
        after
        if after is not None
        else EvalResult(task.name, length, suite, 0, 0, 0, 0, set_size=samples, extra_steps=extra_steps)
    )
    if stop_at_error and scored.sequence_errors:
        return scored
    batch, set_size = eval_batch(task, length, suite, samples), samples
    if examples:
        chosen = list(examples)
        batch, samples = Batch(batch.inputs[chosen], batch.targets[chosen]), len(chosen)
    batch = padded_to(batch, batch.inputs.shape[1] + extra_steps)
    batch_size = EARLY_EXIT_BATCH if stop_at_error else None
    first = scored.samples
    try:
        # closing(): on an early exit the generator ends at once and puts the model back in its mode.
        with contextlib.closing(
            predictions(model, batch.inputs[first:], batch.mask[first:], memory_budget, batch_size)
        ) as batches:
            for predicted in batches:
                rows = slice(scored.samples, scored.samples + len(predicted))
                part = Batch(batch.inputs[rows], batch.targets[rows])
                wrong = wrong_symbols(part, predicted)  # (B, n): scored once, for the result and on_wrong
                scored = with_batch(scored, wrong, part.mask, samples)
                if on_wrong is not None:
                    on_wrong(wrong[:, : wrong.shape[1] - extra_steps])  # the example's own columns
                if on_scored is not None:
                    on_scored(len(predicted))
                if stop_at_error and scored.sequence_errors:
                    break
    except KeyboardInterrupt:
        raise EvaluationStopped([named_by_set(scored, examples, set_size)]) from None
    except torch.cuda.OutOfMemoryError as error:
        raise OutOfMemoryMidEvaluation([named_by_set(scored, examples, set_size)], error) from error
    return named_by_set(scored, examples, set_size)


def named_by_set(scored: EvalResult, examples: Sequence[int], set_size: int) -> EvalResult:
    """``scored``, a result on the chosen ``examples`` of a frozen set, with its wrong examples named by
    their index in that set, the set's size and the choice kept (unchanged when none was chosen)."""
    if not examples:
        return scored
    wrong = tuple(examples[position] for position in scored.wrong_examples)
    return replace(scored, wrong_examples=wrong, set_size=set_size, examples=tuple(examples[: scored.samples]))


def with_batch(scored: EvalResult, wrong: np.ndarray, mask: np.ndarray, set_size: int) -> EvalResult:
    """``scored``, the result on the first examples of the frozen set of ``set_size``, with the
    next examples counted in: their (B, n) ``wrong`` symbols and the ``mask`` of columns scored."""
    sequence_errors, digit_errors, digits = tally(wrong, mask)
    wrong_rows = scored.samples + np.flatnonzero(wrong.any(axis=1))
    named = scored.wrong_examples + tuple(int(row) for row in wrong_rows[: NAMED_WRONG_EXAMPLES - len(scored.wrong_examples)])
    samples = scored.samples + len(wrong)
    return replace(
        scored,
        samples=samples,
        sequence_errors=scored.sequence_errors + sequence_errors,
        digit_errors=scored.digit_errors + digit_errors,
        digits=scored.digits + digits,
        wrong_examples=named,
        set_size=set_size if samples < set_size else 0,
        first_wrong_column=leftmost_wrong_column(scored, wrong),
    )


def leftmost_wrong_column(scored: EvalResult, wrong: np.ndarray) -> int | None:
    """The leftmost wrong column of ``scored`` and of the (B, n) ``wrong`` symbols of its next examples."""
    if scored.sequence_errors and scored.first_wrong_column is None:
        return None  # recorded before the column was kept: unknown, and a later one could mislead
    columns = np.flatnonzero(wrong.any(axis=0))
    if not len(columns):
        return scored.first_wrong_column
    if scored.first_wrong_column is None:
        return int(columns[0])
    return min(scored.first_wrong_column, int(columns[0]))


class EvaluationStopped(KeyboardInterrupt):
    """A stop during an evaluation, with what was scored by then: every finished result, and the
    stopped one's prefix (its ``samples`` says how far it got; 0 when no batch was finished)."""

    def __init__(self, results: list[EvalResult]):
        super().__init__()
        self.results = results


class OutOfMemoryMidEvaluation(torch.cuda.OutOfMemoryError):
    """The GPU ran out of memory during an evaluation: torch's error (its message, and caught
    wherever that error is), with what was scored by then, as ``EvaluationStopped`` carries it."""

    def __init__(self, results: list[EvalResult], error: BaseException):
        super().__init__(str(error))
        self.results = results


def evaluate_suites(
    model: NeuralGPU,
    task: Task,
    lengths: list[int],
    suites: list[str],
    samples: int,
    progress: bool = False,
    earlier: dict[tuple[int, str], EvalResult] | None = None,
    memory_budget: int = 2**30,
    on_wrong: Callable[[int, str, np.ndarray], object] | None = None,
    extra_steps: int = 0,
    examples: Sequence[int] = (),
) -> list[EvalResult]:
    """One result per (length, suite), lengths outermost; ``progress`` shows a bar on a terminal and
    a line a part (and a minute) elsewhere.

    ``earlier`` maps (length, suite) to a result to continue (see ``evaluate``'s ``after``), and
    ``on_wrong(length, suite, wrong)`` sees every batch's wrong symbols, and ``examples`` chooses
    the examples of each set to score (see ``evaluate``). A stop raises ``EvaluationStopped`` with
    the finished results and the stopped one's prefix; the GPU out of memory,
    ``OutOfMemoryMidEvaluation`` with the same.
    """
    earlier = earlier or {}
    plan = [(length, suite, earlier.get((length, suite))) for length in lengths for suite in suites]
    left = [len(examples) or max(samples - (after.samples if after else 0), 0) for _, _, after in plan]
    with contextlib.closing(Progress(sum(left), "", show=progress)) as shown:
        results: list[EvalResult] = []
        for (length, suite, after), count in zip(plan, left):
            shown.start(f"length {length} {suite}", count)
            try:
                seen = None if on_wrong is None else functools.partial(on_wrong, length, suite)
                results.append(
                    evaluate(
                        model,
                        task,
                        length,
                        suite,
                        samples,
                        memory_budget,
                        on_scored=shown.update,
                        after=after,
                        on_wrong=seen,
                        extra_steps=extra_steps,
                        examples=examples,
                    )
                )
            except EvaluationStopped as stop:
                raise EvaluationStopped(results + stop.results) from None
            except OutOfMemoryMidEvaluation as failure:
                raise OutOfMemoryMidEvaluation(results + failure.results, failure) from failure.__cause__
            except KeyboardInterrupt:  # before its first batch began: nothing of it was scored
                raise EvaluationStopped(results) from None
            shown.finish(outcome(results[-1]))
        return results


def outcome(result: EvalResult) -> str:
    """How a result came out, in a few words for a progress line."""
    if not result.sequence_errors:
        return f"none of {result.samples:,} wrong"
    column = "" if result.first_wrong_column is None else f", the first wrong column {result.first_wrong_column}"
    return f"{result.sequence_errors:,} of {result.samples:,} wrong{column}"


def format_table(results: list[EvalResult]) -> str:
    """A fixed-width table: one row per (length, suite)."""
    task_width = max([10, *(len(result.task) for result in results)])  # right-shift is 11 symbols
    header = f"{'task':<{task_width}} {'length':>7} {'suite':<13} {'samples':>7} {'seq err':>9} {'digit err':>10} {'from col':>8}"
    lines = [header, "-" * len(header)]
    for result in results:
        column = "-" if result.first_wrong_column is None else str(result.first_wrong_column)
        suite = f"{result.suite} +{result.extra_steps}" if result.extra_steps else result.suite  # run longer: say so
        lines.append(
            f"{result.task:<{task_width}} {result.length:>7} {suite:<13} {result.samples:>7} "
            f"{result.sequence_error:>9.2%} {result.digit_error:>10.4%} {column:>8}"
        )
    named = [
        f"  {result.suite} at {result.length}: {', '.join(map(str, result.wrong_examples))}"
        for result in results
        if result.wrong_examples
    ]
    if named:
        lines += ["wrong examples (indices into each frozen set; the first few):", *named]
    chosen = {(result.examples, result.set_size) for result in results if result.examples}
    for examples, set_size in sorted(chosen):
        lines.append(f"scored only examples {', '.join(map(str, examples))} of each frozen set of {set_size}")
    return "\n".join(lines)
