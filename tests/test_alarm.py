"""pipeline.alarm: the time limit on a worker's CPU-bound work."""

from __future__ import annotations

import contextlib
import time

import pytest

from pipeline.alarm import ExtractionTimeout, time_limit


def test_time_limit_interrupts_long_work() -> None:
    with pytest.raises(ExtractionTimeout), time_limit(0.2):
        while True:  # a library that swallows every Exception cannot stop the limit
            with contextlib.suppress(Exception):
                time.sleep(0.01)
