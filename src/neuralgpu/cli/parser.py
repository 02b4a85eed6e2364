"""The ``neuralgpu`` argument parser: every subcommand, its flags and its help."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuralgpu.cli.arguments import (
    decay,
    device_choice,
    index_list,
    length_list,
    non_negative_int,
    positive_float,
    positive_int,
    task_list,
)
from neuralgpu.cli.training import cmd_bench, cmd_plot, cmd_report, cmd_sweep, cmd_train
from neuralgpu.cli.use import cmd_demo, cmd_eval, cmd_models, cmd_show, cmd_solve, cmd_tasks

COMPILE_HELP = (
    "run the CGRUs through torch.compile: faster steps (on a CPU it needs a C++ compiler such as g++; the first step "
    "compiles for seconds), the same training up to float rounding, so not bit for bit the eager run"
)

BF16_HELP = (
    "run the CGRUs' convolutions in bfloat16 and everything else in float32: faster convolutions on CPUs with AMX "
    "(measured) and GPUs with tensor cores (not measured), maybe slower elsewhere. Answers are not guaranteed to equal "
    "float32's; on the shipped models the tests find them equal (README: Speed and memory)"
)


BF16_TRAIN_HELP = (
    "training steps run the CGRUs' convolutions in bfloat16 (state, gates, weights and optimizer in float32; checks "
    "and the release in float32): faster where the hardware multiplies bfloat16 faster (GPU tensor cores, CPUs with "
    "AVX-512 BF16 or AMX), not bit for bit the float32 run"
)
RECIPE_HELP = (
    "training recipe (default: the one that learned the task here: fast; fast-cdrop for arithmetic other than badd, "
    "fast-1d for duplicate)"
)
SET_HELP = (
    "change one field of the recipe's config, by its dotted name, e.g. --set model.candidate_dropout=0.5 "
    "--set hard_share=0.2 (repeatable; fields as in TrainConfig, ModelConfig and CurriculumConfig); the run's "
    "recorded command repeats them"
)


def build_parser() -> argparse.ArgumentParser:
    from neuralgpu import __version__
    from neuralgpu.recipes import RECIPES
    from neuralgpu.tasks import task_names

    parser = argparse.ArgumentParser(
        prog="neuralgpu",
        description="Train, evaluate and run Neural GPUs that learn algorithms such as long binary multiplication.",
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
    train.add_argument(
        "--task", required=True, choices=task_names(), metavar="TASK", help="task to learn (see `neuralgpu tasks`)"
    )
    train.add_argument(
        "--recipe",
        default=None,
        choices=list(RECIPES),
        help=RECIPE_HELP,
    )
    train.add_argument("--run-dir", type=Path, help="where to write the run (default runs/TASK-RECIPE-seedN)")
    train.add_argument("--device", type=device_choice, default="auto", help="auto, cpu or cuda (default auto: cuda if present)")
    train.add_argument("--seed", type=non_negative_int, default=None, help="random seed (default: the recipe's, 0)")
    train.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps (default: the recipe's)")
    train.add_argument(
        "--time-budget",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop after this much training time, checks included: a check still going then stops and "
        "--resume with a larger budget finishes it first; then the release's card is scored (minutes at 50x on a CPU, "
        "with a progress bar)",
    )
    train.add_argument(
        "--reach-samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="examples of every suite the reach check (fast, fast-1d: 100x for sequence tasks, 50x for arithmetic) "
        "must answer without error before the run counts as solved (default: the recipe's, 8); more catches rarer errors",
    )
    train.add_argument(
        "--reach-confirm-samples",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="random examples at the reach length a run must also answer without error before it stops as solved "
        "(default: the recipe's, 64); 1,024 makes the run's last check the full 100x verification",
    )
    train.add_argument(
        "--check-gap",
        type=non_negative_int,
        default=None,
        metavar="STEPS",
        help="run a check at 10x and beyond at least every STEPS steps once the curriculum is done, even when "
        "checks have used their share of the run (default: the recipe's, 0 = the share alone decides)",
    )
    train.add_argument(
        "--ema",
        type=decay,
        default=None,
        metavar="DECAY",
        help="keep a moving average of the weights with this decay (e.g. 0.999) and judge, record and release "
        "the average instead of the last step's weights (default: the recipe's, 0 = none)",
    )
    train.add_argument(
        "--stages",
        type=task_list,
        default=None,
        metavar="TASK,...",
        help="tasks to learn first, in order, each until error-free at the full training length "
        "(a curriculum across bases: --task add --stages badd,qadd)",
    )
    train.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL",
        help="start from this model's weights instead of a fresh initialisation: a shipped model's name, a release "
        ".safetensors file or a run directory (its weight average when it keeps one); its architecture must be the "
        "recipe's, and the optimizer, curriculum and checks start afresh (fine-tuning, or --task add --init-from a qadd run)",
    )
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last snapshot")
    train.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    train.add_argument("--bf16", action="store_true", help=BF16_TRAIN_HELP)
    train.add_argument("--set", action="append", default=None, metavar="FIELD=VALUE", help=SET_HELP)
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("eval", help="sequence and digit error of a model on frozen evaluation sets")
    evaluate.add_argument("model", metavar="MODEL", help="shipped model name, release .safetensors file or run directory")
    evaluate.add_argument("--lengths", type=length_list, default=[41, 401], help="comma-separated widths (default 41,401)")
    evaluate.add_argument("--suite", default="random,structured", help="comma-separated: random, structured, or suite names")
    evaluate.add_argument("--samples", type=positive_int, default=128, help="examples per length and suite (default 128)")
    evaluate.add_argument("--device", type=device_choice, default="auto", help="auto, cpu or cuda (default auto)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.add_argument(
        "--compile",
        action="store_true",
        help="run the CGRUs through torch.compile (on a CPU it needs a C++ compiler such as g++, and compiles for "
        "seconds first); answers equal the eager model's up to float rounding, and --record writes --compile into the "
        "recorded command. On a CPU it pays only when other work shares the cores (README: Speed and memory)",
    )
    evaluate.add_argument("--bf16", action="store_true", help=BF16_HELP + "; --record writes --bf16 into the recorded command")
    evaluate.add_argument(
        "--record",
        action="store_true",
        help="add these results, the command and the hardware to the model's card; stopped by Ctrl-C or SIGTERM (or the "
        "GPU out of memory), it records the examples scored so far (each set's first N: a shorter but valid evaluation)",
    )
    evaluate.add_argument(
        "--extend",
        action="store_true",
        help="go on from the card's largest evaluation of each length and suite: score only the examples past it, "
        "then record the combined result (implies --record). The frozen sets grow by appending, so 256 recorded "
        "examples are the first 256 of a --samples 1024 run",
    )
    evaluate.add_argument(
        "--by-column",
        action="store_true",
        help="also say, for each length and suite, which output columns were wrong and on what share of the "
        "examples (--json: a wrong_by_column count per column). Errors in a band of columns that grows with the "
        "width, the ends right, are a model tied to its training lengths; scattered ones, rare inputs",
    )
    evaluate.add_argument(
        "--extra-steps",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="pad every example with N masked columns, so the model runs N more steps than the example has columns, "
        "and score it on its own: does the model hold its answer once done? (a diagnostic: not with --record or "
        "--extend, which would put it on the card as an ordinary evaluation)",
    )
    evaluate.add_argument(
        "--examples",
        type=index_list,
        default=(),
        metavar="I,J,...",
        help="score only these examples of each frozen set of --samples, by index from 0 (the indices the table and "
        "a card's wrong_examples name): do other weights get a model's wrong answers right? A few score in a minute where "
        "a whole set at 100x takes an hour (a diagnostic: not with --record or --extend)",
    )
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
    solve.add_argument("--bf16", action="store_true", help=BF16_HELP)
    solve.set_defaults(run=cmd_solve)

    bench = commands.add_parser(
        "bench",
        help="time a training step and inference, beside the plain eager reference",
        description="Median milliseconds of a training step (forward, backward, update) and of inference after warm-up, "
        "and the peak extra memory of a training step, for our model and for a straightforward eager implementation. "
        "Inference's achieved TFLOP/s (convolutions and matrix products, counted from the model's shape) is set against "
        "a float32 dense matrix product measured on the same device.",
    )
    bench.add_argument("--recipe", default="paper", choices=list(RECIPES), help="model configuration to time (default paper)")
    bench.add_argument(
        "--task", default="badd", choices=task_names(), metavar="TASK", help="task whose inputs are used (default badd)"
    )
    bench.add_argument("--length", type=positive_int, default=41, help="input width in columns (default 41)")
    bench.add_argument("--batch", type=positive_int, default=32, help="batch size (default 32)")
    bench.add_argument("--infer-length", type=positive_int, help="input width of the timed inference (default: --length)")
    bench.add_argument("--infer-batch", type=positive_int, help="batch of the timed inference (default: --batch)")
    bench.add_argument("--device", type=device_choice, default="auto", help="auto, cpu or cuda (default auto)")
    bench.add_argument("--repeats", type=positive_int, default=5, help="timed repeats; the median is reported (default 5)")
    bench.add_argument("--checkpoint-steps", action="store_true", help="recompute steps in backward (memory ~sqrt(n) states)")
    bench.add_argument("--no-reference", action="store_true", help="skip the eager reference (it is slow at long lengths)")
    bench.add_argument("--compile", action="store_true", help="also time our model with its CGRUs run through torch.compile")
    bench.add_argument(
        "--bf16",
        action="store_true",
        help="also time our model with its convolutions in bfloat16 (and, with --compile, compiled too)",
    )
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
    show.add_argument(
        "--frames", type=positive_int, default=None, help="how many steps to draw (default 12 for PNG, 200 for GIF)"
    )
    show.add_argument(
        "--settle",
        action="store_true",
        help="draw, instead of the state, the answer read after every step: a row per step, light where a column "
        "already shows the symbol it ends with, and print when every column was final (how many steps the model had to "
        "spare) and which settled last. FILE must be a .png; inputs up to 16,001 columns",
    )
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
    sweep.add_argument(
        "--recipe",
        default=None,
        choices=list(RECIPES),
        help=RECIPE_HELP,
    )
    sweep.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 or 1,4,7 (default 0-9)")
    sweep.add_argument("--parallel", type=positive_int, default=1, help="runs at a time (default 1)")
    sweep.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads per run (default: the cores split evenly among the --parallel runs; set it when "
        "something else shares the machine, e.g. two sweeps side by side with --threads 1 each)",
    )
    sweep.add_argument("--out", type=Path, required=True, help="directory for the runs and the summary")
    sweep.add_argument("--device", type=device_choice, default="auto", help="auto, cpu or cuda (default auto)")
    sweep.add_argument("--max-steps", type=positive_int, default=None, help="per-run step limit (default: the recipe's)")
    sweep.add_argument("--time-budget", type=positive_float, default=None, metavar="SECONDS", help="per-run training time")
    sweep.add_argument(
        "--reach-samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="per-run reach check size (see train --reach-samples)",
    )
    sweep.add_argument(
        "--reach-confirm-samples", type=non_negative_int, default=None, metavar="N", help="per-run confirmation size (see train)"
    )
    sweep.add_argument("--compile", action="store_true", help="every run with --compile (see train --compile)")
    sweep.add_argument("--bf16", action="store_true", help="every run with --bf16 (see train --bf16)")
    sweep.add_argument(
        "--check-gap", type=non_negative_int, default=None, metavar="STEPS", help="per-run check gap (see train --check-gap)"
    )
    sweep.add_argument("--ema", type=decay, default=None, metavar="DECAY", help="per-run weight average (see train --ema)")
    sweep.add_argument(
        "--set", action="append", default=None, metavar="FIELD=VALUE", help="per-run config change (see train --set)"
    )
    sweep.add_argument(
        "--stages", type=task_list, default=None, metavar="TASK,...", help="tasks each run learns first (see train --stages)"
    )
    sweep.add_argument("--init-from", default=None, metavar="MODEL", help="weights every run starts from (see train --init-from)")
    sweep.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    sweep.set_defaults(run=cmd_sweep, write=True)

    report = commands.add_parser(
        "report",
        help="the success-rate table of existing runs or sweeps",
        description="One row per finished run (seed, solved, steps, wall-clock, sequence error per length on random inputs "
        "and on the worst structured suite) and a line with seeds solved and the median and worst steps to solve.",
    )
    report.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="DIR", help="run directories, or sweep directories holding them"
    )
    report.add_argument("--lengths", type=length_list, default=None, help="also evaluate every run at these widths")
    report.add_argument(
        "--samples", type=positive_int, default=128, help="examples per length and suite for --lengths (default 128)"
    )
    report.add_argument("--write", action="store_true", help="also write summary.txt and summary.json into the (single) DIR")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(run=cmd_report)
    return parser
