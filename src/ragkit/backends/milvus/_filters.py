"""ragkit filters as Milvus boolean expressions over the chunk collection's JSON fields.

A chunk's filterable fields (:func:`ragkit.stores.codec.flat_fields`) are kept in two
JSON fields: strings and numbers in ``meta``, booleans in ``flags``. The split is what
makes ragkit's kind rules exact: Milvus Lite compares JSON values the way Python does,
where ``True == 1``, and a filter ``{"code": 1}`` must not match ``code=True``. With
booleans apart, ``meta["code"] == 1`` can only meet strings and numbers, which compare
by kind in Milvus and in Milvus Lite alike (``1 == 1.0``, never ``"1" == 1``).

A missing key makes a comparison false (Milvus) or unknown (Milvus Lite, three-valued
logic), so ``$ne`` and ``$nin``, which match chunks without the field, are written
``(not (exists f)) or (not (f == v))``: true for a missing key under either logic.

``in`` is not used on JSON paths (Milvus Lite refuses it): ``$in`` is a chain of ``or``.

What is not translated (kept exact by the store's post-filter, see
:class:`~ragkit.backends.milvus.store.MilvusStore`):

* field names with ``/`` or ``~`` (Milvus turns a JSON path into a JSON pointer, where
  they are escapes) or control characters;
* integers beyond 2**53, which JSON engines may read as doubles.

The expression for such a condition is left out, so the server returns a superset and
:func:`ragkit.stores.filters.matches` decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ragkit.stores.filters import Condition, filterable_key, kind_of
from ragkit.types import Scalar

__all__ = ["MilvusFilter", "quote", "translate"]

_EXACT_INT = 2**53
_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True, slots=True)
class MilvusFilter:
    """A filter as Milvus sees it.

    Attributes:
        expr: the boolean expression (``""``: every chunk).
        satisfiable: False when no chunk can match (``$in: []``, a field never stored).
        exact: True when ``expr`` is the filter itself; otherwise it selects a superset
            and the hits must be checked with :func:`ragkit.stores.filters.matches`.
    """

    expr: str
    satisfiable: bool = True
    exact: bool = True


def quote(text: str) -> str:
    """``text`` as a Milvus string literal (the escapes both Milvus and Milvus Lite read)."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def _literal(value: Scalar) -> str | None:
    """A literal for ``value``, or None when a JSON engine may not compare it exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) <= _EXACT_INT else None
    if isinstance(value, float):
        return repr(value)
    return quote(value)


def _path_ok(field: str) -> bool:
    return not any(ch in "/~" or ord(ch) < 0x20 for ch in field)


def _equal_any(field: str, values: Sequence[Scalar]) -> str | None:
    """``field`` equals one of ``values`` (one kind), or None when not expressible."""
    column = "flags" if kind_of(values[0]) == "bool" else "meta"
    path = f"{column}[{quote(field)}]"
    literals = [_literal(v) for v in values]
    if any(lit is None for lit in literals):
        return None
    tests = [f"{path} == {lit}" for lit in dict.fromkeys(literals)]
    return tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"


def _clause(cond: Condition) -> str | None:
    """The expression of one condition, or None when it must be checked in Python."""
    if not _path_ok(cond.field):
        return None
    value = cond.value
    if cond.op in _RANGE:
        assert not isinstance(value, tuple)  # parse_filters: a number
        literal = _literal(value)
        if literal is None:
            return None
        # Range operators only match numbers, which live in ``meta`` only.
        return f"meta[{quote(cond.field)}] {_RANGE[cond.op]} {literal}"
    values = value if isinstance(value, tuple) else (value,)
    equal = _equal_any(cond.field, values)
    if equal is None:
        return None
    if cond.op in ("$eq", "$in"):
        return equal
    column = "flags" if kind_of(values[0]) == "bool" else "meta"
    # Parenthesized: in Milvus's grammar ``not`` binds tighter than ``==``.
    return f"((not (exists {column}[{quote(cond.field)}])) or (not ({equal})))"


def translate(conditions: Sequence[Condition]) -> MilvusFilter:
    """The Milvus expression for validated ``conditions`` (from ``parse_filters``)."""
    clauses: list[str] = []
    exact = True
    for cond in conditions:
        absent = not filterable_key(cond.field)  # never stored, so missing everywhere
        empty = cond.value == ()
        if cond.op in ("$ne", "$nin") and (absent or empty):
            continue
        if absent or empty:
            return MilvusFilter("", satisfiable=False)
        clause = _clause(cond)
        if clause is None:
            exact = False
        else:
            clauses.append(clause)
    return MilvusFilter(" and ".join(clauses), exact=exact)
