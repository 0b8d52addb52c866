"""Streamed answers send only verified text: nothing sent is taken back by the final answer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ragkit import RetrievalQA
from ragkit.testing import FakeEmbedder
from ragkit.types import (
    Answer,
    Chunk,
    CitationEvent,
    DeltaEvent,
    DoneEvent,
    Generation,
    ScoredChunk,
    SourcesEvent,
    StreamEvent,
)
from ragkit.verification import CitationVerifier

PASSAGES = [
    "The sky over the harbour is blue in summer. Fishing boats leave at dawn.",
    "Grass in the valley turns green after the spring rain.",
]
QUESTION = "What colour is the sky over the harbour in summer?"


class Retriever:
    def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
        return [
            ScoredChunk(
                Chunk(id=f"c{i}", text=t, document_id=f"d{i}", source=f"s{i}.md", start=0,
                      end=len(t)),
                1.0 - i / 10,
            )
            for i, t in enumerate(PASSAGES[:k])
        ]  # fmt: skip


class ScriptedGenerator:
    """Streams fixed pieces and logs what it did, so tests see what came out when."""

    model = "scripted"

    def __init__(self, pieces: Sequence[str], log: list[str]) -> None:
        self.pieces = list(pieces)
        self.log = log
        self.closed = False

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        return Generation("".join(self.pieces), tuple(contexts), model=self.model)

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        try:
            for piece in self.pieces:
                self.log.append(f"gen:{piece}")
                yield piece
            yield Generation("".join(self.pieces), tuple(contexts), model=self.model)
        finally:
            self.closed = True


def _chain(pieces: Sequence[str], log: list[str]) -> tuple[RetrievalQA, ScriptedGenerator]:
    generator = ScriptedGenerator(pieces, log)
    verifier = CitationVerifier(FakeEmbedder(), min_relevance=0.0)
    return RetrievalQA(Retriever(), generator, verifier=verifier, k=2), generator


def _run(qa: RetrievalQA, log: list[str]) -> list[StreamEvent]:
    events = []
    for event in qa.events(QUESTION):
        if isinstance(event, DeltaEvent):
            log.append(f"sent:{event.text}")
        events.append(event)
    return events


def _final(events: list[StreamEvent]) -> Answer:
    done = [e for e in events if isinstance(e, DoneEvent)]
    assert len(done) == 1
    assert events[-1] is done[0]
    return done[0].answer


def _sent(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, DeltaEvent))


def test_sentences_go_out_verified_while_the_generator_still_writes() -> None:
    log: list[str] = []
    qa, _ = _chain(
        [
            "The sky over the harbour is blue in summer [1].",
            " Fishing boats leave at dawn [2].",
            " Grass in the valley turns green after the spring rain [2].",
        ],
        log,
    )
    events = _run(qa, log)
    assert isinstance(events[0], SourcesEvent)
    assert len(events[0].hits) == 2
    answer = _final(events)
    assert _sent(events) == answer.text
    # Marker [2] of the second sentence was re-pointed to passage 1 before it was sent.
    assert answer.text.startswith(
        "The sky over the harbour is blue in summer [1]. Fishing boats leave at dawn [1]."
    )
    first_sent = next(i for i, line in enumerate(log) if line.startswith("sent:"))
    assert first_sent < log.index("gen: Grass in the valley turns green after the spring rain [2].")
    assert "[2]" not in log[first_sent]  # the wrong marker never went out


def test_citation_events_follow_the_text_that_cites_them() -> None:
    log: list[str] = []
    qa, _ = _chain(
        ["The sky over the harbour is blue in summer [1].", " Grass in the valley turns green "
         "after the spring rain [2].", " Fishing boats leave at dawn [1]."],
        log,
    )  # fmt: skip
    events = _run(qa, log)
    sent = ""
    cited = []
    for event in events:
        if isinstance(event, DeltaEvent):
            sent += event.text
        elif isinstance(event, CitationEvent):
            assert f"[{event.citation.marker}]" in sent
            cited.append(event.citation.marker)
    answer = _final(events)
    assert cited == [c.marker for c in answer.citations] == [1, 2]


def test_an_unsupported_opening_is_held_until_a_claim_is_supported() -> None:
    log: list[str] = []
    qa, _ = _chain(
        [
            "Bananas on the moon are purple [1].",
            " The sky over the harbour is blue in summer [1].",
            " Fishing boats leave at dawn.",
        ],
        log,
    )
    events = _run(qa, log)
    answer = _final(events)
    assert not answer.refused
    assert answer.unsupported == ("Bananas on the moon are purple.",)
    assert _sent(events) == answer.text
    first_sent = next(line for line in log if line.startswith("sent:"))
    assert "The sky over the harbour is blue" in first_sent  # not the bananas alone


def test_an_answer_nothing_supports_sends_only_the_refusal() -> None:
    log: list[str] = []
    qa, _ = _chain(["Bananas on the moon are purple [1].", " Cheese is a planet [2]."], log)
    events = _run(qa, log)
    answer = _final(events)
    assert answer.refused
    assert _sent(events) == answer.text
    assert "Bananas" not in _sent(events)


def test_a_repeated_sentence_is_held_to_the_end() -> None:
    log: list[str] = []
    sentence = "The sky over the harbour is blue in summer [1]."
    qa, _ = _chain([sentence, " " + sentence, " Fishing boats leave at dawn [1]."], log)
    events = _run(qa, log)
    answer = _final(events)
    assert _sent(events) == answer.text
    end = log.index("gen: Fishing boats leave at dawn [1].")
    early = "".join(line[5:] for line in log[:end] if line.startswith("sent:"))
    # The original went out; the copy was held, since a repeat guard could cut it.
    assert early.count("blue in summer") == 1


def test_closing_the_events_stops_the_generator() -> None:
    log: list[str] = []
    pieces = [
        f"The sky over the harbour is blue in summer [1]. Boats {i} leave." for i in range(50)
    ]
    qa, generator = _chain(pieces, log)
    events = qa.events(QUESTION)
    for event in events:
        if isinstance(event, DeltaEvent):
            break
    events.close()
    assert generator.closed
    assert sum(line.startswith("gen:") for line in log) < 5
