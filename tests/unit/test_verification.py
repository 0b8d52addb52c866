"""Citation verification with the bag-of-words FakeEmbedder (same words, same vector)."""

from __future__ import annotations

from ragkit import RetrievalQA
from ragkit.citations import answer_from_generation
from ragkit.generation import CompletionGenerator
from ragkit.testing import FakeEmbedder
from ragkit.types import Answer, Chunk, Generation, ScoredChunk
from ragkit.verification import CitationVerifier, split_claims

POOL = "Intro here. The pool holds twenty connections per host. Idle ones close."
TIMEOUT = "Other words first. The default timeout is five seconds. More text."


def _hits() -> tuple[ScoredChunk, ...]:
    return (
        ScoredChunk(
            Chunk(
                id="p",
                text=POOL,
                document_id="d1",
                source="pool.md",
                start=100,
                end=100 + len(POOL),
            ),
            0.9,
        ),
        ScoredChunk(
            Chunk(
                id="t", text=TIMEOUT, document_id="d2", source="time.md", start=0, end=len(TIMEOUT)
            ),
            0.8,
        ),
    )


def _verified(text: str, **kwargs: float) -> Answer:
    answer = answer_from_generation("q", Generation(text=text, contexts=_hits(), model="m"))
    return CitationVerifier(FakeEmbedder(), **kwargs).verify(answer)


def test_split_claims_assigns_markers_to_their_sentence() -> None:
    claims = split_claims("First claim [1]. Second claim. [2] Third one [1][2].")
    assert [(c.text, c.markers) for c in claims] == [
        ("First claim.", (1,)),
        ("Second claim.", (2,)),
        ("Third one.", (1, 2)),
    ]


def test_supported_marker_is_kept_and_quotes_the_exact_sentence() -> None:
    answer = _verified("The pool holds twenty connections per host [1].")
    assert answer.text == "The pool holds twenty connections per host [1]."
    (citation,) = answer.citations
    assert citation.quote == "The pool holds twenty connections per host."
    assert citation.start == 100 + POOL.index("The pool")
    assert POOL[citation.start - 100 : citation.end - 100] == citation.quote
    assert answer.unsupported == ()


def test_wrong_marker_is_re_pointed_to_the_supporting_passage() -> None:
    answer = _verified("The default timeout is five seconds [1].")
    assert answer.text == "The default timeout is five seconds [2]."
    assert [c.source for c in answer.citations] == ["time.md"]
    assert answer.citations[0].quote == "The default timeout is five seconds."


def test_uncited_supported_sentence_gains_a_marker() -> None:
    answer = _verified("The default timeout is five seconds.")
    assert answer.text == "The default timeout is five seconds. [2]"


def test_unsupported_sentence_is_flagged_and_loses_its_marker() -> None:
    answer = _verified(
        "The pool holds twenty connections per host [1]. Bananas grow quickly in winter [2]."
    )
    assert (
        answer.text
        == "The pool holds twenty connections per host [1]. Bananas grow quickly in winter."
    )
    assert answer.unsupported == ("Bananas grow quickly in winter.",)
    assert [c.marker for c in answer.citations] == [1]
    assert not answer.refused


def test_nothing_supported_becomes_the_refusal_with_related_sources() -> None:
    answer = _verified("Bananas grow quickly in winter [1].")
    assert answer.refused
    assert answer.citations == ()
    assert [h.chunk.id for h in answer.related] == ["p", "t"]
    assert "Related sources:" in str(answer)


def test_model_refusal_is_recognised() -> None:
    gen = Generation(text="I don't have enough information to answer.", contexts=_hits())
    answer = answer_from_generation("q", gen)
    assert answer.refused
    assert answer.citations == ()
    assert len(answer.related) == 2


class _Fixed:
    def __init__(self, hits: tuple[ScoredChunk, ...]) -> None:
        self.hits = hits

    def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
        return list(self.hits[:k])


def test_chain_refuses_without_generating_when_nothing_is_relevant() -> None:
    calls: list[str] = []

    def complete(prompt: str) -> str:
        calls.append(prompt)
        return "anything [1]"

    qa = RetrievalQA(
        _Fixed(_hits()), CompletionGenerator(complete), verifier=CitationVerifier(FakeEmbedder())
    )
    answer = qa.ask("zebra migration patterns")
    assert answer.refused
    assert calls == []
    assert len(answer.related) == 2
    streamed = list(qa.stream("zebra migration patterns"))
    assert isinstance(streamed[-1], Answer)
    assert streamed[-1].refused


def test_chain_verifies_generated_citations() -> None:
    qa = RetrievalQA(
        _Fixed(_hits()),
        CompletionGenerator(lambda p: "The default timeout is five seconds [1]."),
        verifier=CitationVerifier(FakeEmbedder()),
    )
    answer = qa.ask("what is the default timeout")
    assert answer.text == "The default timeout is five seconds [2]."
    assert answer.citations[0].source == "time.md"
