"""Subcommands that train and compare: train, sweep, report, plot, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neuralgpu.checkpoint import CheckpointError
from neuralgpu.cli.arguments import EXIT_BAD_INPUT, CommandError, refuse_compile_without_a_compiler


def resolve_recipe(args: argparse.Namespace) -> None:
    """A command without --recipe trains with the task's default recipe: name it, for messages and every run of a sweep."""
    from neuralgpu.recipes import default_recipe

    args.recipe = args.recipe or default_recipe(args.task)


def refuse_reach_options_without_a_reach_check(args: argparse.Namespace) -> None:
    """--reach-samples and --reach-confirm-samples size the recipe's reach check; a recipe without one cannot use them."""
    from neuralgpu.recipes import RECIPES, build_config

    given = [
        flag
        for flag, value in (("--reach-samples", args.reach_samples), ("--reach-confirm-samples", args.reach_confirm_samples))
        if value
    ]
    if given and not build_config(args.task, args.recipe).reach_factor:
        with_reach = ", ".join(name for name in RECIPES if build_config(args.task, name).reach_factor)
        raise CommandError(f"recipe {args.recipe!r} has no reach check: {' and '.join(given)} need one ({with_reach})")


def refuse_a_missing_initial_model(args: argparse.Namespace) -> None:
    """--init-from names a model that exists, or the command stops before it starts anything."""
    from neuralgpu.solver import resolve_model

    if args.init_from:
        resolve_model(args.init_from)  # a one-line CheckpointError otherwise


def with_settings(config, settings: list[str] | None):
    """The config with the command line's ``--set FIELD=VALUE`` changes; a bad one is one line of error."""
    from neuralgpu.settings import apply_settings

    try:
        return apply_settings(config, settings or [])
    except ValueError as error:
        raise CommandError(str(error)) from None


def train_config_from_args(args: argparse.Namespace):
    """The TrainConfig a `neuralgpu train` command line asks for: the recipe, its flags, then its --set changes."""
    from neuralgpu.recipes import build_config

    config = build_config(
        args.task,
        args.recipe,
        seed=args.seed,
        max_steps=args.max_steps,
        time_budget=args.time_budget,
        device=args.device,
        stages=args.stages,
        init_from=args.init_from,
        reach_samples=args.reach_samples,
        reach_confirm_samples=args.reach_confirm_samples,
        check_gap=args.check_gap,
        ema_decay=args.ema,
        compile=args.compile or None,
        bf16=args.bf16 or None,
    )
    return with_settings(config, args.set)


def cmd_train(args: argparse.Namespace) -> int:
    from neuralgpu import distributed
    from neuralgpu.evaluate import format_table
    from neuralgpu.train import Trainer
    from neuralgpu.train_config import resolve_device

    resolve_recipe(args)
    refuse_reach_options_without_a_reach_check(args)
    refuse_compile_without_a_compiler(args)
    refuse_a_missing_initial_model(args)
    config = train_config_from_args(args)
    run_dir = args.run_dir or Path("runs") / f"{config.task}-{config.recipe}-seed{config.seed}"
    context = distributed.start(resolve_device(config.device).type)  # a no-op without torchrun
    completed = False
    try:
        # Rank 0 looks before anyone writes, and every rank follows: no rank races another's files.
        if context.from_main(not args.resume and (run_dir / "metrics.jsonl").exists()):
            raise CommandError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-dir")
        if context.is_main:
            ranks = f" on {context.world_size} ranks" if context.enabled else ""
            print(
                f"training {config.task} with recipe {config.recipe!r} (seed {config.seed}){ranks} into {run_dir}",
                file=sys.stderr,
            )
        result = Trainer(config, run_dir, resume=args.resume, distributed=context).run()
        completed = True
    finally:
        distributed.stop(context, completed)
    if context.is_main:
        status = "solved" if result.solved else "not solved"
        print(f"{status} after {result.steps} steps, {result.elapsed:.0f} s; release checkpoint: {run_dir / 'model.safetensors'}")
        print(format_table(result.final))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import torch

    from neuralgpu.sweep import parse_seeds, run_sweep, train_arguments

    seeds = parse_seeds(args.seeds)
    resolve_recipe(args)
    refuse_reach_options_without_a_reach_check(args)  # once, not once a seed
    refuse_compile_without_a_compiler(args)
    refuse_a_missing_initial_model(args)
    from neuralgpu.recipes import build_config

    with_settings(build_config(args.task, args.recipe), args.set)  # refuse a bad --set once, not once a seed
    train_args = train_arguments(args)
    gpus = torch.cuda.device_count() if args.device != "cpu" else 0
    print(
        f"sweeping {args.task}/{args.recipe} over seeds {args.seeds}, {args.parallel} at a time, into {args.out}", file=sys.stderr
    )
    failed = run_sweep(args.task, args.recipe, seeds, args.out, args.parallel, train_args, gpus, args.threads)
    args.run_dirs = [args.out]
    status = cmd_report(args)
    return EXIT_BAD_INPUT if failed else status


def cmd_report(args: argparse.Namespace) -> int:
    from neuralgpu.sweep import Summary, evaluate_run, find_runs, read_run, run_names, write_summary

    rows, unreadable = [], 0
    runs = find_runs(args.run_dirs)
    for run_dir, name in zip(runs, run_names(runs)):
        try:
            extra = []
            if getattr(args, "lengths", None):
                extra = evaluate_run(run_dir, args.lengths, args.samples)
            rows.append(read_run(run_dir, extra, name))
        except (ValueError, CheckpointError) as error:
            unreadable += 1
            print(f"neuralgpu {args.command}: {error}", file=sys.stderr)
    summary = Summary(rows)
    if args.write and len(args.run_dirs) == 1 and rows:
        write_summary(summary, args.run_dirs[0])
    print(json.dumps(summary.to_json(), indent=2) if args.json else summary.table())
    return EXIT_BAD_INPUT if unreadable else 0


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


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from neuralgpu.bench import dense_matmul_tflops, format_bench, results_json, run_bench

    refuse_compile_without_a_compiler(args)
    results = run_bench(
        args.recipe,
        args.task,
        args.length,
        args.batch,
        args.device,
        args.repeats,
        args.checkpoint_steps,
        not args.no_reference,
        compiled=args.compile,
        infer_length=args.infer_length,
        infer_batch=args.infer_batch,
        bf16=args.bf16,
    )
    dense = dense_matmul_tflops(torch.device(results[0].device))
    print(json.dumps(results_json(results, dense)) if args.json else format_bench(results, dense))
    return 0
