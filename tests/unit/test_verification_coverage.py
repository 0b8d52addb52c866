"""What a supporting passage must hold: the claim's own facts, not only similar words."""

from __future__ import annotations

from ragkit.citations import answer_from_generation
from ragkit.testing import FakeEmbedder
from ragkit.types import Answer, Chunk, Generation, ScoredChunk
from ragkit.verification import CitationVerifier

POOL = "Intro here. The pool holds twenty connections per host. Idle ones close."
TIMEOUT = "Other words first. The default timeout is five seconds. More text."
HITS = tuple(
    ScoredChunk(
        Chunk(id=name, text=text, document_id=name, source=f"{name}.md", start=0, end=len(text)),
        0.9,
    )
    for name, text in (("pool", POOL), ("time", TIMEOUT))
)


def _verified(question: str, text: str, **kwargs: float) -> Answer:
    answer = answer_from_generation(question, Generation(text=text, contexts=HITS, model="m"))
    return CitationVerifier(FakeEmbedder(), **kwargs).verify(answer)


def test_a_similar_sentence_with_another_fact_does_not_support_the_claim() -> None:
    question = "How many connections does the pool hold per host?"
    claim = "The pool holds fifty connections per host [1]."  # the passage says twenty
    loose = _verified(question, claim, threshold=0.6, min_coverage=0.0)
    assert [c.source for c in loose.citations] == ["pool.md"]  # similarity alone accepts it

    strict = _verified(question, claim, threshold=0.6)
    assert strict.refused
    assert strict.citations == ()
    assert strict.unsupported == ("The pool holds fifty connections per host.",)


def test_words_taken_from_the_question_need_not_be_in_the_passage() -> None:
    answer = _verified(
        "How many connections does the ragkit pool hold per host?",
        "The ragkit pool holds twenty connections per host [1].",
    )
    assert [c.source for c in answer.citations] == ["pool.md"]
    assert answer.citations[0].quote == "The pool holds twenty connections per host."
    assert answer.unsupported == ()


def test_words_about_the_task_are_not_facts_to_find() -> None:
    # the bag-of-words stand-in scores this paraphrase 0.65: a lower bar lets it through
    answer = _verified(
        "how big is the pool", "The answer is twenty connections per host [1].", threshold=0.6
    )
    assert not answer.refused
    assert [c.source for c in answer.citations] == ["pool.md"]


def test_a_fact_found_only_in_another_passage_is_cited_there() -> None:
    answer = _verified(
        "what is the default timeout of the pool",
        "The default timeout of the pool is five seconds [1].",
    )
    assert [c.source for c in answer.citations] == ["time.md"]
    assert answer.text == "The default timeout of the pool is five seconds [2]."


def test_without_decay_an_unsupported_answer_is_refused_at_once() -> None:
    answer = _verified("q", "Bananas grow quickly in winter [1].", decay=1.0)
    assert answer.refused


ROW = "staging,staging.skyline.example,8443,eu-west"
ROWS = (
    ScoredChunk(
        Chunk(id="env", text=ROW, document_id="env", source="env.csv", start=0, end=len(ROW)),
        0.9,
    ),
)


def _verified_on_rows(question: str, text: str, **kwargs: float) -> Answer:
    answer = answer_from_generation(question, Generation(text=text, contexts=ROWS, model="m"))
    return CitationVerifier(FakeEmbedder(), **kwargs).verify(answer)


def test_a_claim_restating_a_table_row_is_supported_below_the_threshold() -> None:
    question = "Which port does the staging environment use?"
    claim = "The staging environment uses port 8443."
    off = _verified_on_rows(question, claim, exact_floor=1.0)  # the restatement rule off
    assert off.refused
    on = _verified_on_rows(question, claim, exact_floor=0.0)
    assert not on.refused
    assert [c.source for c in on.citations] == ["env.csv"]


def test_a_restatement_with_another_number_is_not_supported() -> None:
    question = "Which port does the staging environment use?"
    answer = _verified_on_rows(question, "The staging environment uses port 9443.", exact_floor=0.0)
    assert answer.refused
    assert answer.unsupported == ("The staging environment uses port 9443.",)


SKYLINE = "Skyline is the client. It retries 7 times. The default timeout is 5 seconds."


def test_names_may_come_from_the_passage_but_numbers_must_be_in_the_sentence() -> None:
    hits = (
        ScoredChunk(
            Chunk(id="s", text=SKYLINE, document_id="s", source="s.md", start=0, end=len(SKYLINE)),
            0.9,
        ),
    )
    verifier = CitationVerifier(FakeEmbedder(), threshold=0.99, exact_floor=0.0)

    def verified(text: str) -> Answer:
        question = "What is the default timeout?"
        return verifier.verify(
            answer_from_generation(question, Generation(text=text, contexts=hits, model="m"))
        )

    named = verified("The default timeout for Skyline is 5 seconds.")
    assert [c.quote for c in named.citations] == ["The default timeout is 5 seconds."]
    # 7 is in the passage, but not in the sentence about the timeout
    wrong = verified("The default timeout for Skyline is 7 seconds.")
    assert wrong.refused
