"""Progress of long loops: tqdm's bar on a terminal, one plain line every PERIOD_S seconds anywhere else.

Off a terminal (a log file, `ray job logs`, the dashboard's log view, a Ray worker's output that the driver
forwards line by line) a tqdm bar redraws itself in place with carriage returns every 0.1 s: its whole history
lands on one line that grows until the loop ends, and a Ray worker's bar reaches the driver only then. There
`bar` keeps tqdm (its counts, rate and ETA) but writes each refresh as its own line, at most every PERIOD_S
seconds (tqdm's TQDM_MININTERVAL when set), plus the first and the last:

    pack jpeg: 0/8298 tracklets (0%) 00:00<?, ? tracklets/s
    pack jpeg: 1502/8298 tracklets (18%) 00:30<02:16, 50.07 tracklets/s
    pack jpeg: 8298/8298 tracklets (100%) 02:45<00:00, 50.21 tracklets/s
    pose: 3/55 tracklets (5%) 01:38<28:17, 32.6 s/tracklet

`leave=False` (clear the bar when done) only applies on a terminal: a log keeps the last counts. `disable=True` (or
TQDM_DISABLE=1, tqdm's own switch) prints nothing either way.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # tqdm is imported on the first bar: reid.ray_runtime (every command) only needs on_terminal
    from tqdm import tqdm

PERIOD_S = 30.0
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%) {elapsed}<{remaining}, {rate_text}{postfix}"
LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit} {elapsed}, {rate_text}{postfix}"


def rate_text(rate: float | None, unit: str) -> str:
    """'50.07 tracklets/s', or below one a second '32.6 s/tracklet' (tqdm's own: '32.55s/ tracklets')."""
    if not rate:
        return f"? {unit}/s"
    if rate >= 1:
        return f"{rate:.2f} {unit}/s"
    one = unit[:-1] if len(unit) > 1 and unit.endswith("s") else unit
    return f"{1 / rate:.1f} s/{one}"


class LineWriter:
    """A file for tqdm that turns each in-place redraw ('\\r' + status) into a line of its own; the blank redraw
    that clears a bar (leave=False) writes nothing."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


@functools.cache
def _line_bar() -> type[tqdm]:
    from tqdm import tqdm

    class LineBar(tqdm):
        """tqdm writing into a LineWriter: closing it prints the final counts unless its last line already did."""

        def close(self) -> None:
            if not self.disable and self.leave and self.last_print_n == self.n:
                self.leave = False  # the last line shows these counts already (only the overall rate would differ)
            super().close()

        @staticmethod
        def format_meter(n: float, total: float | None, elapsed: float, **kwargs: Any) -> str:
            rate = kwargs.get("rate")
            if rate is None and elapsed:
                rate = (n - kwargs.get("initial", 0)) / elapsed  # as tqdm does without a smoothed rate
            return tqdm.format_meter(n, total, elapsed, rate_text=rate_text(rate, kwargs.get("unit", "it")),
                                     **kwargs)

    return LineBar


def on_terminal(stream: IO[str]) -> bool:
    """Whether `stream` is a terminal (False for a file, a pipe, a closed or replaced stream)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def bar(iterable: Iterable[Any] | None = None, *, desc: str, total: float | None = None, unit: str = "it",
        disable: bool = False, leave: bool = True, file: IO[str] | None = None, **kwargs: Any) -> tqdm:
    """tqdm(iterable, ...) on a terminal; off one, the same counts as a line per refresh (module docstring).

    file: where to write (default sys.stderr at the call). Other keywords go to tqdm."""
    stream = file if file is not None else sys.stderr
    disable = disable or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")  # explicit keywords beat env
    if on_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=leave, file=stream, **kwargs)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    period = _period_s()
    # leave=True whatever was asked: a log cannot clear a line, and without its last counts "0/209" would stand
    return _line_bar()(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=True,
                        file=LineWriter(stream), mininterval=period, maxinterval=period, ascii=True,
                        bar_format=LINE_FORMAT if total else LINE_FORMAT_NO_TOTAL, dynamic_ncols=False, **kwargs)


def _period_s() -> float:
    """TQDM_MININTERVAL when it is a number of seconds >= 0, else PERIOD_S."""
    try:
        period = float(os.environ.get("TQDM_MININTERVAL", PERIOD_S))
    except ValueError:
        return PERIOD_S
    return period if period >= 0 else PERIOD_S
