"""Which lengths to train on next: the paper's length curriculum, or DNGPU-style length bins.

Curriculum (paper): train at lengths up to ``current``, starting at 6; every ``check_every`` steps,
if the training sequence error at lengths <= current was below ``threshold``, grow ``current`` by
one, up to ``max_length``. A ``random_share`` of the batches draws any length up to the maximum
anyway. Bins (DNGPU): every step trains one batch from each length in ``bins``, no curriculum;
with ``bin_fill="below"``, as DNGPU's released trainer fills them, a bin's batch holds examples of
every length above the previous bin, padded to its own, so a model also meets inputs that have
more steps than columns; in curriculum mode ``pad_share`` of the batches are padded so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class CurriculumConfig:
    mode: Literal["curriculum", "bins"] = "curriculum"
    start: int = 6
    max_length: int = 41
    min_length: int = 3  # shortest length ever drawn
    check_every: int = 200  # steps between curriculum decisions
    threshold: float = 0.15  # grow when the training sequence error is below this
    # Each growth adds max(1, floor(current * growth)) (0: always one). A badd model was error-free
    # at 41 while the curriculum, one a decision, was still at 28, 700 steps from the top.
    growth: float = 0.0
    random_share: float = 0.25  # share of batches drawn at any length up to max_length
    bins: tuple[int, ...] = ()  # mode "bins": one batch at each of these lengths every step
    # "exact": a bin's examples are as long as the bin; "below": each example's length is drawn
    # from those above the previous bin (up to the bin), and the batch is padded to the bin.
    bin_fill: Literal["exact", "below"] = "exact"
    # With bin_fill "below": this share of a bin's examples is drawn from every shorter length
    # instead (DNGPU adds 5% shorter instances to each bin).
    bin_shorter_share: float = 0.0
    # Mode "curriculum": this share of the batches is padded with masked columns to pad_factor
    # times its examples' length, so that the model also runs more steps than its input has
    # columns and must keep its answer. A bmul model failed 4 of 128 inputs at 41 run 40 steps
    # longer and 7 of 128 at 401 from column 1; trained padded, none and 1 (docs/learning.md,
    # training with extra steps).
    pad_share: float = 0.0
    pad_factor: float = 2.0
    # Pad only once the curriculum has reached max_length, as a finishing stage inside one run:
    # on badd models already at 41, padding held their answers where plain fine-tuning did not.
    # From scratch this way it solved neither of two seeds fast leaves unsolved (docs/learning.md).
    pad_at_max: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("curriculum", "bins"):
            raise ValueError(f"curriculum mode must be 'curriculum' or 'bins', got {self.mode!r}")
        if self.mode == "bins" and not self.bins:
            raise ValueError("curriculum mode 'bins' needs at least one bin length")
        if self.bin_fill not in ("exact", "below"):
            raise ValueError(f"bin_fill must be 'exact' or 'below', got {self.bin_fill!r}")
        if self.growth < 0:
            raise ValueError(f"curriculum growth must be >= 0, got {self.growth}")
        if not 0.0 <= self.bin_shorter_share <= 1.0:
            raise ValueError(f"bin_shorter_share must be in [0, 1], got {self.bin_shorter_share}")
        if not 0.0 <= self.pad_share <= 1.0:
            raise ValueError(f"pad_share must be in [0, 1], got {self.pad_share}")
        if self.pad_share and self.mode != "curriculum":
            raise ValueError("pad_share pads the curriculum's batches; bins are padded with bin_fill='below'")
        if self.pad_at_max and not self.pad_share:
            raise ValueError("pad_at_max says when to pad; set pad_share above 0 to pad at all")
        if self.pad_factor < 1.0:
            raise ValueError(f"pad_factor must be >= 1 (a batch is padded, never cut), got {self.pad_factor}")
        if not self.min_length <= self.start <= self.max_length:
            raise ValueError(f"need min_length <= start <= max_length, got {self.min_length}, {self.start}, {self.max_length}")


@dataclass
class Curriculum:
    """The mutable state: current length and the error tally since the last decision."""

    config: CurriculumConfig
    current: int = 0
    errors: float = 0.0
    examples: int = 0
    history: list[int] = field(default_factory=list)  # steps at which the length grew

    def __post_init__(self) -> None:
        if self.current == 0:
            self.current = self.config.max_length if self.config.mode == "bins" else self.config.start

    def lengths(self, rng: np.random.Generator) -> list[int]:
        """The lengths of the batches of the next training step."""
        config = self.config
        if config.mode == "bins":
            return list(config.bins)
        top = config.max_length if rng.random() < config.random_share else self.current
        return [int(rng.integers(config.min_length, top + 1))]

    def example_lengths(self, length: int, batch_size: int, rng: np.random.Generator) -> np.ndarray | None:
        """With ``bin_fill="below"``, the length of every example of the bin ``length`` (None: all
        are as long as the batch). Lengths above the previous bin, or with ``bin_shorter_share``
        from the shortest up to it; the first bin starts at ``min_length``.
        """
        config = self.config
        if config.mode != "bins" or config.bin_fill != "below":
            return None
        below = [bin for bin in config.bins if bin < length]
        previous = max(below, default=config.min_length - 1)
        lengths = rng.integers(previous + 1, length + 1, batch_size)
        if below and config.bin_shorter_share > 0:
            shorter = rng.random(batch_size) < config.bin_shorter_share
            lengths[shorter] = rng.integers(config.min_length, previous + 1, int(shorter.sum()))
        return lengths

    def width(self, length: int, rng: np.random.Generator) -> int:
        """The columns a batch of ``length``-long examples is drawn in: ``pad_factor`` times as many
        for ``pad_share`` of the batches (with ``pad_at_max``, once the curriculum is at its
        maximum), its own length otherwise. Draws from ``rng`` only when it may pad, so a run
        without padding draws the lengths it always did, and one with ``pad_at_max`` does until
        the curriculum tops out."""
        config = self.config
        if config.pad_share == 0.0 or (config.pad_at_max and not self.at_max):
            return length
        if rng.random() >= config.pad_share:
            return length
        return math.ceil(length * config.pad_factor)

    def record(self, length: int, sequence_errors: int, examples: int) -> None:
        if length <= self.current:
            self.errors += sequence_errors
            self.examples += examples

    @property
    def at_max(self) -> bool:
        return self.current >= self.config.max_length

    def decide(self, step: int) -> bool:
        """At a decision step: True when training error was low enough (and the length grows)."""
        rate = self.errors / self.examples if self.examples else 1.0
        self.errors, self.examples = 0.0, 0
        if rate >= self.config.threshold:
            return False
        if not self.at_max:
            grown = self.current + max(1, int(self.current * self.config.growth))
            self.current = min(grown, self.config.max_length)
            self.history.append(step)
        return True

    def state_dict(self) -> dict:
        return {"current": self.current, "errors": self.errors, "examples": self.examples, "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.current, self.errors, self.examples = int(state["current"]), float(state["errors"]), int(state["examples"])
        self.history = [int(step) for step in state["history"]]
