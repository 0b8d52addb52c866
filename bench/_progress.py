"""Load average and progress lines for the benchmarks that run for minutes to hours."""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def load() -> str:
    """The 1, 5 and 15-minute load averages, as `1.0/1.2/0.9`."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f}/{five:.1f}/{fifteen:.1f}"


def progress_printer() -> Any:
    """A ``progress(what, done, total)`` callback that prints at most every 20 s per
    ``what`` (and at the end), with the load average."""
    last: dict[str, float] = {}

    def show(what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last.get(what, 0) > 20:
            last[what] = now
            print(f"  {what}: {done}/{total}  (load {load()})", file=sys.stderr, flush=True)

    return show
