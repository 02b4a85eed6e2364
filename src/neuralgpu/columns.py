"""Where in its output a model goes wrong: how many examples were wrong at each output column.

A model that slips on rare inputs is wrong at scattered columns of a few examples. One tied to
its training lengths is wrong on most examples in a band of columns that grows with the width,
while the columns near both ends stay right (docs/learning.md, "where the tie lies"). The
sequence error cannot tell the two apart; this profile can. ``neuralgpu eval --by-column``
prints it from the same predictions the table is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A profile names at most this many wrong ranges: a model wrong at scattered columns of a long
# input would otherwise print a line per column.
NAMED_WRONG_RANGES = 8


@dataclass
class ColumnErrors:
    """Per output column, how many of the examples scored so far got that column wrong."""

    task: str
    length: int
    suite: str
    examples: int = 0
    wrong: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, wrong_symbols: np.ndarray) -> None:
        """Count one batch: its (B, n) array, True where a scored column's prediction was wrong."""
        if not self.wrong.size:
            self.wrong = np.zeros(wrong_symbols.shape[1], dtype=np.int64)
        self.wrong += wrong_symbols.sum(axis=0)
        self.examples += len(wrong_symbols)

    @property
    def share(self) -> np.ndarray:
        """Per column, the share of the examples scored that were wrong there."""
        return self.wrong / max(self.examples, 1)

    def ranges(self) -> list[tuple[int, int, bool]]:
        """Runs of consecutive columns, (first, last, wrong): wrong when some example erred at
        every column of the run, right when none did at any."""
        erred = self.wrong > 0
        starts = [0, *(np.flatnonzero(erred[1:] != erred[:-1]) + 1)]
        ends = [*(start - 1 for start in starts[1:]), len(erred) - 1]
        return [(first, last, bool(erred[first])) for first, last in zip(starts, ends) if len(erred)]

    def summary(self) -> str:
        """One line: e.g. ``columns 0-10 right; 11-22 wrong on 2%-84% of examples (mean 61%); 23-60 right``.

        Past NAMED_WRONG_RANGES wrong runs it says how many more there are and where they end,
        and names the last run when it is right: scattered errors stay one readable line.
        """
        share, parts, runs = self.share, [], self.ranges()
        wrong_runs = [run for run in runs if run[2]]
        wrong_seen = 0
        for first, last, wrong in runs:
            wrong_seen += wrong
            if wrong_seen > NAMED_WRONG_RANGES:
                rest = wrong_runs[NAMED_WRONG_RANGES:]
                where = (rest[0][0], rest[-1][1])
                runs_word = "run" if len(rest) == 1 else "runs"
                columns_word = "column" if where[0] == where[1] else "columns"
                parts.append(f"{len(rest)} more wrong {runs_word} in {columns_word} {span(where)} (--json counts every column)")
                if not runs[-1][2]:
                    parts.append(f"{span(runs[-1])} right")
                break
            if not wrong:
                parts.append(f"{span((first, last))} right")
                continue
            run = share[first : last + 1]
            low, high = f"{run.min():.0%}", f"{run.max():.0%}"
            spread = f"{low} of examples" if low == high else f"{low}-{high} of examples (mean {run.mean():.0%})"
            parts.append(f"{span((first, last))} wrong on {spread}")
        return f"{self.task} {self.length} {self.suite} ({self.examples} examples): columns " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """How many examples were wrong at each column, under ``--json``'s key for it."""
        return {"wrong_by_column": [int(count) for count in self.wrong]}


def span(run: tuple[int, ...]) -> str:
    """``first-last`` of a run of columns, or the one column."""
    first, last = run[0], run[1]
    return f"{first}" if first == last else f"{first}-{last}"


def format_columns(profiles: list[ColumnErrors]) -> str:
    """The profiles, one line each, under a heading that says what they count."""
    heading = "which output columns were wrong (column 0: the first output symbol, an answer's least-significant digit):"
    return "\n".join([heading, *(f"  {profile.summary()}" for profile in profiles)])
