"""Token counts per calling thread, for a runtime that several threads share."""

from __future__ import annotations

import threading

from ragkit.types import Usage

__all__ = ["UsageSlot"]


class UsageSlot:
    """The last answer's :class:`~ragkit.types.Usage`, kept per thread: a server's
    threads answering at once through one model each read their own answer's counts."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, usage: Usage | None) -> None:
        self._local.value = usage

    def get(self) -> Usage | None:
        value: Usage | None = getattr(self._local, "value", None)
        return value
