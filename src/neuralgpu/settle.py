"""When each answer symbol settles: the model's answer read after every step of one computation.

The answer is read from the state after the n-th step, but every state can be read the same way.
Read after each step, every answer column has a step from which its symbol no longer changes: the
step it settled. How the columns settle shows how a model computes and how many steps it has to
spare. A 3-wide kernel moves information at most one column a step, so on a 4,001-wide sum nothing
can settle before step ~2,000, when the second operand's lowest digit (column 2,001) can have
reached column 0; the shipped ``badd`` model then settles column c at about step 2,000 + c, a
column a step like a ripple carry, and its last column at the very last step. A column that
settles long after its neighbours changed its mind late (README: See it compute).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from neuralgpu.evaluate import check_fits
from neuralgpu.show import label_columns, label_steps, symbols_of, use_headless_matplotlib
from neuralgpu.solver import Solver

# The record is (n + 1) x n symbols, a byte each: 256 MB at this width, for a run of n^2 cell updates.
MAX_SETTLE_WIDTH = 16_001


@dataclass(frozen=True)
class Settling:
    """The answer read after every step of one computation, and whether the last one is right."""

    readings: np.ndarray  # (n + 1, n) output tokens: before the first step, then after each
    input_symbols: list[str]
    answer_width: int  # the leading columns that hold the answer; the others are scored as blank
    answer: str  # the task's notation, read after the last step
    right: bool  # the answer equals the oracle's

    @property
    def steps(self) -> int:
        return len(self.readings) - 1

    def settled_at(self) -> np.ndarray:
        """Per answer column, the first step from which its symbol is the one it ends with (0: never changed)."""
        answer = self.readings[:, : self.answer_width]
        differs = answer != answer[-1]
        last_different = len(differs) - 1 - np.argmax(differs[::-1], axis=0)
        return np.where(differs.any(axis=0), last_different + 1, 0)

    def summary(self) -> str:
        """One line: right or wrong, when the whole answer was final, and the last column to settle."""
        settled = self.settled_at()
        last = int(settled.max())
        latest = np.flatnonzero(settled == last)
        columns = ", ".join(str(column) for column in latest[:5]) + (f" and {len(latest) - 5} more" if len(latest) > 5 else "")
        verdict = "right" if self.right else "wrong"
        return (
            f"answer {verdict}; every column final from step {last} of {self.steps} "
            f"({self.steps - last} to spare); settled last: column {columns}"
        )


def settling(solver: Solver, text: str) -> Settling:
    """Run the model on one input (a TaskInputError when it cannot be read), reading the answer after every step."""
    tokens = solver.task.parse(text)
    width = len(tokens)
    if width > MAX_SETTLE_WIDTH:
        raise ValueError(f"the input is {width} columns wide; --settle records inputs up to {MAX_SETTLE_WIDTH} columns")
    check_fits(solver.model, width, solver.memory_budget)
    readings = np.empty((width + 1, width), dtype=np.uint8)
    states = solver.model.states(*solver.one_input(tokens))
    with torch.no_grad():
        for step, state in enumerate(tqdm(states, total=width + 1, unit="step", disable=None, leave=False)):
            readings[step] = solver.model.read_out(state)[0].argmax(-1).cpu().numpy()
    answer = solver.task.answer_text(readings[-1].astype(np.int64), width)
    right = answer == solver.task.oracle(text)
    return Settling(readings, symbols_of(tokens), solver.task.output_width(width), answer, right)


def check_picture_path(path: Path) -> None:
    """Before a long run: the settling picture is a PNG, and matplotlib must be there to draw it."""
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: --settle draws a .png")
    use_headless_matplotlib()


def render_settling(record: Settling, path: Path, title: str = "") -> None:
    """A picture of the answer columns, a row per step (step 0 on top): light where a column already
    shows the symbol it ends with, dark before; a red line marks each column's settling step."""
    check_picture_path(path)
    import matplotlib.pyplot as plt

    width = record.answer_width
    answer = record.readings[:, :width]
    final = answer == answer[-1]
    figure, axes = plt.subplots(figsize=(min(12.0, max(4.0, 0.2 * width + 1.5)), min(9.0, max(3.0, 0.12 * record.steps + 1.5))))
    axes.imshow(final, aspect="auto", interpolation="nearest", cmap="gray", vmin=-0.5, vmax=1.0)
    axes.plot(np.arange(width), record.settled_at() - 0.5, color="red", linewidth=0.8)
    if width <= 64:  # symbols stay readable
        label_columns(axes, record.input_symbols[:width], symbols_of(answer[-1]), top=True, bottom=True)
    else:
        axes.set_xlabel("answer column")
    label_steps(axes, record.steps)
    axes.set_title(title or record.summary(), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
