"""Helpers to test against a real ragkit server: uvicorn on loopback, fakes for speed.

In-process test clients buffer a streamed response and hide streaming bugs; tests of
streams, disconnects and clients run the app in a real uvicorn on ``127.0.0.1``::

    with running_server(create_app(settings, open_rag=fake_opener())) as base_url:
        httpx.get(base_url + "/healthz")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ragkit.types import Generation, ScoredChunk

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ragkit.backends.catalog import KbInfo
    from ragkit.protocols import Generator
    from ragkit.rag import RAG

__all__ = ["SlowStreamingGenerator", "fake_opener", "free_port", "running_server"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_server(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL, stops
    it (running the app's shutdown) on exit."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def fake_opener(generator: Generator | None = None, **options: Any) -> Callable[[KbInfo], RAG]:
    """Opens each kb with :class:`~ragkit.testing.FakeEmbedder` and a memory store (and
    ``generator``, if given): a server that starts in milliseconds."""

    def open_rag(info: KbInfo) -> RAG:
        from ragkit.rag import RAG
        from ragkit.testing import FakeEmbedder

        return RAG(
            info.settings,
            tenant=info.tenant,
            embedder=FakeEmbedder(),
            store="memory",
            generator=generator,
            **options,
        )

    return open_rag


class SlowStreamingGenerator:
    """Streams the first context's first sentence back ``repeat`` times (numbered), word
    by word, ``delay`` s per word, citing ``[1]``; counts the words it wrote, and
    whether it was stopped early.

    Args:
        delay: seconds per word.
        repeat: how many times the context's text is written.
    """

    model = "slow-fake"

    def __init__(self, delay: float = 0.02, repeat: int = 30) -> None:
        self.delay = delay
        self.repeat = repeat
        self.words = 0
        self.stopped_early = threading.Event()
        self.finished = threading.Event()

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        text = "".join(w for w in self.stream(question, contexts) if isinstance(w, str))
        return Generation(text=text, contexts=tuple(contexts), model=self.model)

    def _text(self, contexts: Sequence[ScoredChunk]) -> str:
        if not contexts:
            return "I don't have enough information."
        sentence = contexts[0].chunk.text.strip().split(". ")[0].rstrip(".")
        # Numbered, so no sentence repeats another word for word (a stream holds those).
        return " ".join(f"{sentence}, case {i} [1]." for i in range(1, self.repeat + 1))

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        self.words = 0
        self.stopped_early.clear()
        self.finished.clear()
        text = self._text(contexts)
        pieces = text.split(" ")
        try:
            for i, piece in enumerate(pieces):
                time.sleep(self.delay)
                self.words += 1
                yield piece if i == 0 else " " + piece
        except GeneratorExit:
            self.stopped_early.set()
            raise
        self.finished.set()
        yield Generation(text=text, contexts=tuple(contexts), model=self.model)
