"""Ingest jobs: run in a bounded pool of threads, recorded in the catalog for every worker.

A write request (upload, replace, delete, sync) answers ``202`` with a job at once; the
job runs here, in this process's pool, and every change of state is saved with
``catalog.save_job``, so any worker of the server answers its status. While a job is
queued or running, its worker writes a heartbeat every ``heartbeat`` seconds; a job
whose heartbeat is older than ``stale_after`` lost its worker (killed, crashed, the
machine gone), and whoever reads it next marks it failed. A cancel request is kept in
the job's record, so the worker running it sees it even when another worker took the
request: a queued job is canceled at once, a running one between two files.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ragkit.backends.catalog import Catalog, JobRecord
from ragkit.errors import RagkitError
from ragkit.types import FileIssue, IndexReport

__all__ = ["TERMINAL", "JobCanceledError", "JobContext", "JobOutcome", "JobRunner"]

logger = logging.getLogger(__name__)

#: States a job never leaves.
TERMINAL = ("succeeded", "failed", "partial", "canceled")
_SAVE_EVERY = 0.5  # seconds between progress saves of one job


class JobCanceledError(RagkitError):
    """Raised inside a job's work when it was canceled; the job ends ``canceled``."""


@dataclass
class JobOutcome:
    """What a job's work returns.

    Attributes:
        report: the indexer's report, when the job indexed or deleted something.
        errors: per-file failures found before indexing (a file that does not load).
        message: a line for people.
    """

    report: IndexReport | None = None
    errors: list[FileIssue] = field(default_factory=list)
    message: str | None = None


class JobContext:
    """What a running job's work gets: progress reports and the cancel check."""

    def __init__(self, runner: JobRunner, job_id: str, cancel: threading.Event) -> None:
        self._runner = runner
        self._job_id = job_id
        self._cancel = cancel
        self._saved = 0.0

    def check(self) -> None:
        """Raise :class:`JobCanceledError` when the job was canceled."""
        if self._cancel.is_set():
            raise JobCanceledError(f"job {self._job_id} was canceled")

    def progress(self, done: int, total: int | None = None) -> None:
        """Record progress (saved at most twice a second), then :meth:`check`."""
        now = time.monotonic()
        if now - self._saved >= _SAVE_EVERY:
            self._saved = now
            update: dict[str, Any] = {"done": done}
            if total is not None:
                update["total"] = total
            self._runner._update(self._job_id, detail=update)
        self.check()


Work = Callable[[JobContext], JobOutcome]


@dataclass
class _Active:
    job: JobRecord
    cancel: threading.Event


class JobRunner:
    """The jobs of one server process (see the module docstring).

    Example:
        >>> runner = JobRunner(catalog, workers=2)  # doctest: +SKIP
        >>> job = runner.create("acme", "handbook", "upload")  # doctest: +SKIP
        >>> runner.submit(job, lambda ctx: JobOutcome())  # doctest: +SKIP

    Args:
        catalog: where jobs are saved.
        workers: jobs run at once.
        heartbeat: seconds between heartbeats of this process's jobs.
        stale_after: seconds without a heartbeat after which a job counts as failed.
        on_finish: called with each job that ends here (metrics).
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        workers: int = 2,
        heartbeat: float = 5.0,
        stale_after: float = 60.0,
        on_finish: Callable[[JobRecord], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._on_finish = on_finish
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ragkit-job")
        self._lock = threading.RLock()
        self._active: dict[str, _Active] = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- the API side ------------------------------------------------------------------

    def create(
        self,
        tenant: str,
        kb: str,
        kind: str,
        *,
        idempotency_key: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> tuple[JobRecord, bool]:
        """A new queued job of this worker, saved (not yet running: :meth:`submit`), and
        True; or, when another worker holds ``idempotency_key`` on this kb already, that
        worker's job and False (nothing saved)."""
        now = time.time()
        job = JobRecord(
            id=f"job_{secrets.token_hex(12)}",
            tenant=tenant,
            kb=kb,
            state="queued",
            kind=kind,
            created=now,
            updated=now,
            idempotency_key=idempotency_key,
            detail=dict(detail or {}),
            worker=self.worker_id,
            heartbeat=now,
        )
        stored = self.catalog.add_job(job)
        return stored, stored.id == job.id

    def submit(self, job: JobRecord, work: Work) -> None:
        """Queue ``work`` for ``job`` (made by :meth:`create`) in the pool."""
        cancel = threading.Event()
        with self._lock:
            self._active[job.id] = _Active(job, cancel)
            if self._beat is None:
                self._beat = threading.Thread(
                    target=self._beat_loop, name="ragkit-job-heartbeat", daemon=True
                )
                self._beat.start()
        self._pool.submit(self._run, job.id, work, cancel)

    def get(self, tenant: str, job_id: str) -> JobRecord | None:
        """The job of ``tenant``; a queued or running job without a recent heartbeat is
        failed (and saved so)."""
        job = self.catalog.get_job(tenant, job_id)
        if job is None or job.state in TERMINAL:
            return job
        with self._lock:
            if job.id in self._active:
                return self._active[job.id].job
        if time.time() - job.heartbeat > self.stale_after:
            job = replace(
                job,
                state="failed",
                updated=time.time(),
                detail={
                    **job.detail,
                    "message": f"the worker running this job stopped (no heartbeat for over "
                    f"{self.stale_after:.0f} s); submit it again",
                },
            )
            self.catalog.save_job(job)
        return job

    def cancel(self, tenant: str, job_id: str) -> JobRecord | None:
        """Ask the job to stop; returns it as it stands (None when there is no such job)."""
        job = self.get(tenant, job_id)
        if job is None or job.state in TERMINAL:
            return job
        with self._lock:
            active = self._active.get(job_id)
            if active is not None:
                active.cancel.set()
                if active.job.state == "queued":
                    return self._finish(job_id, "canceled", {"message": "canceled"})
                return active.job
        # Another worker runs it: leave the request where its heartbeat reads it.
        job = replace(job, detail={**job.detail, "cancel_requested": True})
        self.catalog.save_job(job)
        return job

    def close(self, wait: bool = True) -> None:
        """Stop the heartbeat; with ``wait``, let running jobs finish first."""
        with self._lock:
            for active in self._active.values():
                if active.job.state == "queued":
                    active.cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)

    # -- the worker side ---------------------------------------------------------------

    def _run(self, job_id: str, work: Work, cancel: threading.Event) -> None:
        with self._lock:
            active = self._active.get(job_id)
            if active is None or active.job.state != "queued":
                return  # canceled while queued
            if cancel.is_set():
                self._finish(job_id, "canceled", {"message": "canceled"})
                return
            self._update(job_id, state="running")
        try:
            outcome = work(JobContext(self, job_id, cancel))
        except JobCanceledError:
            self._finish(job_id, "canceled", {"message": "canceled while running"})
            return
        except RagkitError as exc:
            self._finish(job_id, "failed", {"message": str(exc)})
            return
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            self._finish(
                job_id, "failed", {"message": f"the job failed ({type(exc).__name__}); see the log"}
            )
            return
        errors = list(outcome.errors)
        detail: dict[str, Any] = {"errors": []}
        processed = 0
        if outcome.report is not None:
            report = outcome.report
            errors += report.failed
            detail["report"] = asdict(report)
            processed = sum(
                len(x) for x in (report.added, report.updated, report.unchanged, report.deleted)
            )
        detail["errors"] = [{"source": e.source, "reason": e.reason} for e in errors]
        if outcome.message:
            detail["message"] = outcome.message
        state = "succeeded" if not errors else "partial" if processed else "failed"
        self._finish(job_id, state, detail)

    def _update(
        self, job_id: str, *, state: str | None = None, detail: dict[str, Any] | None = None
    ) -> JobRecord | None:
        with self._lock:
            active = self._active.get(job_id)
            if active is None:
                return None
            job = active.job
            merged = {**job.detail, **(detail or {})}
            now = time.time()
            job = replace(job, state=state or job.state, detail=merged, updated=now, heartbeat=now)
            active.job = job
            self._save(active)
            return job

    def _finish(self, job_id: str, state: str, detail: dict[str, Any]) -> JobRecord:
        with self._lock:
            active = self._active.pop(job_id)
            merged = {**active.job.detail, **detail}
            merged.pop("cancel_requested", None)
            job = replace(active.job, state=state, detail=merged, updated=time.time())
            active.job = job
            self.catalog.save_job(job)
        logger.info("job %s (%s on %s) %s", job.id, job.kind, job.kb, state)
        if self._on_finish is not None:
            self._on_finish(job)
        return job

    def _save(self, active: _Active) -> None:
        # A cancel taken by another worker lives in the stored record: keep it.
        stored = self.catalog.get_job(active.job.tenant, active.job.id)
        if stored is not None and stored.detail.get("cancel_requested"):
            active.cancel.set()
            active.job = replace(active.job, detail={**active.job.detail, "cancel_requested": True})
        self.catalog.save_job(active.job)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat):
            with self._lock:
                ids = list(self._active)
            for job_id in ids:
                try:
                    self._update(job_id)
                except Exception:  # a catalog hiccup must not stop the heartbeat
                    logger.exception("could not save the heartbeat of job %s", job_id)
