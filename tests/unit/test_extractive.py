from __future__ import annotations

from ragkit.analysis import content_terms, split_sentences
from ragkit.generation import REFUSAL, ExtractiveGenerator
from ragkit.testing import FakeEmbedder
from ragkit.types import Chunk, ScoredChunk


def _hit(n: int, text: str, score: float = 1.0, document: str = "d") -> ScoredChunk:
    return ScoredChunk(
        Chunk(id=f"c{n}", text=text, document_id=document, source=f"s{n}", start=0, end=len(text)),
        score,
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
        _hit(1, "Timeouts are configured per client. Colours are nice. A timeout is exceeded."),
        _hit(2, "Bananas are yellow fruit. They grow in bunches."),
    ]
    gen = ExtractiveGenerator(max_sentences=3, relative_cutoff=0.1).generate(
        "timeout client exceeded", contexts
    )
    assert gen.text == "Timeouts are configured per client. [1] A timeout is exceeded. [1]"


def test_quotes_only_the_passage_of_the_best_sentence() -> None:
    # Passage 2 also matches the question, but less well: quoting it would add a
    # citation to a passage that did not give the answer.
    contexts = [
        _hit(1, "Pools hold ten connections. The default timeout of a client is five seconds."),
        _hit(2, "A timeout raises TimeoutException when exceeded.", document="other"),
    ]
    gen = ExtractiveGenerator(max_sentences=3, relative_cutoff=0.0).generate(
        "What is the default timeout of a client?", contexts
    )
    assert "[2]" not in gen.text
    assert "TimeoutException" not in gen.text
    # the answering sentence comes first, the rest of the passage after it
    assert gen.text == (
        "The default timeout of a client is five seconds. [1] Pools hold ten connections. [1]"
    )
    reading = ExtractiveGenerator(max_sentences=3, relative_cutoff=0.0, best_first=False)
    assert reading.generate("What is the default timeout of a client?", contexts).text == (
        "Pools hold ten connections. [1] The default timeout of a client is five seconds. [1]"
    )


def test_other_passages_of_the_same_document_may_add_a_sentence() -> None:
    question = "What is the default timeout of a client?"
    contexts = [
        _hit(1, "The default timeout of a client is five seconds.", document="guide"),
        _hit(2, "A client timeout can be raised per request.", document="guide"),
        _hit(3, "A client timeout also applies to the pool.", document="faq"),
    ]
    answer = ExtractiveGenerator(relative_cutoff=0.0).generate(question, contexts).text
    assert answer == (
        "The default timeout of a client is five seconds. [1] "
        "A client timeout can be raised per request. [2]"
    )
    one_passage = ExtractiveGenerator(relative_cutoff=0.0, same_document=0)
    assert one_passage.generate(question, contexts).text == (
        "The default timeout of a client is five seconds. [1]"
    )


def test_retrieval_score_breaks_near_ties_between_passages() -> None:
    question = "When does the library open on Sundays?"
    contexts = [
        _hit(1, "The library opens at noon on Sundays and holidays.", score=0.1, document="a"),
        _hit(2, "On Sundays the library opens at ten.", score=1.0, document="b"),
    ]
    lexical_only = ExtractiveGenerator(max_sentences=1, retrieval_weight=0.0)
    weighted = ExtractiveGenerator(max_sentences=1, retrieval_weight=0.5)
    assert lexical_only.generate(question, contexts).text.endswith("[1]")
    assert weighted.generate(question, contexts).text.endswith("[2]")


def test_min_margin_refuses_when_two_documents_answer_equally_well() -> None:
    question = "Who designed the bridge?"
    rivals = [
        _hit(1, "The bridge was designed by Anna Berg.", document="a"),
        _hit(2, "The bridge was designed by Carl Holm.", document="b"),
    ]
    cautious = ExtractiveGenerator(min_margin=0.05)
    assert cautious.generate(question, rivals).refused
    assert not ExtractiveGenerator().generate(question, rivals).refused
    # one document, or a clear winner, is still answered
    alone = [rivals[0], _hit(2, "Bananas are yellow fruit. They grow in bunches.", document="b")]
    answer = cautious.generate(question, alone)
    assert not answer.refused
    assert answer.text == "The bridge was designed by Anna Berg. [1]"


def test_refusal_keeps_the_contexts_for_related_sources() -> None:
    contexts = [_hit(1, "Bananas are yellow fruit. They grow in bunches.")]
    gen = ExtractiveGenerator().generate("What is the boiling point of mercury?", contexts)
    assert gen.refused
    assert gen.contexts == tuple(contexts)


def test_negative_retrieval_scores_do_not_flip_the_choice() -> None:
    # reranker logits can all be negative; they must not reward the worst passage
    contexts = [
        _hit(1, "The default timeout is five seconds.", score=-1.0, document="a"),
        _hit(2, "Bananas are yellow fruit. They grow in bunches.", score=-9.0, document="b"),
    ]
    gen = ExtractiveGenerator(max_sentences=1, retrieval_weight=1.0).generate(
        "What is the default timeout?", contexts
    )
    assert gen.text == "The default timeout is five seconds. [1]"


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


# -- concise answers -------------------------------------------------------------------

_LIBRARY = [
    _hit(
        1,
        "The city library was built of red brick. It has three floors and a garden. "
        "The library opens at nine on Sundays. Its reading room seats two hundred. "
        "The library lends books, maps and city records to residents.",
    )
]


def test_best_first_puts_the_answering_sentence_first() -> None:
    question = "When does the library open on Sundays?"
    options = {"relative_cutoff": 0.0, "typed_extras": False}
    reading = ExtractiveGenerator(best_first=False, **options).generate(question, _LIBRARY)
    first = ExtractiveGenerator(best_first=True, **options).generate(question, _LIBRARY)
    assert not reading.text.startswith("The library opens at nine on Sundays.")
    assert first.text.startswith("The library opens at nine on Sundays. [1]")

    # the same sentences, only the order differs
    def sentences(text: str) -> set[str]:
        return {s.strip() for s in text.split("[1]") if s.strip()}

    assert sentences(first.text) == sentences(reading.text)


def test_max_words_caps_the_answer_but_keeps_the_best_sentence() -> None:
    question = "When does the library open on Sundays?"
    capped = ExtractiveGenerator(relative_cutoff=0.0, typed_extras=False, max_words=12)
    text = capped.generate(question, _LIBRARY).text
    quoted = [s.strip() for s in text.split("[1]") if s.strip()]
    assert quoted[0] == "The library opens at nine on Sundays."
    assert sum(len(s.split()) for s in quoted) <= 12
    # a best sentence longer than the cap is quoted whole, alone
    alone = ExtractiveGenerator(relative_cutoff=0.0, best_first=True, max_words=3)
    assert alone.generate(question, _LIBRARY).text == "The library opens at nine on Sundays. [1]"


def test_min_new_terms_drops_sentences_that_add_nothing() -> None:
    question = "When does the library open on Sundays?"
    contexts = [
        _hit(1, "The library opens at nine on Sundays. On Sundays the library opens at nine."),
        _hit(2, "The library opens at nine on Sundays. Sunday visitors park for free nearby."),
    ]
    options = {"relative_cutoff": 0.0, "typed_extras": False}
    lenient = ExtractiveGenerator(min_new_terms=0, **options).generate(question, contexts)
    assert lenient.text.count("opens at nine") == 2
    strict = ExtractiveGenerator(min_new_terms=2, **options).generate(question, contexts)
    assert strict.text.count("opens at nine") == 1
    assert "Sunday visitors park for free nearby. [2]" in strict.text


def test_typed_extras_keep_only_sentences_that_could_answer() -> None:
    contexts = [
        _hit(
            1,
            "The bridge opened to traffic in 1937. The bridge is painted orange. "
            "Its towers were raised in 1933.",
        )
    ]
    question = "When did the bridge open?"
    loose = ExtractiveGenerator(relative_cutoff=0.0, typed_extras=False).generate(
        question, contexts
    )
    assert "painted orange" in loose.text
    typed = ExtractiveGenerator(relative_cutoff=0.0)  # typed_extras is the default
    text = typed.generate(question, contexts).text
    assert text == "The bridge opened to traffic in 1937. [1] Its towers were raised in 1933. [1]"
    # a question of no recognised kind keeps its extras
    other = typed.generate("Why is the bridge painted?", contexts).text
    assert "painted orange" in other


def test_follow_on_adds_the_next_sentence_about_the_same_subject() -> None:
    contexts = [
        _hit(
            1,
            "Nikola Tesla moved to New York to work for Edison. He was paid eighteen dollars "
            "a week. Edison's company made dynamos.",
        )
    ]
    question = "Why did Nikola Tesla move to New York?"
    without = ExtractiveGenerator(relative_cutoff=0.5, follow_on=False).generate(question, contexts)
    assert without.text == "Nikola Tesla moved to New York to work for Edison. [1]"
    with_next = ExtractiveGenerator(relative_cutoff=0.5).generate(question, contexts)
    assert with_next.text == (
        "Nikola Tesla moved to New York to work for Edison. [1] "
        "He was paid eighteen dollars a week. [1]"
    )
