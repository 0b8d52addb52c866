"""What one app holds: the catalog, the open kbs, the job pool, limits and metrics.

A :class:`ServerState` lives on ``app.state.ragkit`` and nowhere else, so two apps in
one process share nothing. Every kb a request names is resolved through
``catalog.get_kb(key.tenant, name)``: another tenant's kb is not found, the same as one
that does not exist.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ragkit.backends.catalog import Catalog, KbInfo, RateBuckets
from ragkit.server.errors import not_found
from ragkit.server.jobs import JobRunner
from ragkit.server.limits import RateLimiter
from ragkit.server.metrics import Metrics
from ragkit.server.settings import ServerSettings

if TYPE_CHECKING:
    from ragkit.rag import RAG

__all__ = ["KbPool", "RagOpener", "ServerState", "default_opener"]

logger = logging.getLogger(__name__)

#: Opens the :class:`~ragkit.rag.RAG` of a kb (tests pass one with a fake embedder).
RagOpener = Callable[[KbInfo], "RAG"]


def default_opener(info: KbInfo) -> RAG:
    """``RAG(info.settings, tenant=info.tenant)``: the embedded defaults."""
    from ragkit.rag import RAG

    return RAG(info.settings, tenant=info.tenant)


class KbPool:
    """The kbs this process has opened, one :class:`RAG` each, opened on first use.

    Args:
        catalog: where kbs are looked up.
        opener: opens a kb's RAG.
    """

    def __init__(self, catalog: Catalog, opener: RagOpener) -> None:
        self.catalog = catalog
        self._opener = opener
        self._lock = threading.Lock()
        # (tenant, name) -> (when the kb was created, its RAG): a kb deleted and made
        # again (by another worker, too) has another creation time, and is reopened.
        self._open: dict[tuple[str, str], tuple[float, RAG]] = {}
        self._opening: dict[tuple[str, str], threading.Lock] = {}

    def info(self, tenant: str, name: str) -> KbInfo:
        """The kb ``name`` of ``tenant``, or a 404 (also for another tenant's kb)."""
        info = self.catalog.get_kb(tenant, name)
        if info is None:
            raise not_found(f"kb {name!r}")
        return info

    def rag(self, tenant: str, name: str) -> RAG:
        """The open RAG of the kb ``name`` of ``tenant`` (404 when it has none)."""
        info = self.info(tenant, name)
        key = (info.tenant, info.name)
        with self._lock:
            rag = self._current(key, info.created)
            if rag is not None:
                return rag
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:  # one opening per kb; other kbs open meanwhile
            with self._lock:
                rag = self._current(key, info.created)
            if rag is None:
                rag = self._opener(info)
                with self._lock:
                    self._open[key] = (info.created, rag)
        return rag

    def _current(self, key: tuple[str, str], created: float) -> RAG | None:
        """The open RAG of ``key`` if it is of the kb created at ``created``; one of an
        earlier kb of that name is closed (call with the lock held)."""
        entry = self._open.get(key)
        if entry is None:
            return None
        if entry[0] == created:
            return entry[1]
        del self._open[key]
        try:
            entry[1].close()
        except Exception:  # the old kb is gone; its connections may be too
            logger.warning("could not close the RAG of a replaced kb %s", key, exc_info=True)
        return None

    def forget(self, tenant: str, name: str) -> None:
        """Close the kb's RAG, if open (before the kb is deleted)."""
        with self._lock:
            entry = self._open.pop((tenant, name), None)
        if entry is not None:
            entry[1].close()

    def close(self) -> None:
        """Close every open RAG."""
        with self._lock:
            rags, self._open = [rag for _, rag in self._open.values()], {}
        for rag in rags:
            try:
                rag.close()
            except Exception:  # closing the others matters more
                logger.exception("could not close %s", rag.location)


class ServerState:
    """Everything one app holds (see the module docstring).

    Args:
        settings: the operator's settings.
        catalog: the engine's catalog (the app closes it on shutdown).
        opener: opens a kb's RAG (default: :func:`default_opener`).
    """

    def __init__(
        self, settings: ServerSettings, catalog: Catalog, opener: RagOpener | None = None
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.metrics = Metrics()
        self.kbs = KbPool(catalog, opener or default_opener)
        self.jobs = JobRunner(
            catalog,
            workers=settings.job_workers,
            heartbeat=settings.job_heartbeat,
            stale_after=settings.job_stale_after,
            on_finish=self.metrics.job_finished,
        )
        shared = catalog if isinstance(catalog, RateBuckets) else None
        self.limiter = RateLimiter(settings.rate_limit, settings.burst, shared=shared)
        #: Held while a write request looks for a job to reuse and makes its own.
        self.accept_lock = threading.Lock()
        #: (tenant, kb, request hash) -> id of the job made for it (dedup of repeats).
        self.recent: dict[tuple[str, str, str], str] = {}
        self._spool = settings.spool_dir
        self._own_spool = False
        self._closed = False

    @property
    def spool(self) -> Path:
        """Where uploaded files wait for their jobs (made on first use)."""
        if self._spool is None:
            self._spool = Path(tempfile.mkdtemp(prefix="ragkit-spool-"))
            self._own_spool = True
        self._spool.mkdir(parents=True, exist_ok=True)
        return self._spool

    def close(self) -> None:
        """Finish running jobs, close the kbs and the catalog (once)."""
        if self._closed:
            return
        self._closed = True
        self.jobs.close(wait=True)
        self.kbs.close()
        self.catalog.close()
        if self._own_spool and self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
