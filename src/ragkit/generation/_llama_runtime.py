"""Where the GGUF model is, and which llama.cpp binding runs it.

:class:`~ragkit.generation.LlamaCppGenerator` talks to a binding only through the
:class:`Runtime` protocol: ``_llama_server.py`` implements it with ``xllamacpp``,
``_llama_python.py`` with ``llama-cpp-python``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol

from ragkit._deps import INSTALL_SMOLLM2, default_model_path
from ragkit.generation._llama_python import LlamaCppPythonRuntime
from ragkit.generation._llama_server import XllamacppRuntime
from ragkit.generation.prompt import ChatMessage
from ragkit.types import Usage

__all__ = [
    "INSTALL_SMOLLM2",
    "Backend",
    "Options",
    "Runtime",
    "default_model_path",
    "open_runtime",
]

Backend = Literal["auto", "xllamacpp", "llama_cpp"]


class Options(Protocol):
    """The sampling settings a runtime reads (the generator's own attributes)."""

    max_tokens: int
    temperature: float
    seed: int | None
    repeat_penalty: float
    stop: tuple[str, ...]


class Runtime(Protocol):
    """What LlamaCppGenerator needs from a llama.cpp binding."""

    name: str
    n_ctx: int
    last_timings: Mapping[str, float] | None

    @property
    def last_usage(self) -> Usage | None:
        """Token counts llama.cpp reported for the calling thread's last answer (None
        when it sent none)."""
        ...

    @property
    def chat_format(self) -> Callable[[Sequence[ChatMessage]], str] | None:
        """Renders messages with the model's chat template, if the binding can."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def complete(self, messages: Sequence[ChatMessage], options: Options) -> str: ...

    def stream(self, messages: Sequence[ChatMessage], options: Options) -> Iterator[str]: ...

    def close(self) -> None: ...


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def open_runtime(
    path: Path,
    backend: Backend,
    *,
    n_ctx: int,
    n_threads: int | None,
    seed: int | None,
    verbose: bool,
    lora: Path | None = None,
    lora_scale: float = 1.0,
) -> Runtime:
    """Load the model at ``path`` with ``backend``; ``"auto"`` takes xllamacpp when it is
    installed, else llama-cpp-python; ``lora`` is a LoRA adapter GGUF applied at load."""
    if backend == "auto":
        # when neither is installed, the error names the extra that has a wheel
        use_xllamacpp = _installed("xllamacpp") or not _installed("llama_cpp")
        backend = "xllamacpp" if use_xllamacpp else "llama_cpp"
    if backend == "xllamacpp":
        return XllamacppRuntime(
            path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            verbose=verbose,
            lora=lora,
            lora_scale=lora_scale,
        )
    return LlamaCppPythonRuntime(
        path,
        n_ctx=n_ctx,
        n_threads=n_threads,
        seed=seed,
        verbose=verbose,
        lora=lora,
        lora_scale=lora_scale,
    )
