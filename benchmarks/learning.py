"""Learning benchmark: how often, how fast and how well each recipe learns a task.

Trains N seeds of every recipe named (with `neuralgpu sweep`, so an interrupted benchmark resumes)
and prints one table per recipe: seeds solved / N, median and worst steps and wall-clock to solve,
and the sequence error of every run at the lengths asked for, on random inputs and on the worst
structured suite. "Solved" is the trainer's verdict: zero errors on the frozen sets at the maximum
training length, at 10x it, and at the recipe's reach length (fast: 100x for sequence tasks, 50x
for arithmetic).

    python benchmarks/learning.py --task badd --recipes fast,paper --seeds 0-9 --time-budget 900 \\
        --lengths 401 --out bench-runs/badd
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuralgpu.cli.arguments import decay, length_list, positive_float, positive_int
from neuralgpu.recipes import RECIPES
from neuralgpu.sweep import (
    Summary,
    evaluate_run,
    find_runs,
    parse_seeds,
    read_run,
    run_sweep,
    train_arguments,
    write_summary,
)
from neuralgpu.tasks import task_names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="badd", choices=task_names())
    parser.add_argument("--recipes", default="fast,paper", help="comma-separated recipes (default fast,paper)")
    parser.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 (default 0-9)")
    parser.add_argument("--parallel", type=positive_int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--time-budget", type=positive_float, default=None, help="training seconds per run")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="training steps per run")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--compile", action="store_true", help="train every run with --compile (torch.compile'd CGRUs)")
    parser.add_argument("--bf16", action="store_true", help="train every run with --bf16 (bfloat16 convolutions)")
    parser.add_argument(
        "--ema",
        type=decay,
        default=None,
        metavar="DECAY",
        help="train every run with --ema DECAY (a moving average of the weights)",
    )
    parser.add_argument(
        "--set", action="append", default=None, metavar="FIELD=VALUE", help="change a config field in every run (see train --set)"
    )
    parser.add_argument("--lengths", type=length_list, default=[], help="extra evaluation widths, e.g. 401,4001")
    parser.add_argument("--samples", type=positive_int, default=128, help="examples per length and suite (default 128)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the runs (one folder per recipe)")
    args = parser.parse_args()

    recipes = [name for name in args.recipes.split(",") if name]
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    train_args = train_arguments(args)
    for recipe in recipes:
        out = args.out / recipe
        run_sweep(args.task, recipe, parse_seeds(args.seeds), out, args.parallel, train_args)
        rows = [read_run(run, evaluate_run(run, args.lengths, args.samples) if args.lengths else []) for run in find_runs([out])]
        summary = Summary(rows)
        write_summary(summary, out)
        print(f"\n{args.task} / recipe {recipe}  (budget per run: {args.time_budget or '-'} s, {args.max_steps or '-'} steps)")
        print(summary.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
