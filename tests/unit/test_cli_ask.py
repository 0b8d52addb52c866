"""``ragkit ask``: how many chunks the answer is written from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ragkit import RAG, Document, ScoredChunk
from ragkit.cli import main
from ragkit.testing import FakeEmbedder, FakeGenerator
from ragkit.types import Generation

given: list[int] = []


class CountingLlm(FakeGenerator):
    """Stands in for LlamaCppGenerator; records how many chunks it is given."""

    def __init__(self, path: str | None = None, n_threads: int | None = None) -> None:
        super().__init__()

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        given.append(len(contexts))
        return super().generate(question, contexts)


@pytest.mark.parametrize(
    ("extra", "chunks"),
    [
        (["--llm"], [1]),  # the bundled SmolLM2 answers from the best chunk
        (["--llm", "own.gguf"], [3]),  # a model of the user's own: the default 4 (3 exist)
        (["--llm", "--k", "2"], [2]),
        ([], []),  # extractive: the LLM is not used
    ],
)
def test_ask_answers_from_one_chunk_with_the_bundled_llm_only(
    extra: list[str], chunks: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragkit.embeddings
    import ragkit.generation.llamacpp

    monkeypatch.setattr(ragkit.embeddings, "SentenceTransformerEmbedder", FakeEmbedder)
    monkeypatch.setattr(ragkit.generation.llamacpp, "LlamaCppGenerator", CountingLlm)
    kb = tmp_path / "kb"
    with RAG(kb, embedder=FakeEmbedder(), store="memory") as rag:
        rag.add(
            [
                Document(id=f"d{i}", source=f"d{i}.txt", text=f"Fact number {i} about timeouts.")
                for i in range(3)
            ]
        )
    given.clear()
    argv = ["ask", "What is the timeout?", "--kb", str(kb), "--json", "--no-verify", *extra]
    assert main(argv) == 0
    assert given == chunks
