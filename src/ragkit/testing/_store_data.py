"""The data the store contract writes: chunk and vector makers, and the filter cases.

See :mod:`ragkit.testing.store_contract`; :func:`make_chunk` and :func:`unit_vectors`
are re-exported there for store tests of their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.protocols import Filters
from ragkit.types import Chunk, document_id

__all__ = [
    "FILTER_CASES",
    "INVALID_FILTERS",
    "TOL",
    "close_store",
    "filter_corpus",
    "make_chunk",
    "rich_chunks",
    "unit_vectors",
]

#: Tolerance of score comparisons.
TOL = 1e-4


def make_chunk(
    chunk_id: str,
    text: str | None = None,
    *,
    source: str = "doc.md",
    page: int | None = None,
    page_end: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Chunk:
    """A chunk with sensible defaults for store tests."""
    text = f"Text of chunk {chunk_id}." if text is None else text
    return Chunk(
        id=chunk_id,
        text=text,
        document_id=document_id(source),
        source=source,
        start=0,
        end=len(text),
        page=page,
        page_end=page_end,
        metadata=metadata or {},
    )


def unit_vectors(n: int, dimension: int, seed: int = 0) -> NDArray[np.float32]:
    """``n`` random unit vectors, reproducible from ``seed``."""
    rows = np.random.default_rng(seed).standard_normal((n, dimension))
    unit: NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def close_store(store: object) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def rich_chunks() -> list[Chunk]:
    return [
        make_chunk(
            "rich-meta",
            metadata={
                "lang": "en",
                "year": 2021,
                "rating": 4.5,
                "draft": False,
                "tags": ["setup", "timeouts"],
                "heading_path": ("Guide", "Setup"),
                "nested": {"a": [1, {"b": None}], "$odd": True},
                "nothing": None,
                "source": "shadowed by the built-in field",
            },
        ),
        Chunk(
            id="paged",
            text="Page-crossing text.",
            document_id=document_id("report.pdf"),
            source="report.pdf",
            start=120,
            end=139,
            page=3,
            page_end=4,
            page_label="iii",
            page_label_end="iv",
        ),
        make_chunk(
            "unicode-ü",
            "Grüße aus Köln — 東京 ☕ 🌍 naïve café",
            source="dir/naïve 文件.md",
            metadata={"título": "Café", "emoji": "🌍"},
        ),
        make_chunk("plain", "", source="empty.txt"),
    ]


#: (filters, ids expected) over :func:`filter_corpus`, worked out by hand.
FILTER_CASES: list[tuple[Filters, set[str]]] = [
    ({"lang": "en"}, {"en1", "en2"}),
    ({"lang": {"$eq": "en"}}, {"en1", "en2"}),
    ({"lang": {"$in": ["en", "de"]}}, {"en1", "en2", "de1"}),
    ({"lang": {"$ne": "en"}}, {"de1", "fr1", "bare", "int1", "float1", "bool1", "str1"}),
    ({"lang": {"$nin": ["en", "de"]}}, {"fr1", "bare", "int1", "float1", "bool1", "str1"}),
    ({"lang": "en", "year": 2021}, {"en2"}),
    ({"lang": {"$in": ["en", "fr"]}, "draft": False}, {"en1"}),
    ({"source": "a.md"}, {"en1", "de1"}),
    ({"source": {"$in": ["b.md", "c.md"]}}, {"en2", "fr1"}),
    ({"document_id": document_id("c.md")}, {"fr1"}),
    ({"page": 2}, {"en2"}),
    ({"page": {"$gte": 2}}, {"en2", "de1"}),
    ({"page_end": 3}, {"de1"}),
    ({"year": {"$gt": 2019}}, {"en1", "en2", "de1"}),
    ({"year": {"$lte": 2020}}, {"en1", "fr1"}),
    ({"rating": {"$lt": 4.6}}, {"de1"}),
    ({"rating": {"$gte": 4}}, {"de1"}),
    ({"code": 1}, {"int1", "float1"}),
    ({"code": 1.0}, {"int1", "float1"}),
    ({"code": {"$in": [1, 2.5]}}, {"int1", "float1"}),
    ({"code": True}, {"bool1"}),
    ({"code": "1"}, {"str1"}),
    ({"code": {"$gt": 0}}, {"int1", "float1"}),
    ({"code": {"$ne": 1}}, {"en1", "en2", "de1", "fr1", "bare", "bool1", "str1"}),
    ({"lang": {"$in": []}}, set()),
    (
        {"lang": {"$nin": []}},
        {"en1", "en2", "de1", "fr1", "bare", "int1", "float1", "bool1", "str1"},
    ),
    ({"missing": "x"}, set()),
    ({"missing": {"$gt": 1}}, set()),
    (
        {"missing": {"$ne": "x"}},
        {"en1", "en2", "de1", "fr1", "bare", "int1", "float1", "bool1", "str1"},
    ),
    ({"tags": "x"}, set()),
    ({}, {"en1", "en2", "de1", "fr1", "bare", "int1", "float1", "bool1", "str1"}),
]

INVALID_FILTERS: list[Any] = [
    {"lang": {"$regex": "e.*"}},
    {"lang": {"$in": "en"}},
    {"lang": {"$in": ["en", 1]}},
    {"year": {"$gt": "2020"}},
    {"year": {"$gt": True}},
    {"lang": None},
    {"lang": ["en"]},
    {"lang": {"$eq": "en", "$ne": "de"}},
    {"lang": {}},
    {"$or": [{"lang": "en"}, {"lang": "de"}]},
    {"_ragkit": "x"},
    {"rating": float("nan")},
    "lang=en",
]


def filter_corpus() -> list[Chunk]:
    return [
        make_chunk(
            "en1", source="a.md", page=1, metadata={"lang": "en", "year": 2020, "draft": False}
        ),
        make_chunk(
            "en2", source="b.md", page=2, metadata={"lang": "en", "year": 2021, "draft": True}
        ),
        make_chunk(
            "de1",
            source="a.md",
            page=3,
            page_end=3,
            metadata={"lang": "de", "year": 2021, "rating": 4.5},
        ),
        make_chunk("fr1", source="c.md", metadata={"lang": "fr", "year": 2019}),
        make_chunk("bare", source="d.md", metadata={"tags": ["x", "y"]}),
        make_chunk("int1", metadata={"code": 1}),
        make_chunk("float1", metadata={"code": 1.0}),
        make_chunk("bool1", metadata={"code": True}),
        make_chunk("str1", metadata={"code": "1"}),
    ]
