"""Peak extra memory of one CPU training step against input length, with and without checkpointing.

Run: python benchmarks/memory_scaling.py [--lengths 41,101,201,401] [--batch 32]
Each measurement runs in a fresh child process (see neuralgpu.bench.peak_memory_mb).
"""

import argparse
from dataclasses import replace

import torch

from neuralgpu.bench import peak_memory_mb
from neuralgpu.recipes import build_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", default="41,101,201,401")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--skip-plain-above", type=int, default=201, help="plain (no checkpointing) only up to this length")
    args = parser.parse_args()
    config = build_config("badd", "paper").model
    print(f"{'length':>6} {'plain MB':>9} {'checkpointed MB':>16}", flush=True)
    for length in (int(part) for part in args.lengths.split(",")):
        plain = (
            peak_memory_mb(config, "badd", length, args.batch, torch.device("cpu"), False)
            if length <= args.skip_plain_above
            else float("nan")
        )
        checkpointed = peak_memory_mb(
            replace(config, checkpoint_steps=True), "badd", length, args.batch, torch.device("cpu"), False
        )
        print(f"{length:>6} {plain:>9.0f} {checkpointed:>16.0f}", flush=True)


if __name__ == "__main__":
    main()
