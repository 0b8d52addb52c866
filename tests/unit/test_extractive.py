from __future__ import annotations

from ragkit.analysis import content_terms, split_sentences
from ragkit.generation import REFUSAL, ExtractiveGenerator
from ragkit.testing import FakeEmbedder
from ragkit.types import Chunk, ScoredChunk


def _hit(n: int, text: str) -> ScoredChunk:
    return ScoredChunk(
        Chunk(id=f"c{n}", text=text, document_id="d", source=f"s{n}", start=0, end=len(text)),
        1.0,
    )


def test_split_sentences_keeps_exact_spans() -> None:
    text = "First one. Second, e.g. with an abbreviation! Third?\n\nFourth line"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "First one.",
        "Second, e.g. with an abbreviation!",
        "Third?",
        "Fourth line",
    ]


def test_content_terms_drop_stopwords_and_stem() -> None:
    assert content_terms("How do I set the timeouts?") == ["set", "timeout"]


def test_answer_quotes_the_relevant_sentence_with_its_marker() -> None:
    contexts = [
        _hit(1, "Bananas are yellow. Apples can be red or green."),
        _hit(2, "The default timeout is five seconds. Pools hold ten connections."),
    ]
    gen = ExtractiveGenerator(max_sentences=1).generate("What is the default timeout?", contexts)
    assert gen.text == "The default timeout is five seconds. [2]"
    assert gen.extractive
    assert not gen.refused


def test_several_sentences_each_carry_their_own_marker() -> None:
    contexts = [
        _hit(1, "Timeouts are configured per client. Colours are nice."),
        _hit(2, "A timeout raises TimeoutException when exceeded."),
    ]
    gen = ExtractiveGenerator(max_sentences=3, relative_cutoff=0.1).generate(
        "timeout client exceeded", contexts
    )
    assert "Timeouts are configured per client. [1]" in gen.text
    assert "A timeout raises TimeoutException when exceeded. [2]" in gen.text
    assert "Colours" not in gen.text


def test_refuses_when_nothing_matches() -> None:
    contexts = [_hit(1, "Bananas are yellow fruit. They grow in bunches.")]
    gen = ExtractiveGenerator().generate("What is the boiling point of mercury?", contexts)
    assert gen.refused
    assert gen.text == REFUSAL
    assert ExtractiveGenerator().generate("anything at all", []).refused


def test_embedder_adds_semantic_score_without_breaking_lexical_choice() -> None:
    contexts = [
        _hit(1, "Bananas are yellow fruit. They grow in bunches."),
        _hit(2, "The default timeout is five seconds. Pools hold ten connections."),
    ]
    gen = ExtractiveGenerator(FakeEmbedder(), max_sentences=1).generate(
        "default timeout seconds", contexts
    )
    assert gen.text == "The default timeout is five seconds. [2]"


def test_identifiers_are_split_into_words() -> None:
    assert {"timeout", "exception"} <= set(content_terms("raises TimeoutException"))
    assert {"max", "connection"} <= set(content_terms("max_connections"))


def test_code_blocks_are_not_quoted_as_answers() -> None:
    text = (
        "The default timeout is 5 seconds of inactivity.\n\n"
        "```python\nclient = Client(timeout=10.0)  # a default timeout of 10s\n```\n"
    )
    gen = ExtractiveGenerator(max_sentences=3, relative_cutoff=0.0).generate(
        "What is the default timeout?", [_hit(1, text)]
    )
    assert gen.text == "The default timeout is 5 seconds of inactivity. [1]"


def test_chunk_starting_inside_a_code_block_is_recognised() -> None:
    from ragkit.analysis import code_spans

    text = "client = Client(timeout=10.0)  # default 10s\n```\n\nThe default is 5 seconds.\n"
    spans = code_spans(text)
    assert spans == [(0, text.index("```") + 3)]
    gen = ExtractiveGenerator(relative_cutoff=0.0).generate("default timeout", [_hit(1, text)])
    assert gen.text == "The default is 5 seconds. [1]"
