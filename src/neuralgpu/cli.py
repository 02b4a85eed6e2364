"""The ``neuralgpu`` command: thin subcommands that parse, call the library and print.

Every expected failure (bad input, unknown name, unreadable checkpoint, too long for memory)
ends in one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from neuralgpu.checkpoint import CheckpointError

EXIT_USAGE = 2
EXIT_BAD_INPUT = 1
MAX_SHOWN_SYMBOLS = 10_000_000  # `tasks --show` prints what it generates: keep that readable


class CommandError(Exception):
    """An expected failure: printed as one line, exit status ``status``."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def length_list(text: str) -> list[int]:
    return [positive_int(part) for part in text.split(",") if part.strip()] or [positive_int("")]


def device_choice(text: str) -> str:
    if text not in ("auto", "cpu", "cuda") and not text.startswith("cuda:"):
        raise argparse.ArgumentTypeError(f"expected auto, cpu or cuda, got {text!r}")
    return text


# --- subcommands ---------------------------------------------------------------------------


def cmd_tasks(args: argparse.Namespace) -> int:
    from neuralgpu.tasks import REGISTRY, get_task

    if args.show is None:
        print(f"{'task':<10} {'base':>4}  {'what it computes':<38} example")
        for name, info in REGISTRY.items():
            print(f"{name:<10} {info.task.base:>4}  {info.summary:<38} {info.example} -> {info.answer}")
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
            print(f"  {_shorten(text)} -> {_shorten(answer)}  {'correct' if right else 'WRONG, expected ' + _shorten(solver.task.oracle(text))}")
    print()
    print(format_models(models))
    print(f"\n{wrong} wrong answers" if wrong else "\nevery answer above matches the oracle")
    return 1 if wrong else 0


def _shorten(text: str, keep: int = 24) -> str:
    return text if len(text) <= 2 * keep + 5 else f"{text[:keep]}...{text[-keep:]} ({len(text)} symbols)"


def cmd_train(args: argparse.Namespace) -> int:
    from neuralgpu.evaluate import format_table
    from neuralgpu import distributed
    from neuralgpu.recipes import build_config
    from neuralgpu.train import Trainer, resolve_device

    config = build_config(
        args.task, args.recipe, seed=args.seed, max_steps=args.max_steps, time_budget=args.time_budget, device=args.device
    )
    run_dir = args.run_dir or Path("runs") / f"{config.task}-{config.recipe}-seed{config.seed}"
    context = distributed.start(resolve_device(config.device).type)  # a no-op without torchrun
    try:
        # Rank 0 looks before anyone writes, and every rank follows: no rank races another's files.
        if context.from_main(not args.resume and (run_dir / "metrics.jsonl").exists()):
            raise CommandError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-dir")
        if context.is_main:
            ranks = f" on {context.world_size} ranks" if context.enabled else ""
            print(f"training {config.task} with recipe {config.recipe!r} (seed {config.seed}){ranks} into {run_dir}", file=sys.stderr)
        result = Trainer(config, run_dir, resume=args.resume, distributed=context).run()
    finally:
        distributed.stop(context)
    if context.is_main:
        status = "solved" if result.solved else "not solved"
        print(f"{status} after {result.steps} steps, {result.elapsed:.0f} s; release checkpoint: {run_dir / 'model.safetensors'}")
        print(format_table(result.final))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from neuralgpu.evaluate import evaluate_suites, format_table
    from neuralgpu.solver import load
    from neuralgpu.tasks import structured_suites

    solver = load(args.model, device=_device(args.device))
    task = solver.task
    suites: list[str] = []
    for name in args.suite.split(","):
        suites.extend(structured_suites(task) if name == "structured" else [name])
    for suite in suites:
        task.check_suite(suite)
    for length in args.lengths:
        task.check_length(length)
    results = evaluate_suites(solver.model, task, args.lengths, suites, args.samples)
    if args.record:
        from neuralgpu.models import record_verification
        from neuralgpu.solver import resolve_model

        command = " ".join(["neuralgpu", "eval", args.model, "--lengths", ",".join(map(str, args.lengths)), "--suite", args.suite,
                            "--samples", str(args.samples)])
        record_verification(resolve_model(args.model), results, command)
    if args.json:
        print(json.dumps([result.to_json() for result in results], indent=2))
    else:
        print(format_table(results))
    return 0


def cmd_solve(args: argparse.Namespace) -> int:
    from neuralgpu.solver import load

    solver = load(args.model, device=_device(args.device))
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


def cmd_bench(args: argparse.Namespace) -> int:
    from neuralgpu.bench import format_bench, results_json, run_bench

    results = run_bench(
        args.recipe, args.task, args.length, args.batch, args.device, args.repeats, args.checkpoint_steps, not args.no_reference
    )
    print(json.dumps(results_json(results)) if args.json else format_bench(results))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from neuralgpu.show import mental_image, render
    from neuralgpu.solver import load

    solver = load(args.model)
    image = mental_image(solver, args.expr)
    render(image, args.out, args.frames, title=f"{solver.card['task']}: {args.expr} = {image.answer}")
    print(f"{args.expr} = {image.answer}; {image.steps} steps drawn to {args.out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from neuralgpu.plot import load_curves, plot_runs
    from neuralgpu.sweep import evaluate_run

    curves = []
    for run_dir in args.run_dirs:
        extra = []
        if args.lengths:
            extra = evaluate_run(run_dir, args.lengths, args.samples)
        curves.append(load_curves(run_dir, extra))
    plot_runs(curves, args.out, args.title)
    print(f"{len(curves)} run(s) plotted to {args.out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import torch

    from neuralgpu.sweep import parse_seeds, run_sweep

    seeds = parse_seeds(args.seeds)
    train_args = ["--device", args.device]
    if args.max_steps:
        train_args += ["--max-steps", str(args.max_steps)]
    if args.time_budget:
        train_args += ["--time-budget", str(args.time_budget)]
    gpus = torch.cuda.device_count() if args.device != "cpu" else 0
    print(f"sweeping {args.task}/{args.recipe} over seeds {args.seeds}, {args.parallel} at a time, into {args.out}", file=sys.stderr)
    failed = run_sweep(args.task, args.recipe, seeds, args.out, args.parallel, train_args, gpus)
    args.run_dirs = [args.out]
    status = cmd_report(args)
    return EXIT_BAD_INPUT if failed else status


def cmd_report(args: argparse.Namespace) -> int:
    from neuralgpu.sweep import Summary, evaluate_run, find_runs, read_run, write_summary

    rows, unreadable = [], 0
    for run_dir in find_runs(args.run_dirs):
        try:
            extra = []
            if getattr(args, "lengths", None):
                extra = evaluate_run(run_dir, args.lengths, args.samples)
            rows.append(read_run(run_dir, extra))
        except (ValueError, CheckpointError) as error:
            unreadable += 1
            print(f"neuralgpu {args.command}: {error}", file=sys.stderr)
    summary = Summary(rows)
    if args.write and len(args.run_dirs) == 1 and rows:
        write_summary(summary, args.run_dirs[0])
    print(json.dumps(summary.to_json(), indent=2) if args.json else summary.table())
    return EXIT_BAD_INPUT if unreadable else 0


def _device(name: str) -> str:
    from neuralgpu.train import resolve_device

    return str(resolve_device(name))


# --- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from neuralgpu import __version__
    from neuralgpu.recipes import DEFAULT_RECIPE, RECIPES
    from neuralgpu.tasks import task_names

    parser = argparse.ArgumentParser(
        prog="neuralgpu", description="Train, evaluate and run Neural GPUs that learn algorithms such as long binary multiplication."
    )
    parser.add_argument("--version", action="version", version=f"neuralgpu {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser("tasks", help="list the tasks, or show generated examples of one")
    tasks.add_argument("--show", metavar="TASK", choices=task_names(), help="print decoded examples of TASK")
    tasks.add_argument("--length", type=positive_int, default=13, help="model width of the examples, in columns (default 13)")
    tasks.add_argument("--count", type=positive_int, default=5, help="how many examples (default 5)")
    tasks.add_argument("--suite", default="random", help="random or a structured suite such as carry (default random)")
    tasks.add_argument("--seed", type=non_negative_int, default=0, help="generator seed (default 0)")
    tasks.set_defaults(run=cmd_tasks)

    models = commands.add_parser(
        "models",
        help="list the shipped models with their cards' headline numbers",
        description="Every trained model that ships inside the package, usable by name in solve, eval, show and "
        "neuralgpu.load(NAME): task, recipe, seed, training steps and seconds, training length, and the longest input "
        "length at which every recorded evaluation (random and structured) found zero errors.",
    )
    models.add_argument("--json", action="store_true", help="print every card in full as JSON")
    models.set_defaults(run=cmd_models)

    demo = commands.add_parser(
        "demo",
        help="the shipped models answer long random problems, checked against the oracle",
        description="For every shipped model: a few random problems --factor times as long as any it trained on, its "
        "answers and whether each matches the oracle; then the table of shipped models and their verified reach.",
    )
    demo.add_argument("--problems", type=positive_int, default=3, help="problems per model (default 3)")
    demo.add_argument("--factor", type=positive_int, default=10, help="how many times the training length (default 10)")
    demo.add_argument("--seed", type=non_negative_int, default=0, help="seed of the problems (default 0)")
    demo.set_defaults(run=cmd_demo)

    train = commands.add_parser("train", help="train a model; writes a run directory")
    train.add_argument("--task", required=True, choices=task_names(), metavar="TASK", help="task to learn (see `neuralgpu tasks`)")
    train.add_argument("--recipe", default=DEFAULT_RECIPE, choices=list(RECIPES), help=f"training recipe (default {DEFAULT_RECIPE})")
    train.add_argument("--run-dir", type=Path, help="where to write the run (default runs/TASK-RECIPE-seedN)")
    train.add_argument("--device", type=device_choice, default="auto", help="auto, cpu or cuda (default auto: cuda if present)")
    train.add_argument("--seed", type=non_negative_int, default=None, help="random seed (default: the recipe's, 0)")
    train.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps (default: the recipe's)")
    train.add_argument("--time-budget", type=positive_float, default=None, metavar="SECONDS", help="stop after this much training time")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last snapshot")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("eval", help="sequence and digit error of a model on frozen evaluation sets")
    evaluate.add_argument("model", metavar="MODEL", help="shipped model name, release .safetensors file or run directory")
    evaluate.add_argument("--lengths", type=length_list, default=[41, 401], help="comma-separated widths (default 41,401)")
    evaluate.add_argument("--suite", default="random,structured", help="comma-separated: random, structured, or suite names")
    evaluate.add_argument("--samples", type=positive_int, default=128, help="examples per length and suite (default 128)")
    evaluate.add_argument("--device", type=device_choice, default="auto", help="auto, cpu or cuda (default auto)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.add_argument("--record", action="store_true", help="add these results, the command and the hardware to the model's card")
    evaluate.set_defaults(run=cmd_eval)

    solve = commands.add_parser(
        "solve",
        help="answer problems written as a person writes them",
        description="Answer problems such as 1011+110 (most-significant digit first). With no EXPR, reads one per line "
        "from standard input. Bad lines get a one-line error on stderr; every valid line is still answered.",
    )
    solve.add_argument("model", metavar="MODEL", help="shipped model name, release .safetensors file or run directory")
    solve.add_argument("expr", nargs="*", metavar="EXPR", help="problems, e.g. 1011+110 or 101*11 (default: read stdin)")
    solve.add_argument("--device", type=device_choice, default="cpu", help="auto, cpu or cuda (default cpu)")
    solve.add_argument("--json", action="store_true", help="one JSON object per input: input, answer, error")
    solve.set_defaults(run=cmd_solve)

    bench = commands.add_parser(
        "bench",
        help="time a training step and inference, beside the plain eager reference",
        description="Median milliseconds of a training step (forward, backward, update) and of inference after warm-up, "
        "and the peak extra memory of a training step, for our model and for a straightforward eager implementation.",
    )
    bench.add_argument("--recipe", default="paper", choices=list(RECIPES), help="model configuration to time (default paper)")
    bench.add_argument("--task", default="badd", choices=task_names(), metavar="TASK", help="task whose inputs are used (default badd)")
    bench.add_argument("--length", type=positive_int, default=41, help="input width in columns (default 41)")
    bench.add_argument("--batch", type=positive_int, default=32, help="batch size (default 32)")
    bench.add_argument("--device", type=device_choice, default="auto", help="auto, cpu or cuda (default auto)")
    bench.add_argument("--repeats", type=positive_int, default=5, help="timed repeats; the median is reported (default 5)")
    bench.add_argument("--checkpoint-steps", action="store_true", help="recompute steps in backward (memory ~sqrt(n) states)")
    bench.add_argument("--no-reference", action="store_true", help="skip the eager reference (it is slow at long lengths)")
    bench.add_argument("--json", action="store_true", help="one JSON object: train_step_ms, infer_ms, peak_mem_mb, ...")
    bench.set_defaults(run=cmd_bench)

    show = commands.add_parser(
        "show",
        help="draw the model's state at every step for one input (PNG grid or GIF animation)",
        description="Render the mental image: the (m, h, n) state before and after each of the n steps. The m channels of "
        "every cell are projected onto their first three principal components (fitted over this input's states) and shown "
        "as red, green and blue, so cells in similar states share a colour. Columns are labelled with the input symbols "
        "(top) and the model's output symbols (bottom). FILE.png: a grid of --frames evenly spaced steps (default 12), or "
        "for a one-row state (the fast recipe's) one picture with a row per step; "
        "FILE.gif: an animation of every step (at most --frames, default 200).",
    )
    show.add_argument("model", metavar="MODEL", help="shipped model name, release .safetensors file or run directory")
    show.add_argument("expr", metavar="EXPR", help="one problem in the task's notation, e.g. 1011+110")
    show.add_argument("--out", type=Path, required=True, metavar="FILE", help="FILE.png (grid of frames) or FILE.gif (animation)")
    show.add_argument("--frames", type=positive_int, default=None, help="how many steps to draw (default 12 for PNG, 200 for GIF)")
    show.set_defaults(run=cmd_show)

    plot = commands.add_parser(
        "plot",
        help="training and generalisation curves of one or more runs on one figure",
        description="Three panels, one colour per run: training sequence error and curriculum length against step (from "
        "metrics.jsonl), and sequence error against input length, random (solid) and worst structured suite (dashed), "
        "from each run's release card plus any --lengths evaluated now.",
    )
    plot.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories written by `neuralgpu train`")
    plot.add_argument("--out", type=Path, required=True, metavar="FILE", help="image to write (.png, .pdf or .svg)")
    plot.add_argument("--lengths", type=length_list, default=None, help="also evaluate the runs' models at these widths")
    plot.add_argument("--samples", type=positive_int, default=64, help="examples per length and suite for --lengths (default 64)")
    plot.add_argument("--title", default="", help="figure title")
    plot.set_defaults(run=cmd_plot)

    sweep = commands.add_parser(
        "sweep",
        help="train several seeds of one task and recipe, then report how many solved",
        description="Runs `neuralgpu train` once per seed into OUT/seed-S, K at a time (one per GPU when several are "
        "visible; CPU cores are split evenly otherwise). Finished seeds are kept and interrupted ones resume, so a "
        "killed sweep continues where it stopped. Ends by writing OUT/summary.txt and OUT/summary.json.",
    )
    sweep.add_argument("--task", required=True, choices=task_names(), metavar="TASK", help="task to learn")
    sweep.add_argument("--recipe", default=DEFAULT_RECIPE, choices=list(RECIPES), help=f"training recipe (default {DEFAULT_RECIPE})")
    sweep.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 or 1,4,7 (default 0-9)")
    sweep.add_argument("--parallel", type=positive_int, default=1, help="runs at a time (default 1)")
    sweep.add_argument("--out", type=Path, required=True, help="directory for the runs and the summary")
    sweep.add_argument("--device", type=device_choice, default="auto", help="auto, cpu or cuda (default auto)")
    sweep.add_argument("--max-steps", type=positive_int, default=None, help="per-run step limit (default: the recipe's)")
    sweep.add_argument("--time-budget", type=positive_float, default=None, metavar="SECONDS", help="per-run training time")
    sweep.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    sweep.set_defaults(run=cmd_sweep, write=True)

    report = commands.add_parser(
        "report",
        help="the success-rate table of existing runs or sweeps",
        description="One row per finished run (seed, solved, steps, wall-clock, sequence error per length on random inputs "
        "and on the worst structured suite) and a line with seeds solved and the median and worst steps to solve.",
    )
    report.add_argument("run_dirs", nargs="+", type=Path, metavar="DIR", help="run directories, or sweep directories holding them")
    report.add_argument("--lengths", type=length_list, default=None, help="also evaluate every run at these widths")
    report.add_argument("--samples", type=positive_int, default=128, help="examples per length and suite for --lengths (default 128)")
    report.add_argument("--write", action="store_true", help="also write summary.txt and summary.json into the (single) DIR")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(run=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `solve MODEL --json 1+1 10+1`: expressions after a flag arrive here, and everything after `--`.
    if getattr(args, "command", None) == "solve":
        before, after = (extra[: extra.index("--")], extra[extra.index("--") + 1 :]) if "--" in extra else (extra, [])
        args.expr += [item for item in before if not item.startswith("-")] + after
        extra = [item for item in before if item.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except CommandError as error:
        print(f"neuralgpu {args.command}: {error}", file=sys.stderr)
        return error.status
    except (CheckpointError, ValueError, MemoryError, OSError) as error:
        print(f"neuralgpu {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"neuralgpu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
