"""Does a moving average of the weights hold its reach better than the weights themselves?

Run: python benchmarks/weight_average.py [--task rev2] [--seed 1] [--steps 5000] [--decay 0.999]
         [--start 1000] [--every 500] [--length 1000] [--samples 16]
Trains the ``fast`` recipe (CGRUs compiled) with ``--ema DECAY``, with curriculum decisions but no
checks, so the trainer keeps its moving average of the weights beside them. From step --start on, every --every steps,
it scores both on the same frozen inputs: 32 of every suite at 10x the training length, and
--samples random ones at --length, and prints a row: wrong inputs per suite at 10x, wrong at
--length, for the weights and for the average.
"""

import argparse

from neuralgpu.evaluate import evaluate
from neuralgpu.recipes import build_config
from neuralgpu.tasks import structured_suites
from neuralgpu.train import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="rev2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--decay", type=float, default=0.999)
    parser.add_argument("--start", type=int, default=1000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    config = build_config(args.task, "fast", seed=args.seed, compile=True, ema_decay=args.decay)
    trainer = Trainer(config, None, progress=False)
    suites = ("random", *structured_suites(trainer.task))
    long = trainer.eval_lengths[1]
    print(
        f"{args.task}, fast, seed {args.seed}, average decay {args.decay}; wrong of 32 per suite at {long} ({', '.join(suites)})"
    )
    print(f"and of {args.samples} random at {args.length}")
    print(
        f"{'step':>6} {'weights at ' + str(long):>24} {'at ' + str(args.length):>8}   {'average at ' + str(long):>24} {'at ' + str(args.length):>8}"
    )
    while trainer.step < args.steps:
        trainer.train_step()  # updates the average too
        if trainer.step % config.curriculum.check_every == 0:
            trainer.decide()
        if trainer.step >= args.start and trainer.step % args.every == 0:
            cells = []
            for model in (trainer.model, trainer.judged):
                wrong = [evaluate(model, trainer.task, long, suite, 32).sequence_errors for suite in suites]
                cells.append(
                    f"{' '.join(f'{count:>3}' for count in wrong):>24} {evaluate(model, trainer.task, args.length, 'random', args.samples).sequence_errors:>8}"
                )
            print(f"{trainer.step:>6} {cells[0]}   {cells[1]}", flush=True)


if __name__ == "__main__":
    main()
