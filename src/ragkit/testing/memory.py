"""This process's resident memory, from Linux's ``/proc``: now, and the peak since a reset.

For tests and benchmarks that bound memory. ``ru_maxrss`` will not do there: in a
forked child it starts from the parent's peak, so a bound checked with it can pass
without measuring anything.
"""

from __future__ import annotations

__all__ = ["reset_peak", "status_mb"]


def status_mb(key: str) -> float:
    """A size line of ``/proc/self/status`` in MiB: ``"VmRSS:"`` (resident now) or
    ``"VmHWM:"`` (the peak since the last :func:`reset_peak`)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024


def reset_peak() -> None:
    """Start ``VmHWM`` again from the current resident size."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
