"""The writers' lease of a Milvus kb: a row in the record collection, not a real lock.

Milvus has no locks and no transactions, so writers agree through one row (key
``lease``) holding an owner id and an expiry time:

1. read the row (strong consistency); if it is absent, expired or ours, write it with
   our id and ``now + TTL``;
2. wait a moment and read it again: if another writer wrote in between, the last
   write won and only that writer goes on; the others wait and retry;
3. while held, a background thread renews the expiry every ``TTL / 3``; a writer that
   finds the lease taken from it (it stalled past the expiry) stops at its next write
   with :class:`~ragkit.errors.KnowledgeBaseLockedError`;
4. on release the row is deleted. A writer that crashes leaves the row until it
   expires (``TTL``, 30 s).

This is a lease, not a transactional lock: two writers whose read-and-write steps
overlap by more than the settle time (0.2 s, e.g. on a stalled server) can both believe
they hold it, and expiry compares the writers' wall clocks, which must agree to within
seconds. It keeps well-behaved ragkit processes from writing one kb at once; it does
not fence a writer that lost its lease in the middle of a Milvus request.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ragkit.backends.milvus._client import STRONG, Connection
from ragkit.backends.milvus._record import row
from ragkit.errors import KnowledgeBaseLockedError, StoreError

__all__ = ["SETTLE", "Lease"]

logger = logging.getLogger(__name__)

TTL = 30.0
#: Seconds a writer waits for a concurrent write to land before reading again.
SETTLE = 0.2
_POLL = 0.25
_KEY = 'key == "lease"'


class Lease:
    """The writers' lease of one kb, re-entrant per object (see the module docstring).

    Args:
        connection: the kb's connection.
        collection: the record collection holding the lease row.
        wait: seconds to wait for another writer's lease before giving up.
    """

    def __init__(self, connection: Connection, collection: str, wait: float) -> None:
        self._conn = connection
        self._collection = collection
        self._wait = wait
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._depth = 0
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._lost = False
        self._heartbeat: threading.Thread | None = None

    @property
    def depth(self) -> int:
        """How many :meth:`hold` blocks of this object are open (0: the lease is free)."""
        return self._depth

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lease for the ``with`` block (waits up to ``wait`` seconds)."""
        with self._guard:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
        try:
            yield
        finally:
            with self._guard:
                self._depth -= 1
                if self._depth == 0:
                    self._release()

    def check(self) -> None:
        """Raise when the lease was taken from this writer while it held it."""
        if self._lost:
            raise KnowledgeBaseLockedError(
                f"{self._conn.location} (this writer's lease expired and another writer "
                "took it; its write was stopped)"
            )

    def _read(self) -> dict[str, Any] | None:
        rows = self._conn.call(
            "reading the writers' lease",
            "query",
            self._collection,
            filter=_KEY,
            output_fields=["data"],
            consistency_level=STRONG,
        )
        held: dict[str, Any] | None = json.loads(rows[0]["data"]) if rows else None
        return held

    def _write(self) -> None:
        data = json.dumps({"owner": self.owner, "expires": time.time() + TTL})
        self._conn.call(
            "writing the writers' lease", "upsert", self._collection, [row("lease", "lease", data)]
        )

    def _acquire(self) -> None:
        deadline = time.monotonic() + self._wait
        while True:
            held = self._read()
            if held is None or held["expires"] < time.time() or held["owner"] == self.owner:
                self._write()
                time.sleep(SETTLE)  # let a concurrent writer's upsert land, then re-read
                held = self._read()
                if held is not None and held["owner"] == self.owner:
                    break
            if time.monotonic() >= deadline:
                owner = held["owner"] if held else "another writer"
                raise KnowledgeBaseLockedError(
                    f"{self._conn.location} (writers' lease held by {owner}; waited "
                    f"{self._wait:g} s; a crashed writer's lease expires {TTL:g} s after "
                    "its last renewal)"
                )
            time.sleep(_POLL)
        self._lost = False
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._renew, name="ragkit-milvus-lease", daemon=True
        )
        self._heartbeat.start()
        logger.debug("writers' lease of %s taken by %s", self._conn.location, self.owner)

    def _renew(self) -> None:
        while not self._stop.wait(TTL / 3):
            try:
                held = self._read()
                if held is None or held["owner"] != self.owner:
                    self._lost = True
                    logger.warning("the writers' lease of %s was lost", self._conn.location)
                    return
                self._write()
            except StoreError as exc:  # a blip: the next renewal may still be in time
                logger.warning("could not renew the writers' lease: %s", exc)

    def _release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        held = self._read()
        if held is not None and held["owner"] == self.owner:
            self._conn.call("releasing the writers' lease", "delete", self._collection, filter=_KEY)
        logger.debug("writers' lease of %s released", self._conn.location)

    def close(self) -> None:
        """Give the lease back if this object still holds it."""
        with self._guard:
            if self._depth:
                self._depth = 0
                self._release()
