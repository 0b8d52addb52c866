"""Filters: validation, matching rules, what is filterable, and the Chroma translation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragkit.errors import ConfigurationError
from ragkit.stores.codec import (
    chunk_from_json,
    chunk_to_json,
    decode_metadata,
    encode_metadata,
    flat_fields,
)
from ragkit.stores.filters import Condition, chroma_where, matches, parse_filters
from ragkit.testing.store_contract import make_chunk
from ragkit.types import Scalar

FIELDS: dict[str, Scalar] = {"lang": "en", "year": 2021, "rating": 4.5, "draft": False}


def ok(filters: Any, fields: dict[str, Scalar] = FIELDS) -> bool:
    return matches(parse_filters(filters), fields)


def test_no_filter_matches_everything() -> None:
    assert parse_filters(None) == ()
    assert parse_filters({}) == ()
    assert ok(None)


def test_scalars_mean_equality_and_keys_are_anded() -> None:
    assert parse_filters({"lang": "en"}) == (Condition("lang", "$eq", "en"),)
    assert ok({"lang": "en", "year": 2021})
    assert not ok({"lang": "en", "year": 2020})


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"lang": {"$eq": "en"}}, True),
        ({"lang": {"$ne": "en"}}, False),
        ({"lang": {"$in": ["de", "en"]}}, True),
        ({"lang": {"$nin": ["de", "en"]}}, False),
        ({"lang": {"$in": ("de",)}}, False),
        ({"year": {"$gt": 2020}}, True),
        ({"year": {"$gt": 2021}}, False),
        ({"year": {"$gte": 2021}}, True),
        ({"rating": {"$lt": 4.5}}, False),
        ({"rating": {"$lte": 4.5}}, True),
        ({"year": {"$lt": 2021.5}}, True),
    ],
)
def test_operators(filters: dict[str, Any], expected: bool) -> None:
    assert ok(filters) is expected


def test_kinds_never_compare_equal_but_int_and_float_do() -> None:
    assert ok({"year": 2021.0})
    assert ok({"draft": False})
    assert not ok({"draft": 0})
    assert not ok({"year": "2021"})
    assert ok({"draft": {"$ne": 0}})
    assert not ok({"lang": {"$gt": 1}}), "range operators only match numbers"
    assert not ok({"draft": {"$lt": 1}}), "booleans are not numbers"


def test_missing_fields_match_only_negations() -> None:
    assert not ok({"team": "core"})
    assert not ok({"team": {"$in": ["core"]}})
    assert not ok({"team": {"$gte": 0}})
    assert ok({"team": {"$ne": "core"}})
    assert ok({"team": {"$nin": ["core"]}})


def test_empty_lists() -> None:
    assert not ok({"lang": {"$in": []}})
    assert ok({"lang": {"$nin": []}})


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"lang": {"$regex": "e"}}, "unknown operator '\\$regex'"),
        ({"lang": {"$eq": "en", "$ne": "de"}}, "exactly one operator"),
        ({"lang": {}}, "exactly one operator"),
        ({"lang": {"$in": "en"}}, "list of scalars"),
        ({"lang": {"$in": ["en", 1]}}, "one kind"),
        ({"year": {"$gt": "2020"}}, "needs a number"),
        ({"year": {"$gt": True}}, "needs a number"),
        ({"year": {"$gt": float("inf")}}, "needs a number"),
        ({"lang": None}, "needs a str"),
        ({"lang": ["en"]}, "needs a str"),
        ({"year": 2**64}, "64-bit int"),
        ({"$and": [{"lang": "en"}]}, "top-level operators"),
        ({"_ragkit": "x"}, "reserved"),
        ({"": "x"}, "non-empty"),
        ("lang=en", "must be a mapping"),
    ],
)
def test_invalid_filters_say_what_is_allowed(filters: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        parse_filters(filters)
    assert isinstance(info.value, ValueError)


scalars = st.one_of(
    st.text(max_size=3),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False),
)


@given(
    fields=st.dictionaries(st.sampled_from(["a", "b"]), scalars, max_size=2),
    value=scalars,
    values=st.lists(st.integers(-3, 3), max_size=3) | st.lists(st.text(max_size=2), max_size=3),
)
def test_negations_are_complements(
    fields: dict[str, Scalar], value: Scalar, values: list[Scalar]
) -> None:
    assert ok({"a": {"$ne": value}}, fields) is not ok({"a": {"$eq": value}}, fields)
    assert ok({"a": {"$nin": values}}, fields) is not ok({"a": {"$in": values}}, fields)
    assert ok({"a": {"$in": [value]}}, fields) is ok({"a": value}, fields)


# -- what is filterable ----------------------------------------------------------------


def test_flat_fields_hold_builtins_and_metadata_scalars() -> None:
    chunk = make_chunk(
        "c",
        source="a.md",
        page=2,
        metadata={
            "lang": "en",
            "tags": ["x"],
            "nested": {"a": 1},
            "none": None,
            "nan": float("nan"),
            "source": "shadow",
            "page": 99,
            "$op": 1,
            "#hash": 1,
            "_ragkit_x": 1,
            "chroma:document": "x",
            "huge": 2**70,
        },
    )
    assert flat_fields(chunk) == {
        "lang": "en",
        "source": "a.md",
        "document_id": chunk.document_id,
        "page": 2,
    }


def test_encoded_metadata_round_trips_every_value_kind() -> None:
    chunk = make_chunk(
        "c\u00e9",
        "Text with a lone surrogate \ud800 and emoji 🌍",
        metadata={
            "tuple": (1, ("a", None)),
            "list": [1.5, [True]],
            "dict": {"k": {"$tag": 1}, "n": None},
            "int_keys": {1: "one", (2, 3): "pair"},
            "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
            "day": dt.date(2024, 5, 1),
            "huge": 2**70,
            "$tuple": "a key that looks like a tag",
        },
    )
    stored = encode_metadata(chunk)
    assert all(isinstance(v, (str, int, float, bool)) for v in stored.values())
    assert decode_metadata(stored) == chunk
    assert chunk_from_json(chunk_to_json(chunk)) == chunk
    assert chunk_to_json(chunk).isascii()


def test_unstorable_metadata_names_the_chunk() -> None:
    with pytest.raises(ConfigurationError, match=r"chunk 'c'.*set"):
        chunk_to_json(make_chunk("c", metadata={"s": {1, 2}}))


# -- translation to Chroma's where -----------------------------------------------------


def test_chroma_where_translation() -> None:
    assert chroma_where(parse_filters(None)) == (None, True)
    assert chroma_where(parse_filters({"lang": "en"})) == ({"lang": {"$eq": "en"}}, True)
    assert chroma_where(parse_filters({"lang": "en", "year": {"$gte": 2020}})) == (
        {"$and": [{"lang": {"$eq": "en"}}, {"year": {"$gte": 2020}}]},
        True,
    )
    assert chroma_where(parse_filters({"n": {"$in": [1, 2.5]}})) == (
        {"n": {"$in": [1.0, 2.5]}},
        True,
    )
    assert chroma_where(parse_filters({"n": {"$nin": [1, 2]}})) == ({"n": {"$nin": [1, 2]}}, True)


def test_chroma_where_handles_what_chroma_cannot_express() -> None:
    assert chroma_where(parse_filters({"lang": {"$in": []}})) == (None, False)
    assert chroma_where(parse_filters({"lang": {"$nin": []}, "x": 1})) == ({"x": {"$eq": 1}}, True)
    assert chroma_where(parse_filters({"#never-stored": 1})) == (None, False)
    assert chroma_where(parse_filters({"#never-stored": {"$ne": 1}})) == (None, True)
