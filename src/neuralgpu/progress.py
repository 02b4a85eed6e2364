"""Progress of long scoring: tqdm's bar on a terminal, a few plain lines where there is none.

tqdm stays silent when stderr is not a terminal, which keeps carriage-return debris out of log
files; but then an hour of evaluation under ``nohup``, a scheduler or a pipe shows nothing until
its table, and a person cannot tell a slow run from a stuck one. There, ``Progress`` writes a line
when a part ends and at most one a ``interval`` inside a part: a log of a dozen lines an hour.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

LINE_INTERVAL_S = 60.0


def duration(seconds: float) -> str:
    """'45 s', '12 min 5 s', '2 h 3 min': as exact as a person reading a log wants."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def plain_lines(stream: TextIO | None = None) -> bool:
    """Does progress on ``stream`` (stderr) go out as plain lines? Where tqdm's bar would stay
    silent: anywhere but a terminal. The one place that decides it, for scoring and training."""
    return not (stream if stream is not None else sys.stderr).isatty()


class LineClock:
    """When the next plain progress line is due: at most one every ``interval`` seconds."""

    def __init__(self, interval: float = LINE_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.last = clock()

    def due(self) -> bool:
        return self.clock() - self.last >= self.interval

    def mark(self) -> None:
        """A line just went out."""
        self.last = self.clock()


class Progress:
    """Examples scored in consecutive parts (one (length, suite) each) of ``total`` examples.

    ``show`` False: nothing at all. Otherwise a bar when ``stream`` is a terminal, and lines
    otherwise, each starting with ``label``. Use it in ``contextlib.closing``.
    """

    def __init__(
        self,
        total: int,
        label: str,
        show: bool = True,
        stream: TextIO | None = None,
        interval: float = LINE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.total = total
        self.clock = clock
        self.lines = show and plain_lines(self.stream)
        on_terminal = show and not self.lines
        self.next_line = LineClock(interval, clock)
        self.bar = tqdm(total=total, unit="example", disable=not on_terminal, file=self.stream, dynamic_ncols=True, leave=False)
        self.done = 0  # examples scored in all parts so far
        self.part = ""
        self.part_total = self.part_done = 0
        self.part_started = clock()

    def close(self) -> None:
        """Take the bar off the terminal (``contextlib.closing`` calls it)."""
        self.bar.close()

    def start(self, part: str, examples: int) -> None:
        """A part of ``examples`` to score begins (e.g. 'length 2001 random')."""
        self.bar.set_description(f"{self.label}: {part}" if self.label else part)
        self.part, self.part_total, self.part_done = part, examples, 0
        self.part_started = self.clock()
        self.next_line.mark()  # the first line inside a part comes an interval after it began

    def update(self, count: int) -> None:
        """``count`` more examples of the part were scored (``evaluate``'s ``on_scored``)."""
        self.bar.update(count)
        self.done += count
        self.part_done += count
        if self.lines and self.part_done < self.part_total and self.next_line.due():
            elapsed = duration(self.clock() - self.part_started)
            self._line(f"{self.part_done:,} of {self.part_total:,} examples, {elapsed}")

    def finish(self, outcome: str) -> None:
        """The part ended; ``outcome`` says how (e.g. 'none wrong')."""
        if self.lines:
            self._line(f"{outcome}, {duration(self.clock() - self.part_started)}")

    def _line(self, text: str) -> None:
        self.next_line.mark()
        prefix = f"{self.label}: " if self.label else ""
        overall = f"; {self.done:,} of {self.total:,} in all" if self.total > self.part_total else ""
        print(f"{prefix}{self.part}: {text}{overall}", file=self.stream, flush=True)
