"""Filterable fields of every indexed chunk, as compact columns, for keyword filters.

A :class:`~ragkit.retrieval.KeywordIndex` keeps no chunk in memory; to apply filters
to thousands of hits without reading each from disk, it keeps each field as one int32
code per chunk plus the field's distinct values. A condition is then evaluated once
per distinct value, and a hit matches when its codes are allowed by every condition.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from ragkit.stores.filters import Condition, kind_of, matches
from ragkit.types import Scalar

__all__ = ["FieldColumns"]


class FieldColumns:
    """Columns over chunks ``0..n-1`` (their positions), from ``(position, fields)``."""

    def __init__(self, n: int, rows: Iterable[tuple[int, dict[str, Scalar]]]) -> None:
        self._codes: dict[str, NDArray[np.int32]] = {}
        self._values: dict[str, list[Scalar]] = {}
        known: dict[str, dict[tuple[type, Scalar], int]] = {}
        for position, fields in rows:
            for key, value in fields.items():
                if key not in self._codes:
                    self._codes[key] = np.full(n, -1, np.int32)
                    self._values[key], known[key] = [], {}
                seen = known[key]
                code = seen.get((type(value), value))  # 1, 1.0 and True stay apart
                if code is None:
                    code = seen[(type(value), value)] = len(seen)
                    self._values[key].append(value)
                self._codes[key][position] = code

    def mask(
        self, conditions: tuple[Condition, ...], positions: NDArray[np.intp]
    ) -> NDArray[np.bool_]:
        """Whether the chunk at each of ``positions`` matches all ``conditions``."""
        keep = np.ones(len(positions), bool)
        for cond in conditions:
            values = self._values.get(cond.field, [])
            # allowed[code]; the last entry (code -1) is for chunks without the field
            allowed = np.fromiter(_allowed(cond, values), bool, len(values))
            allowed = np.append(allowed, matches((cond,), {}))
            codes = self._codes.get(cond.field)
            if codes is None:
                keep &= allowed[-1]
            else:
                keep &= allowed[codes[positions]]
        return keep


def _allowed(cond: Condition, values: list[Scalar]) -> Iterable[bool]:
    """Whether each distinct value passes ``cond``; ``$in``/``$nin`` by one set lookup each
    (calling ``matches`` per value costs len(values) x len(cond.value) comparisons)."""
    if isinstance(cond.value, tuple) and cond.op in ("$in", "$nin"):
        # the kind keeps 1 and True apart, as filters._equal does; 1 and 1.0 stay equal
        wanted = {(kind_of(v), v) for v in cond.value}
        inside = cond.op == "$in"
        return (((kind_of(v), v) in wanted) == inside for v in values)
    return (matches((cond,), {cond.field: v}) for v in values)
