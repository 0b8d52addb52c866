"""A chunk's filterable fields as JSONB, and ragkit's filter language as SQL over them.

The fields are :func:`ragkit.stores.codec.flat_fields`, written so that JSONB's own
comparisons give the filter rules of :mod:`ragkit.stores.filters` exactly: JSONB never
equates values of different types (``true`` is not ``1``, ``"1"`` is not ``1``) and
compares numbers as ``numeric``. Floats are written as their exact decimal value, so
``int`` and ``float`` compare as Python compares them, to the last bit of a large int.
JSONB cannot hold the character U+0000; strings and keys are escaped one-to-one
(``\\x01`` -> ``\\x01\\x01``, ``\\x00`` -> ``\\x01\\x02``), which equality keeps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ragkit.stores.codec import flat_fields
from ragkit.stores.filters import Condition
from ragkit.types import Chunk, Scalar

__all__ = ["fields_json", "where"]

_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _text(value: str) -> str:
    if "\x00" in value or "\x01" in value:
        value = value.replace("\x01", "\x01\x01").replace("\x00", "\x01\x02")
    return value


def _value(value: Scalar) -> str:
    """One scalar as a JSON value JSONB compares the way the filter rules do."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(Decimal(value))  # exact: 0.1 is 0.1000000000000000055511151231257827...
    return json.dumps(_text(value))


def _object(key: str, value: Scalar) -> str:
    return "{" + json.dumps(_text(key)) + ":" + _value(value) + "}"


def fields_json(chunk: Chunk) -> str:
    """The JSON text of ``chunk``'s filterable fields, for its ``fields`` JSONB column."""
    items = (json.dumps(_text(k)) + ":" + _value(v) for k, v in flat_fields(chunk).items())
    return "{" + ",".join(items) + "}"


def where(conditions: Sequence[Condition], column: str = "c.fields") -> tuple[str, list[Any]]:
    """SQL testing ``conditions`` on the JSONB ``column``, with its parameters.

    Equality is containment (``@>``, which the GIN index on the column serves); a
    missing field fails every test, so ``$ne`` and ``$nin`` (negations) match it.
    """
    clauses: list[str] = ["TRUE"]
    params: list[Any] = []
    for cond in conditions:
        if isinstance(cond.value, tuple):
            options = [_object(cond.field, v) for v in cond.value]
            test = "(" + " OR ".join([f"{column} @> %s::jsonb"] * len(options)) + ")"
            if not options:
                test = "FALSE"
            params += options
        elif cond.op in ("$eq", "$ne"):
            test = f"{column} @> %s::jsonb"
            params.append(_object(cond.field, cond.value))
        else:
            key = _text(cond.field)
            test = (
                f"(jsonb_typeof({column} -> %s) = 'number' "
                f"AND {column} -> %s {_RANGE[cond.op]} %s::jsonb)"
            )
            params += [key, key, _value(cond.value)]
        clauses.append(f"NOT {test}" if cond.op in ("$ne", "$nin") else test)
    return " AND ".join(clauses), params
