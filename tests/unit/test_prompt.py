from __future__ import annotations

import pytest

from ragkit.errors import ConfigurationError
from ragkit.generation import CompletionGenerator, PromptBuilder
from ragkit.tokens import count_tokens
from ragkit.types import Chunk, Generation, ScoredChunk


def _hits(n: int, words: int = 50) -> list[ScoredChunk]:
    return [
        ScoredChunk(
            Chunk(
                id=f"c{i}",
                text=" ".join(f"w{i}x{j}" for j in range(words)),
                document_id="d",
                source=f"s{i}.md",
                start=0,
                end=1,
            ),
            1.0 - i / 100,
        )
        for i in range(n)
    ]


def test_everything_fits_when_budget_allows() -> None:
    builder = PromptBuilder(context_window=100_000, answer_tokens=100)
    prompt = builder.build("What?", _hits(5))
    assert len(prompt.contexts) == 5
    assert prompt.dropped == ()
    assert "[1] (s0.md)" in prompt.text
    assert "[5] (s4.md)" in prompt.text
    assert prompt.tokens == count_tokens(prompt.text)


@pytest.mark.parametrize("window", [600, 900, 1300, 1800])
def test_budget_never_exceeded_and_lowest_ranked_dropped_first(window: int) -> None:
    hits = _hits(10)
    builder = PromptBuilder(context_window=window, answer_tokens=128)
    prompt = builder.build("What is in the documents?", hits)
    assert count_tokens(prompt.text) <= window - 128
    assert prompt.tokens <= builder.budget
    kept = len(prompt.contexts)
    assert list(prompt.contexts) == hits[:kept]  # best-ranked kept, in order
    assert list(prompt.dropped) == hits[kept:]  # dropped whole, lowest-ranked
    assert 0 < kept < 10
    # One more context would not have fit.
    assert (
        count_tokens(builder.render("What is in the documents?", hits[: kept + 1])) > builder.budget
    )


def test_template_too_long_is_a_clear_error() -> None:
    builder = PromptBuilder(context_window=60, answer_tokens=50)
    with pytest.raises(ConfigurationError, match="template and question alone"):
        builder.build("a question " * 20, _hits(1))


def test_template_must_have_placeholders() -> None:
    with pytest.raises(ConfigurationError):
        PromptBuilder(template="no placeholders")
    with pytest.raises(ConfigurationError):
        PromptBuilder(context_window=10, answer_tokens=10)


def test_completion_generator_sends_the_prompt_and_records_drops() -> None:
    seen: list[str] = []

    def complete(prompt: str) -> str:
        seen.append(prompt)
        return " From the first [1]. "

    gen = CompletionGenerator(
        complete, builder=PromptBuilder(context_window=700, answer_tokens=128)
    )
    out = gen.generate("Q?", _hits(10))
    assert out.text == "From the first [1]."
    assert "Question: Q?" in seen[0]
    assert len(out.contexts) + len(out.dropped) == 10
    assert out.dropped


def test_completion_generator_streams_deltas_then_generation() -> None:
    gen = CompletionGenerator(
        lambda p: "unused", stream=lambda p: iter(["Par", "is [1]", "."]), model="m"
    )
    items = list(gen.stream("Q?", _hits(2)))
    assert items[:3] == ["Par", "is [1]", "."]
    final = items[-1]
    assert isinstance(final, Generation)
    assert final.text == "Paris [1]."
    assert len(final.contexts) == 2
