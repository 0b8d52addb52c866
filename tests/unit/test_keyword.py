"""BM25 keyword retrieval: tokenizer, scores checked against the formula, sync, saving."""

from __future__ import annotations

import math
import random
import sqlite3
from pathlib import Path

import pytest

from ragkit.errors import ConfigurationError, StoreError
from ragkit.retrieval import BM25Retriever, KeywordIndex, Tokenizer
from ragkit.retrieval.tokenize import LUCENE_STOPWORDS
from ragkit.testing.store_contract import make_chunk
from ragkit.types import Chunk

PLAIN = Tokenizer(stemmer=None, stopwords=())


# -- tokenizer ---------------------------------------------------------------------------


def test_tokenizer_splits_on_punctuation_and_folds_case() -> None:
    tokens = PLAIN.tokenize("IL-6/TNF-α levels (p<0.05); e-mail: Foo_Bar@EXAMPLE.com")
    assert tokens == [
        "il", "6", "tnf", "α", "levels", "p", "0", "05", "e", "mail", "foo", "bar", "example", "com"
    ]  # fmt: skip
    assert PLAIN.tokenize("Straße ÉCOLE") == ["strasse", "école"]
    assert PLAIN.tokenize("...!? \n\t") == []


def test_tokenizer_drops_stopwords_before_stemming() -> None:
    tokenizer = Tokenizer(stemmer=None)
    assert tokenizer.tokenize("The cat is on the mat and it was there") == ["cat", "mat"]
    lucene = Tokenizer(stemmer=None, stopwords=LUCENE_STOPWORDS)
    assert lucene.tokenize("What was there about the cat") == ["what", "about", "cat"]


def test_tokenizer_stems_with_snowball() -> None:
    tokenizer = Tokenizer()
    assert tokenizer.tokenize("Running studies of cells") == ["run", "studi", "cell"]
    assert tokenizer.tokenize("run study cell") == ["run", "studi", "cell"]
    assert Tokenizer(stemmer=None).tokenize("Running cells") == ["running", "cells"]
    assert Tokenizer(stemmer="german", stopwords=()).tokenize("Häuser") == ["haus"]


def test_tokenizer_settings() -> None:
    assert Tokenizer(stemmer=None, min_length=3).tokenize("an ox ran far") == ["ran", "far"]
    assert Tokenizer().fingerprint() == Tokenizer().fingerprint()
    assert Tokenizer().fingerprint() != Tokenizer(stemmer=None).fingerprint()
    assert Tokenizer().fingerprint() != Tokenizer(stopwords=LUCENE_STOPWORDS).fingerprint()
    with pytest.raises(ConfigurationError, match="unknown stemmer"):
        Tokenizer(stemmer="klingon")
    with pytest.raises(ConfigurationError, match="min_length"):
        Tokenizer(min_length=0)


# -- scores ------------------------------------------------------------------------------


def _bm25(tf: int, df: int, dl: int, *, n: float, avgdl: float, k1: float, b: float) -> float:
    """Lucene's BM25 term score, written out from the formula."""
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))


@pytest.mark.parametrize(("k1", "b"), [(1.2, 0.75), (0.9, 0.4), (2.0, 0.0)])
def test_scores_match_the_bm25_formula(k1: float, b: float) -> None:
    index = KeywordIndex(tokenizer=PLAIN, k1=k1, b=b, scope="chunk")
    index.upsert(
        [
            make_chunk("a", "cat cat dog"),  # 3 terms
            make_chunk("b", "dog bird"),  # 2 terms
            make_chunk("c", "fish"),  # 1 term; average length 2
        ]
    )
    scores = {h.chunk.id: h.score for h in index.search("cat dog", 5)}
    assert set(scores) == {"a", "b"}  # "c" shares no term, so it is not a hit
    corpus = {"n": 3, "avgdl": 2.0, "k1": k1, "b": b}
    # "cat": tf 2 in a (length 3), df 1; "dog": tf 1 in a and in b (length 2), df 2.
    expected_a = _bm25(2, 1, 3, **corpus) + _bm25(1, 2, 3, **corpus)
    expected_b = _bm25(1, 2, 2, **corpus)
    assert scores["a"] == pytest.approx(expected_a, rel=1e-5)
    assert scores["b"] == pytest.approx(expected_b, rel=1e-5)
    # With k1=1.2, b=0.75 by hand: ln(8/3) * 2/3.65 + ln(1.6) * 1/2.65 and ln(1.6)/2.2.
    if (k1, b) == (1.2, 0.75):
        assert scores["a"] == pytest.approx(
            math.log(8 / 3) * 2 / 3.65 + math.log(1.6) / 2.65, rel=1e-5
        )
        assert scores["b"] == pytest.approx(math.log(1.6) / 2.2, rel=1e-5)


def test_ranking_best_first_ties_by_id_and_k() -> None:
    index = KeywordIndex(tokenizer=PLAIN, scope="chunk")
    index.upsert([make_chunk(i, "same words here") for i in ("z", "m", "a")])
    index.upsert([make_chunk("best", "words words words"), make_chunk("none", "other")])
    hits = index.search("words", 10)
    assert [h.chunk.id for h in hits] == ["best", "a", "m", "z"]
    assert [h.chunk.id for h in index.search("words", 2)] == ["best", "a"]
    assert index.search("words", 0) == []
    assert index.search("unknown terms only", 3) == []
    assert index.search("", 3) == []
    assert KeywordIndex().search("words", 3) == []


def test_query_is_tokenized_like_the_chunks() -> None:
    index = KeywordIndex(scope="chunk")
    index.upsert([make_chunk("x", "Cells were running."), make_chunk("y", "Dogs bark.")])
    assert [h.chunk.id for h in index.search("CELL runs!", 5)] == ["x"]
    assert index.search("the and of", 5) == []  # stopwords only


# -- keeping in sync ---------------------------------------------------------------------


def test_upsert_replaces_and_delete_removes() -> None:
    index = KeywordIndex(tokenizer=PLAIN, scope="chunk")
    index.upsert([make_chunk("a", "alpha"), make_chunk("b", "beta")])
    assert index.search("alpha", 3)[0].chunk.id == "a"
    index.upsert([make_chunk("a", "gamma")])
    assert index.search("alpha", 3) == []
    assert index.search("gamma", 3)[0].chunk.text == "gamma"
    assert index.count() == 2
    index.delete(["b", "unknown"])
    assert index.search("beta", 3) == []
    assert index.ids() == ["a"]
    index.upsert([make_chunk("d", "delta one"), make_chunk("d", "delta two")])
    assert [h.chunk.text for h in index.search("delta", 3)] == ["delta two"]


def test_filters_apply_before_the_top_k_cut() -> None:
    index = KeywordIndex(tokenizer=PLAIN)
    strong = [make_chunk(f"s{i}", "pool pool pool", source="a.md") for i in range(5)]
    weak = [
        make_chunk(f"w{i}", "pool and many other words", source="b.md", metadata={"n": i})
        for i in range(3)
    ]
    index.upsert(strong + weak)
    hits = index.search("pool", 2, filters={"source": "b.md"})
    assert [h.chunk.id for h in hits] == ["w0", "w1"]
    hits = index.search("pool", 5, filters={"n": {"$gte": 1}})
    assert [h.chunk.id for h in hits] == ["w1", "w2"]
    assert index.ids({"source": "a.md"}) == [f"s{i}" for i in range(5)]
    with pytest.raises(ConfigurationError):
        index.search("pool", 2, filters={"n": {"$regex": "x"}})


def test_title_and_heading_path_are_indexed_with_the_text() -> None:
    index = KeywordIndex(tokenizer=PLAIN, scope="chunk")
    index.upsert(
        [
            make_chunk("deep", "It holds twenty sockets.", metadata={"title": "Connection pool"}),
            make_chunk("sect", "Five seconds.", metadata={"heading_path": "Setup > Timeouts"}),
            make_chunk("same", "Connection pool basics", metadata={"title": "Connection pool"}),
            make_chunk("bare", "Connection pool basics"),
        ]
    )
    assert "deep" in {h.chunk.id for h in index.search("pool", 5)}
    assert [h.chunk.id for h in index.search("timeouts", 5)] == ["sect"]
    scores = {h.chunk.id: h.score for h in index.search("basics pool", 5)}
    assert scores["same"] == scores["bare"]  # a title already in the text is not added
    bare = KeywordIndex(tokenizer=PLAIN, context=())
    bare.upsert([make_chunk("deep", "It holds sockets.", metadata={"title": "Connection pool"})])
    assert bare.search("pool", 5) == []


def test_invalid_settings() -> None:
    with pytest.raises(ConfigurationError, match="k1"):
        KeywordIndex(k1=-1)
    with pytest.raises(ConfigurationError, match="b="):
        KeywordIndex(b=1.5)


def test_retriever_wraps_the_index() -> None:
    index = KeywordIndex()
    index.upsert([make_chunk("x", "timeouts are five seconds")])
    assert BM25Retriever(index).retrieve("timeout", k=3)[0].chunk.id == "x"


# -- saving ------------------------------------------------------------------------------


def test_persistence_round_trip(tmp_path: Path) -> None:
    chunk = make_chunk(
        "r", "Retries back off", source="r.md", page=2, metadata={"tags": ("a", "b"), "n": 1}
    )
    with KeywordIndex(tmp_path / "kw") as index:
        index.upsert([chunk, make_chunk("gone", "retries gone"), make_chunk("o", "other")])
        index.delete(["gone"])
        before = index.search("retry", 5)
    assert [p.name for p in (tmp_path / "kw").iterdir()] == ["keyword.sqlite"]
    with KeywordIndex(tmp_path / "kw") as reopened:
        assert reopened.ids() == ["o", "r"]
        after = reopened.search("retry", 5, filters={"n": 1})
        assert after == before
        assert after[0].chunk == chunk  # metadata, pages and tuples survive
        reopened.upsert([make_chunk("new", "retry later")])
    with KeywordIndex(tmp_path / "kw") as third:
        assert third.ids() == ["new", "o", "r"]


def test_changed_term_settings_re_tokenize_saved_chunks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chunk = make_chunk("x", "Running cells", metadata={"title": "Lab notes"})
    with KeywordIndex(tmp_path, tokenizer=Tokenizer(stemmer=None), context=()) as index:
        index.upsert([chunk])
        assert index.search("cell", 3) == []
    with caplog.at_level("INFO", logger="ragkit"), KeywordIndex(tmp_path) as stemmed:
        assert [h.chunk.id for h in stemmed.search("cell lab", 3)] == ["x"]
    assert "re-tokenizing 1 chunks" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="ragkit"), KeywordIndex(tmp_path) as again:
        assert [h.chunk.id for h in again.search("run", 3)] == ["x"]
        assert again.search("run", 3)[0].chunk == chunk
    assert "re-tokenizing" not in caplog.text  # the new terms were saved


def test_unreadable_or_foreign_files_raise_store_error(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "keyword.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="delete"):
        KeywordIndex(tmp_path / "bad")
    KeywordIndex(tmp_path / "future").close()
    db = sqlite3.connect(tmp_path / "future" / "keyword.sqlite")
    with db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format'")
    db.close()
    with pytest.raises(StoreError, match="format 99"):
        KeywordIndex(tmp_path / "future")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="not a folder"):
        KeywordIndex(tmp_path / "file")


# -- document scope ----------------------------------------------------------------------


def _part(chunk_id: str, document: str, text: str, start: int, **metadata: str) -> Chunk:
    """A chunk of ``text`` starting at ``start`` in a document whose id is ``document``."""
    return Chunk(
        chunk_id, text, document, f"{document}.md", start, start + len(text), metadata=metadata
    )


def test_document_scope_scores_each_chunk_as_its_whole_document() -> None:
    # Document "a" is "alpha beta gamma", cut into two chunks that overlap on "beta".
    chunks = [
        _part("a2", "a", "beta gamma", 6),
        _part("a1", "a", "alpha beta", 0),
        _part("b1", "b", "beta delta", 0),
    ]
    by_chunk = KeywordIndex(tokenizer=PLAIN, scope="chunk")
    by_chunk.upsert(chunks)
    assert [h.chunk.id for h in by_chunk.search("alpha", 5)] == ["a1"]

    index = KeywordIndex(tokenizer=PLAIN, scope="document")
    index.upsert(chunks)
    hits = index.search("alpha", 5)
    assert [h.chunk.id for h in hits] == ["a1", "a2"]
    # A document holds the terms of all its chunks (the overlap once per chunk):
    # "alpha beta beta gamma", 4 terms, and "beta delta", 2 terms: average 3.
    expected = _bm25(1, 1, 4, n=2, avgdl=3.0, k1=1.2, b=0.75)
    assert [h.score for h in hits] == pytest.approx([expected, expected], rel=1e-5)
    scores = {h.chunk.id: h.score for h in index.search("gamma delta", 5)}
    assert scores["a1"] == scores["a2"] == pytest.approx(expected, rel=1e-5)
    assert scores["b1"] == pytest.approx(_bm25(1, 1, 2, n=2, avgdl=3.0, k1=1.2, b=0.75), rel=1e-5)
    # Tied chunks of one document: the one holding the query's words first, not id order.
    assert [h.chunk.id for h in index.search("gamma", 5)] == ["a2", "a1"]
    assert [h.chunk.id for h in index.search("gamma", 1)] == ["a2"]
    assert [h.chunk.id for h in index.search("alpha", 1, filters={"source": "b.md"})] == []
    assert "scope='document'" in repr(index)


def test_document_scope_counts_the_title_with_each_chunk_and_follows_changes() -> None:
    index = KeywordIndex(tokenizer=PLAIN, scope="document")
    index.upsert(
        [
            _part("a1", "a", "alpha beta", 0, title="Kappa"),
            _part("a2", "a", "gamma", 11, title="Kappa"),
            _part("b1", "b", "beta delta", 0),
        ]
    )
    hits = index.search("kappa", 5)
    assert [h.chunk.id for h in hits] == ["a1", "a2"]  # both hold the title: id order
    # "kappa alpha beta" + "kappa gamma": 5 terms, kappa twice; average (5 + 2) / 2.
    assert hits[0].score == pytest.approx(_bm25(2, 1, 5, n=2, avgdl=3.5, k1=1.2, b=0.75), rel=1e-5)
    index.delete(["a1"])  # document "a" is now "kappa gamma"
    assert index.search("alpha", 5) == []
    hits = index.search("kappa", 5)
    assert [h.chunk.id for h in hits] == ["a2"]
    assert hits[0].score == pytest.approx(_bm25(1, 1, 2, n=2, avgdl=2.0, k1=1.2, b=0.75), rel=1e-5)
    index.upsert([_part("a3", "a", "alpha", 20, title="Kappa")])
    assert [h.chunk.id for h in index.search("alpha", 5)] == ["a3", "a2"]


# -- automatic scope (the default) ---------------------------------------------------------


def _short_and_long() -> list[Chunk]:
    return [
        _part("s1", "s", "zebra lion", 0),
        _part("s2", "s", "river dawn", 11),
        _part("l1", "l", "zebra zebra", 0),
        _part("l2", "l", "zebra river", 12),
        _part("l3", "l", "cat dog", 24),
    ]


def test_auto_scope_scores_short_documents_whole_and_long_ones_by_chunk() -> None:
    index = KeywordIndex(tokenizer=PLAIN, max_document_chunks=2)
    assert index.scope == "auto"
    index.upsert(_short_and_long())
    # Units: document "s" (4 terms) and the three chunks of "l" (2 terms each):
    # 4 units, average length 2.5; "zebra" is in 3 of them.
    stats = {"n": 4, "avgdl": 2.5, "k1": 1.2, "b": 0.75}
    hits = index.search("zebra", 10)
    assert [h.chunk.id for h in hits] == ["l1", "l2", "s1", "s2"]  # l3 does not match
    assert [h.score for h in hits] == pytest.approx(
        [
            _bm25(2, 3, 2, **stats),
            _bm25(1, 3, 2, **stats),
            _bm25(1, 3, 4, **stats),
            _bm25(1, 3, 4, **stats),
        ],
        rel=1e-5,
    )
    # "river" is in s2 only, but all of document "s" matches; s2 leads its document.
    assert [h.chunk.id for h in index.search("river", 10)] == ["l2", "s2", "s1"]


def test_auto_scope_follows_a_document_growing_past_the_threshold() -> None:
    index = KeywordIndex(tokenizer=PLAIN, max_document_chunks=2)
    index.upsert(_short_and_long())
    assert {h.chunk.id for h in index.search("lion", 10)} == {"s1", "s2"}
    index.upsert([_part("s3", "s", "cat", 22)])  # "s" now has 3 chunks: scored by chunk
    assert [h.chunk.id for h in index.search("lion", 10)] == ["s1"]
    index.delete(["s3"])
    assert {h.chunk.id for h in index.search("lion", 10)} == {"s1", "s2"}


def test_auto_scope_keeps_the_chunk_ranking_inside_a_long_document() -> None:
    # Documents of 8-12 chunks (over the default threshold) from a small vocabulary:
    # every one is scored chunk by chunk, exactly as scope="chunk" scores it.
    rng = random.Random(7)
    words = [f"w{i}" for i in range(40)]
    chunks = []
    for d in range(6):
        start = 0
        for c in range(rng.randint(8, 12)):
            text = " ".join(rng.choices(words, k=rng.randint(5, 30)))
            chunks.append(_part(f"d{d}c{c}", f"d{d}", text, start))
            start += len(text) + 1
    auto, by_chunk = KeywordIndex(tokenizer=PLAIN), KeywordIndex(tokenizer=PLAIN, scope="chunk")
    auto.upsert(chunks)
    by_chunk.upsert(chunks)
    for _ in range(20):
        query = " ".join(rng.sample(words, 3))
        assert auto.search(query, 50) == by_chunk.search(query, 50)
    # Document scope, for contrast, ties every chunk of a matching document.
    whole = KeywordIndex(tokenizer=PLAIN, scope="document")
    whole.upsert(chunks)
    assert whole.search("w1", 50) != by_chunk.search("w1", 50)


def test_unknown_scope_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="scope"):
        KeywordIndex(scope="page")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_document_chunks"):
        KeywordIndex(max_document_chunks=0)
