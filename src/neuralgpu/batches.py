"""Training batches: random examples of a task with a share drawn from its structured suites,
at one length or at several padded to one width (DNGPU's length bins)."""

from __future__ import annotations

import numpy as np

from neuralgpu.tasks import Batch, Task, structured_suites


def draw_batch(task: Task, batch_size: int, length: int, rng: np.random.Generator, hard_share: float) -> Batch:
    """A training batch: random examples, with ``hard_share`` of them from the structured suites.

    Random operands almost never hold a long carry chain or a mostly-zero number (Price et al.);
    mixing those in is how a model meets them before its evaluation does.
    """
    suites = structured_suites(task)
    hard = round(batch_size * hard_share) if suites else 0
    parts = [task.sample(batch_size - hard, length, rng)] if hard < batch_size else []
    if hard:
        counts = np.bincount(rng.integers(len(suites), size=hard), minlength=len(suites))
        parts.extend(task.sample(int(count), length, rng, suite) for suite, count in zip(suites, counts) if count)
    return Batch(np.concatenate([part.inputs for part in parts]), np.concatenate([part.targets for part in parts]))


def draw_padded_batch(task: Task, lengths: np.ndarray, width: int, rng: np.random.Generator, hard_share: float) -> Batch:
    """Examples of the given lengths (each group drawn as ``draw_batch`` draws it), padded to ``width``
    columns: the padding is masked, so a shorter example runs more steps than it has columns."""
    parts = [
        padded_to(draw_batch(task, int(count), int(length), rng, hard_share), width)
        for length, count in zip(*np.unique(lengths, return_counts=True))
    ]
    return Batch(np.concatenate([part.inputs for part in parts]), np.concatenate([part.targets for part in parts]))


def padded_to(batch: Batch, width: int) -> Batch:
    """``batch`` with blank columns on the right up to ``width``: masked, so never scored, while the
    model, which takes as many steps as its input is wide, runs through them."""
    if width == batch.inputs.shape[1]:
        return batch
    padding = ((0, 0), (0, width - batch.inputs.shape[1]))
    return Batch(np.pad(batch.inputs, padding), np.pad(batch.targets, padding))
