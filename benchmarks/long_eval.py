"""What speeds up long CPU evaluation: glibc's malloc settings, and compiled CGRUs.

Run: python benchmarks/long_eval.py [--compare malloc|compile] [--model copy] [--length 2000]
     [--samples 2] [--repeats 3] [--threads N]
``--compare malloc``: glibc's default malloc settings against ``reuse_freed_blocks`` (what the
commands that only infer apply). ``--compare compile``: the eager model against
``compile_cells()`` (``neuralgpu eval --compile``), both with ``reuse_freed_blocks``.
Each measurement is one fresh child process (malloc settings and compiled kernels are per
process), alternating the two; both first score one short input (compiling, for the compiled
model: that is not timed). Prints the median wall-clock, user and system CPU seconds of
``evaluate`` at the length.
"""

import argparse
import multiprocessing
import resource
import statistics
import time

import torch

import neuralgpu
from neuralgpu.evaluate import evaluate
from neuralgpu.memory import reuse_freed_blocks

# For each comparison, its two settings: (label, reuse_freed_blocks, compiled CGRUs).
SETTINGS = {
    "malloc": (("glibc defaults", False, False), ("reuse_freed_blocks", True, False)),
    "compile": (("eager", True, False), ("compiled", True, True)),
}


def measure(model: str, length: int, samples: int, threads: int, reuse: bool, compiled: bool) -> tuple[float, float, float]:
    if reuse:
        reuse_freed_blocks()
    torch.set_num_threads(threads)
    solver = neuralgpu.load(model)
    if compiled:
        solver.model.compile_cells()
    evaluate(solver.model, solver.task, 32, "random", samples=1)  # warm-up; compiles the compiled model
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = evaluate(solver.model, solver.task, length, "random", samples=samples)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    if result.sequence_errors:
        print(f"  ({model} got {result.sequence_errors} of {samples} wrong at {length}; timing still valid)")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", choices=list(SETTINGS), default="malloc")
    parser.add_argument("--model", default="copy", help="a shipped model's name or a release file")
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    settings = SETTINGS[args.compare]
    runs: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _, _ in settings}
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for _ in range(args.repeats):
            for label, reuse, compiled in settings:
                runs[label].append(pool.apply(measure, (args.model, args.length, args.samples, args.threads, reuse, compiled)))
    print(f"{args.model} at length {args.length}, {args.samples} examples, {args.threads} threads; medians of {args.repeats}")
    print(f"{args.compare:<20} {'wall s':>7} {'user s':>7} {'sys s':>7}")
    for label, measured in runs.items():
        wall, user, system = (statistics.median(run[i] for run in measured) for i in range(3))
        print(f"{label:<20} {wall:>7.1f} {user:>7.1f} {system:>7.1f}")


if __name__ == "__main__":
    main()
