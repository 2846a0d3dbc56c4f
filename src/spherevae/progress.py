"""Progress inside long loops (a training epoch, a validation, an evaluation).

On a terminal, a progress bar on standard error that disappears when the loop ends. When standard
output is not a terminal (a log file, a pipe, a batch system), where a bar's carriage returns would
make a mess, a plain line every :data:`PROGRESS_SECONDS` seconds instead, such as
``epoch 3: 12000/60000 examples, 41 s``; a loop that ends sooner prints none.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from .extras import missing_extra

try:
    from tqdm import tqdm
except ModuleNotFoundError as err:  # an optional package: name the extra
    raise missing_extra(err) from None

__all__ = ["PROGRESS_SECONDS", "Progress"]

T = TypeVar("T")

PROGRESS_SECONDS = 30.0
"""Seconds between two progress lines when standard output is not a terminal."""


class Progress:
    """Counts the examples a loop has done and shows it: a bar, lines, both or neither.

    Args:
        what: what the loop is, the start of every line (``"epoch 3"``).
        total: examples the loop will do.
        log: prints one line (the lines go through it).
        bar: draw a progress bar; default: when standard error is a terminal.
        lines: print a line every ``interval`` seconds; default: when standard output is not a
            terminal.
        interval: seconds between lines (default :data:`PROGRESS_SECONDS`).
        clock: seconds from an arbitrary origin (``time.monotonic``; tests pass a fake).

    Wrap the loop's iterable in :meth:`track`, or call :meth:`update` after each batch and
    :meth:`close` at the end (or use it as a context manager).
    """

    def __init__(
        self,
        what: str,
        total: int,
        log: Callable[[str], None],
        *,
        bar: bool | None = None,
        lines: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.log, self.clock = what, total, log, clock
        self.lines = not sys.stdout.isatty() if lines is None else lines
        self.interval = PROGRESS_SECONDS if interval is None else interval
        show_bar = sys.stderr.isatty() if bar is None else bar
        self.bar = tqdm(total=total, desc=what, unit="ex", leave=False, disable=not show_bar)
        self.done = 0
        self.start = self.last = clock()

    def update(self, n: int) -> None:
        """Count ``n`` more examples done; print a line if ``interval`` seconds passed since the
        start or the last line."""
        self.done += n
        self.bar.update(n)
        if not self.lines:
            return
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.log(f"{self.what}: {self.done}/{self.total} examples, {now - self.start:.0f} s")

    def track(self, items: Iterable[T], size: Callable[[T], int]) -> Iterator[T]:
        """Yield ``items``, counting ``size(item)`` examples done once the loop body has finished
        with an item; closes the bar when the loop ends or is left."""
        try:
            for item in items:
                yield item
                self.update(size(item))
        finally:
            self.close()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
