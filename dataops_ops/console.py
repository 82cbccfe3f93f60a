"""What a person sees while ``dataops run`` works: its lines, and a progress line (months done of all, time elapsed,
time left). On a terminal the progress line is redrawn in place every second, and any other line, on stdout or on
stderr, first clears it (so log lines never end up glued to it); elsewhere it is one plain line per finished month.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO, cast

_CLEAR_LINE = "\r\x1b[K"  # back to the line's start, erase to its end
_REDRAW_SECONDS = 1.0


def clock_text(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour up)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Months done of all, and the time left estimated from the months' pace so far (they run several at once,
    after the reference tables, which are not counted in the pace)."""

    def __init__(self, months: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.months = months
        self.done = 0
        self._clock = clock
        self._started = clock()
        self._months_started: float | None = None

    def months_started(self) -> None:
        self._months_started = self._clock()

    def month_done(self) -> None:
        self.done += 1

    def elapsed(self) -> float:
        return self._clock() - self._started

    def time_left(self) -> float | None:
        if self._months_started is None or not self.done:
            return None
        pace = (self._clock() - self._months_started) / self.done
        return pace * max(self.months - self.done, 0)

    def line(self, *, final: bool = False) -> str:
        head = f"{self.done}/{self.months} months done, {clock_text(self.elapsed())} elapsed"
        if final or self.done >= self.months:
            return head
        if self._months_started is None:
            return f"{head}, loading the reference tables"
        left = self.time_left()
        return f"{head}, {'estimating time left' if left is None else f'about {clock_text(left)} left'}"


class Console:
    """Lines to ``out`` and ``err``, and the progress line on ``out``: live (redrawn in place) or one line per
    finished month. Safe to use from several threads (the redraw runs in its own)."""

    def __init__(self, out: TextIO, err: TextIO, progress: Progress, *, live: bool) -> None:
        self.out, self.err, self.progress, self.live = out, err, progress, live
        self._lock = threading.RLock()
        self._shown = False  # a live progress line is on the screen
        self.stderr = cast(TextIO, _ClearingStream(self))

    def line(self, text: str, *, error: bool = False) -> None:
        with self._lock:
            self._write_over_progress(text + "\n", self.err if error else self.out)

    def months_started(self) -> None:
        with self._lock:
            self.progress.months_started()
            self._redraw()

    def month_done(self) -> None:
        with self._lock:
            self.progress.month_done()
            if self.live:
                self._redraw()
            else:
                self.out.write(f"progress: {self.progress.line()}\n")
                self.out.flush()

    @contextmanager
    def running(self) -> Iterator[Console]:
        """The live progress line redrawn every second for the block; left on the screen at its end."""
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(stop,), name="progress-line", daemon=True)
        if self.live:
            self._redraw()
            ticker.start()
        try:
            yield self
        finally:
            stop.set()
            if ticker.is_alive():
                ticker.join()
            with self._lock:
                self.live = False  # no redraw after the final line
                if self._shown:
                    self._write_over_progress(f"{self.progress.line(final=True)}\n", self.out)

    def _tick(self, stop: threading.Event) -> None:
        while not stop.wait(_REDRAW_SECONDS):
            with self._lock:
                self._redraw()

    def _redraw(self) -> None:
        if self.live:
            self.out.write(f"{_CLEAR_LINE}{self.progress.line()}")
            self.out.flush()
            self._shown = True

    def _write_over_progress(self, text: str, stream: TextIO) -> None:
        if self._shown:
            self.out.write(_CLEAR_LINE)
            self.out.flush()
            self._shown = False
        stream.write(text)
        stream.flush()
        if text.endswith("\n"):
            self._redraw()


class _ClearingStream(io.TextIOBase):
    """The console's stderr for ``sys.stderr`` and log handlers: a line written to it first clears the progress
    line; a partial line is held until its end (a log handler writes the message, then the newline)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._pending = ""

    def write(self, text: str) -> int:
        with self._console._lock:
            self._pending += text
            complete, newline, self._pending = self._pending.rpartition("\n")
            if newline:
                self._console._write_over_progress(complete + newline, self._console.err)
        return len(text)

    def flush(self) -> None:
        with self._console._lock:
            if self._pending:
                self._console._write_over_progress(self._pending, self._console.err)
                self._pending = ""
            self._console.err.flush()

    def isatty(self) -> bool:
        return self._console.err.isatty()
