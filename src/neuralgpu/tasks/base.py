"""The shared vocabulary and the interface every task implements.

All tasks speak one token vocabulary, so one model (or one multi-task run) can read any of them:
token 0 is padding, digit ``d`` is token ``d + 1``, and the operators follow. A task turns a
person's notation (``"1011+110"``) into model tokens and back, samples seeded batches, and knows
the right answer (its oracle) independently of the generator.
"""

from __future__ import annotations

import contextlib
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

PAD = 0
DIGITS = "0123456789"
OPERATORS = "+*"
SYMBOLS = DIGITS + OPERATORS
VOCAB_SIZE = len(SYMBOLS) + 1  # + padding
TOKEN_OF = {symbol: index + 1 for index, symbol in enumerate(SYMBOLS)}


class TaskInputError(ValueError):
    """A person's input that the task cannot read; the message says what is wrong."""


@dataclass(frozen=True)
class Batch:
    """Model-ready examples of one width: every row is one example, one column per symbol.

    ``inputs`` and ``targets`` are int64 token arrays of shape (B, n). A column takes part in the
    computation when the input or the target has a symbol there (see :attr:`mask`).
    """

    inputs: np.ndarray
    targets: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return (self.inputs != PAD) | (self.targets != PAD)

    def __len__(self) -> int:
        return self.inputs.shape[0]


def digit_value(symbol: str, base: int) -> int | None:
    """The value of one digit symbol in ``base``, or None when it is no such digit."""
    index = DIGITS.find(symbol) if len(symbol) == 1 else -1
    return index if 0 <= index < base else None


@contextlib.contextmanager
def unlimited_int_digits() -> Iterator[None]:
    """Lift CPython's 4,300-digit limit on int<->decimal-string conversion for a moment.

    The limit guards servers against slow conversions of untrusted text; our oracles convert
    numbers we generated or already validated, and 2,000-digit products exceed it.
    """
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(previous)


def stable_seed(*parts: object) -> int:
    """A seed that depends only on ``parts`` (not on Python's per-process hash salt)."""
    return zlib.crc32("/".join(str(part) for part in parts).encode())


class Task:
    """What every task offers; see :mod:`neuralgpu.tasks.arithmetic` and ``.sequence``.

    ``length`` throughout means the model width n (number of columns) an example occupies; a task
    samples examples as wide as possible but never wider than the length asked for.
    """

    name: str
    base: int
    min_length: int
    suites: tuple[str, ...]

    def sample(self, batch_size: int, length: int, rng: np.random.Generator, suite: str = "random") -> Batch:
        raise NotImplementedError

    def width(self, length: int) -> int:
        """The model width of the examples ``sample`` draws for ``length`` (at most ``length``)."""
        raise NotImplementedError

    def parse(self, text: str) -> np.ndarray:
        """A person's notation to input tokens of full model width (output columns padded)."""
        raise NotImplementedError

    def output_width(self, input_width: int) -> int:
        """How many leading columns of the model output hold the answer."""
        raise NotImplementedError

    def input_text(self, tokens: np.ndarray) -> str:
        """Input tokens (one example) back to the person's notation."""
        raise NotImplementedError

    def answer_text(self, tokens: np.ndarray, input_width: int) -> str:
        """Output tokens (one example) to the answer in the person's notation."""
        raise NotImplementedError

    def oracle(self, text: str) -> str:
        """The right answer to a person's input, computed without the model or the generator."""
        raise NotImplementedError

    def scaled_length(self, length: int, factor: int) -> int:
        """The length of an example ``factor`` times as large (sequence length, operand digits)."""
        return length * factor

    def length_factor(self, length: int, trained: int) -> float:
        """How many times as large an example of ``length`` is as one of ``trained``: the inverse of ``scaled_length``."""
        return length / trained

    def check_length(self, length: int) -> None:
        if length < self.min_length:
            raise ValueError(f"task {self.name!r} needs length >= {self.min_length}, got {length}")

    def check_suite(self, suite: str) -> None:
        if suite not in self.suites:
            raise ValueError(f"task {self.name!r} has no suite {suite!r}; choose from {', '.join(self.suites)}")
