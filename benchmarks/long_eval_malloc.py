"""Long CPU evaluation with glibc's default malloc settings and with ``reuse_freed_blocks``.

Run: python benchmarks/long_eval_malloc.py [--model copy] [--length 2000] [--samples 2] [--repeats 3]
Each measurement is one fresh child process (malloc settings are per process), alternating the
two settings; prints the median wall-clock, user and system CPU seconds of ``evaluate`` alone.
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


def measure(model: str, length: int, samples: int, reuse: bool, threads: int) -> tuple[float, float, float]:
    if reuse:
        reuse_freed_blocks()
    torch.set_num_threads(threads)
    solver = neuralgpu.load(model)
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = evaluate(solver.model, solver.task, length, "random", samples=samples)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    if result.sequence_errors:
        print(f"  ({model} got {result.sequence_errors} of {samples} wrong at {length}; timing still valid)")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="copy", help="a shipped model's name or a release file")
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for _ in range(args.repeats):
            for reuse in (False, True):
                runs[reuse].append(pool.apply(measure, (args.model, args.length, args.samples, reuse, args.threads)))
    print(f"{args.model} at length {args.length}, {args.samples} examples, {args.threads} threads; medians of {args.repeats}")
    print(f"{'malloc':<20} {'wall s':>7} {'user s':>7} {'sys s':>7}")
    for reuse, label in ((False, "glibc defaults"), (True, "reuse_freed_blocks")):
        wall, user, system = (statistics.median(run[i] for run in runs[reuse]) for i in range(3))
        print(f"{label:<20} {wall:>7.1f} {user:>7.1f} {system:>7.1f}")


if __name__ == "__main__":
    main()
