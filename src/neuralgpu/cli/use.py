"""Subcommands that use trained models: tasks, models, demo, solve, eval, show."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuralgpu.cli.arguments import (
    EXIT_BAD_INPUT,
    MAX_SHOWN_SYMBOLS,
    CommandError,
    gpu_memory_message,
    refuse_compile_without_a_compiler,
    resolve_device_name,
)
from neuralgpu.memory import reuse_freed_blocks

if TYPE_CHECKING:  # the commands import the library when they run, to start fast
    from neuralgpu.evaluate import EvalResult
    from neuralgpu.tasks import Task

Command = Callable[[argparse.Namespace], int]


def load_model(spec: str, device: str = "cpu"):
    """``solver.load(spec)``, saying on standard error when a run's snapshot stands in for its release."""
    from neuralgpu.solver import load

    solver = load(spec, device=device)
    step = solver.card.get("snapshot_step")
    if step is not None:
        print(f"neuralgpu: {spec} has no release yet; using its last snapshot, step {step}{best_hint(spec)}", file=sys.stderr)
    return solver


def best_hint(run_dir: str) -> str:
    """Where a run keeps the weights of its furthest check, for a person about to use its last
    snapshot instead: a run that drifts may have been better there (empty when it has none)."""
    from neuralgpu.checkpoint import BEST_NAME, CheckpointError, read_card

    best = Path(run_dir) / BEST_NAME
    try:
        return f"; its furthest check so far, step {read_card(best)['best_check']['step']}, is in {best}"
    except (CheckpointError, KeyError, TypeError):  # none yet, or unreadable: the snapshot is all there is to say
        return ""


def only_infers(command: Command) -> Command:
    """A command whose process only runs models: keep freed state memory for the next step
    (see ``neuralgpu.memory``; long CPU evaluation otherwise faults its pages in every step), and
    compute in full float32 on a GPU, pictures too (``neuralgpu.precision``)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from neuralgpu.precision import exact_float32

        reuse_freed_blocks()
        with exact_float32():
            return command(args)

    return run


def cmd_tasks(args: argparse.Namespace) -> int:
    from neuralgpu.tasks import REGISTRY, get_task

    if args.show is None:
        name_width = max(len("task"), *map(len, REGISTRY))
        summary_width = max(len(info.summary) for info in REGISTRY.values())
        print(f"{'task':<{name_width}} {'base':>4}  {'what it computes':<{summary_width}} example")
        for name, info in REGISTRY.items():
            print(f"{name:<{name_width}} {info.task.base:>4}  {info.summary:<{summary_width}} {info.example} -> {info.answer}")
        return 0
    task = get_task(args.show)
    if args.length * args.count > MAX_SHOWN_SYMBOLS:
        raise CommandError(f"--length x --count is {args.length * args.count:,} symbols; show at most {MAX_SHOWN_SYMBOLS:,}")
    rng = np.random.default_rng(args.seed)
    batch = task.sample(args.count, args.length, rng, args.suite)
    width = batch.inputs.shape[1]
    for inputs, targets in zip(batch.inputs, batch.targets):
        print(f"{task.input_text(inputs)} -> {task.answer_text(targets, width)}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from neuralgpu.models import format_models, shipped_models

    models = shipped_models()
    if args.json:
        print(json.dumps([{"name": model.name, **model.card} for model in models], indent=2))
    else:
        print(format_models(models) if models else "no shipped models are installed")
    return 0


@only_infers
def cmd_demo(args: argparse.Namespace) -> int:
    from neuralgpu.models import format_models, shipped_models
    from neuralgpu.solver import load

    models = shipped_models()
    if not models:
        raise CommandError("no shipped models are installed; train one with `neuralgpu train --task copy`")
    rng = np.random.default_rng(args.seed)
    wrong = 0
    for model in models:
        solver = load(model.name)
        length = solver.task.scaled_length(model.train_length, args.factor)
        batch = solver.task.sample(args.problems, length, rng)
        texts = [solver.task.input_text(row) for row in batch.inputs]
        print(f"{model.name}: {args.problems} random problems {args.factor}x as long as any it trained on ({length} columns)")
        for text, answer in zip(texts, solver.solve(texts)):
            right = answer == solver.task.oracle(text)
            wrong += not right
            print(
                f"  {_shorten(text)} -> {_shorten(answer)}  {'correct' if right else 'WRONG, expected ' + _shorten(solver.task.oracle(text))}"
            )
    print()
    print(format_models(models))
    print(f"\n{wrong} wrong answers" if wrong else "\nevery answer above matches the oracle")
    return 1 if wrong else 0


def _shorten(text: str, keep: int = 24) -> str:
    return text if len(text) <= 2 * keep + 5 else f"{text[:keep]}...{text[-keep:]} ({len(text)} symbols)"


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """Inside, SIGTERM (`kill`, a scheduler's preemption) stops the process as Ctrl-C does, so a
    long evaluation stopped either way still reports, and records, what it scored."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _continuable_results(
    card: dict, task: Task, lengths: list[int], suites: list[str], samples: int
) -> dict[tuple[int, str], EvalResult]:
    """Per asked (length, suite), the card's largest result that scoring on can finish (--extend).
    A smaller one may continue where the largest cannot: a stopped part of the asked set beside a
    whole smaller set drawn a column at a time."""
    from neuralgpu.evaluate import continues
    from neuralgpu.models import recorded_results

    earlier = {}
    for (length, suite), results in recorded_results(card).items():
        if length not in lengths or suite not in suites:
            continue
        going_on = next((result for result in results if continues(task, length, suite, result, samples)), None)
        if going_on is not None:
            earlier[length, suite] = going_on
        else:
            print(
                f"neuralgpu eval: {suite} at {length} is scored afresh: {task.name}'s frozen sets there are drawn a column "
                f"at a time, so the card's {results[0].samples} examples are not the first of {samples}",
                file=sys.stderr,
            )
    return earlier


def _record(
    args: argparse.Namespace, results: list[EvalResult], earlier: dict[tuple[int, str], EvalResult], stopped: bool
) -> int:
    """Add the results that scored anything new to the model's card; how many were added."""
    from neuralgpu.models import record_verification
    from neuralgpu.solver import resolve_model

    already = {key: result.samples for key, result in earlier.items()}
    fresh = [result for result in results if result.samples > already.get((result.length, result.suite), 0)]
    if fresh:
        lengths = ",".join(map(str, args.lengths))
        command = f"neuralgpu eval {args.model} --lengths {lengths} --suite {args.suite} --samples {args.samples}"
        command += " --extend" * args.extend + " --compile" * args.compile + " --bf16" * args.bf16
        continued = {key: already[key] for key in ((result.length, result.suite) for result in fresh) if key in already}
        record_verification(resolve_model(args.model), fresh, command, continued, stopped)
    return len(fresh)


@only_infers
def cmd_eval(args: argparse.Namespace) -> int:
    from neuralgpu.columns import ColumnErrors, format_columns
    from neuralgpu.evaluate import EvaluationStopped, OutOfMemoryMidEvaluation, evaluate_suites, format_table
    from neuralgpu.tasks import structured_suites

    refuse_compile_without_a_compiler(args)
    if args.by_column and args.extend:
        raise CommandError("--by-column sees only the examples scored now, not those --extend takes from the card; use one")
    if args.examples and (args.record or args.extend):
        raise CommandError(
            "--examples scores a choice of each set and is not recorded on a card: drop --record/--extend, or --examples"
        )
    outside = [index for index in args.examples if index >= args.samples]
    if outside:
        raise CommandError(f"--examples {outside[0]} is not in a set of --samples {args.samples}: give indices below it")
    if args.extra_steps and (args.record or args.extend):
        raise CommandError(
            "--extra-steps is a diagnostic and is not recorded on a card: drop --record/--extend, or --extra-steps"
        )
    solver = load_model(args.model, device=resolve_device_name(args.device))
    if (args.record or args.extend) and "snapshot_step" in solver.card:
        raise CommandError(
            f"{args.model}: a snapshot has no card to record on; evaluate without --record/--extend, or when the run has ended"
        )
    solver.model.bf16_convolutions(args.bf16)
    if args.compile:
        solver.model.compile_cells()
    task = solver.task
    suites: list[str] = []
    for name in args.suite.split(","):
        suites.extend(structured_suites(task) if name == "structured" else [name])
    for suite in suites:
        task.check_suite(suite)
    for length in args.lengths:
        task.check_length(length)
    earlier = _continuable_results(solver.card, task, args.lengths, suites, args.samples) if args.extend else {}
    columns = {(length, suite): ColumnErrors(task.name, length, suite) for length in args.lengths for suite in suites}
    on_wrong = (lambda length, suite, wrong: columns[length, suite].add(wrong)) if args.by_column else None
    stopped, out_of_memory = False, None
    try:
        with terminated_as_interrupted():
            results = evaluate_suites(
                solver.model,
                task,
                args.lengths,
                suites,
                args.samples,
                progress=True,
                earlier=earlier,
                on_wrong=on_wrong,
                extra_steps=args.extra_steps,
                examples=args.examples,
            )
    except EvaluationStopped as stop:
        results, stopped = stop.results, True
    except OutOfMemoryMidEvaluation as failure:  # recorded as a stop is: what was scored is kept
        results, out_of_memory = failure.results, failure
    incomplete = stopped or out_of_memory is not None
    recorded = _record(args, results, earlier, incomplete) if args.record or args.extend else 0
    profiles = [columns[result.length, result.suite] for result in results] if args.by_column else []
    if args.json:
        rows = [result.to_json() for result in results]
        for row, profile in zip(rows, profiles):
            row.update(profile.to_json())
        print(json.dumps(rows, indent=2))
    elif results:
        print(format_table(results))
        if profiles:
            print(format_columns(profiles))
    kept = f"; recorded the {recorded} results above on the card, run the same command with --extend to go on" if recorded else ""
    if out_of_memory is not None:
        raise CommandError(f"{gpu_memory_message(out_of_memory)}; the table holds what was scored{kept}")
    if stopped:
        print(f"neuralgpu eval: stopped; the table holds what was scored{kept}", file=sys.stderr)
        return 130
    return 0


@only_infers
def cmd_solve(args: argparse.Namespace) -> int:

    solver = load_model(args.model, device=resolve_device_name(args.device))
    solver.model.bf16_convolutions(args.bf16)
    texts = args.expr if args.expr else [line.rstrip("\r\n") for line in sys.stdin]
    if not texts:
        raise CommandError("nothing to solve: give expressions as arguments or one per line on standard input")
    failed = 0
    for number, answer in enumerate(solver.answer(texts), start=1):
        if args.json:
            print(json.dumps(answer.to_json()))
        elif answer.answer is not None:
            print(answer.answer)
        if answer.error is not None:
            failed += 1
            where = f"line {number}" if not args.expr else f"input {number}"
            print(f"neuralgpu solve: {where} ({answer.text[:60]!r}): {answer.error}", file=sys.stderr)
    return EXIT_BAD_INPUT if failed else 0


@only_infers
def cmd_show(args: argparse.Namespace) -> int:
    from neuralgpu.show import mental_image, render

    solver = load_model(args.model)
    if args.settle:
        from neuralgpu.settle import check_picture_path, render_settling, settling

        check_picture_path(args.out)
        record = settling(solver, args.expr)
        summary = record.summary()
        render_settling(record, args.out, title=f"{solver.card['task']}, {len(record.input_symbols)} columns\n{summary}")
        print(f"{summary}; drawn to {args.out}")
        return 0
    image = mental_image(solver, args.expr)
    render(image, args.out, args.frames, title=f"{solver.card['task']}: {args.expr} = {image.answer}")
    print(f"{args.expr} = {image.answer}; {image.steps} steps drawn to {args.out}")
    return 0
