"""Sequence and digit error of a model on frozen evaluation sets, per length and per suite.

Every (task, length, suite) has its own fixed seed, so numbers from different runs and versions
are comparable. Long inputs are batched to fit a memory budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from neuralgpu.model import NeuralGPU
from neuralgpu.tasks import Batch, Task, stable_seed

EVAL_SEED = 20151125  # the paper's arXiv date: the frozen evaluation sets hang off this seed
FLOAT_BYTES = 4
LIVE_STATE_COPIES = 10  # state-sized tensors alive at once in one inference step (measured roughly)


@dataclass(frozen=True)
class EvalResult:
    task: str
    length: int
    suite: str
    samples: int
    sequence_errors: int
    digit_errors: int
    digits: int

    @property
    def sequence_error(self) -> float:
        return self.sequence_errors / self.samples if self.samples else 0.0

    @property
    def digit_error(self) -> float:
        return self.digit_errors / self.digits if self.digits else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "sequence_error": self.sequence_error, "digit_error": self.digit_error}


def eval_batch(task: Task, length: int, suite: str, samples: int) -> Batch:
    """The frozen evaluation set for (task, length, suite)."""
    rng = np.random.default_rng(stable_seed(EVAL_SEED, task.name, length, suite))
    return task.sample(samples, length, rng, suite)


def state_bytes_per_example(model: NeuralGPU, width: int) -> int:
    config = model.config
    return config.channels * config.height * width * FLOAT_BYTES * LIVE_STATE_COPIES


def inference_batch_size(model: NeuralGPU, width: int, memory_budget: int) -> int:
    """How many examples of this width one forward pass may hold within ``memory_budget`` bytes."""
    return max(1, memory_budget // state_bytes_per_example(model, width))


def check_fits(model: NeuralGPU, width: int, memory_budget: int) -> None:
    """A clear error when even one example of this width exceeds the memory budget."""
    need = state_bytes_per_example(model, width)
    if need > memory_budget:
        widest = memory_budget // state_bytes_per_example(model, 1)
        raise MemoryError(
            f"an input of width {width} needs about {need / 2**30:.1f} GiB, more than the "
            f"{memory_budget / 2**30:.1f} GiB budget: the widest that fits is {widest} columns"
        )


@torch.no_grad()
def predict(model: NeuralGPU, inputs: np.ndarray, mask: np.ndarray, memory_budget: int = 2**30) -> np.ndarray:
    """Argmax tokens (B, n) for token rows of one width, in batches that fit ``memory_budget``."""
    check_fits(model, inputs.shape[1], memory_budget)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    step = inference_batch_size(model, inputs.shape[1], memory_budget)
    outputs = []
    for start in range(0, len(inputs), step):
        tokens = torch.from_numpy(inputs[start : start + step]).to(device)
        columns = torch.from_numpy(mask[start : start + step]).to(device)
        outputs.append(model(tokens, columns).logits.argmax(-1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros_like(inputs)


def score(batch: Batch, predictions: np.ndarray) -> tuple[int, int, int]:
    """(sequence errors, digit errors, digits scored): every column in the mask is scored."""
    mask = batch.mask
    wrong = (predictions != batch.targets) & mask
    return int(wrong.any(axis=1).sum()), int(wrong.sum()), int(mask.sum())


def evaluate(
    model: NeuralGPU, task: Task, length: int, suite: str = "random", samples: int = 128, memory_budget: int = 2**30
) -> EvalResult:
    check_fits(model, task.width(length), memory_budget)  # before generating anything big
    batch = eval_batch(task, length, suite, samples)
    sequence_errors, digit_errors, digits = score(batch, predict(model, batch.inputs, batch.mask, memory_budget))
    return EvalResult(task.name, length, suite, samples, sequence_errors, digit_errors, digits)


def evaluate_suites(model: NeuralGPU, task: Task, lengths: list[int], suites: list[str], samples: int) -> list[EvalResult]:
    """One result per (length, suite), lengths outermost."""
    return [evaluate(model, task, length, suite, samples) for length in lengths for suite in suites]


def format_table(results: list[EvalResult]) -> str:
    """A fixed-width table: one row per (length, suite)."""
    header = f"{'task':<10} {'length':>7} {'suite':<13} {'samples':>7} {'seq err':>9} {'digit err':>10}"
    lines = [header, "-" * len(header)]
    for result in results:
        lines.append(
            f"{result.task:<10} {result.length:>7} {result.suite:<13} {result.samples:>7} "
            f"{result.sequence_error:>9.2%} {result.digit_error:>10.4%}"
        )
    return "\n".join(lines)
