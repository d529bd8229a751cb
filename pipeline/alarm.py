"""A time limit on CPU-bound work in a worker process: SIGALRM interrupts it (also inside
a regular expression), where a thread or a deadline check could not. The extraction of a
page (pipeline.extract) and the parse of a feed (pipeline.parse) run under it, each with
`extract.timeout`, so one page or feed cannot hold a worker, and the feeds waiting for it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

ALARM_REPEAT = 0.05


class ExtractionTimeout(BaseException):
    """The time limit ran out. Not an Exception: libraries' `except Exception` blocks must
    not swallow it."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ExtractionTimeout after `seconds` (main thread of a process only; else a no-op).

    The alarm repeats every ALARM_REPEAT seconds until the block ends: one that lands in a
    `__del__` (during garbage collection) is printed and ignored by Python.
    """
    try:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
    except ValueError:  # not the main thread: rely on the caller's own deadline
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds, ALARM_REPEAT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _on_alarm(signum: int, frame: object) -> None:
    raise ExtractionTimeout("extraction time limit exceeded")
