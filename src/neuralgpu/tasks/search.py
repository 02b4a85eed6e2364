"""``search``: look a key up in a list of key-value pairs.

An input is k (key, value) pairs followed by one query key: 2k + 1 symbols over the digits
0..base-1, laid out in columns 0..2k. The answer is one symbol in column 0, the value of the
**first** pair whose key is the query; every other column's target is padding, and is scored.

The released code drew the query at random and, when no key matched, left the example's answer
as padding, which it did not score. Here the query is always one of the keys, so every example
is scored, and a person's input whose query matches no key is refused with an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuralgpu.tasks.base import DIGITS, PAD, Batch, Task, TaskInputError, digit_value
from neuralgpu.tasks.sequence import GENERIC_SUITES, SYMBOL_SUITES, checked_symbols


def _far(rng: np.random.Generator, batch: int, pairs: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Only the last pair has the query's key: the answer lies at the far end of the input.

    Random inputs over a few keys nearly always match in the first pairs, so they never test
    whether the model carries an answer across the whole width; this suite always does.
    """
    query = rng.integers(0, base, batch)
    keys = (query[:, None] + rng.integers(1, base, (batch, pairs))) % base  # never the query...
    keys[:, -1] = query  # ...except in the last pair
    values = rng.integers(0, base, (batch, pairs))
    return np.stack([keys, values], axis=2), query


def _no_match(symbols: str) -> TaskInputError:
    """The error for an input whose query (its last symbol) is none of its keys (every other symbol from the first)."""
    return TaskInputError(f"the query key {symbols[-1]} (the last symbol) is none of the keys {symbols[:-1:2]}")


@dataclass(frozen=True)
class SearchTask(Task):
    """Key-value lookup; ``base`` symbols serve as keys and as values."""

    name: str = "search"
    base: int = 4
    min_length: int = 3
    suites: tuple[str, ...] = (*GENERIC_SUITES, "far")

    def width(self, length: int) -> int:
        return length if length % 2 else length - 1  # k pairs and the query

    def output_width(self, input_width: int) -> int:
        return 1

    def sample(self, batch_size: int, length: int, rng: np.random.Generator, suite: str = "random") -> Batch:
        self.check_length(length)
        self.check_suite(suite)
        pair_count = (self.width(length) - 1) // 2
        if suite == "far":
            pairs, query = _far(rng, batch_size, pair_count, self.base)
        else:
            pairs = SYMBOL_SUITES[suite](rng, batch_size, 2 * pair_count, self.base).reshape(batch_size, pair_count, 2)
            asked = rng.integers(0, pair_count, batch_size)  # the query is the key of a random pair
            query = pairs[np.arange(batch_size), asked, 0]
        return self.encode(pairs, query)

    def encode(self, pairs: np.ndarray, query: np.ndarray) -> Batch:
        """(B, k, 2) pairs and (B,) query keys, each query one of its row's keys, to a batch."""
        batch, pair_count, _ = pairs.shape
        inputs = np.concatenate([pairs.reshape(batch, 2 * pair_count), query[:, None]], axis=1) + 1
        first_match = np.argmax(pairs[:, :, 0] == query[:, None], axis=1)
        targets = np.full_like(inputs, PAD)
        targets[:, 0] = pairs[np.arange(batch), first_match, 1] + 1
        return Batch(inputs.astype(np.int64), targets.astype(np.int64))

    def parse(self, text: str) -> np.ndarray:
        symbols = checked_symbols(text, self, "key-value pairs and then a query key, of the symbols")
        if len(symbols) < 3 or len(symbols) % 2 == 0:
            raise TaskInputError(
                f"task {self.name!r} reads key-value pairs and then one query key: give an odd number of symbols, at least 3, got {len(symbols)}"
            )
        values = np.array([digit_value(symbol, self.base) for symbol in symbols], dtype=np.int64)
        pairs, query = values[:-1].reshape(1, -1, 2), values[-1:]
        if not (pairs[0, :, 0] == query[0]).any():
            raise _no_match(symbols)
        return self.encode(pairs, query).inputs[0]

    def input_text(self, tokens: np.ndarray) -> str:
        return "".join(DIGITS[t - 1] for t in tokens if t != PAD)

    def answer_text(self, tokens: np.ndarray, input_width: int) -> str:
        return "".join(DIGITS[t - 1] if 1 <= t <= self.base else "?" for t in tokens[: self.output_width(input_width)])

    def oracle(self, text: str) -> str:
        """A plain loop over the pairs, independent of the generator's array code."""
        query = text[-1]
        for position in range(0, len(text) - 1, 2):
            if text[position] == query:
                return text[position + 1]
        raise _no_match(text)
