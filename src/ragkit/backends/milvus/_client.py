"""The Milvus connection: pymilvus imported on first use, its failures as StoreError.

pymilvus is imported here and nowhere else in ragkit; a missing package raises
:class:`~ragkit.errors.MissingDependencyError` naming the ``milvus`` extra.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

from ragkit._deps import require
from ragkit.backends.urls import MilvusSettings
from ragkit.errors import StoreError

__all__ = ["MAX_LIMIT", "STRONG", "Connection", "batched", "pymilvus"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Reads that must see every write before them.
STRONG = "Strong"
#: Milvus's largest ``limit`` (and ``offset + limit``) of one search or query.
MAX_LIMIT = 16384
_WRITES = frozenset({"insert", "upsert", "delete"})


def pymilvus() -> ModuleType:
    """The pymilvus module, or :class:`MissingDependencyError` naming the extra."""
    return require("pymilvus", extra="milvus", purpose="A Milvus knowledge base")


# pymilvus pings every 10 s, with or without calls in flight. A gRPC server with the
# default policy (Milvus Lite's) answers pings more often than every 5 minutes without
# data with GOAWAY "too_many_pings"; the channel then fails and every later call on it
# ("connect failed") until the process reconnects. Pings every 5 minutes, during calls
# only, stay inside that policy and still find a dead connection.
_GRPC_OPTIONS = {
    "grpc.keepalive_time_ms": 300_000,
    "grpc.keepalive_permit_without_calls": False,
}


class Connection:
    """One :class:`pymilvus.MilvusClient` for a kb, with ragkit's error messages.

    The token comes from the settings (``MILVUS_TOKEN``) and is handed to pymilvus only;
    messages name :attr:`MilvusSettings.location`, which never holds it.

    Writes through one connection are sent one at a time: Milvus Lite does not serialize
    concurrent writes to a collection, and the lease's renewal thread writes beside the
    writer's batches.
    """

    def __init__(self, settings: MilvusSettings) -> None:
        self.settings = settings
        self.location = settings.location
        module = pymilvus()
        self.errors: tuple[type[BaseException], ...] = (module.MilvusException,)
        self._writes = threading.Lock()
        options: dict[str, Any] = {
            "uri": settings.uri,
            "timeout": 30.0,
            "grpc_options": _GRPC_OPTIONS,
        }
        if settings.token:
            options["token"] = settings.token
        if settings.db_name:
            options["db_name"] = settings.db_name
        with self.failing("connect"):
            self.client: Any = module.MilvusClient(**options)
        logger.debug("connected to Milvus at %s", self.location)

    @contextmanager
    def failing(self, what: str) -> Iterator[None]:
        """Turn a pymilvus failure during ``what`` into a :class:`StoreError`."""
        try:
            yield
        except self.errors as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise StoreError(
                f"Milvus at {self.location}: {what} failed: {message}. Check that the "
                "server is running and reachable, and that MILVUS_TOKEN grants access."
            ) from exc

    def call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<method>(*args, **kwargs)``, failures as :class:`StoreError`."""
        with self.failing(what):
            if method in _WRITES:
                with self._writes:
                    return getattr(self.client, method)(*args, **kwargs)
            return getattr(self.client, method)(*args, **kwargs)

    def query_all(self, what: str, collection: str, expr: str, fields: list[str]) -> list[Any]:
        """Every row matching ``expr`` (strong reads), past Milvus's limit per query."""
        rows: list[Any] = self.call(
            what,
            "query",
            collection,
            filter=expr,
            output_fields=fields,
            limit=MAX_LIMIT,
            consistency_level=STRONG,
        )
        if len(rows) < MAX_LIMIT:
            return rows
        # More than one query holds: page with an iterator (one consistent snapshot).
        rows = []
        with self.failing(what):
            iterator = self.client.query_iterator(
                collection,
                batch_size=4096,
                filter=expr,
                output_fields=fields,
                consistency_level=STRONG,
            )
            try:
                while batch := iterator.next():
                    rows.extend(batch)
            finally:
                iterator.close()
        return rows

    def has_collection(self, name: str) -> bool:
        return bool(self.call(f"checking collection {name!r}", "has_collection", name))

    def close(self) -> None:
        with self.failing("closing the connection"):
            self.client.close()


def batched(items: list[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
