"""llama.cpp through ``llama-cpp-python``.

Used when asked for (``backend="llama_cpp"``) or when it is the only binding installed;
it has only a source release (a long compile), so it is not an extra of its own that
ragkit installs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit._deps import require
from ragkit.errors import GenerationError
from ragkit.generation._usage import UsageSlot
from ragkit.generation.prompt import ChatMessage
from ragkit.types import Usage

if TYPE_CHECKING:
    from ragkit.generation._llama_runtime import Options

__all__ = ["LlamaCppPythonRuntime"]


class LlamaCppPythonRuntime:
    """llama.cpp through ``llama_cpp.Llama`` (llama-cpp-python)."""

    name = "llama-cpp-python"

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int | None,
        seed: int | None,
        verbose: bool,
        lora: Path | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        llama_cpp = require(
            "llama_cpp",
            extra="llama-cpp-python",
            purpose='LlamaCppGenerator(backend="llama_cpp")',
            package="llama-cpp-python",
        )
        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "n_threads": n_threads, "verbose": verbose}
        if seed is not None:
            kwargs["seed"] = seed
        if lora is not None:
            kwargs["lora_path"], kwargs["lora_scale"] = str(lora), lora_scale
        try:
            self._llm: Any = llama_cpp.Llama(model_path=str(path), **kwargs)
        except Exception as exc:
            raise GenerationError(f"llama-cpp-python could not load {path}: {exc}") from exc
        self.n_ctx = int(self._llm.n_ctx())
        self.last_timings: Mapping[str, float] | None = None
        self._usage = UsageSlot()
        self._lock = threading.Lock()  # a Llama object runs one generation at a time

    @property
    def chat_format(self) -> None:
        return None  # counted in frame_messages' frame, with the model's tokenizer

    @property
    def last_usage(self) -> Usage | None:
        """The token counts llama.cpp reported for this thread's last answer."""
        return self._usage.get()

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def _kwargs(self, messages: Sequence[ChatMessage], options: Options) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "messages": [m.to_dict() for m in messages],
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "repeat_penalty": options.repeat_penalty,
        }
        if options.stop:
            kwargs["stop"] = list(options.stop)
        if options.seed is not None:
            kwargs["seed"] = options.seed
        return kwargs

    def complete(self, messages: Sequence[ChatMessage], options: Options) -> str:
        with self._lock:
            try:
                result = self._llm.create_chat_completion(**self._kwargs(messages, options))
            except Exception as exc:
                raise GenerationError(f"llama-cpp-python failed: {exc}") from exc
        self._usage.set(Usage.from_wire(result.get("usage")))
        return str(result["choices"][0]["message"].get("content") or "")

    def stream(self, messages: Sequence[ChatMessage], options: Options) -> Iterator[str]:
        self._usage.set(None)  # llama-cpp-python's streams carry no counts
        with self._lock:
            try:
                chunks = self._llm.create_chat_completion(
                    **self._kwargs(messages, options), stream=True
                )
                for chunk in chunks:
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield content
            except GenerationError:
                raise
            except Exception as exc:
                raise GenerationError(f"llama-cpp-python failed: {exc}") from exc

    def close(self) -> None:
        close = getattr(self._llm, "close", None)
        if callable(close):
            close()
