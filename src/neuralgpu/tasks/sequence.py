"""Symbol-sequence tasks: ``copy reverse duplicate sort kvsort rev2 incr left-shift right-shift``.

An input of L symbols over a small alphabet (digit tokens) is laid out in columns 0..L-1; the
target fills the first ``out_len(L)`` columns; the model width is the larger of the two. Each task
is a vectorised numpy transform for the generator plus a separate plain-Python oracle on strings,
so the test that compares them checks two independent implementations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neuralgpu.tasks.base import DIGITS, PAD, Batch, Task, TaskInputError, digit_value, unlimited_int_digits

SymbolSampler = Callable[[np.random.Generator, int, int, int], np.ndarray]


def _random(rng: np.random.Generator, batch: int, size: int, alphabet: int) -> np.ndarray:
    return rng.integers(0, alphabet, (batch, size))


def _constant(rng: np.random.Generator, batch: int, size: int, alphabet: int) -> np.ndarray:
    """Every symbol of a row is the same (random) symbol."""
    return np.repeat(rng.integers(0, alphabet, (batch, 1)), size, axis=1)


def _alternating(rng: np.random.Generator, batch: int, size: int, alphabet: int) -> np.ndarray:
    """Two different random symbols alternate."""
    first = rng.integers(0, alphabet, (batch, 1))
    second = (first + rng.integers(1, alphabet, (batch, 1))) % alphabet
    return np.where(np.arange(size)[None, :] % 2 == 0, first, second)


def _largest(rng: np.random.Generator, batch: int, size: int, alphabet: int) -> np.ndarray:
    """Every symbol is the largest one (for ``incr``: 999...9, the longest carry)."""
    return np.full((batch, size), alphabet - 1, dtype=np.int64)


def _ascending(rng: np.random.Generator, batch: int, size: int, alphabet: int) -> np.ndarray:
    """Random symbols already in non-decreasing order."""
    return np.sort(_random(rng, batch, size, alphabet), axis=1)


def _descending(rng: np.random.Generator, batch: int, size: int, alphabet: int) -> np.ndarray:
    """Random symbols in non-increasing order."""
    return _ascending(rng, batch, size, alphabet)[:, ::-1].copy()


def _carry(rng: np.random.Generator, batch: int, size: int, alphabet: int) -> np.ndarray:
    """Random symbols whose first k are the largest symbol and whose next one is not.

    For ``incr`` (stored least-significant first) that is a number ending in exactly k 9s: adding
    one carries through exactly k digits. Random numbers almost never carry far, and the shipped
    ``incr`` once failed on numbers ending in exactly two 9s at 1,000 digits, so k is drawn
    log-uniformly from 1..size: short carries stay common at any length and long ones appear too.
    """
    x = _random(rng, batch, size, alphabet)
    run = np.minimum(np.exp(rng.uniform(0.0, np.log(size + 1), batch)).astype(np.int64), size)
    columns = np.arange(size)[None, :]
    x = np.where(columns < run[:, None], alphabet - 1, x)
    below_largest = rng.integers(0, alphabet - 1, (batch, 1))  # ends the run where k < size
    return np.where(columns == run[:, None], below_largest, x)


SYMBOL_SUITES: dict[str, SymbolSampler] = {
    "random": _random,
    "constant": _constant,
    "alternating": _alternating,
    "largest": _largest,
    "ascending": _ascending,
    "descending": _descending,
    "carry": _carry,
}
NUMBER_SUITES = ("carry",)
"""Suites that only mean something for a number (``incr``)."""
GENERIC_SUITES = tuple(suite for suite in SYMBOL_SUITES if suite not in NUMBER_SUITES)
"""The suites of every symbol task."""


def checked_symbols(text: str, task: Task, what: str) -> str:
    """``text`` without surrounding space, refused when empty or when a character is no symbol of ``task``."""
    symbols = text.strip()
    if not symbols:
        raise TaskInputError(f"empty input: write {what} 0-{task.base - 1}")
    bad = next((symbol for symbol in symbols if digit_value(symbol, task.base) is None), None)
    if bad is not None:
        raise TaskInputError(f"{bad!r} is not a symbol of task {task.name!r} (use 0-{task.base - 1})")
    return symbols


def _pairs(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1, 2)  # (B, L/2, 2): (key, value) or (first, second)


def kvsort_transform(x: np.ndarray) -> np.ndarray:
    pairs = _pairs(x)
    order = np.argsort(pairs[:, :, 0], axis=1, kind="stable")
    return np.take_along_axis(pairs, order[:, :, None], axis=1).reshape(x.shape)


def increment_transform(x: np.ndarray) -> np.ndarray:
    """Least-significant-first decimal digits (B, L) plus one, as (B, L + 1) digits."""
    batch, size = x.shape
    nines = np.cumprod(x == 9, axis=1).sum(axis=1)  # length of the trailing run of 9s
    out = np.concatenate([x, np.zeros((batch, 1), dtype=x.dtype)], axis=1)
    out[np.arange(size + 1)[None, :] < nines[:, None]] = 0
    out[np.arange(batch), nines] += 1
    return out


def _increment_oracle(text: str) -> str:
    with unlimited_int_digits():
        return str(int(text) + 1)


@dataclass(frozen=True)
class SequenceTask(Task):
    """A transform of one symbol string; ``paired`` tasks read their input two symbols at a time."""

    name: str
    base: int  # alphabet size: symbols are the digits 0..base-1
    transform: Callable[[np.ndarray], np.ndarray]
    reference: Callable[[str], str]  # the oracle, on the person's notation
    output_factor: int = 1  # out_len = output_factor * L (+1 for incr)
    paired: bool = False
    numeric: bool = False  # written most-significant first by people, stored least-significant first
    min_length: int = 2
    suites: tuple[str, ...] = GENERIC_SUITES

    def input_size(self, length: int) -> int:
        """Symbols in an input that fits ``length`` columns."""
        size = length // self.output_factor - (1 if self.numeric else 0)
        return size - size % 2 if self.paired else size

    def out_len(self, size: int) -> int:
        return self.output_factor * size + (1 if self.numeric else 0)

    def width(self, length: int) -> int:
        return self.out_len(self.input_size(length))

    def output_width(self, input_width: int) -> int:
        return input_width  # the model width always equals the output length for these tasks

    def sample(self, batch_size: int, length: int, rng: np.random.Generator, suite: str = "random") -> Batch:
        self.check_length(length)
        self.check_suite(suite)
        x = SYMBOL_SUITES[suite](rng, batch_size, self.input_size(length), self.base)
        return self.encode_symbols(x)

    def encode_symbols(self, x: np.ndarray) -> Batch:
        """(B, L) symbols in model order to a batch of width out_len(L) with its targets."""
        batch, size = x.shape
        width = self.out_len(size)
        inputs = np.full((batch, width), PAD, dtype=np.int64)
        inputs[:, :size] = x + 1
        targets = self.transform(x).astype(np.int64) + 1
        return Batch(inputs, targets)

    def parse(self, text: str) -> np.ndarray:
        symbols = checked_symbols(text, self, "a string of the symbols")
        if self.paired and len(symbols) % 2:
            raise TaskInputError(f"task {self.name!r} reads pairs of symbols: give an even number, got {len(symbols)}")
        if self.numeric:
            symbols = symbols[::-1]
        x = np.array([[digit_value(symbol, self.base) for symbol in symbols]], dtype=np.int64)
        return self.encode_symbols(x).inputs[0]

    def input_text(self, tokens: np.ndarray) -> str:
        text = "".join(DIGITS[t - 1] for t in tokens if t != PAD)
        return text[::-1] if self.numeric else text

    def answer_text(self, tokens: np.ndarray, input_width: int) -> str:
        symbols = "".join(DIGITS[t - 1] if 1 <= t <= self.base else "?" for t in tokens[: self.output_width(input_width)])
        return (symbols[::-1].lstrip("0") or "0") if self.numeric else symbols

    def oracle(self, text: str) -> str:
        return self.reference(text)


def _copy(x: np.ndarray) -> np.ndarray:
    return x.copy()


def _reverse(x: np.ndarray) -> np.ndarray:
    return x[:, ::-1].copy()


def _duplicate(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, x], axis=1)


def _sort(x: np.ndarray) -> np.ndarray:
    return np.sort(x, axis=1)


def _reverse_pairs(x: np.ndarray) -> np.ndarray:
    return _pairs(x)[:, ::-1, :].reshape(x.shape)


def _rotate_later(x: np.ndarray) -> np.ndarray:
    return np.roll(x, 1, axis=1)


def _rotate_earlier(x: np.ndarray) -> np.ndarray:
    return np.roll(x, -1, axis=1)


def _kvsort_oracle(text: str) -> str:
    pairs = [text[i : i + 2] for i in range(0, len(text), 2)]
    return "".join(sorted(pairs, key=lambda pair: pair[0]))


def _rev2_oracle(text: str) -> str:
    return "".join(text[i : i + 2] for i in range(len(text) - 2, -1, -2))


SEQUENCE_TRANSFORMS = {
    "copy": (_copy, lambda text: text),
    "reverse": (_reverse, lambda text: text[::-1]),
    "duplicate": (_duplicate, lambda text: text + text),
    "sort": (_sort, lambda text: "".join(sorted(text))),
    "kvsort": (kvsort_transform, _kvsort_oracle),
    "rev2": (_reverse_pairs, _rev2_oracle),
    "incr": (increment_transform, _increment_oracle),
    # The released code's shifts rotate: its left-shift's output i is input i - 1, so the last
    # symbol comes first. Its right-shift (output i = input i + 1) reads past the end for the last
    # symbol; ours wraps the first symbol round to the end, the mirror image of left-shift.
    "left-shift": (_rotate_later, lambda text: text[-1] + text[:-1]),
    "right-shift": (_rotate_earlier, lambda text: text[1:] + text[0]),
}
