"""Long addition and multiplication in bases 2, 4 and 10 (``badd bmul qadd qmul add mul``).

Encoding (the released code's, with full-width targets): two operands of exactly k digits each,
least-significant digit first, joined by the operator: input ``a SEP b`` of width n = 2k + 1.
The target holds every digit of the result, least-significant first and padded with explicit
zeros to the full result width (k + 1 for a sum, 2k for a product); every one of those columns,
and the padding after them, is scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neuralgpu.tasks.base import DIGITS, PAD, TOKEN_OF, Batch, Task, TaskInputError, digit_value, unlimited_int_digits

# (rng, batch, k, base) -> two (batch, k) digit arrays, least-significant digit first.
OperandSampler = Callable[[np.random.Generator, int, int, int], tuple[np.ndarray, np.ndarray]]


def _random(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, base, (batch, k)), rng.integers(0, base, (batch, k))


def _carry(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """a ends in a long run of the largest digit (half to all of its digits); b is one small digit."""
    a = rng.integers(0, base, (batch, k))
    run = rng.integers((k + 1) // 2, k + 1, batch)
    a[np.arange(k)[None, :] < run[:, None]] = base - 1
    b = np.zeros((batch, k), dtype=np.int64)
    b[:, 0] = rng.integers(1, base, batch)
    return a, b


def _sparse(rng: np.random.Generator, batch: int, k: int, base: int) -> np.ndarray:
    nonzero = rng.random((batch, k)) < min(1.0, 2.0 / k)
    return np.where(nonzero, rng.integers(1, base, (batch, k)), 0)


def _zeros(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Mostly-zero operands (about two non-zero digits each), like 000...002 * 000...002."""
    return _sparse(rng, batch, k, base), _sparse(rng, batch, k, base)


def _ones(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Every digit of both operands is the largest digit (all ones in binary, all nines in decimal)."""
    full = np.full((batch, k), base - 1, dtype=np.int64)
    return full, full.copy()


def _alternating(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest digit and zero alternate (1010...), each operand with its own random phase."""
    columns = np.arange(k)[None, :]
    phase_a, phase_b = rng.integers(0, 2, (2, batch, 1))
    return (base - 1) * ((columns + phase_a) % 2), (base - 1) * ((columns + phase_b) % 2)


def _zero_operand(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """One operand (chosen at random) is zero, the other random."""
    a, b = _random(rng, batch, k, base)
    which = rng.integers(0, 2, batch).astype(bool)
    a[which] = 0
    b[~which] = 0
    return a, b


def _unequal(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """One operand (chosen at random) has at most a quarter of the digits of the other."""
    a, b = _random(rng, batch, k, base)
    short = rng.integers(1, max(1, k // 4) + 1, batch)
    zeroed = np.arange(k)[None, :] >= short[:, None]
    which = rng.integers(0, 2, batch).astype(bool)
    a[which[:, None] & zeroed] = 0
    b[~which[:, None] & zeroed] = 0
    return a, b


def _symmetric(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Both operands are the same random number."""
    a = rng.integers(0, base, (batch, k))
    return a, a.copy()


def _product_run(rng: np.random.Generator, batch: int, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Factors of a product holding a long run of the largest digit: a carry through many
    columns of the partial sums. bmul models error-free on most random products at 41 still wrote
    a 0 at the top of a run of twelve or thirteen 1s in the product (docs/learning.md: the product_run suite).

    A target t of 2k digits holds a run of k/2 to k largest digits, at least half of it above
    column k, and a zero top digit; a has a non-zero top digit and b = t // a, which then fits in k digits. The product
    a * b = t - (t mod a) equals t above the lowest k columns, up to a borrow that shortens a run
    beginning there by one digit.
    """
    a = rng.integers(0, base, (batch, k))
    a[:, k - 1] = rng.integers(1, base, batch)
    b = np.zeros((batch, k), dtype=np.int64)
    for row in range(batch):
        target = rng.integers(0, base, 2 * k)
        target[-1] = 0
        run = min(int(rng.integers((k + 1) // 2, k + 1)), 2 * k - 1)
        # At least half of the run above the lowest k columns, where the product keeps it.
        highest = 2 * k - 1 - run
        start = int(rng.integers(min(k - run // 2, highest), highest + 1))
        target[start : start + run] = base - 1
        with unlimited_int_digits():
            b[row] = int_to_digits(digits_to_int(target, base) // digits_to_int(a[row], base), base, k)
    return a, b


OPERAND_SUITES: dict[str, OperandSampler] = {
    "random": _random,
    "carry": _carry,
    "zeros": _zeros,
    "ones": _ones,
    "alternating": _alternating,
    "zero_operand": _zero_operand,
    "unequal": _unequal,
    "symmetric": _symmetric,
    "product_run": _product_run,
}
PRODUCT_SUITES = ("product_run",)
"""Multiplication's own: its hard carries are in the partial sums, which no operand pattern makes long."""
COMMON_SUITES = tuple(suite for suite in OPERAND_SUITES if suite not in PRODUCT_SUITES)
"""The suites of every arithmetic task."""
STRUCTURED_SUITES = tuple(name for name in COMMON_SUITES if name != "random")


def digits_to_int(digits: np.ndarray, base: int) -> int:
    """Least-significant-first digits to a Python int."""
    text = (digits[::-1].astype(np.uint8) + ord("0")).tobytes()
    with unlimited_int_digits():
        return int(text, base) if len(text) else 0


def int_to_digits(value: int, base: int, width: int) -> np.ndarray:
    """A non-negative int to exactly ``width`` digits, least-significant first (zero-padded)."""
    bits_per_digit = base.bit_length() - 1
    if base == 1 << bits_per_digit:  # a power of two: regroup the binary expansion
        text = format(value, "b").encode()
        text = b"0" * (-len(text) % bits_per_digit) + text
        bits = np.frombuffer(text, dtype=np.uint8) - ord("0")
        groups = bits.reshape(-1, bits_per_digit).astype(np.int64)
        digits = groups @ (1 << np.arange(bits_per_digit - 1, -1, -1))
    elif base == 10:
        with unlimited_int_digits():
            digits = np.frombuffer(str(value).encode(), dtype=np.uint8).astype(np.int64) - ord("0")
    else:
        raise ValueError(f"base {base} is not supported (use a power of two up to 8, or 10)")
    digits = digits[::-1]
    if len(digits) > width:
        raise ValueError(f"{value} needs more than {width} digits in base {base}")
    return np.pad(digits, (0, width - len(digits)))


def format_int(value: int, base: int) -> str:
    """A non-negative int in ``base``, most-significant digit first, no leading zeros."""
    digits = int_to_digits(value, base, max(1, value.bit_length()))
    text = "".join(DIGITS[d] for d in digits[::-1]).lstrip("0")
    return text or "0"


@dataclass(frozen=True)
class ArithmeticTask(Task):
    """Long arithmetic: ``a OP b`` in one base."""

    name: str
    base: int
    operator: str  # "+" or "*"
    min_length: int = 3
    suites: tuple[str, ...] = COMMON_SUITES

    def result_width(self, k: int) -> int:
        return k + 1 if self.operator == "+" else 2 * k

    def output_width(self, input_width: int) -> int:
        return self.result_width((input_width - 1) // 2)

    def width(self, length: int) -> int:
        return 2 * ((length - 1) // 2) + 1

    def scaled_length(self, length: int, factor: int) -> int:
        return 2 * ((length - 1) // 2) * factor + 1  # operands factor times as long: 41 -> 401

    def length_factor(self, length: int, trained: int) -> float:
        return ((length - 1) // 2) / ((trained - 1) // 2)  # by operand digits: 4001 is 100x 41

    def compute(self, a: int, b: int) -> int:
        return a + b if self.operator == "+" else a * b

    def sample(self, batch_size: int, length: int, rng: np.random.Generator, suite: str = "random") -> Batch:
        self.check_length(length)
        self.check_suite(suite)
        a, b = OPERAND_SUITES[suite](rng, batch_size, (length - 1) // 2, self.base)
        return self.encode_operands(a, b)

    def encode_operands(self, a: np.ndarray, b: np.ndarray) -> Batch:
        """Two (B, k) least-significant-first digit arrays to a batch with exact targets."""
        batch, k = a.shape
        inputs = np.empty((batch, 2 * k + 1), dtype=np.int64)
        inputs[:, :k] = a + 1
        inputs[:, k] = TOKEN_OF[self.operator]
        inputs[:, k + 1 :] = b + 1
        width = self.result_width(k)
        targets = np.full_like(inputs, PAD)
        for row in range(batch):
            value = self.compute(digits_to_int(a[row], self.base), digits_to_int(b[row], self.base))
            targets[row, :width] = int_to_digits(value, self.base, width) + 1
        return Batch(inputs, targets)

    def parse(self, text: str) -> np.ndarray:
        expression = text.strip()
        if not expression:
            raise TaskInputError("empty input: write two numbers joined by " + repr(self.operator))
        parts = expression.split(self.operator)
        if len(parts) != 2:
            found = expression.count(self.operator)
            raise TaskInputError(f"expected exactly one {self.operator!r} between two base-{self.base} numbers, found {found}")
        operands = []
        for side, part in zip(("left", "right"), parts):
            part = part.strip()
            if not part:
                raise TaskInputError(f"the {side} operand is missing")
            bad = next((symbol for symbol in part if digit_value(symbol, self.base) is None), None)
            if bad is not None:
                raise TaskInputError(f"{bad!r} in the {side} operand is not a base-{self.base} digit (0-{self.base - 1})")
            operands.append(np.array([digit_value(symbol, self.base) for symbol in reversed(part)], dtype=np.int64))
        k = max(len(operands[0]), len(operands[1]))
        a, b = (np.pad(digits, (0, k - len(digits)))[None, :] for digits in operands)
        inputs = np.empty(2 * k + 1, dtype=np.int64)
        inputs[:k], inputs[k], inputs[k + 1 :] = a[0] + 1, TOKEN_OF[self.operator], b[0] + 1
        return inputs

    def input_text(self, tokens: np.ndarray) -> str:
        k = (len(tokens) - 1) // 2
        left = "".join(DIGITS[t - 1] for t in tokens[:k][::-1])
        right = "".join(DIGITS[t - 1] for t in tokens[k + 1 : 2 * k + 1][::-1])
        return f"{left}{self.operator}{right}"

    def answer_text(self, tokens: np.ndarray, input_width: int) -> str:
        width = self.output_width(input_width)
        symbols = [DIGITS[t - 1] if 1 <= t <= self.base else "?" for t in tokens[:width][::-1]]
        return "".join(symbols).lstrip("0") or "0"

    def oracle(self, text: str) -> str:
        left, right = text.split(self.operator)
        with unlimited_int_digits():
            return format_int(self.compute(int(left, self.base), int(right, self.base)), self.base)
