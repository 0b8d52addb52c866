"""Any LangChain chat model as a ragkit generator, streaming included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGenerationChunk

from ragkit import Answer, RetrievalQA
from ragkit.adapters.langchain import LangChainChatGenerator
from ragkit.errors import GenerationError
from ragkit.generation import DEFAULT_SYSTEM, DEFAULT_USER_TEMPLATE, PromptBuilder
from ragkit.protocols import StreamingGenerator
from ragkit.types import Chunk, Generation, ScoredChunk, Usage

HITS = [
    ScoredChunk(
        Chunk(id=f"c{i}", text=t, document_id=f"d{i}", source=f"s{i}.md", start=0, end=len(t)),
        1.0 - i / 10,
    )
    for i, t in enumerate(["Paris is the capital of France.", "Berlin is in Germany."], 1)
]


class RecordingChat(GenericFakeChatModel):
    """GenericFakeChatModel that also keeps the messages it was sent."""

    seen: ClassVar[list[list[BaseMessage]]] = []

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


class ListRetriever:
    def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
        return HITS[:k]


def _answers(*texts: str) -> Iterator[AIMessage]:
    return iter([AIMessage(content=t) for t in texts])


def test_fits_the_streaming_generator_protocol() -> None:
    gen = LangChainChatGenerator(FakeListChatModel(responses=["x"]))
    assert isinstance(gen, StreamingGenerator)
    assert gen.model == "FakeListChatModel"


def test_generate_sends_system_and_human_messages() -> None:
    RecordingChat.seen.clear()
    chat = RecordingChat(messages=_answers("Paris is the capital [1]."))
    out = LangChainChatGenerator(chat, model="fake").generate("Capital of France?", HITS)
    assert out.text == "Paris is the capital [1]."
    assert out.model == "fake"
    assert out.contexts == tuple(HITS)
    (messages,) = chat.seen
    system, human = messages
    assert isinstance(system, SystemMessage)
    assert system.content == DEFAULT_SYSTEM
    assert isinstance(human, HumanMessage)
    assert "[1] (s1.md)\nParis is the capital of France." in str(human.content)
    assert str(human.content).endswith("Question: Capital of France?")


def test_stream_yields_the_models_chunks_then_the_generation() -> None:
    gen = LangChainChatGenerator(GenericFakeChatModel(messages=_answers("Paris is it [1].")))
    *deltas, final = list(gen.stream("Capital?", HITS))
    # GenericFakeChatModel streams word by word, spaces as chunks of their own.
    assert deltas == ["Paris", " ", "is", " ", "it", " ", "[1]."]
    assert isinstance(final, Generation)
    assert final.text == "Paris is it [1]."


class CountingChat(GenericFakeChatModel):
    """Streams as Anthropic's models do: the prompt's tokens on a first chunk, the
    answer's on a last one (LangChain adds the chunks' ``usage_metadata`` up)."""

    def _stream(self, messages: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        def counts(read: int, written: int) -> ChatGenerationChunk:
            usage = {"input_tokens": read, "output_tokens": written, "total_tokens": read + written}
            return ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage))

        yield counts(30, 0)
        yield from super()._stream(messages, *args, **kwargs)
        yield counts(0, 6)


def test_the_chat_models_token_counts_reach_the_answer() -> None:
    counted = {"input_tokens": 30, "output_tokens": 6, "total_tokens": 36}
    reply = AIMessage(content="Paris is it [1].", usage_metadata=counted)  # type: ignore[arg-type]
    whole = LangChainChatGenerator(GenericFakeChatModel(messages=iter([reply])))
    assert whole.generate("Capital?", HITS).usage == Usage(30, 6)
    streamed = LangChainChatGenerator(CountingChat(messages=_answers("Paris is it [1].")))
    *_, final = list(streamed.stream("Capital?", HITS))
    assert isinstance(final, Generation)
    assert final.usage == Usage(30, 6)
    plain = LangChainChatGenerator(GenericFakeChatModel(messages=_answers("Paris [1].")))
    assert plain.generate("Capital?", HITS).usage is None  # the model sent no counts


def test_retrievalqa_stream_keeps_the_sources() -> None:
    chat = FakeListChatModel(responses=["Paris [1], not Berlin. Berlin is in Germany [2]."])
    qa = RetrievalQA(ListRetriever(), LangChainChatGenerator(chat), k=2)
    items = list(qa.stream("Capital of France?"))
    answer = items[-1]
    assert isinstance(answer, Answer)
    deltas = [i for i in items[:-1] if isinstance(i, str)]
    # FakeListChatModel streams one character at a time; the chain sends whole sentences.
    assert deltas == ["Paris [1], not Berlin.", " Berlin is in Germany [2]."]
    assert "".join(deltas) == answer.text
    assert [(c.marker, c.source) for c in answer.citations] == [(1, "s1.md"), (2, "s2.md")]


def test_budget_drops_contexts_that_do_not_fit() -> None:
    long_hits = [
        ScoredChunk(
            Chunk(
                id=f"c{i}",
                text=" ".join(f"w{i}x{j}" for j in range(100)),
                document_id="d",
                source=f"s{i}.md",
                start=0,
                end=1,
            ),
            1.0,
        )
        for i in range(8)
    ]
    builder = PromptBuilder(
        DEFAULT_USER_TEMPLATE, system=DEFAULT_SYSTEM, context_window=1000, answer_tokens=200
    )
    gen = LangChainChatGenerator(FakeListChatModel(responses=["ok [1]"]), builder=builder)
    out = gen.generate("Q?", long_hits)
    assert 0 < len(out.contexts) < 8
    assert list(out.dropped) == long_hits[len(out.contexts) :]


def test_list_content_blocks_are_joined() -> None:
    blocks = [
        {"type": "text", "text": "Paris "},
        {"type": "reasoning"},
        {"type": "text", "text": "[1]"},
    ]
    chat = GenericFakeChatModel(messages=iter([AIMessage(content=blocks)]))  # type: ignore[arg-type]
    assert LangChainChatGenerator(chat).generate("Q?", HITS).text == "Paris [1]"


def test_model_errors_become_generation_errors() -> None:
    chat = GenericFakeChatModel(messages=iter([]))  # nothing left to answer
    with pytest.raises(GenerationError, match="GenericFakeChatModel"):
        LangChainChatGenerator(chat).generate("Q?", HITS)
