"""Evaluation speed on this machine against the batch size: why a CPU evaluates in small batches.

Run: python benchmarks/eval_batch.py [--model badd] [--length 401] [--samples 128] [--batches 4,8,16,32,64,128]
Prints milliseconds an example (median of --repeats runs over the same frozen examples) for each
batch size, and the size ``neuralgpu.evaluate`` chooses here. On a CPU, a batch whose state
outgrows the caches is slower per example however much memory is free.
"""

import argparse
import statistics
import time

import torch

import neuralgpu
from neuralgpu.evaluate import eval_batch, inference_batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="badd", help="a shipped model's name or a release file")
    parser.add_argument("--length", type=int, default=401)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--batches", default="4,8,16,32,64,128")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    solver = neuralgpu.load(args.model)
    model = solver.model.eval()
    examples = eval_batch(solver.task, args.length, "random", args.samples)
    inputs, mask = torch.from_numpy(examples.inputs), torch.from_numpy(examples.mask)
    chosen = inference_batch_size(model, inputs.shape[1], 2**30, torch.device("cpu"))
    print(f"{args.model} at length {args.length}, {torch.get_num_threads()} threads; evaluate() uses batches of {chosen}")
    print(f"{'batch':>6} {'ms/example':>11}")
    with torch.no_grad():
        model(inputs[:1], mask[:1])  # warm-up
        for size in (int(part) for part in args.batches.split(",")):
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                for start in range(0, args.samples, size):
                    model(inputs[start : start + size], mask[start : start + size])
                times.append((time.perf_counter() - started) / args.samples)
            print(f"{size:>6} {1000 * statistics.median(times):>11.0f}", flush=True)


if __name__ == "__main__":
    main()
