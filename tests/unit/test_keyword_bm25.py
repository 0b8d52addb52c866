"""KeywordIndex scores against a plain-Python BM25 written here from the formula.

Random corpora of short documents (1-6 chunks) over a small vocabulary, searched in
each scope, then changed (chunks replaced, added, deleted) and searched again: every
returned chunk's score must be Lucene's BM25 of its unit (the chunk, or its whole
document), and every chunk with a positive score must be returned.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

import ragkit.retrieval._term_counts as term_counts
from ragkit.retrieval import KeywordIndex, Tokenizer
from ragkit.testing.store_contract import make_chunk
from ragkit.types import Chunk

WORDS = [f"w{i}" for i in range(40)]
K1, B, MAX_CHUNKS = 1.2, 0.75, 3
PLAIN = Tokenizer(stemmer=None, stopwords=())


def reference(chunks: dict[str, Chunk], query: list[str], scope: str) -> dict[str, float]:
    """BM25 (Lucene's idf, Robertson's tf part) of each chunk's unit, for ``query``."""
    documents: dict[str, list[Chunk]] = {}
    for chunk in chunks.values():
        documents.setdefault(chunk.document_id, []).append(chunk)
    units: list[tuple[list[str], list[str]]] = []  # (chunk ids, terms)
    for members in documents.values():
        together = scope == "document" or (scope == "auto" and len(members) <= MAX_CHUNKS)
        groups = [members] if together else [[c] for c in members]
        for group in groups:
            units.append(([c.id for c in group], [t for c in group for t in c.text.split()]))
    n = len(units)
    average = sum(len(terms) for _, terms in units) / n
    df = Counter(t for _, terms in units for t in set(terms))
    scores: dict[str, float] = {}
    for ids, terms in units:
        tf = Counter(terms)
        score = 0.0
        for term in query:  # a repeated query term counts each time
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                norm = K1 * (1 - B + B * len(terms) / average)
                score += idf * tf[term] / (tf[term] + norm)
        for chunk_id in ids:
            if score > 0:
                scores[chunk_id] = score
    return scores


def random_chunk(rng: random.Random, chunk_id: str, documents: int) -> Chunk:
    text = " ".join(rng.choices(WORDS[: rng.randint(8, 40)], k=rng.randint(0, 12)))
    return make_chunk(chunk_id, text, source=f"doc{rng.randrange(documents)}.md")


def check(index: KeywordIndex, chunks: dict[str, Chunk], rng: random.Random, scope: str) -> None:
    for _ in range(12):
        query = rng.choices([*WORDS, "absent"], k=rng.randint(1, 4))
        expected = reference(chunks, query, scope)
        hits = index.search(" ".join(query), k=len(chunks) + 1)
        got = {h.chunk.id: h.score for h in hits}
        assert set(got) == set(expected), query
        for chunk_id, score in expected.items():
            assert got[chunk_id] == pytest.approx(score, rel=1e-5), (query, chunk_id)
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


@pytest.mark.parametrize("scope", ["chunk", "auto", "document"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scores_match_the_formula_through_upserts_and_deletes(scope: str, seed: int) -> None:
    rng = random.Random(seed)
    index = KeywordIndex(tokenizer=PLAIN, scope=scope, max_document_chunks=MAX_CHUNKS)  # type: ignore[arg-type]
    chunks: dict[str, Chunk] = {}
    for round_ in range(4):
        batch = [random_chunk(rng, f"c{rng.randrange(60)}", 15) for _ in range(25)]
        index.upsert(batch)
        chunks.update((c.id, c) for c in batch)  # the last of a repeated id wins
        doomed = [*rng.sample(sorted(chunks), k=min(len(chunks) // 5, 6)), "never-there"]
        index.delete(doomed)
        for chunk_id in doomed:
            chunks.pop(chunk_id, None)
        assert index.count() == len(chunks)
        assert index.ids() == sorted(chunks)
        if round_ % 2:  # some rounds change the index twice between searches
            check(index, chunks, rng, scope)


def test_folds_during_ingest_and_in_small_blocks_give_the_same_scores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tiny blocks split every fold into many steps; a tiny garbage limit makes
    # replacing chunks fold during upserts, not only on the next search.
    monkeypatch.setattr(term_counts, "_BLOCK", 5)
    monkeypatch.setattr(term_counts, "_GARBAGE", 3)
    rng = random.Random(7)
    index = KeywordIndex(tokenizer=PLAIN, scope="auto", max_document_chunks=MAX_CHUNKS)
    chunks: dict[str, Chunk] = {}
    for _ in range(5):
        for _ in range(20):  # one at a time: each replacement adds garbage
            chunk = random_chunk(rng, f"c{rng.randrange(30)}", 8)
            index.upsert([chunk])
            chunks[chunk.id] = chunk
        check(index, chunks, rng, "auto")
        gone = rng.sample(sorted(chunks), k=4)
        index.delete(gone)
        for chunk_id in gone:
            del chunks[chunk_id]
        check(index, chunks, rng, "auto")


def test_a_chunk_without_terms_still_counts_as_a_unit() -> None:
    # N and the average length include empty units, as in Lucene and bm25s.
    chunks = {
        "a": make_chunk("a", "w1 w2", source="a.md"),
        "b": make_chunk("b", "", source="b.md"),
        "c": make_chunk("c", "...", source="c.md"),  # no terms after tokenizing
    }
    index = KeywordIndex(tokenizer=PLAIN, scope="chunk")
    index.upsert(list(chunks.values()))
    [hit] = index.search("w1", k=5)
    n, average = 3, 2 / 3
    idf = math.log(1 + (n - 1 + 0.5) / 1.5)
    assert hit.score == pytest.approx(idf / (1 + K1 * (1 - B + B * 2 / average)), rel=1e-6)
