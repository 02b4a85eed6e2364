"""Seed sweeps and their success-rate report.

``run_sweep`` trains one run per seed with ``neuralgpu train`` in subprocesses, K at a time (one
per GPU when there are several; the CPU cores split evenly otherwise), each into ``OUT/seed-S``.
A seed whose run already finished is kept; one that was interrupted resumes from its snapshot, so
a killed sweep continues where it stopped. ``summarize`` reads the run directories (their release
cards) and builds the table: seeds solved, steps and wall-clock to solve, and the sequence error
per evaluation length, on random inputs and on the worst structured suite.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from neuralgpu.checkpoint import RELEASE_NAME, SNAPSHOT_NAME, read_card
from neuralgpu.plot import generalisation

SUMMARY_JSON = "summary.json"
SUMMARY_TABLE = "summary.txt"
LOG_NAME = "train.log"


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``1,4,7`` or a mix (``0-2,8``) to a sorted list of distinct seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(value) for value in part.split("-", 1))
                if first > last or first < 0:
                    raise ValueError
                seeds.update(range(first, last + 1))
            elif part:
                seeds.add(int(part))
        except ValueError:
            raise ValueError(f"seeds must look like 0-9 or 1,4,7; cannot read {part!r}") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds must be whole numbers >= 0, like 0-9; got {text!r}")
    return sorted(seeds)


def seed_dir(out: Path, seed: int) -> Path:
    return out / f"seed-{seed}"


# The `neuralgpu train` options a sweep passes on to every run: (argparse attribute, flag).
PASSED_ON_TO_TRAIN = (
    ("max_steps", "--max-steps"),
    ("time_budget", "--time-budget"),
    ("reach_samples", "--reach-samples"),
    ("reach_confirm_samples", "--reach-confirm-samples"),
    ("check_gap", "--check-gap"),
    ("ema", "--ema"),
    ("stages", "--stages"),
    ("init_from", "--init-from"),
    ("compile", "--compile"),
    ("bf16", "--bf16"),
    ("set", "--set"),  # repeated: one --set per change
)


def train_arguments(args: Any) -> list[str]:
    """The `neuralgpu train` arguments every run of a sweep gets, from the sweep's own options
    (those ``args`` lacks or leaves unset are not passed, so each run keeps its recipe's)."""
    arguments = ["--device", args.device]
    for attribute, flag in PASSED_ON_TO_TRAIN:
        value = getattr(args, attribute, None)
        if value is None or value is False:  # unset; --stages is never an empty tuple (task_list refuses one)
            continue
        if value is True:
            arguments.append(flag)
        elif flag == "--set":
            arguments += [word for setting in value for word in (flag, setting)]
        elif isinstance(value, (list, tuple)):
            arguments += [flag, ",".join(map(str, value))]
        else:
            arguments += [flag, str(value)]
    return arguments


def _worker_env(slot: int, parallel: int, gpus: int, threads: int | None = None) -> dict[str, str]:
    """A run's environment: its GPU, and its CPU threads (``threads``, or the cores split evenly)."""
    env = dict(os.environ)
    if gpus > 1:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    env["OMP_NUM_THREADS"] = str(threads or max(1, (os.cpu_count() or 1) // parallel))
    return env


def run_sweep(
    task: str,
    recipe: str,
    seeds: list[int],
    out: Path,
    parallel: int = 1,
    train_args: list[str] | None = None,
    gpus: int = 0,
    threads: int | None = None,
) -> list[int]:
    """Train every seed not finished yet, each run on ``threads`` CPU threads (None: the cores split
    evenly among the ``parallel`` runs); returns the seeds whose run failed (non-zero exit)."""
    out.mkdir(parents=True, exist_ok=True)
    pending = [seed for seed in seeds if not (seed_dir(out, seed) / RELEASE_NAME).is_file()]
    running: list[tuple[int, int, subprocess.Popen]] = []  # (slot, seed, process)
    failed: list[int] = []
    free_slots = list(range(parallel))
    with tqdm(total=len(seeds), initial=len(seeds) - len(pending), unit="seed", desc=f"{task}/{recipe}") as bar:
        while pending or running:
            while pending and free_slots:
                seed, slot = pending.pop(0), free_slots.pop(0)
                run_dir = seed_dir(out, seed)
                run_dir.mkdir(parents=True, exist_ok=True)
                command = [sys.executable, "-m", "neuralgpu", "train", "--task", task, "--recipe", recipe, "--seed", str(seed)]
                command += ["--run-dir", str(run_dir), *(train_args or [])]
                if (run_dir / SNAPSHOT_NAME).is_file():
                    command.append("--resume")
                log = (run_dir / LOG_NAME).open("a")
                process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=_worker_env(slot, parallel, gpus, threads)
                )
                log.close()
                running.append((slot, seed, process))
            slot, seed, process = _wait_any(running)
            free_slots.append(slot)
            if process.returncode != 0:
                failed.append(seed)
                bar.write(f"seed {seed}: training exited with status {process.returncode}; see {seed_dir(out, seed) / LOG_NAME}")
            bar.update(1)
    return failed


def _wait_any(running: list[tuple[int, int, subprocess.Popen]]) -> tuple[int, int, subprocess.Popen]:
    """Block until one of the running processes ends; remove and return it."""
    while True:
        for index, (slot, seed, process) in enumerate(running):
            try:
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            return running.pop(index)


@dataclass
class RunRow:
    """One run's line in the report."""

    run: str
    task: str
    recipe: str
    seed: int
    solved: bool
    steps: int
    examples: int  # training examples seen: steps x batch x length bins x ranks
    wall_clock_s: float
    random_error: dict[int, float] = field(default_factory=dict)
    structured_error: dict[int, float] = field(default_factory=dict)


def run_names(runs: list[Path]) -> list[str]:
    """What a report calls each run: its folder's name, with its parent's before it where two runs
    share one (``badd-plain/seed-1`` and ``badd-ema/seed-1``, two sweeps reported together)."""
    counts = Counter(run.name for run in runs)
    return [f"{run.parent.name}/{run.name}" if counts[run.name] > 1 else run.name for run in runs]


def read_run(run_dir: Path, extra_evaluations: list[dict[str, Any]] | None = None, name: str | None = None) -> RunRow:
    """A finished run's row, from its release card (a ValueError when the run has not finished),
    called ``name`` (default: its folder's name)."""
    release = run_dir / RELEASE_NAME
    if not release.is_file():
        raise ValueError(f"{run_dir}: no {RELEASE_NAME} (the run has not finished); resume it or leave it out")
    card = read_card(release)
    random, structured = generalisation(card.get("evaluation", []) + list(extra_evaluations or []))
    return RunRow(
        run=name or run_dir.name,
        task=card["task"],
        recipe=card["recipe"],
        seed=int(card["seed"]),
        solved=bool(card["solved"]),
        steps=int(card["steps"]),
        examples=examples_seen(card),
        wall_clock_s=float(card["wall_clock_s"]),
        random_error=random,
        structured_error=structured,
    )


def examples_seen(card: dict[str, Any]) -> int:
    """Training examples behind a card's steps. Steps alone mislead across recipes: a DNGPU-style
    step trains one batch at each of 9 length bins, nine times what a curriculum step sees."""
    config = card["train_config"]
    curriculum = config["curriculum"]
    batches = len(curriculum["bins"]) if curriculum["mode"] == "bins" else 1
    return int(card["steps"]) * int(config["batch_size"]) * batches * int(card.get("world_size", 1))


def evaluate_run(run_dir: Path, lengths: list[int], samples: int) -> list[dict[str, Any]]:
    """A run's model evaluated now at ``lengths``, on random inputs and every structured suite."""
    from neuralgpu.evaluate import evaluate_suites
    from neuralgpu.solver import load
    from neuralgpu.tasks import structured_suites

    solver = load(str(run_dir))
    suites = ["random", *structured_suites(solver.task)]
    return [result.to_json() for result in evaluate_suites(solver.model, solver.task, lengths, suites, samples)]


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories named directly, or found one level down (a sweep's seed-S folders)."""
    runs: list[Path] = []
    for path in paths:
        if (path / RELEASE_NAME).is_file() or (path / "metrics.jsonl").is_file():
            runs.append(path)
        elif path.is_dir():
            runs.extend(sorted(child for child in path.iterdir() if (child / "metrics.jsonl").is_file()))
        else:
            raise ValueError(f"{path}: no such directory")
    runs = list(dict.fromkeys(run.resolve() for run in runs))  # the same run named twice counts once
    if not runs:
        raise ValueError(f"no runs found in {', '.join(map(str, paths))}: give run directories or a sweep's --out")
    return runs


@dataclass
class Summary:
    rows: list[RunRow]

    @property
    def solved(self) -> list[RunRow]:
        return [row for row in self.rows if row.solved]

    def headline(self) -> dict[str, Any]:
        solved = self.solved
        steps = [row.steps for row in solved]
        examples = [row.examples for row in solved]
        times = [row.wall_clock_s for row in solved]
        return {
            "runs": len(self.rows),
            "solved": len(solved),
            "median_steps": statistics.median(steps) if steps else None,
            "worst_steps": max(steps) if steps else None,
            "median_examples": statistics.median(examples) if examples else None,
            "median_wall_clock_s": statistics.median(times) if times else None,
            "worst_wall_clock_s": max(times) if times else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.headline(), "rows": [asdict(row) for row in self.rows]}

    def table(self) -> str:
        lengths = sorted({length for row in self.rows for length in (*row.random_error, *row.structured_error)})
        width = max([14, *(len(row.run) for row in self.rows)])
        header = f"{'run':<{width}} {'seed':>4} {'solved':>6} {'steps':>7} {'examples':>9} {'wall s':>8}"
        header += "".join(f" {f'rand@{n}':>10} {f'struct@{n}':>11}" for n in lengths)
        lines = [header, "-" * len(header)]
        # Runs of one sweep together (``group/seed-S`` names), each sweep's in seed order.
        for row in sorted(self.rows, key=lambda row: (row.task, row.recipe, row.run.rpartition("/")[0], row.seed)):
            line = f"{row.run:<{width}} {row.seed:>4} {'yes' if row.solved else 'no':>6} {row.steps:>7} {row.examples:>9} {row.wall_clock_s:>8.0f}"
            for n in lengths:
                line += f" {_percent(row.random_error.get(n)):>10} {_percent(row.structured_error.get(n)):>11}"
            lines.append(line)
        head = self.headline()
        lines.append(f"solved {head['solved']}/{head['runs']}")
        if head["solved"]:
            lines[-1] += (
                f"; steps to solve: median {head['median_steps']:.0f}, worst {head['worst_steps']} "
                f"(median {head['median_examples']:,.0f} examples); "
                f"wall-clock: median {head['median_wall_clock_s']:.0f} s, worst {head['worst_wall_clock_s']:.0f} s"
            )
        return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def write_summary(summary: Summary, out: Path) -> None:
    (out / SUMMARY_JSON).write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    (out / SUMMARY_TABLE).write_text(summary.table() + "\n")
