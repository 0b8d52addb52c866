"""Metadata filters: validation, and matching against a chunk's filterable fields.

A filter maps field names to conditions; several keys are ANDed::

    {"source": "guide.md"}                       # equality
    {"lang": {"$in": ["en", "de"]}}              # one of
    {"lang": {"$ne": "fr"}, "page": {"$gte": 3}}  # both must hold

Operators: ``$eq``, ``$ne`` (a scalar), ``$in``, ``$nin`` (a list of scalars of one
kind), ``$gt``, ``$gte``, ``$lt``, ``$lte`` (a number). Scalars are ``str``, ``bool``,
``int`` and ``float``; values of different kinds never compare equal (``True`` is not
``1``), but ``int`` and ``float`` are both numbers (``1 == 1.0``). Range operators only
match numeric values.

A chunk that lacks the field does not match, except for ``$ne`` and ``$nin``, which do
("not French" includes chunks with no ``lang``). Every ragkit store uses these rules:
:func:`matches` in Python, :func:`sql_where` in SQLite, :func:`chroma_where` in Chroma.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from ragkit.errors import ConfigurationError
from ragkit.protocols import Filters
from ragkit.types import Scalar

__all__ = [
    "OPERATORS",
    "RESERVED_PREFIX",
    "Condition",
    "Kind",
    "chroma_where",
    "filterable_key",
    "kind_of",
    "matches",
    "parse_filters",
    "sql_where",
]

#: Metadata keys that start with this are ragkit's own; they are not filterable.
RESERVED_PREFIX = "_ragkit"

OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte")
_RANGE = ("$gt", "$gte", "$lt", "$lte")
_SQL_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# Chroma refuses metadata keys like these, so no store keeps them filterable.
_UNFILTERABLE_PREFIXES = (RESERVED_PREFIX, "$", "#", "chroma:")
_INT64 = (-(2**63), 2**63 - 1)

Kind = Literal["str", "bool", "number"]

_HELP = (
    "A filter maps a metadata field to a scalar (str, int, float, bool) or to one "
    "operator: {'$eq' | '$ne': scalar}, {'$in' | '$nin': [scalars of one kind]}, "
    "{'$gt' | '$gte' | '$lt' | '$lte': number}; several fields are ANDed."
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One validated condition on one field.

    Attributes:
        field: the metadata field.
        op: one of :data:`OPERATORS`.
        value: a scalar, or a tuple of scalars of one kind for ``$in``/``$nin``.
    """

    field: str
    op: str
    value: Scalar | tuple[Scalar, ...]


def kind_of(value: object) -> Kind | None:
    """The comparison kind of a filterable scalar, or None if ``value`` is not one."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "number" if _INT64[0] <= value <= _INT64[1] else None
    if isinstance(value, float):
        return "number" if math.isfinite(value) else None
    if isinstance(value, str):
        return "str"
    return None


def filterable_key(key: object) -> bool:
    """True when metadata under ``key`` is stored flat, and so can be filtered on."""
    if not isinstance(key, str) or not key or key.startswith(_UNFILTERABLE_PREFIXES):
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: no backend can index them
        return False
    return True


def _bad(field: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"Invalid filter on {field!r}: {problem}. {_HELP}")


def _scalar(field: str, op: str, value: Any) -> Scalar:
    if kind_of(value) is None:
        raise _bad(
            field,
            f"{op} needs a str, bool, finite number or 64-bit int, got {value!r}",
        )
    return cast(Scalar, value)


def _condition(field: str, spec: Any) -> Condition:
    if not isinstance(spec, Mapping):
        return Condition(field, "$eq", _scalar(field, "equality", spec))
    if len(spec) != 1:
        raise _bad(field, f"expected exactly one operator, got {dict(spec)!r}")
    ((op, value),) = spec.items()
    if op not in OPERATORS:
        raise _bad(field, f"unknown operator {op!r}")
    if op in ("$eq", "$ne"):
        return Condition(field, op, _scalar(field, op, value))
    if op in _RANGE:
        if kind_of(value) != "number":
            raise _bad(field, f"{op} needs a number, got {value!r}")
        return Condition(field, op, value)
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise _bad(field, f"{op} needs a list of scalars, got {value!r}")
    items = tuple(_scalar(field, op, v) for v in value)
    if len({kind_of(v) for v in items}) > 1:
        raise _bad(field, f"{op} needs values of one kind (all str, bool or numbers)")
    return Condition(field, op, items)


def parse_filters(filters: Filters | None) -> tuple[Condition, ...]:
    """Validate ``filters`` and return its conditions (empty for no filter).

    Raises:
        ConfigurationError: the filter is malformed; the message says what is allowed.
    """
    if filters is None:
        return ()
    if not isinstance(filters, Mapping):
        raise ConfigurationError(f"Filters must be a mapping, got {filters!r}. {_HELP}")
    conditions = []
    for field, spec in filters.items():
        if not isinstance(field, str) or not field:
            raise ConfigurationError(f"Filter keys must be non-empty strings, got {field!r}.")
        if field.startswith("$"):
            raise ConfigurationError(
                f"Filter key {field!r} is not a field: top-level operators are not "
                f"supported, several keys are ANDed. {_HELP}"
            )
        if field.startswith(RESERVED_PREFIX):
            raise ConfigurationError(f"Filter key {field!r} is reserved by ragkit.")
        conditions.append(_condition(field, spec))
    return tuple(conditions)


def _equal(a: Scalar, b: Scalar) -> bool:
    return kind_of(a) == kind_of(b) and a == b


def _holds(cond: Condition, fields: Mapping[str, Scalar]) -> bool:
    if cond.field not in fields:
        return cond.op in ("$ne", "$nin")
    actual = fields[cond.field]
    value = cond.value
    if isinstance(value, tuple):
        found = any(_equal(actual, v) for v in value)
        return found if cond.op == "$in" else not found
    if cond.op == "$eq":
        return _equal(actual, value)
    if cond.op == "$ne":
        return not _equal(actual, value)
    if kind_of(actual) != "number":
        return False
    # int and float compare exactly in Python, so large ints keep their precision.
    a, v = cast(float, actual), cast(float, value)
    if cond.op == "$gt":
        return a > v
    if cond.op == "$gte":
        return a >= v
    if cond.op == "$lt":
        return a < v
    return a <= v


def matches(conditions: tuple[Condition, ...], fields: Mapping[str, Scalar]) -> bool:
    """True when every condition holds for a chunk's filterable ``fields``."""
    return all(_holds(c, fields) for c in conditions)


def chroma_where(conditions: Sequence[Condition]) -> tuple[dict[str, Any] | None, bool]:
    """Translate conditions into a Chroma ``where`` clause.

    Returns:
        ``(where, satisfiable)``: ``where`` is None when every chunk matches;
        ``satisfiable`` is False when no chunk can match (e.g. ``$in: []``).
    """
    clauses: list[dict[str, Any]] = []
    for cond in conditions:
        absent = not filterable_key(cond.field)  # never stored, so missing everywhere
        if cond.op in ("$ne", "$nin") and (absent or cond.value == ()):
            continue
        if absent or cond.value == ():
            return None, False
        value: Any = cond.value
        if isinstance(value, tuple):
            # Chroma wants lists of one type; int and float compare equal as numbers.
            floats = any(isinstance(v, float) for v in value)
            value = [float(v) for v in value] if floats else list(value)
        clauses.append({cond.field: {cond.op: value}})
    if len(clauses) < 2:
        return (clauses[0] if clauses else None), True
    return {"$and": clauses}, True


def sql_where(conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    """Translate conditions into SQL over ``rows r``, with its parameters.

    Fields live in a table ``fields(int_id, key, kind, value)``, one row per field.
    """
    clauses: list[str] = ["1"]
    params: list[Any] = []
    for cond in conditions:
        test = "EXISTS (SELECT 1 FROM fields f WHERE f.int_id = r.int_id AND f.key = ?"
        params.append(cond.field)
        if isinstance(cond.value, tuple):
            kind = kind_of(cond.value[0]) if cond.value else "none"
            test += " AND f.kind = ? AND f.value IN (SELECT value FROM json_each(?)))"
            params += [kind, json.dumps(list(cond.value))]
        elif cond.op in ("$eq", "$ne"):
            test += " AND f.kind = ? AND f.value = ?)"
            params += [kind_of(cond.value), cond.value]
        else:
            test += f" AND f.kind = 'number' AND f.value {_SQL_RANGE[cond.op]} ?)"
            params.append(cond.value)
        clauses.append(f"NOT {test}" if cond.op in ("$ne", "$nin") else test)
    return " AND ".join(clauses), params
